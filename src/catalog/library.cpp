#include "catalog/library.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/use_future.hpp>
#include <chrono>

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

library::library(std::shared_ptr<catalog> cat, storage_maker make_storage, probe_tools tools,
                 std::shared_ptr<spdlog::logger> log)
    : cat_(std::move(cat)),
      make_storage_(std::move(make_storage)),
      tools_(std::move(tools)),
      log_(std::move(log)) {}

library::~library() { stop(); }

void library::start(std::string media_url) {
  media_url_ = std::move(media_url);
  store_ = make_storage_(io_);
  thread_ = std::thread([this] { run(); });
}

void library::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  store_.reset();
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
  idle_.wait(lock, [this] { return (queue_.empty() && !busy_) || stopping_; });
  return last_scan_;
}

void library::run() {
  while (true) {
    std::string job;
    {
      std::unique_lock lock(mutex_);
      busy_ = false;
      idle_.notify_all();
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_) break;
      job = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
    }
    // One top-level catch per job: a failing job is logged and the worker goes on with the next.
    try {
      if (job.empty())
        do_scan();
      else
        do_probe(job);
    } catch (const std::exception& e) {
      log_->error("library: {} failed: {}", job.empty() ? std::string("scan") : "probe of " + job, e.what());
    }
  }
  std::lock_guard lock(mutex_);
  busy_ = false;
  idle_.notify_all();
}

void library::do_scan() {
  const auto started = std::chrono::steady_clock::now();
  auto listing = run_here(io_, store_->list(""));
  if (!listing) {
    log_->error("scan of {} failed: {}", store_->describe(), listing.err().message);
    return;
  }
  auto report = apply_scan(*cat_, plan_scan(*listing, cat_->all()));
  const auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  log_->info("scan of {}: {} objects listed, {} added, {} changed, {} missing, {} unchanged ({:.0f} ms)",
             store_->describe(), listing->size(), report.added, report.updated, report.missing,
             report.unchanged, ms);
  {
    std::lock_guard lock(mutex_);
    last_scan_ = report;
  }
  for (const auto& item : cat_->all())
    if (item.needs_probe()) request_probe(item.id);
}

void library::do_probe(const std::string& id) {
  auto item = cat_->get(id);
  if (!item || !item->needs_probe()) return;
  const auto started = std::chrono::steady_clock::now();
  const auto input = media_url_ + http::encode_key_for_url(item->key);
  probe_facts facts;
  std::string error;
  auto info = probe_media(tools_, input, error);
  if (!info) {
    // Recorded as probed all the same: a file ffprobe cannot read is not retried on every scan.
    log_->warn("probe of {} ({}) failed: {}", item->key, id, error);
    cat_->set_probe(id, item->etag, facts);
    return;
  }
  const auto kind = item->kind();
  if (kind == "video" || kind == "audio") facts.duration = info->duration;
  if (info->has_video || kind == "image") {
    facts.width = info->width;
    facts.height = info->height;
  }
  if (kind == "video" && info->has_video) {
    const double at = facts.duration ? std::min(2.0, *facts.duration / 4) : 0.0;
    auto jpeg = make_poster(tools_, input, at, error);
    if (jpeg.empty()) {
      log_->warn("poster of {} ({}) failed: {}", item->key, id, error);
    } else {
      const auto poster_key = std::string(kPosterPrefix) + id + ".jpg";
      auto written = run_here(io_, write_bytes(store_, poster_key, "image/jpeg", std::move(jpeg)));
      if (written)
        facts.poster_key = poster_key;
      else
        log_->warn("cannot store poster {}: {}", poster_key, written.err().message);
    }
  }
  if (!cat_->set_probe(id, item->etag, facts)) {
    // Deleted or changed meanwhile: a poster made for it now belongs to nothing.
    if (!facts.poster_key.empty() && !cat_->get(id)) run_here(io_, store_->remove(facts.poster_key));
    return;
  }
  const auto ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count();
  log_->info("probed {} ({}): {:.2f} s, {}x{}{} ({:.0f} ms)", item->key, id, facts.duration.value_or(0),
             facts.width.value_or(0), facts.height.value_or(0), facts.poster_key.empty() ? "" : ", poster",
             ms);
}

}  // namespace mediagate::catalog
