#include "catalog/library.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>

#include "catalog/thumbnails.hpp"
#include "http/media_key.hpp"

namespace mediagate::catalog {
namespace net = boost::asio;

namespace {

// Runs one coroutine on the worker's own event loop until it completes.
template <class T>
T run_here(net::io_context& io, net::awaitable<T> task) {
  auto done = net::co_spawn(io, std::move(task), net::use_future);
  auto guard = net::make_work_guard(io);
  io.restart();
  while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) io.run_one();
  return done.get();
}

net::awaitable<storage::result<storage::object_meta>> write_bytes(std::shared_ptr<storage::storage> store,
                                                                  std::string key, std::string type,
                                                                  std::string bytes) {
  auto offset = std::make_shared<std::size_t>(0);
  auto data = std::make_shared<std::string>(std::move(bytes));
  storage::body_source source = [offset,
                                 data](std::span<char> buf) -> net::awaitable<storage::result<std::size_t>> {
    const auto n = std::min(buf.size(), data->size() - *offset);
    std::copy_n(data->data() + *offset, n, buf.data());
    *offset += n;
    co_return n;
  };
  co_return co_await store->write(std::move(key), std::move(type), std::move(source));
}

}  // namespace

net::awaitable<void> remove_thumbnails(storage::storage& store, std::string id) {
  // By key, every sprite a plan can have: a listing would walk a local library and skips hidden names.
  constexpr auto max_rows = (kMaxThumbnails + thumbnail_plan::per_row - 1) / thumbnail_plan::per_row;
  for (std::size_t row = 0; row < max_rows; ++row) (void)co_await store.remove(thumbnail_key(id, row));
}

library::library(std::shared_ptr<catalog> cat, storage_maker make_storage, probe_tools tools,
                 std::shared_ptr<spdlog::logger> log)
    : cat_(std::move(cat)),
      make_storage_(std::move(make_storage)),
      tools_(std::move(tools)),
      log_(std::move(log)) {
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  owner_ = std::string(host) + ":" + std::to_string(::getpid()) + ":" + random_ids()();
}

library::~library() { stop(); }

void library::start(std::string media_url) {
  media_url_ = std::move(media_url);
  const auto count = std::max<std::size_t>(1, tools_.workers);
  for (std::size_t i = 0; i < count; ++i) {
    auto w = std::make_unique<worker>();
    w->store = make_storage_(w->io);
    workers_.push_back(std::move(w));
  }
  for (auto& w : workers_) w->thread = std::thread([this, &w = *w] { run(w); });
  log_->debug("library: {} workers, {} ms per ffprobe/ffmpeg run", count, tools_.timeout.count());
}

void library::begin_stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  // Running probes are not waited for: their process groups are killed now, and the workers see it.
  cancel_.cancel();
  wake_.notify_all();
  idle_.notify_all();
}

void library::stop() {
  begin_stop();
  for (auto& w : workers_)
    if (w->thread.joinable()) w->thread.join();
  for (auto& w : workers_) w->store.reset();
}

void library::request_scan() {
  {
    std::lock_guard lock(mutex_);
    if (std::find(queue_.begin(), queue_.end(), std::string()) != queue_.end()) return;
    queue_.emplace_back();
  }
  wake_.notify_one();
}

void library::request_probe(const std::string& id) {
  {
    std::lock_guard lock(mutex_);
    if (std::find(queue_.begin(), queue_.end(), id) != queue_.end()) return;
    queue_.push_back(id);
  }
  wake_.notify_one();
}

std::optional<scan_report> library::wait_idle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return (queue_.empty() && running_.empty()) || stopping_; });
  return last_scan_;
}

void library::run(worker& w) {
  std::unique_lock lock(mutex_);
  while (true) {
    // The first queued job that no other worker is running: an item queued again while it is probed waits
    // for that probe (which usually makes the second one a no-op), and scans never overlap.
    auto next = queue_.end();
    wake_.wait(lock, [&] {
      if (stopping_) return true;
      next = std::find_if(queue_.begin(), queue_.end(), [&](const std::string& job) {
        return std::find(running_.begin(), running_.end(), job) == running_.end();
      });
      return next != queue_.end();
    });
    if (stopping_) break;
    std::string job = std::move(*next);
    queue_.erase(next);
    running_.push_back(job);
    lock.unlock();
    // One top-level catch per job: a failing job is logged and the worker goes on with the next.
    try {
      if (job.empty())
        do_scan(w);
      else
        do_probe(w, job);
    } catch (const std::exception& e) {
      log_->error("library: {} failed: {}", job.empty() ? std::string("scan") : "probe of " + job, e.what());
    }
    lock.lock();
    running_.erase(std::find(running_.begin(), running_.end(), job));
    if (queue_.empty() && running_.empty()) idle_.notify_all();
    wake_.notify_all();  // a job held back while this one ran may go now
  }
}

void library::do_scan(worker& w) {
  const auto started = std::chrono::steady_clock::now();
  auto listing = run_here(w.io, w.store->list(""));
  if (!listing) {
    log_->error("scan of {} failed: {}", w.store->describe(), listing.err().message);
    return;
  }
  auto report = apply_scan(*cat_, plan_scan(*listing, cat_->all()));
  const auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  log_->info("scan of {}: {} objects listed, {} added, {} changed, {} missing, {} unchanged ({:.0f} ms)",
             w.store->describe(), listing->size(), report.added, report.updated, report.missing,
             report.unchanged, ms);
  {
    std::lock_guard lock(mutex_);
    last_scan_ = report;
  }
  for (const auto& item : cat_->all())
    if (item.needs_probe()) request_probe(item.id);
}

void library::do_probe(worker& w, const std::string& id) {
  auto item = cat_->get(id);
  if (!item || !item->needs_probe()) return;
  const auto kind = item->kind();
  if (kind == "other") {
    // Not media (an upload of another type): nothing to learn, and no reason to hand it to FFmpeg.
    cat_->set_probe(id, item->etag, {});
    return;
  }
  // Several processes (nodes sharing a PostgreSQL catalog, or `mediagate scan` beside a server) may want
  // this probe at once: the one whose claim lands probes, the others go on. A claim outlives a prober that
  // died only until every run it could make (ffprobe, then ffmpeg for the poster) had timed out.
  const auto stale_after = std::chrono::duration_cast<std::chrono::seconds>(tools_.timeout * 2).count() + 30;
  if (!cat_->claim_probe(id, item->etag, owner_, stale_after)) {
    log_->debug("probe of {} ({}) is claimed by another process", item->key, id);
    return;
  }
  const auto started = std::chrono::steady_clock::now();
  auto input = media_url_ + http::encode_key_for_url(item->key);
  if (link_query_) input += link_query_(item->key);  // private media: the server wants a signed link
  probe_facts facts;
  std::string error;
  bool cancelled = false;
  auto info = probe_media(tools_, input, item->content_type, error, &cancel_, &cancelled);
  if (cancelled) {  // shutting down: says nothing about the file, so it is probed at the next start
    cat_->release_probe(id, owner_);
    return;
  }
  // ffprobe succeeds on bytes its demuxer merely tolerates (a text file read as JPEG): no picture, no sound
  // is a failure too.
  if (info && kind == "image" && !info->width) {
    info.reset();
    error = "no image found";
  } else if (info && kind != "image" && !info->has_video && !info->has_audio) {
    info.reset();
    error = "no audio or video stream found";
  }
  if (!info) {
    // Recorded with its reason, which the API shows; not retried on every scan, only when the object
    // changes (a new ETag).
    log_->warn("probe of {} ({}) failed: {}", item->key, id, error);
    facts.error = error;
    cat_->set_probe(id, item->etag, facts);
    return;
  }
  if (kind == "video" || kind == "audio") facts.duration = info->duration;
  if (info->has_video || kind == "image") {
    facts.width = info->width;
    facts.height = info->height;
  }
  if (kind == "video" && info->has_video) {
    const double at = facts.duration ? std::min(2.0, *facts.duration / 4) : 0.0;
    auto jpeg = make_poster(tools_, input, info->format, at, error, &cancel_);
    if (cancel_.cancelled()) {  // as above: the next start makes the poster
      cat_->release_probe(id, owner_);
      return;
    }
    if (jpeg.empty()) {
      log_->warn("poster of {} ({}) failed: {}", item->key, id, error);
    } else {
      const auto poster_key = std::string(kPosterPrefix) + id + ".jpg";
      auto written = run_here(w.io, write_bytes(w.store, poster_key, "image/jpeg", std::move(jpeg)));
      if (written)
        facts.poster_key = poster_key;
      else
        log_->warn("cannot store poster {}: {}", poster_key, written.err().message);
    }
  }
  // Seek thumbnails: all sprites or none (the web page and players find them through /v/{id}/thumbs.vtt).
  std::size_t thumbnail_rows = 0;
  if (kind == "video" && info->has_video) {
    run_here(w.io,
             remove_thumbnails(*w.store, id));  // an earlier version's, which the new duration may not cover
    if (auto plan = plan_thumbnails(facts.duration)) {
      for (std::size_t row = 0; row < plan->rows(); ++row) {
        auto jpeg = make_thumbnail_row(tools_, input, info->format, plan->times(row), error, &cancel_);
        bool stored = false;
        if (!jpeg.empty()) {
          auto written =
              run_here(w.io, write_bytes(w.store, thumbnail_key(id, row), "image/jpeg", std::move(jpeg)));
          stored = static_cast<bool>(written);
          if (!written) error = written.err().message;
        }
        if (!stored) {
          if (!cancel_.cancelled()) log_->warn("thumbnails of {} ({}) failed: {}", item->key, id, error);
          run_here(w.io, remove_thumbnails(*w.store, id));
          break;
        }
        thumbnail_rows = row + 1;
      }
      if (cancel_.cancelled()) {  // as above: the next start makes them
        cat_->release_probe(id, owner_);
        return;
      }
      if (thumbnail_rows != plan->rows()) thumbnail_rows = 0;
    }
  }
  if (!cat_->set_probe(id, item->etag, facts)) {
    // Deleted or changed meanwhile: a poster and thumbnails made for it now belong to nothing.
    if (!cat_->get(id)) {
      if (!facts.poster_key.empty()) run_here(w.io, w.store->remove(facts.poster_key));
      if (thumbnail_rows) run_here(w.io, remove_thumbnails(*w.store, id));
    }
    return;
  }
  const auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  log_->info("probed {} ({}): {:.2f} s, {}x{}{}{} ({:.0f} ms)", item->key, id, facts.duration.value_or(0),
             facts.width.value_or(0), facts.height.value_or(0), facts.poster_key.empty() ? "" : ", poster",
             thumbnail_rows ? ", thumbnails" : "", ms);
}

}  // namespace mediagate::catalog
