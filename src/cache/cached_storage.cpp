#include "cache/cached_storage.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <functional>
#include <optional>
#include <vector>

#include "cache/metadata_cache.hpp"
#include "cache/slice_cache.hpp"
#include "cache/slice_math.hpp"
#include "storage/sniff.hpp"

namespace mediagate::cache {
namespace st = mediagate::storage;
namespace net = boost::asio;
using st::chunk;
using st::errc;
using st::error;
using st::object_meta;
using st::result;

namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
// A fetch we wait on streams at its own client's pace; a stalled client must not stall us longer than this.
constexpr std::chrono::seconds kMaxWait{2};

// Wakes one waiting coroutine from any thread: the notification is posted to the waiter's own loop.
struct wake_signal {
  explicit wake_signal(net::any_io_executor ex) : timer(ex) {}
  net::steady_timer timer;
  bool done = false;
};

net::awaitable<void> complete_slice(std::shared_ptr<slice_cache> cache, std::string object,
                                    std::unique_ptr<st::range_reader> fetch,
                                    std::unique_ptr<slice_writer> writer, std::uint64_t index,
                                    std::uint64_t pos, std::uint64_t last);

// Slice `first` of `object` is claimed: claims the missing slices after it, up to `until`, while they are
// neither cached nor claimed by another fetch. The last slice of the run so claimed.
std::uint64_t claim_run_after(slice_cache& cache, const std::string& object, std::uint64_t first,
                              std::uint64_t until) {
  auto end = first;
  while (end < until && cache.claim(object, end + 1, [] {}) == slice_cache::claim_outcome::claimed) ++end;
  return end;
}

class cache_reader;
// A run of slices fetched ahead of a client (cache_reader::read_ahead): `stop` once the client is gone (the
// slice being fetched is still completed), `done` once the run is in. One event loop: no locking.
struct ahead_state {
  bool stop = false;
  bool done = false;
};
net::awaitable<void> fetch_ahead(std::unique_ptr<cache_reader> reader, std::uint64_t run_last,
                                 std::shared_ptr<ahead_state> state);

class cache_reader final : public st::range_reader {
 public:
  cache_reader(std::shared_ptr<slice_cache> cache, std::shared_ptr<metadata_cache> metadata,
               std::shared_ptr<st::storage> upstream, std::string key, std::string object, object_meta meta,
               http::byte_range range, std::string meta_key)
      : meta_key_(std::move(meta_key)),
        metadata_(std::move(metadata)),
        cache_(std::move(cache)),
        upstream_(std::move(upstream)),
        key_(std::move(key)),
        object_(std::move(object)),
        meta_(std::move(meta)),
        slice_(cache_->config().slice_bytes),
        pos_(range.first),
        last_(range.last) {}

  // A client that leaves in the middle of a slice being fetched for the cache (a player that has what it
  // wanted, a seek) leaves that slice to be read to its end in the background, at most one slice: the next
  // request for those bytes (the same viewer's next visit, or another's) finds them here instead of asking
  // storage again for a slice that would otherwise never be complete. The slices after it are released.
  ~cache_reader() override {
    if (ahead_) ahead_->stop = true;
    if (fetch_ && writer_ && caching_ && ex_ && fetch_pos_ % slice_ != 0) {
      const auto cur = fetch_pos_ / slice_;
      const auto cur_last = slice_bounds(cur, meta_.size, slice_).last;
      for (auto i = cur + 1; i <= run_last_; ++i) cache_->release(object_, i);
      caching_ = false;
      // Read to this slice's end only: a read whose head was asked for alone then never asks for its rest.
      fetch_->end_at(cur_last);
      net::co_spawn(
          *ex_,
          complete_slice(cache_, object_, std::move(fetch_), std::move(writer_), cur, fetch_pos_, cur_last),
          net::detached);
      return;
    }
    abandon_fetch();
  }

  // Makes sure the bytes at pos_ have a source: a cached slice or a running fetch. Errors here come
  // before anything was sent, so the client still gets an honest status.
  net::awaitable<result<bool>> ensure_source() {
    while (true) {
      if (fetch_ && fetch_pos_ <= pos_ && pos_ / slice_ <= run_last_) co_return true;
      abandon_fetch();
      const auto idx = pos_ / slice_;
      const auto bounds = slice_bounds(idx, meta_.size, slice_);
      if (auto h = cache_->lookup(object_, idx, bounds.length())) {
        hit_ = std::move(*h);
        hit_index_ = idx;
        if (ex_) read_ahead(idx);  // (not before the first read: open() may run on another loop)
        co_return true;
      }
      auto signal = std::make_shared<wake_signal>(co_await net::this_coro::executor);
      std::weak_ptr<wake_signal> weak = signal;
      auto notify = [weak] {
        if (auto s = weak.lock())
          net::post(s->timer.get_executor(), [s] {
            s->done = true;
            s->timer.cancel();
          });
      };
      switch (cache_->claim(object_, idx, notify)) {
        case slice_cache::claim_outcome::present:
          continue;
        case slice_cache::claim_outcome::in_flight:
          // Another request is fetching this slice: wait for it rather than asking storage again, but only
          // so long; then read this slice ourselves, uncached.
          signal->timer.expires_after(kMaxWait);
          if (!signal->done) co_await signal->timer.async_wait(kTuple);
          if (signal->done) continue;
          co_return checked(co_await start_fetch(pos_, idx, false));
        case slice_cache::claim_outcome::unavailable:
          co_return checked(co_await start_fetch(pos_, last_ / slice_, false));
        case slice_cache::claim_outcome::claimed:
          co_return checked(co_await start_fetch(bounds.first, extend_run(idx), true));
      }
    }
  }

  net::awaitable<void> finish(std::span<char> buf) override { co_await finish_slice(buf); }

  net::awaitable<result<chunk>> next(std::span<char> buf, bool zero_copy) override {
    if (!ex_) {
      ex_ = co_await net::this_coro::executor;
      if (hit_) read_ahead(hit_index_);  // the slice open() found cached
    }
    while (true) {
      if (pos_ > last_) co_return chunk{};
      const auto idx = pos_ / slice_;
      if (hit_ && hit_index_ == idx) {
        const auto bounds = slice_bounds(idx, meta_.size, slice_);
        const auto offset = pos_ - bounds.first;
        auto n = std::min(bounds.last, last_) - pos_ + 1;
        chunk c;
        if (zero_copy) {
          c.file = st::file_region{*hit_->fd, kHeaderBytes + offset};
        } else {
          n = std::min<std::uint64_t>(n, buf.size());
          const auto got = ::pread(*hit_->fd, buf.data(), n, static_cast<off_t>(kHeaderBytes + offset));
          if (got != static_cast<ssize_t>(n))
            co_return error{errc::io_error, "reading a cached slice failed"};
        }
        c.bytes = static_cast<std::size_t>(n);
        pos_ += n;
        cache_->counters().bytes_from_cache.fetch_add(n, std::memory_order_relaxed);
        co_return c;
      }
      hit_.reset();
      auto ready = co_await ensure_source();
      if (!ready) co_return ready.err();
      if (!fetch_) continue;  // a hit: served at the top of the loop

      // Stream from the fetch, slice by slice, writing what comes into the cache.
      const auto cur = fetch_pos_ / slice_;
      const auto slice_last = slice_bounds(cur, meta_.size, slice_).last;
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), slice_last - fetch_pos_ + 1));
      auto n = co_await fetch_->read_some(buf.first(want));
      if (!n || *n == 0) {
        abandon_fetch();
        co_return n ? error{errc::upstream_unavailable, "storage ended the object early"} : n.err();
      }
      cache_->counters().bytes_from_upstream.fetch_add(*n, std::memory_order_relaxed);
      store(std::span<const char>(buf.data(), *n), cur);
      if (fetch_pos_ == 0 && on_head_)
        std::exchange(on_head_, nullptr)(std::span<const char>(buf.data(), *n));
      const auto first = fetch_pos_;
      fetch_pos_ += *n;
      if (fetch_pos_ > slice_last) next_slice(cur);
      if (fetch_pos_ - 1 < pos_) continue;  // bytes before the client's range: only for the cache
      const auto skip = pos_ - first;
      const auto deliver = std::min(fetch_pos_ - 1, last_) - pos_ + 1;
      if (skip > 0) std::memmove(buf.data(), buf.data() + skip, deliver);
      pos_ += deliver;
      co_return chunk{static_cast<std::size_t>(deliver), std::nullopt};
    }
  }

 private:
  // A version storage no longer has must not be announced again: drop its cached metadata.
  result<bool> checked(result<bool> r) {
    if (!r && r.err().code == errc::changed) metadata_->forget(meta_key_);
    return r;
  }

  // Claims the missing slices after `idx` that the range needs, so that one GET fetches the whole run.
  std::uint64_t extend_run(std::uint64_t idx) {
    const auto max_run = std::max<std::uint64_t>(cache_->config().max_run_slices, 1);
    return claim_run_after(*cache_, object_, idx, std::min(last_ / slice_, idx + max_run - 1));
  }

  net::awaitable<result<bool>> start_fetch(std::uint64_t from, std::uint64_t run_last, bool caching) {
    const auto to = std::min(slice_bounds(run_last, meta_.size, slice_).last, meta_.size - 1);
    run_first_ = from / slice_;
    run_last_ = run_last;
    caching_ = caching;
    auto opened = co_await upstream_->open(key_, meta_, {from, to});
    if (!opened) {
      if (caching_)
        for (auto i = run_first_; i <= run_last_; ++i) cache_->release(object_, i);
      caching_ = false;
      co_return opened.err();
    }
    fetch_started(std::move(*opened), from);
    co_return true;
  }

 public:
  // Takes over a read of `fetched` that storage started together with the metadata (stat_and_open), when
  // it begins at the slice of pos_ and that slice is ours to fetch: it then fills the slices it covers.
  // False (and the read is dropped) when the slices are cached already or being fetched by another request.
  bool adopt_fetch(std::unique_ptr<st::range_reader> fetched, http::byte_range fetched_range) {
    const auto idx = pos_ / slice_;
    if (fetched_range.first != idx * slice_) return false;
    if (cache_->claim(object_, idx, [] {}) != slice_cache::claim_outcome::claimed) return false;
    return adopt_claimed(std::move(fetched), fetched_range, extend_run(idx));
  }

  // Claims the slice at pos_ and the missing ones after it that the range needs; the last one claimed, or
  // nullopt when the first is cached or being fetched already.
  std::optional<std::uint64_t> claim_run() {
    const auto idx = pos_ / slice_;
    if (cache_->claim(object_, idx, [] {}) != slice_cache::claim_outcome::claimed) return std::nullopt;
    return extend_run(idx);
  }

  // adopt_fetch() for slices pos_'s to `end` that the caller claimed already (claim_run()); released on
  // failure.
  bool adopt_claimed(std::unique_ptr<st::range_reader> fetched, http::byte_range fetched_range,
                     std::uint64_t end) {
    const auto idx = pos_ / slice_;
    if (fetched_range.first != idx * slice_) {
      for (auto i = idx; i <= end; ++i) cache_->release(object_, i);
      return false;
    }
    // Whole slices only: the run ends with the last slice the read covers completely.
    auto covered = fetched_range.last / slice_;  // >= idx: the read starts at slice idx
    if (slice_bounds(covered, meta_.size, slice_).last > fetched_range.last) {
      if (covered == idx) {
        for (auto i = idx; i <= end; ++i) cache_->release(object_, i);
        return false;
      }
      --covered;
    }
    for (auto i = covered + 1; i <= end; ++i) cache_->release(object_, i);
    run_first_ = idx;
    run_last_ = std::min(end, covered);
    if (!fetched->end_at(slice_bounds(run_last_, meta_.size, slice_).last)) {
      for (auto i = run_first_; i <= run_last_; ++i) cache_->release(object_, i);
      return false;
    }
    caching_ = true;
    fetch_started(std::move(fetched), fetched_range.first);
    return true;
  }

  // A reader with no client (a prefetch, a read-ahead): it reads nothing ahead of itself.
  void set_background() { background_ = true; }

  // Fetches the slices this reader claimed, from pos_ (a slice's start) to the end of slice `run_last`.
  net::awaitable<result<bool>> fetch_claimed(std::uint64_t run_last) {
    co_return co_await start_fetch(pos_, run_last, true);
  }

  // Called with the first bytes of the object when this reader fetches them from storage.
  void on_head(std::function<void(std::span<const char>)> f) { on_head_ = std::move(f); }

  bool end_at(std::uint64_t last) override {
    if (last < pos_ || last > last_) return false;
    last_ = last;
    return true;
  }

 private:
  void fetch_started(std::unique_ptr<st::range_reader> fetched, std::uint64_t from) {
    fetch_ = std::move(fetched);
    fetch_pos_ = from;
    cache_->counters().upstream_requests.fetch_add(1, std::memory_order_relaxed);
    if (caching_) {
      cache_->counters().misses.fetch_add(run_last_ - run_first_ + 1, std::memory_order_relaxed);
      writer_ = cache_->begin(object_, run_first_, slice_bounds(run_first_, meta_.size, slice_).length());
      if (!writer_) stop_caching(run_first_ + 1);
    }
  }

  void store(std::span<const char> data, std::uint64_t cur) {
    if (!writer_) return;
    if (!writer_->append(data)) {
      writer_.reset();
      cache_->release(object_, cur);
      stop_caching(cur + 1);
    }
  }

  // The slice `cur` is complete: publish it and start writing the next one of the run.
  void next_slice(std::uint64_t cur) {
    if (writer_) {
      if (!cache_->commit(object_, cur, std::move(writer_))) stop_caching(cur + 1);
    }
    writer_.reset();
    if (caching_ && cur + 1 <= run_last_) {
      writer_ = cache_->begin(object_, cur + 1, slice_bounds(cur + 1, meta_.size, slice_).length());
      if (!writer_) stop_caching(cur + 2);
    }
  }

  // Serving cached slice `idx`: the missing slices among the next read_ahead_bytes of the range are claimed
  // and fetched in the background (one run at a time), so that a client draining cached slices fast finds
  // the next ones here or on their way, rather than asking storage only once it reaches them. Slices being
  // fetched by another request are left to it.
  void read_ahead(std::uint64_t idx) {
    const auto bytes = cache_->config().read_ahead_bytes;
    if (bytes == 0 || background_ || (ahead_ && !ahead_->done) || last_ < (idx + 1) * slice_) return;
    const auto until = std::min(last_ / slice_, idx + (bytes + slice_ - 1) / slice_);
    auto first = idx + 1;
    while (first <= until && cache_->has(object_, first)) ++first;
    if (first > until || cache_->claim(object_, first, [] {}) != slice_cache::claim_outcome::claimed) return;
    const auto end = claim_run_after(*cache_, object_, first, until);
    cache_->counters().read_aheads.fetch_add(1, std::memory_order_relaxed);
    const http::byte_range run{first * slice_, std::min(last_, slice_bounds(end, meta_.size, slice_).last)};
    ahead_ = std::make_shared<ahead_state>();
    net::co_spawn(*ex_,
                  fetch_ahead(std::make_unique<cache_reader>(cache_, metadata_, upstream_, key_, object_,
                                                             meta_, run, meta_key_),
                              end, ahead_),
                  net::detached);
  }

  // Releases the claims from `from` to the end of the run: the rest passes through uncached.
  void stop_caching(std::uint64_t from) {
    if (!caching_) return;
    for (auto i = from; i <= run_last_; ++i) cache_->release(object_, i);
    caching_ = false;
  }

  // The client's range ended inside a slice being fetched: read that slice to its end so it is cached.
  net::awaitable<void> finish_slice(std::span<char> buf) {
    if (!fetch_ || !writer_) {
      abandon_fetch();
      co_return;
    }
    const auto cur = fetch_pos_ / slice_;
    const auto slice_last = slice_bounds(cur, meta_.size, slice_).last;
    while (writer_ && fetch_pos_ <= slice_last) {
      const auto want =
          static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), slice_last - fetch_pos_ + 1));
      auto n = co_await fetch_->read_some(buf.first(want));
      if (!n || *n == 0) break;
      cache_->counters().bytes_from_upstream.fetch_add(*n, std::memory_order_relaxed);
      store(std::span<const char>(buf.data(), *n), cur);
      fetch_pos_ += *n;
    }
    if (writer_ && fetch_pos_ > slice_last) next_slice(cur);
    abandon_fetch();
  }

  // Drops the fetch; slices still claimed by it are released so that waiters fetch them themselves.
  void abandon_fetch() {
    if (fetch_ && caching_) {
      writer_.reset();
      for (auto i = fetch_pos_ / slice_; i <= run_last_; ++i) cache_->release(object_, i);
    }
    writer_.reset();
    fetch_.reset();
    caching_ = false;
  }

  std::string meta_key_;
  std::shared_ptr<metadata_cache> metadata_;
  std::shared_ptr<slice_cache> cache_;
  std::shared_ptr<st::storage> upstream_;
  std::string key_;
  std::string object_;
  object_meta meta_;
  std::uint64_t slice_;
  std::uint64_t pos_;
  std::uint64_t last_;
  std::optional<slice_handle> hit_;
  std::uint64_t hit_index_ = 0;
  std::unique_ptr<st::range_reader> fetch_;
  std::uint64_t fetch_pos_ = 0;
  std::uint64_t run_first_ = 0;
  std::uint64_t run_last_ = 0;
  bool caching_ = false;
  std::unique_ptr<slice_writer> writer_;
  std::function<void(std::span<const char>)> on_head_;
  std::optional<net::any_io_executor> ex_;  // the loop the reader is read on (for the slice left behind)
  std::shared_ptr<ahead_state> ahead_;      // the run being fetched ahead of this reader, if any
  bool background_ = false;
};

// The rest of slice `index`, from byte `pos` to `last`, from `fetch` into `writer`; then published. Its claim
// is released either way.
net::awaitable<void> complete_slice(std::shared_ptr<slice_cache> cache, std::string object,
                                    std::unique_ptr<st::range_reader> fetch,
                                    std::unique_ptr<slice_writer> writer, std::uint64_t index,
                                    std::uint64_t pos, std::uint64_t last) {
  std::vector<char> buf(64 * 1024);
  while (pos <= last) {
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), last - pos + 1));
    auto n = co_await fetch->read_some(std::span<char>(buf.data(), want));
    if (!n || *n == 0 || !writer->append(std::span<const char>(buf.data(), *n))) {
      writer.reset();
      cache->release(object, index);
      co_return;
    }
    cache->counters().bytes_from_upstream.fetch_add(*n, std::memory_order_relaxed);
    pos += *n;
  }
  if (cache->commit(object, index, std::move(writer)))
    cache->counters().completed_after_leave.fetch_add(1, std::memory_order_relaxed);
}

// The most an index prefetch reads (a moov box of hours of video is a few MiB).
constexpr std::uint64_t kMaxIndexPrefetch = 16 << 20;

// Reads `range` into the cache in the background (no client): the slices a player is about to ask for. With
// `ahead`, only until its client is gone (the slice being fetched is then completed by the reader).
net::awaitable<void> prefetch(std::unique_ptr<cache_reader> reader, const ahead_state* ahead = nullptr) {
  reader->set_background();
  std::vector<char> buf(256 * 1024);
  const auto stopped = [ahead] { return ahead && ahead->stop; };
  while (!stopped()) {
    auto c = co_await reader->next(buf, false);
    if (!c || c->bytes == 0) break;
  }
  if (!stopped()) co_await reader->finish(buf);
}

// The claimed slices of `reader`'s range (to the end of slice `run_last`), into the cache (read_ahead).
net::awaitable<void> fetch_ahead(std::unique_ptr<cache_reader> reader, std::uint64_t run_last,
                                 std::shared_ptr<ahead_state> state) {
  if (auto started = co_await reader->fetch_claimed(run_last); started)
    co_await prefetch(std::move(reader), state.get());
  reader.reset();  // (the fetch did not start)
  state->done = true;
}

// A player that finds no index (moov) at the start of an MP4 asks for it at the end next: when the first
// bytes of an object come from storage and say the index follows the media, its slices are fetched into the
// cache at once, while the player is still reading the head, so that its next request finds them here.
// A tail prefetch in flight (prefetch_tail) and what waits for its end. One event loop: no locking.
struct tail_state {
  bool done = false;
  std::function<void()> then;  // the index prefetch, when the head showed the index before the tail ended
  bool answered = false;       // the tail's answer came: it claims its slices itself
  // The tail's whole slices [first, last] of `object`, claimed for it when the head's answer told the size
  // before the tail's own answer came: a player's request for the index (moov) made meanwhile waits for the
  // tail's bytes instead of asking storage for the same slices again. The tail adopts them, or releases them.
  std::string object;
  std::optional<std::pair<std::uint64_t, std::uint64_t>> claimed;
  std::shared_ptr<slice_cache> cache;

  void release_claims() {
    if (!claimed) return;
    for (auto i = claimed->first; i <= claimed->second; ++i) cache->release(object, i);
    claimed.reset();
  }
  void finish() {
    release_claims();  // (a tail that never adopted them: waiters fetch the slices themselves)
    done = true;
    if (then) std::exchange(then, nullptr)();
  }
};

// The index of the first whole slice within the last `tail` bytes of an object of `size` bytes.
std::uint64_t first_tail_slice(std::uint64_t size, std::uint64_t tail, std::uint64_t slice) {
  return (size - std::min(tail, size) + slice - 1) / slice;
}

// Claims, for the tail prefetch still waiting for its answer, the whole slices its answer will hold (the
// head's answer gave the object's size and ETag first). Those that are cached or claimed already stay out,
// and so does slice 0, the head's own (an object no longer than the tail).
void claim_tail_slices(tail_state& tail, slice_cache& cache, const std::string& object, std::uint64_t size,
                       std::uint64_t tail_bytes) {
  if (tail.answered || tail.done || tail.claimed || size == 0) return;
  const auto slice = cache.config().slice_bytes;
  const auto first = first_tail_slice(size, tail_bytes, slice);
  const auto last_slice = (size - 1) / slice;
  const auto max_run = std::max<std::uint64_t>(cache.config().max_run_slices, 1);
  if (first == 0 || first > last_slice ||
      cache.claim(object, first, [] {}) != slice_cache::claim_outcome::claimed)
    return;
  tail.object = object;
  tail.claimed =
      std::make_pair(first, claim_run_after(cache, object, first, std::min(last_slice, first + max_run - 1)));
}

// `tail`: the tail prefetch started with this read, if any. The index prefetch waits for it to end (it
// fetches the index's slices, or most of them), then fetches only what it left.
void watch_head(cache_reader& reader, std::shared_ptr<slice_cache> cache,
                std::shared_ptr<metadata_cache> metadata, std::shared_ptr<st::storage> upstream,
                const std::string& key, const object_meta& meta, const std::string& object,
                const std::string& mkey, net::any_io_executor ex,
                std::shared_ptr<tail_state> tail = nullptr) {
  reader.on_head([cache, metadata, upstream, key, meta, object, mkey, ex, tail](std::span<const char> head) {
    const auto index = st::mp4_index_after_media(head, meta.size);
    if (!index || meta.size - *index > kMaxIndexPrefetch) return;
    auto start = [cache, metadata, upstream, key, meta, object, mkey, ex, from = *index] {
      const auto slice = cache->config().slice_bytes;
      const auto idx = from / slice;
      if (cache->lookup(object, idx, slice_bounds(idx, meta.size, slice).length())) return;  // here already
      cache->counters().index_prefetches.fetch_add(1, std::memory_order_relaxed);
      auto r = std::make_unique<cache_reader>(cache, metadata, upstream, key, object, meta,
                                              http::byte_range{from, meta.size - 1}, mkey);
      net::co_spawn(ex, prefetch(std::move(r)), net::detached);
    };
    if (tail && !tail->done) {
      tail->then = std::move(start);
      return;
    }
    start();
  });
}

// The upstream of a derived object (storage::open_derived): its ranges are read by the maker from the real
// upstream. Only open() is ever called (by cache_reader).
class derived_source final : public st::storage {
 public:
  derived_source(std::shared_ptr<st::storage> upstream, st::storage::derived_reader make)
      : upstream_(std::move(upstream)), make_(std::move(make)) {}
  net::awaitable<result<object_meta>> stat(std::string) override {
    co_return error{errc::io_error, "a derived object has no metadata of its own"};
  }
  net::awaitable<result<std::unique_ptr<st::range_reader>>> open(std::string, object_meta,
                                                                 http::byte_range range) override {
    co_return co_await make_(*upstream_, range);
  }
  net::awaitable<result<std::vector<st::listed_object>>> list(std::string) override {
    co_return std::vector<st::listed_object>{};
  }
  std::string describe() const override { return "derived from " + upstream_->describe(); }

 private:
  std::shared_ptr<st::storage> upstream_;
  st::storage::derived_reader make_;
};

// The last `bytes` of an object, asked for in parallel with its first read (before its size is known: a
// suffix range), kept as the whole slices they contain. The slices claimed by another fetch are left to it.
net::awaitable<void> read_tail(std::shared_ptr<slice_cache> cache, std::shared_ptr<metadata_cache> metadata,
                               std::shared_ptr<st::storage> upstream, std::string upstream_id,
                               std::string key, std::string mkey, std::uint64_t bytes,
                               std::shared_ptr<tail_state> state) {
  st::read_hint hint;
  hint.suffix = bytes;
  auto found = co_await upstream->stat_and_open(key, hint);
  state->answered = true;
  if (!found || !found->reader) co_return;
  const auto slice = cache->config().slice_bytes;
  const auto size = found->meta.size;
  const auto first = (found->range.first + slice - 1) / slice * slice;  // the first whole slice in the answer
  if (first > found->range.last) co_return;
  // The slices are claimed as soon as the answer says which they are (or were claimed for it when the head's
  // answer came first): a player's request for them (the index) that comes meanwhile waits for this fetch
  // instead of starting its own.
  auto object = slice_cache::object_id(upstream_id, key, found->meta.etag);
  auto reader = std::make_unique<cache_reader>(cache, metadata, upstream, key, object, found->meta,
                                               http::byte_range{first, size - 1}, mkey);
  std::optional<std::uint64_t> end;
  if (state->claimed && state->object == object && state->claimed->first == first / slice)
    end = std::exchange(state->claimed, std::nullopt)->second;
  else
    state->release_claims();  // another version than the head's: its claims are of no use
  if (!end) end = reader->claim_run();
  if (!end) co_return;
  std::vector<char> buf(256 * 1024);
  for (auto pos = found->range.first; pos < first;) {  // the part of a slice before them: not kept
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), first - pos));
    auto n = co_await found->reader->read_some(std::span<char>(buf.data(), want));
    if (!n || *n == 0) {
      for (auto i = first / slice; i <= *end; ++i) cache->release(object, i);
      co_return;
    }
    cache->counters().bytes_from_upstream.fetch_add(*n, std::memory_order_relaxed);
    pos += *n;
  }
  if (!reader->adopt_claimed(std::move(found->reader), {first, found->range.last}, *end)) co_return;
  co_await prefetch(std::move(reader));
}

// read_tail, then what waits for its end (not when the loop is destroyed with it suspended).
net::awaitable<void> prefetch_tail(std::shared_ptr<slice_cache> cache,
                                   std::shared_ptr<metadata_cache> metadata,
                                   std::shared_ptr<st::storage> upstream, std::string upstream_id,
                                   std::string key, std::string mkey, std::uint64_t bytes,
                                   std::shared_ptr<tail_state> state) {
  co_await read_tail(std::move(cache), std::move(metadata), std::move(upstream), std::move(upstream_id),
                     std::move(key), std::move(mkey), bytes, state);
  state->finish();
}

}  // namespace

cached_storage::cached_storage(std::shared_ptr<slice_cache> cache, std::shared_ptr<metadata_cache> meta,
                               std::shared_ptr<st::storage> upstream, std::shared_ptr<spdlog::logger> log,
                               std::shared_ptr<const st::key_invalidations> changes)
    : cache_(std::move(cache)),
      meta_(std::move(meta)),
      upstream_(std::move(upstream)),
      log_(std::move(log)),
      upstream_id_(upstream_->describe()),
      changes_(std::move(changes)) {}

std::string cached_storage::describe() const { return "slice cache in front of " + upstream_id_; }

net::awaitable<result<object_meta>> cached_storage::stat(std::string key) {
  const auto cache_key = meta_key(key);
  const auto generation = changes_ ? changes_->generation() : 0;
  auto cached = meta_->lookup(cache_key);
  if (cached.what != metadata_cache::state::missing && changes_ &&
      changes_->changed_since(key, cached.generation)) {
    // Another node replaced or deleted the object since this entry was read: not even stale-if-error may
    // serve it (its slices are of the old ETag).
    meta_->forget(cache_key);
    cached = {};
  }
  if (cached.what == metadata_cache::state::fresh) co_return cached.meta;
  if (cached.what == metadata_cache::state::stale) {
    cache_->counters().stale_served.fetch_add(1, std::memory_order_relaxed);
    co_return cached.meta;
  }
  auto fresh = co_await upstream_->stat(key);
  if (fresh) {
    meta_->store(cache_key, *fresh, generation);
    co_return fresh;
  }
  const auto code = fresh.err().code;
  if (code == errc::upstream_unavailable || code == errc::upstream_timeout) {
    // stale-if-error: the viewer keeps watching from the cache while storage is down.
    if (auto stale = meta_->on_failure(cache_key)) {
      cache_->counters().stale_served.fetch_add(1, std::memory_order_relaxed);
      log_->warn("cache: storage failing ({}); serving {} from cache with metadata {} s old",
                 fresh.err().message, key,
                 std::chrono::duration_cast<std::chrono::seconds>(stale->age).count());
      co_return stale->meta;
    }
  }
  if (code == errc::not_found) meta_->forget(cache_key);
  co_return fresh;
}

// A cold object (no metadata here) costs one round trip to storage instead of two: the metadata comes with
// a GET of the whole slices around the hinted range, which fill the cache while they stream to the client.
net::awaitable<result<st::stat_and_reader>> cached_storage::stat_and_open(std::string key,
                                                                          st::read_hint hint) {
  const auto cache_key = meta_key(key);
  if (meta_->lookup(cache_key).what != metadata_cache::state::missing || hint.first > (1ULL << 60))
    co_return co_await storage::stat_and_open(key, hint);  // stat(): revalidation, stale-if-error
  if (!meta_->begin_first_read(cache_key)) co_return co_await storage::stat_and_open(key, hint);
  struct end_first_read {
    metadata_cache& m;
    const std::string& key;
    ~end_first_read() { m.end_first_read(key); }
  } guard{*meta_, cache_key};
  const auto slice = cache_->config().slice_bytes;
  const auto max_run = std::max<std::uint64_t>(cache_->config().max_run_slices, 1);
  const auto first_idx = hint.first / slice;
  auto last_idx = first_idx + max_run - 1;
  if (hint.last) last_idx = std::min(last_idx, *hint.last / slice);
  const auto generation = changes_ ? changes_->generation() : 0;
  st::read_hint whole_slices{first_idx * slice, (last_idx + 1) * slice - 1};
  whole_slices.head_first = st::is_player_start(hint, key);
  auto ex = co_await net::this_coro::executor;
  std::shared_ptr<tail_state> tail_wait;
  if (const auto tail = cache_->config().tail_prefetch_bytes;
      tail > 0 && hint.first == 0 && st::mp4_family_key(key)) {
    cache_->counters().tail_prefetches.fetch_add(1, std::memory_order_relaxed);
    tail_wait = std::make_shared<tail_state>();
    tail_wait->cache = cache_;
    net::co_spawn(ex, prefetch_tail(cache_, meta_, upstream_, upstream_id_, key, cache_key, tail, tail_wait),
                  net::detached);
  }
  auto found = co_await upstream_->stat_and_open(key, whole_slices);
  if (!found) {
    if (found.err().code == errc::not_found) meta_->forget(cache_key);
    co_return found.err();
  }
  meta_->store(cache_key, found->meta, generation);
  st::stat_and_reader out{found->meta, nullptr, {}};
  const auto size = found->meta.size;
  const auto object = slice_cache::object_id(upstream_id_, key, found->meta.etag);
  // The tail's slices are claimed for it before the head's run takes its own, which then ends where they
  // begin: when one run covers a small object, the tail's GET would otherwise find its slices taken and be
  // dropped, and the index (in the tail) asked for a third time by the index prefetch.
  if (tail_wait) claim_tail_slices(*tail_wait, *cache_, object, size, cache_->config().tail_prefetch_bytes);
  if (!found->reader || hint.first >= size) co_return out;
  const http::byte_range range{hint.first, std::min(hint.last.value_or(size - 1), size - 1)};
  auto reader =
      std::make_unique<cache_reader>(cache_, meta_, upstream_, key, object, found->meta, range, cache_key);
  watch_head(*reader, cache_, meta_, upstream_, key, found->meta, object, cache_key, ex, tail_wait);
  if (!reader->adopt_fetch(std::move(found->reader), found->range)) co_return out;
  out.reader = std::move(reader);
  out.range = range;
  co_return out;
}

net::awaitable<result<std::unique_ptr<st::range_reader>>> cached_storage::open(std::string key,
                                                                               object_meta meta,
                                                                               http::byte_range range) {
  auto object = slice_cache::object_id(upstream_id_, key, meta.etag);
  auto reader =
      std::make_unique<cache_reader>(cache_, meta_, upstream_, key, object, meta, range, meta_key(key));
  auto ex = co_await net::this_coro::executor;
  watch_head(*reader, cache_, meta_, upstream_, key, meta, object, meta_key(key), ex);
  auto ready = co_await reader->ensure_source();
  if (!ready) {
    if (ready.err().code == errc::changed) meta_->forget(meta_key(key));
    co_return ready.err();
  }
  co_return std::unique_ptr<st::range_reader>(std::move(reader));
}

net::awaitable<result<std::unique_ptr<st::range_reader>>> cached_storage::open_derived(
    std::string key, object_meta meta, std::string name, std::uint64_t size, http::byte_range range,
    st::storage::derived_reader make) {
  // The derived bytes' own version: `name` already names one version of them for good.
  object_meta derived{size, meta.etag, meta.last_modified, {}, nullptr};
  auto object = slice_cache::object_id(upstream_id_, "derived\n" + key + '\n' + name, meta.etag);
  auto source = std::make_shared<derived_source>(upstream_, std::move(make));
  // The key's metadata key: a read that finds the object replaced forgets the key's cached metadata.
  auto reader = std::make_unique<cache_reader>(cache_, meta_, source, key, object, std::move(derived), range,
                                               meta_key(key));
  auto ready = co_await reader->ensure_source();
  if (!ready) {
    if (ready.err().code == errc::changed) meta_->forget(meta_key(key));
    co_return ready.err();
  }
  co_return std::unique_ptr<st::range_reader>(std::move(reader));
}

net::awaitable<result<object_meta>> cached_storage::write(std::string key, std::string content_type,
                                                          st::body_source source) {
  meta_->forget(meta_key(key));
  auto written = co_await upstream_->write(key, std::move(content_type), std::move(source));
  meta_->forget(meta_key(key));
  co_return written;
}

net::awaitable<result<bool>> cached_storage::remove(std::string key) {
  auto removed = co_await upstream_->remove(key);
  meta_->forget(meta_key(key));
  co_return removed;
}

net::awaitable<result<std::vector<st::listed_object>>> cached_storage::list(std::string prefix) {
  co_return co_await upstream_->list(std::move(prefix));
}

}  // namespace mediagate::cache
