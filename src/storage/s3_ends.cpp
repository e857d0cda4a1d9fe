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

  view look() {
    std::lock_guard lock(m);
    return {what, first, first + length, size, etag, detached};
  }

  // Ends the read (ready or failed) and wakes every waiter.
  void settle(state s) {
    std::vector<std::weak_ptr<waiter>> wake;
    {
      std::lock_guard lock(m);
      if (what != state::pending) return;
      what = s;
      wake.swap(waiters);
    }
    for (auto& weak : wake)
      if (auto w = weak.lock())
        net::post(w->timer.get_executor(), [w] {
          w->done = true;
          w->timer.cancel();
        });
  }

  // A head's bytes, up to `limit` (ready there).
  void append(std::span<const char> bytes, std::uint64_t limit) {
    bool full = false;
    {
      std::lock_guard lock(m);
      if (what != state::pending) return;
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(bytes.size(), limit - length));
      std::memcpy(data.data() + length, bytes.data(), n);
      length += n;
      full = length >= limit;
    }
    if (full) settle(state::ready);
  }

  void end_head() { settle(look().end == first ? state::failed : state::ready); }

  // Waits (up to `most`) while the bytes are being read.
  net::awaitable<void> wait(std::chrono::steady_clock::duration most) {
    auto w = std::make_shared<waiter>(co_await net::this_coro::executor);
    {
      std::lock_guard lock(m);
      if (what != state::pending) co_return;
      waiters.push_back(w);
    }
    w->timer.expires_after(most);
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
  kept_reader(std::shared_ptr<kept_bytes> kept, std::uint64_t kept_end, http::byte_range range,
              std::unique_ptr<range_reader> rest)
      : kept_(std::move(kept)),
        kept_end_(kept_end),
        rest_(std::move(rest)),
        pos_(range.first),
        last_(range.last) {}

  net::awaitable<result<chunk>> next(std::span<char> buf, bool zero_copy) override {
    const auto end = std::min(last_ + 1, kept_end_);
    if (pos_ < end) {
      const auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), end - pos_));
      std::memcpy(buf.data(), kept_->data.data() + (pos_ - kept_->first), n);
      pos_ += n;
      co_return chunk{n, std::nullopt};
    }
    if (!rest_) co_return chunk{};
    co_return co_await rest_->next(buf, zero_copy);
  }

  // Kept bytes come through the buffer; the rest as the rest's reader can.
  bool can_splice() const override { return rest_ && rest_->can_splice(); }
  net::awaitable<result<chunk>> next_spliced(std::span<char> buf, int pipe_in) override {
    if (pos_ < std::min(last_ + 1, kept_end_)) co_return co_await next(buf, false);
    co_return co_await rest_->next_spliced(buf, pipe_in);
  }

  bool has_finish() const override { return rest_ && rest_->has_finish(); }
  net::awaitable<void> finish(std::span<char> buf) override {
    if (rest_) co_await rest_->finish(buf);
  }

 private:
  std::shared_ptr<kept_bytes> kept_;
  std::uint64_t kept_end_;
  std::unique_ptr<range_reader> rest_;
  std::uint64_t pos_;
  std::uint64_t last_;
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
                                                            http::byte_range range, rest_reader rest) {
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
      // its client (at that client's pace) gives what it has so far.
      if (v.what == kept_bytes::state::pending && v.detached) {
        co_await head->wait(kMaxWait);
        v = head->look();
      }
      if (v.what != kept_bytes::state::failed && range.first < v.end) {
        std::unique_ptr<range_reader> after;
        if (range.last >= v.end) after = rest({v.end, range.last});
        co_return std::make_unique<kept_reader>(std::move(head), v.end, range, std::move(after));
      }
    }
  }
  if (!tail) co_return nullptr;
  co_await tail->wait(kMaxWait);
  const auto v = tail->look();
  if (v.what != kept_bytes::state::ready || v.etag != meta.etag || v.size != meta.size ||
      range.first < v.first)
    co_return nullptr;
  co_return std::make_unique<kept_reader>(std::move(tail), v.end, range, nullptr);
}

}  // namespace mediagate::storage
