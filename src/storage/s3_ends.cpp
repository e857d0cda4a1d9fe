#include "storage/s3_ends.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <optional>

#include "http/http_date.hpp"
#include "http/token.hpp"
#include "s3/s3_client.hpp"

namespace mediagate::storage {
namespace net = boost::asio;

// Bytes [first, first + data.size()) of one version of an object: being read (pending), read (ready), or
// failed. Written by one coroutine, read by requests on any loop: `data` is reserved (or sized) before the
// first byte is written and only grows, so the bytes below a length read under the mutex never move or
// change.
struct kept_bytes {
  enum class state { pending, ready, failed };

  // A request waiting on its own loop; woken there.
  struct waiter {
    explicit waiter(net::any_io_executor ex) : timer(ex) {}
    net::steady_timer timer;
    bool done = false;
  };

  struct view {
    state what;
    std::uint64_t first, end, size;
    std::string etag;
    bool detached;
  };

  std::mutex m;
  state what = state::pending;
  std::uint64_t first = 0;
  std::uint64_t size = 0;  // the object's size (a tail's: known once ready)
  std::string etag;        // the version (a tail's: known once ready)
  object_meta meta;        // as S3 answered (a tail's: known once ready)
  std::uint64_t generation = 0;
  std::chrono::steady_clock::time_point fetched;  // when S3 answered
  std::vector<char> data;
  std::size_t length = 0;  // bytes of data written (a tail's data is sized first)
  bool detached = false;   // a head read on after its client left
  std::chrono::steady_clock::time_point expires;
  std::vector<std::weak_ptr<waiter>> waiters;  // (a waiter whose request ended is gone: nothing to wake)
  std::vector<std::weak_ptr<waiter>> growth_waiters;  // woken by more bytes too (wait_growth)

  view look() {
    std::lock_guard lock(m);
    return {what, first, first + length, size, etag, detached};
  }

  // Ends the read (ready or failed) and wakes every waiter.
  void settle(state s) {
    std::vector<std::weak_ptr<waiter>> wake, grown;
    {
      std::lock_guard lock(m);
      if (what != state::pending) return;
      what = s;
      wake.swap(waiters);
      grown.swap(growth_waiters);
    }
    notify(wake);
    notify(grown);
  }

  static void notify(std::vector<std::weak_ptr<waiter>>& ws) {
    for (auto& weak : ws)
      if (auto w = weak.lock())
        net::post(w->timer.get_executor(), [w] {
          w->done = true;
          w->timer.cancel();
        });
  }

  // A head's bytes, up to `limit` (ready there).
  void append(std::span<const char> bytes, std::uint64_t limit) {
    bool full = false;
    std::vector<std::weak_ptr<waiter>> grown;
    {
      std::lock_guard lock(m);
      if (what != state::pending) return;
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), limit - length));
      std::memcpy(data.data() + length, bytes.data(), n);
      length += n;
      full = length >= limit;
      if (!full) grown.swap(growth_waiters);
    }
    if (full) settle(state::ready);
    notify(grown);
  }

  void end_head() { settle(look().end == first ? state::failed : state::ready); }

  // Waits (up to `most`) while the bytes are being read.
  net::awaitable<void> wait(std::chrono::steady_clock::duration most) {
    co_await park(waiters, std::chrono::steady_clock::now() + most, std::nullopt);
  }

  // Waits (until `deadline`) while the bytes are being read and end at or before `pos`.
  net::awaitable<void> wait_growth(std::uint64_t pos, std::chrono::steady_clock::time_point deadline) {
    co_await park(growth_waiters, deadline, pos);
  }

 private:
  // Waits on `list` until woken or `deadline`, unless the read has ended or (with `pos`) got past `pos`.
  net::awaitable<void> park(std::vector<std::weak_ptr<waiter>>& list,
                            std::chrono::steady_clock::time_point deadline,
                            std::optional<std::uint64_t> pos) {
    auto w = std::make_shared<waiter>(co_await net::this_coro::executor);
    {
      std::lock_guard lock(m);
      if (what != state::pending || (pos && first + length > *pos)) co_return;
      list.push_back(w);
    }
    w->timer.expires_at(deadline);
    if (!w->done) co_await w->timer.async_wait(net::as_tuple(net::use_awaitable));
  }
};

namespace {

bool strong_etag(const std::string& etag) {
  return etag.size() >= 2 && etag.front() == '"' && etag.back() == '"';
}

// GET bytes=-N (the size is not known yet): the answer's Content-Range tells where the bytes lie and its ETag
// which version they belong to. Anything unexpected fails the tail (the player's request then goes to storage
// as it would have without it).
net::awaitable<void> fetch_tail(std::shared_ptr<s3::client> client, std::string object_key,
                                std::uint64_t bytes, std::shared_ptr<kept_bytes> tail) {
  struct end_read {
    kept_bytes& t;
    ~end_read() { t.settle(kept_bytes::state::failed); }  // (nothing when it is ready)
  } guard{*tail};
  s3::request_spec spec;
  spec.key = std::move(object_key);
  spec.headers = {{"range", "bytes=-" + std::to_string(bytes)}};
  auto r = co_await client->send(spec);
  const auto answered = std::chrono::steady_clock::now();
  if (!r || (*r)->status() != 206)
    co_return;  // (a 416 for an empty object, an error: dropped with the answer)
  auto& res = **r;
  const auto cr = http::parse_content_range(res.header("content-range"));
  const auto length = res.content_length();
  auto etag = res.header("etag");
  if (!cr || !length || *length != cr->last - cr->first + 1 || cr->last + 1 != cr->size || *length > bytes ||
      !strong_etag(etag))
    co_return;
  std::vector<char> data(static_cast<std::size_t>(*length));
  for (std::size_t got = 0; got < data.size();) {
    auto n = co_await res.read_some(std::span<char>(data.data() + got, data.size() - got));
    if (!n || *n == 0) co_return;
    got += *n;
  }
  {
    std::lock_guard lock(tail->m);
    tail->data = std::move(data);
    tail->length = tail->data.size();
    tail->first = cr->first;
    tail->size = cr->size;
    tail->etag = etag;
    tail->meta.size = cr->size;
    tail->meta.etag = std::move(etag);
    tail->meta.last_modified = http::parse_http_date(res.header("last-modified")).value_or(0);
    tail->meta.content_type = res.header("content-type");
    tail->fetched = answered;
  }
  tail->settle(kept_bytes::state::ready);
}

// The rest of a head (to `limit`) from the reader its client left: bounded by the limit.
net::awaitable<void> finish_head(std::unique_ptr<range_reader> reader, std::shared_ptr<kept_bytes> head,
                                 std::uint64_t limit) {
  std::vector<char> buf(64 * 1024);
  while (true) {
    const auto v = head->look();
    if (v.what != kept_bytes::state::pending) co_return;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), limit - v.end));
    auto n = co_await reader->read_some(std::span<char>(buf.data(), want));
    if (!n || *n == 0) break;
    head->append(std::span<const char>(buf.data(), *n), limit);
  }
  head->end_head();
}

// Passes a head's bytes on to its client and keeps the first `limit` of them.
class head_recorder final : public range_reader {
 public:
  head_recorder(std::unique_ptr<range_reader> inner, std::shared_ptr<kept_bytes> head, std::uint64_t limit)
      : inner_(std::move(inner)), head_(std::move(head)), limit_(limit) {}

  ~head_recorder() override {
    if (head_->look().what != kept_bytes::state::pending) return;
    if (inner_ && ex_ && !failed_) {
      {
        std::lock_guard lock(head_->m);
        head_->detached = true;
      }
      // Read on to the limit only: nothing after it is asked for (a player's head: its rest, s3_storage).
      (void)inner_->end_at(limit_ - 1);
      net::co_spawn(*ex_, finish_head(std::move(inner_), head_, limit_), net::detached);
      return;
    }
    head_->end_head();
  }

  net::awaitable<result<chunk>> next(std::span<char> buf, bool) override {
    if (!ex_) ex_ = co_await net::this_coro::executor;
    auto c = co_await inner_->next(buf, false);
    if (!c) {
      failed_ = true;
      co_return c;
    }
    if (c->bytes == 0)
      head_->end_head();
    else
      head_->append(std::span<const char>(buf.data(), c->bytes), limit_);
    co_return c;
  }

  net::awaitable<void> finish(std::span<char> buf) override { co_await inner_->finish(buf); }
  bool has_finish() const override { return inner_->has_finish(); }

  bool end_at(std::uint64_t last) override {
    if (ex_ || !inner_->end_at(last)) return false;  // (only before the first byte)
    limit_ = std::min(limit_, last + 1);             // (the range starts at 0)
    return true;
  }

 private:
  std::unique_ptr<range_reader> inner_;
  std::shared_ptr<kept_bytes> head_;
  std::uint64_t limit_;
  bool failed_ = false;
  std::optional<net::any_io_executor> ex_;  // the loop the reader is read on (for the rest of the head)
};

// `range` from kept bytes (up to `kept_end`, which they hold), then from `rest`.
class kept_reader final : public range_reader {
 public:
  // `follow`: the kept bytes are still being read by their own client; bytes past `kept_end` are taken from
  // them as they come (while they come: each within kFollowStall) rather than asked of storage at once.
  // `rest` gives the reader of the bytes after the kept ones.
  kept_reader(std::shared_ptr<kept_bytes> kept, std::uint64_t kept_end, http::byte_range range,
              s3_ends::rest_reader rest, bool rest_splices, bool follow)
      : kept_(std::move(kept)),
        kept_end_(kept_end),
        rest_of_(std::move(rest)),
        pos_(range.first),
        last_(range.last),
        rest_splices_(rest_of_ && rest_splices),
        follow_(follow) {}

  net::awaitable<result<chunk>> next(std::span<char> buf, bool zero_copy) override {
    if (pos_ < std::min(last_ + 1, kept_end_)) co_return take(buf);
    if (follow_ && pos_ <= last_) {
      // Each wait for more bytes is short: a head whose client paused stops growing, and storage is asked.
      const auto deadline = std::chrono::steady_clock::now() + s3_ends::kFollowStall;
      auto v = kept_->look();
      while (v.what == kept_bytes::state::pending && v.end <= pos_ &&
             std::chrono::steady_clock::now() < deadline) {
        co_await kept_->wait_growth(pos_, deadline);
        v = kept_->look();
      }
      follow_ = v.what == kept_bytes::state::pending;
      if (v.what != kept_bytes::state::failed) kept_end_ = std::max(kept_end_, v.end);
      if (pos_ < std::min(last_ + 1, kept_end_)) co_return take(buf);
      follow_ = false;
    }
    if (pos_ > last_) co_return chunk{};
    if (!rest_ && rest_of_) rest_ = rest_of_({pos_, last_});
    if (!rest_) co_return chunk{};
    co_return co_await rest_->next(buf, zero_copy);
  }

  // Kept bytes come through the buffer; the rest as the rest's reader can (S3's reader: a plain store).
  bool can_splice() const override { return rest_splices_; }
  net::awaitable<result<chunk>> next_spliced(std::span<char> buf, int pipe_in) override {
    if (!rest_) co_return co_await next(buf, false);  // (kept bytes, or the first bytes of the rest)
    co_return co_await rest_->next_spliced(buf, pipe_in);
  }

  // S3's readers have nothing to finish.
  bool has_finish() const override { return rest_ && rest_->has_finish(); }
  net::awaitable<void> finish(std::span<char> buf) override {
    if (rest_) co_await rest_->finish(buf);
  }

 private:
  chunk take(std::span<char> buf) {
    const auto end = std::min(last_ + 1, kept_end_);
    const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end - pos_));
    std::memcpy(buf.data(), kept_->data.data() + (pos_ - kept_->first), n);
    pos_ += n;
    return chunk{n, std::nullopt};
  }

  std::shared_ptr<kept_bytes> kept_;
  std::uint64_t kept_end_;
  s3_ends::rest_reader rest_of_;
  std::unique_ptr<range_reader> rest_;
  std::uint64_t pos_;
  std::uint64_t last_;
  bool rest_splices_;
  bool follow_;
};

}  // namespace

void s3_ends::drop_expired(table& t) {
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(t, [now](const auto& kv) { return kv.second->expires <= now; });  // (readers keep their own)
}

std::shared_ptr<kept_bytes> s3_ends::find(const table& t, const std::string& key) const {
  auto it = t.find(key);
  return it == t.end() ? nullptr : it->second;
}

void s3_ends::forget(const std::string& key) {
  std::lock_guard lock(mutex_);
  heads_.erase(key);
  tails_.erase(key);
}

std::optional<s3_ends::known_meta> s3_ends::meta(const std::string& key,
                                                 std::chrono::steady_clock::duration max_age) const {
  const auto oldest = std::chrono::steady_clock::now() - max_age;
  std::lock_guard lock(mutex_);
  for (const auto* t : {&heads_, &tails_}) {
    if (auto kept = find(*t, key)) {
      std::lock_guard entry(kept->m);
      if (kept->what != kept_bytes::state::failed && !kept->meta.etag.empty() && kept->fetched >= oldest)
        return known_meta{kept->meta, kept->generation, kept->fetched};
    }
  }
  return std::nullopt;
}

net::awaitable<void> s3_ends::start_tail(std::shared_ptr<s3::client> client, std::string object_key,
                                         std::string key, std::uint64_t generation) {
  if (tail_bytes_ == 0) co_return;
  auto tail = std::make_shared<kept_bytes>();
  tail->expires = std::chrono::steady_clock::now() + kLife;
  tail->generation = generation;
  {
    std::lock_guard lock(mutex_);
    drop_expired(tails_);
    if (auto old = find(tails_, key)) {
      if (old->look().what != kept_bytes::state::failed) co_return;
      tails_.erase(key);
    }
    if (tails_.size() >= kMaxEntries) co_return;
    tails_.emplace(std::move(key), tail);
  }
  net::co_spawn(co_await net::this_coro::executor,
                fetch_tail(std::move(client), std::move(object_key), tail_bytes_, std::move(tail)),
                net::detached);
}

std::unique_ptr<range_reader> s3_ends::record_head(const std::string& key, const object_meta& meta,
                                                   std::uint64_t generation,
                                                   std::unique_ptr<range_reader> reader) {
  if (head_bytes_ == 0 || !reader || meta.size == 0) return reader;
  const auto limit = std::min(head_bytes_, meta.size);
  auto head = std::make_shared<kept_bytes>();
  head->size = meta.size;
  head->etag = meta.etag;
  head->meta = meta;
  head->meta.pinned.reset();
  head->generation = generation;
  head->fetched = std::chrono::steady_clock::now();
  head->expires = std::chrono::steady_clock::now() + kLife;
  head->data.resize(static_cast<std::size_t>(limit));
  {
    std::lock_guard lock(mutex_);
    drop_expired(heads_);
    if (auto old = find(heads_, key)) {
      const auto v = old->look();
      if (v.what != kept_bytes::state::failed && v.etag == meta.etag) return reader;
      heads_.erase(key);
    }
    if (heads_.size() >= kMaxEntries) return reader;
    heads_.emplace(key, head);
  }
  return std::make_unique<head_recorder>(std::move(reader), std::move(head), limit);
}

net::awaitable<std::unique_ptr<range_reader>> s3_ends::open(std::string key, object_meta meta,
                                                            http::byte_range range, rest_reader rest,
                                                            bool rest_splices) {
  if (meta.size == 0 || range.last >= meta.size) co_return nullptr;
  std::shared_ptr<kept_bytes> head, tail;
  {
    std::lock_guard lock(mutex_);
    if (range.first < head_bytes_) head = find(heads_, key);
    if (range.first >= meta.size - std::min(tail_bytes_, meta.size)) tail = find(tails_, key);
  }
  if (head) {
    auto v = head->look();
    if (v.etag == meta.etag && v.size == meta.size) {
      // A head read on after its client left is waited for (it comes at the store's pace); one still read by
      // its client (at that client's pace) gives what it has so far, then its bytes as they come.
      if (v.what == kept_bytes::state::pending && v.detached) {
        co_await head->wait(kMaxWait);
        v = head->look();
      }
      // (one still read by its client is followed as it grows: kept_reader)
      if (v.what != kept_bytes::state::failed && range.first < v.end)
        co_return std::make_unique<kept_reader>(std::move(head), v.end, range, std::move(rest), rest_splices,
                                                v.what == kept_bytes::state::pending);
    }
  }
  if (!tail) co_return nullptr;
  co_await tail->wait(kMaxWait);
  const auto v = tail->look();
  if (v.what != kept_bytes::state::ready || v.etag != meta.etag || v.size != meta.size ||
      range.first < v.first)
    co_return nullptr;
  co_return std::make_unique<kept_reader>(std::move(tail), v.end, range, nullptr, false, false);
}

}  // namespace mediagate::storage
