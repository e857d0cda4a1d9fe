#include "storage/s3_storage.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <charconv>
#include <cstring>
#include <deque>
#include <functional>
#include <limits>
#include <pugixml.hpp>

#include "http/http_date.hpp"
#include "http/token.hpp"
#include "s3/s3_client.hpp"
#include "s3/s3_error.hpp"
#include "s3/upload.hpp"
#include "storage/sniff.hpp"

namespace mediagate::storage {
namespace net = boost::asio;

namespace {

constexpr std::size_t kMetaCacheMax = 10000;

// "bytes FIRST-LAST/SIZE", and the Range value "bytes=FIRST-LAST", on the stack: they are made for every
// ranged GET, and compared with the answer's Content-Range.
struct range_text {
  char text[72];
  std::size_t size = 0;
  std::string_view view() const { return {text, size}; }
};
range_text format_range(std::string_view prefix, std::uint64_t first, std::uint64_t last,
                        std::optional<std::uint64_t> total) {
  range_text out;
  char* p = std::copy(prefix.begin(), prefix.end(), out.text);
  char* const end = out.text + sizeof out.text;
  p = std::to_chars(p, end, first).ptr;
  *p++ = '-';
  p = std::to_chars(p, end, last).ptr;
  if (total) {
    *p++ = '/';
    p = std::to_chars(p, end, *total).ptr;
  }
  out.size = static_cast<std::size_t>(p - out.text);
  return out;
}
range_text content_range_text(const http::byte_range& r, std::uint64_t size) {
  return format_range("bytes ", r.first, r.last, size);
}
std::string content_range_of(const http::byte_range& r, std::uint64_t size) {
  return std::string(content_range_text(r, size).view());
}
// The request for one range of one version of `key`: a Range and an If-Match.
s3::request_spec ranged_get(const s3_location& where, const std::string& key, const http::byte_range& r,
                            const std::string& etag) {
  s3::request_spec spec;
  spec.key.reserve(where.prefix.size() + key.size());
  spec.key.append(where.prefix).append(key);
  spec.headers.reserve(2);
  spec.headers.emplace_back("range", format_range("bytes=", r.first, r.last, std::nullopt).view());
  spec.headers.emplace_back("if-match", etag);
  return spec;
}

error error_from(unsigned status, const std::string& body, const s3_location& where, const std::string& key,
                 const s3::client& client) {
  return s3::to_storage_error(s3::parse_s3_error(status, body), where.bucket, where.prefix + key,
                              client.settings().anonymous);
}

// The GET for the rest of a player's first read (s3_storage::set_first_read), sent while its head is being
// read; its answer waits here until the reader reaches the rest. One event loop: no locking.
struct pending_rest {
  pending_rest(net::any_io_executor ex, http::byte_range asked) : wake(std::move(ex)), range(asked) {}
  net::steady_timer wake;  // cancelled once the GET answered
  http::byte_range range;  // what it asks for
  bool answered = false;
  bool abandoned = false;  // the reader no longer wants it: an answer is dropped (with its connection)
  result<std::unique_ptr<s3::response>> answer = error{errc::upstream_unavailable, "not answered"};
};

net::awaitable<void> fetch_rest(std::shared_ptr<s3::client> client, s3::request_spec spec,
                                std::shared_ptr<pending_rest> rest) {
  auto r = co_await client->send(std::move(spec));
  rest->answered = true;
  if (!rest->abandoned) rest->answer = std::move(r);
  rest->wake.cancel();
}

// Reads one planned range of one version of an object. Every answer is checked before a byte is passed
// on; a connection that breaks mid-body is resumed from the next byte with If-Match, a bounded number of
// times; anything else fails the read (the connection then closes the client's response).
class s3_range_reader final : public range_reader {
 public:
  s3_range_reader(std::shared_ptr<s3::client> client, s3_location where, std::string key, object_meta meta,
                  http::byte_range range, int max_resumes, std::function<void(const std::string&)> on_changed)
      : on_changed_(std::move(on_changed)),
        client_(std::move(client)),
        where_(std::move(where)),
        key_(std::move(key)),
        meta_(std::move(meta)),
        range_(range),
        next_(range.first),
        max_resumes_(max_resumes) {}

  ~s3_range_reader() override { drop_rest(); }

  // Sends the GET for [next_, last] and validates the answer's status, range, length and ETag.
  net::awaitable<result<bool>> start() {
    const http::byte_range want{next_, range_.last};
    co_return co_await take(co_await client_->send(ranged_get(where_, key_, want, meta_.etag)), want);
  }

  // Takes over the answer for a player's first bytes, [range_.first, head_last], that stat_and_open() already
  // checked. The rest is asked for (with If-Match) once half of them are sent to the client, so that it is on
  // its way when they run out; a client that leaves sooner costs no GET for it. A head that shows the index
  // after the media (read_next) has its rest asked for only once it runs out: its player leaves within it.
  void adopt_head(std::unique_ptr<s3::response> response, std::uint64_t head_last) {
    response_ = std::move(response);
    response_last_ = head_last;
    rest_first_ = head_last + 1;
    rest_after_ = range_.first + (head_last + 1 - range_.first) / 2;
  }

  // Takes over an answer that stat_and_open() already checked, for range_ (skipping `skip` bytes first when
  // the store sent the whole object).
  void adopt(std::unique_ptr<s3::response> response, std::uint64_t skip) {
    response_ = std::move(response);
    response_last_ = range_.last;
    skip_ = skip;
  }

  bool has_finish() const override { return false; }  // the default finish(): nothing to complete

  bool end_at(std::uint64_t last) override {
    if (last < next_ || last > range_.last) return false;
    range_.last = last;  // the rest of a longer answer is dropped with its connection: at most one body
    if (rest_first_ > last) drop_rest();
    return true;
  }

  // Ends the range at `last` (>= the next byte - 1) at any time: the rest is read by someone else.
  void shorten(std::uint64_t last) { range_.last = std::max(last, next_ - 1); }
  std::uint64_t position() const { return next_; }
  const std::string& key() const { return key_; }
  // Whether the store ignored a range (answered 200): parts would get the same, so read on one connection.
  bool saw_whole_object() const { return whole_seen_; }

  net::awaitable<result<chunk>> next(std::span<char> buf, bool) override { return read_next(buf, -1); }

  bool can_splice() const override { return !client_->settings().ep.tls; }  // TLS: decrypted in memory
  net::awaitable<result<chunk>> next_spliced(std::span<char> buf, int pipe_in) override {
    return read_next(buf, pipe_in);
  }

 private:
  // next(), and with a pipe (pipe_in >= 0) next_spliced().
  net::awaitable<result<chunk>> read_next(std::span<char> buf, int pipe_in) {
    while (true) {
      if (next_ > range_.last) co_return chunk{};
      if (!response_ && rest_first_ != 0) {
        // The head is read: its rest's answer, when it was sent (else, or for a broken head, start() below).
        std::shared_ptr<pending_rest> rest;
        if (next_ == rest_first_) rest = std::exchange(rest_, nullptr);
        drop_rest();
        if (rest && !rest->answered) {
          rest->wake.expires_at(net::steady_timer::time_point::max());
          co_await rest->wake.async_wait(net::as_tuple(net::use_awaitable));
        }
        if (rest && rest->answer) {  // (a GET that got no answer is sent again by start())
          auto taken = co_await take(std::move(rest->answer), rest->range);
          if (!taken) {
            if (taken.err().code == errc::changed && on_changed_) on_changed_(key_);
            co_return taken.err();
          }
        }
      }
      if (!response_) {
        auto started = co_await start();
        if (!started) {
          if (started.err().code == errc::changed && on_changed_) on_changed_(key_);
          co_return started.err();
        }
      }
      while (skip_ > 0) {  // only when the store sent the whole object
        auto n = co_await response_->read_some(buf.first(std::min<std::uint64_t>(buf.size(), skip_)));
        if (!n || *n == 0) break;
        skip_ -= *n;
      }
      const auto upto = std::min(range_.last, response_last_);  // in this answer
      const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), upto - next_ + 1));
      result<std::size_t> n = std::size_t{0};
      bool in_pipe = false;
      if (skip_ == 0 && pipe_in >= 0) {
        auto piece = co_await response_->splice_some(buf.first(want), pipe_in);
        if (piece) {
          n = piece->bytes;
          in_pipe = piece->in_pipe;
        } else {
          n = piece.err();
        }
      } else if (skip_ == 0) {
        // Bytes already here without another coroutine frame; read_some() waits for them otherwise.
        if (auto here = response_->try_read_some(buf.first(want))) {
          n = std::move(*here);
        } else {
          n = co_await response_->read_some(buf.first(want));
        }
      }
      if (n && *n > 0) {
        // A head whose first boxes show the index after the media: its player reads the index at the end and
        // leaves within the head, so its rest is asked for only if the head runs out (no GET ahead of it).
        if (rest_first_ != 0 && !rest_ && next_ == 0 && !in_pipe &&
            mp4_index_after_media(std::span<const char>(buf.data(), *n), meta_.size))
          rest_after_ = std::numeric_limits<std::uint64_t>::max();
        next_ += *n;
        // Done (a whole-object answer is abandoned here), or a player's head, whose rest has its own answer.
        if (next_ > upto) response_.reset();
        if (rest_first_ != 0 && !rest_ && next_ > rest_after_) send_rest();
        chunk out{*n, std::nullopt};
        out.in_pipe = in_pipe;
        co_return out;
      }
      // The body ended early or the connection broke: resume from the next byte, with If-Match.
      response_.reset();
      skip_ = 0;
      if (++resumes_ > max_resumes_)
        co_return error{errc::upstream_unavailable,
                        "storage connection broke " + std::to_string(resumes_) + " times while reading " +
                            key_ + " at byte " + std::to_string(next_) + (n ? "" : ": " + n.err().message)};
      client_->counters().resumes.fetch_add(1, std::memory_order_relaxed);
      net::steady_timer timer(co_await net::this_coro::executor);
      timer.expires_after(std::chrono::milliseconds(50 << (2 * (resumes_ - 1))));
      co_await timer.async_wait(net::as_tuple(net::use_awaitable));
    }
  }

  // Validates `r`, the answer to the GET for `want` (from next_), and takes it as the answer to read.
  net::awaitable<result<bool>> take(result<std::unique_ptr<s3::response>> r, http::byte_range want) {
    if (!r) co_return r.err();
    auto& res = **r;
    const auto status = res.status();
    if (status == 206) {
      const auto cr = res.field("content-range");
      if (cr != content_range_text(want, meta_.size).view() || res.content_length() != want.length())
        co_return error{errc::upstream_unavailable, "storage answered range '" + std::string(cr) + "' for " +
                                                        content_range_of(want, meta_.size) +
                                                        ": refusing to forward other bytes"};
    } else if (status == 200) {
      // The store ignored the range: take the planned bytes out of the whole object, if it is the same size.
      if (res.content_length() != meta_.size)
        co_return error{errc::upstream_unavailable,
                        "storage ignored the range and sent an object of another size"};
      skip_ = next_;
      whole_seen_ = true;
    } else {
      auto body = co_await res.read_all(64 * 1024);
      co_return error_from(status, body ? *body : std::string(), where_, key_, *client_);
    }
    if (auto etag = res.field("etag"); !etag.empty() && etag != meta_.etag)
      co_return error{errc::changed, "the object changed in storage while it was being read"};
    response_ = std::move(*r);
    response_last_ = want.last;
    co_return true;
  }

  void send_rest() {
    rest_ = std::make_shared<pending_rest>(client_->executor(), http::byte_range{rest_first_, range_.last});
    net::co_spawn(rest_->wake.get_executor(),
                  fetch_rest(client_, ranged_get(where_, key_, rest_->range, meta_.etag), rest_),
                  net::detached);
  }

  // Forgets the rest of a player's head (its answer, if any, is dropped when it comes).
  void drop_rest() {
    if (rest_) rest_->abandoned = true;
    rest_.reset();
    rest_first_ = 0;
  }

  // Drops cached metadata that names a version storage no longer has. Given the key, so that it captures only
  // `this` (held without an allocation).
  std::function<void(const std::string&)> on_changed_;
  std::shared_ptr<s3::client> client_;
  s3_location where_;
  std::string key_;
  object_meta meta_;
  http::byte_range range_;
  std::uint64_t next_;
  std::uint64_t skip_ = 0;
  int max_resumes_;
  int resumes_ = 0;
  bool whole_seen_ = false;
  std::unique_ptr<s3::response> response_;
  std::uint64_t response_last_ = 0;  // the last byte response_ covers
  // A player's head (adopt_head): where its rest starts (0: none), the byte after which it is asked for, and
  // its GET once sent.
  std::uint64_t rest_first_ = 0;
  std::uint64_t rest_after_ = 0;
  std::shared_ptr<pending_rest> rest_;
};

// -- One client's download over several connections (download_settings) ------------------------------------

// One part of a download: its bytes land in `data` as they come; the reader hands them on in order.
struct download_part {
  budget_hold hold;  // first member, so destroyed last: given back once `data` is freed
  std::uint64_t first = 0, last = 0;
  std::unique_ptr<char[]> data;
  std::size_t filled = 0, taken = 0;
  bool done = false;
  std::optional<error> failed;
  s3::response* live = nullptr;  // the answer whose body is being read (cancelled when the client leaves)
  std::size_t length() const { return static_cast<std::size_t>(last - first + 1); }
};

// What the reader and its part coroutines share (one event loop: no locking).
struct download_state {
  explicit download_state(net::any_io_executor ex) : wake(std::move(ex)) {}
  net::steady_timer wake;  // the reader waits on it; a part that made progress cancels it
  bool cancelled = false;  // the reader is gone: parts stop at their next step
  std::chrono::steady_clock::time_point last_done;  // when a part last got all its bytes
  void notify() { wake.cancel(); }
};

// Fetches one part with If-Match on the download's ETag, resuming a broken body from the next byte a
// bounded number of times. A store that answers anything but exactly the asked range fails the part.
net::awaitable<void> fetch_part(std::shared_ptr<s3::client> client, s3_location where, std::string key,
                                object_meta meta, std::shared_ptr<download_state> st,
                                std::shared_ptr<download_part> part, int max_resumes) {
  int attempts = 0;
  auto fail = [&](error e) {
    part->failed = std::move(e);
    st->notify();
  };
  while (!st->cancelled && part->filled < part->length()) {
    if (attempts++ > max_resumes) {
      fail({errc::upstream_unavailable, "storage connection broke " + std::to_string(attempts - 1) +
                                            " times while reading a part of " + key});
      co_return;
    }
    const http::byte_range want{part->first + part->filled, part->last};
    auto spec = ranged_get(where, key, want, meta.etag);
    auto r = co_await client->send(std::move(spec));
    if (st->cancelled) co_return;  // the answer (and its connection) goes with r
    if (!r) {
      if (r.err().code == errc::upstream_timeout || attempts > max_resumes) co_return fail(r.err());
      continue;
    }
    auto& res = **r;
    const auto status = res.status();
    if (status != 206) {
      auto body = co_await res.read_all(64 * 1024);
      if (st->cancelled) co_return;
      co_return fail(status == 412
                         ? error{errc::changed, "the object changed in storage while it was being read"}
                         : error_from(status, body ? *body : std::string(), where, key, *client));
    }
    const auto cr = res.field("content-range");
    if (cr != content_range_text(want, meta.size).view() || res.content_length() != want.length())
      co_return fail({errc::upstream_unavailable, "storage answered range '" + std::string(cr) + "' for " +
                                                      content_range_of(want, meta.size) +
                                                      ": refusing to forward other bytes"});
    if (auto etag = res.field("etag"); !etag.empty() && etag != meta.etag)
      co_return fail({errc::changed, "the object changed in storage while it was being read"});
    part->live = &res;
    while (part->filled < part->length()) {
      const auto room = std::min<std::size_t>(part->length() - part->filled, 256 * 1024);
      auto n = co_await res.read_some(std::span<char>(part->data.get() + part->filled, room));
      if (st->cancelled) co_return;
      if (!n || *n == 0) break;  // resumed from the next byte above
      part->filled += *n;
      st->notify();
    }
    part->live = nullptr;
    if (part->filled < part->length()) client->counters().resumes.fetch_add(1, std::memory_order_relaxed);
  }
  if (st->cancelled) co_return;
  part->done = true;
  st->last_done = std::chrono::steady_clock::now();
  st->notify();
}

// Bytes handed on over one stretch of a download, how long that took and how much of it went waiting on S3.
struct rate_window {
  using clock = std::chrono::steady_clock;
  std::optional<clock::time_point> start;
  clock::duration waited{};
  std::uint64_t bytes = 0;
  // Waited on S3 for at least half the time: the store, not the client, is the bottleneck.
  bool store_bound(clock::time_point now) const { return waited * 2 >= now - *start; }
  double rate(clock::time_point now) const {
    const double seconds = std::chrono::duration<double>(now - *start).count();
    return seconds > 0 ? static_cast<double>(bytes) / seconds : 0;
  }
};

// Reads a download's range on one connection (the lead) and, once the client drains it faster than one
// connection delivers, the rest as parts over up to `parts` connections, handed on strictly in order. Parts
// that do not pay are stopped (download_settings).
class download_reader final : public range_reader {
 public:
  download_reader(std::unique_ptr<s3_range_reader> lead, std::shared_ptr<s3::client> client,
                  s3_location where, std::string key, object_meta meta, http::byte_range range,
                  download_settings settings, int max_resumes,
                  std::function<void(const std::string&)> on_changed)
      : lead_(std::move(lead)),
        client_(std::move(client)),
        where_(std::move(where)),
        key_(std::move(key)),
        meta_(std::move(meta)),
        range_(range),
        settings_(settings),
        max_resumes_(max_resumes),
        on_changed_(std::move(on_changed)) {}

  ~download_reader() override {
    if (!st_) return;
    st_->cancelled = true;  // every part stops at its next step; bodies being read are cut now
    for (auto& p : parts_)
      if (p->live) p->live->cancel();
  }

  bool has_finish() const override { return false; }  // the default finish(): nothing to complete

  bool end_at(std::uint64_t last) override {
    if (!lead_->end_at(last)) return false;
    range_.last = last;
    return true;
  }

  net::awaitable<result<chunk>> next(std::span<char> buf, bool) override { return read_next(buf, -1); }

  // The lead's bytes from its socket; parts' bytes from memory.
  bool can_splice() const override { return !client_->settings().ep.tls; }
  net::awaitable<result<chunk>> next_spliced(std::span<char> buf, int pipe_in) override {
    return read_next(buf, pipe_in);
  }

 private:
  using clock = rate_window::clock;

  net::awaitable<result<chunk>> read_next(std::span<char> buf, int pipe_in) {
    while (true) {
      if (in_parts_ && !judged_ && round_in()) judge_parts();
      if (lead_) {
        const auto t0 = clock::now();
        result<chunk> c = chunk{};
        if (pipe_in >= 0)
          c = co_await lead_->next_spliced(buf, pipe_in);
        else
          c = co_await lead_->next(buf, false);
        if (!c) co_return c;
        if (c->bytes > 0) {
          if (window_.start) window_.waited += clock::now() - t0;
          co_await handed(c->bytes);
          co_return c;
        }
        lead_.reset();  // its share is done: the parts carry on
        if (!st_) co_return chunk{};
        lead_done_ = clock::now();
        top_up(co_await net::this_coro::executor);
      }
      if (parts_.empty()) {
        if (next_part_ > range_.last) co_return chunk{};
        // Parts stopped: the rest on one connection. Else the memory budget is spent (by other downloads):
        // the next part comes on this download's own connection, through the caller's buffer, and the budget
        // is asked again after it.
        lead_ = in_parts_ ? part_on_lead() : rest_on_lead();
        continue;
      }
      auto& p = *parts_.front();
      if (p.taken < p.filled) {
        const auto n = std::min(buf.size(), p.filled - p.taken);
        std::memcpy(buf.data(), p.data.get() + p.taken, n);
        p.taken += n;
        if (p.taken == p.length()) {
          parts_.pop_front();  // its memory goes back; the next part takes its place
          top_up(co_await net::this_coro::executor);
        }
        co_await handed(n);
        co_return chunk{n, std::nullopt};
      }
      if (p.failed) {
        if (p.failed->code == errc::changed && on_changed_) on_changed_(key_);
        co_return *p.failed;
      }
      const auto t0 = clock::now();
      st_->wake.expires_at(clock::time_point::max());
      co_await st_->wake.async_wait(net::as_tuple(net::use_awaitable));
      window_.waited += clock::now() - t0;
    }
  }

  // Counts `n` bytes handed on. On one connection the lead's rate is measured from its first bytes on, and
  // parts are considered every `after` bytes.
  net::awaitable<void> handed(std::uint64_t n) {
    handed_ += n;
    if (!window_.start) {
      window_.start = clock::now();
      co_return;
    }
    window_.bytes += n;
    if (!in_parts_ && lead_ && lead_reads_to_end() && window_.bytes >= settings_.after &&
        handed_ >= consider_from_)
      co_await consider_parts();
  }

  // The lead reads to the end of the range (it was never split, or it reads the rest after parts): only such
  // a lead may be split in parts.
  bool lead_reads_to_end() const { return next_part_ == 0 || next_part_ > range_.last; }

  // On one connection: when the reads waited on S3 for at least half the time, the client drains faster than
  // one connection delivers, so the rest (beyond one more part on the lead) goes in parts.
  net::awaitable<void> consider_parts() {
    const auto now = clock::now();
    const bool store_bound = window_.store_bound(now);
    // Parts pay where one connection is capped by distance (50-100 MB/s to a real S3). A store close by that
    // delivers more is busy rather than far: on loopback radosgw, 6 parts made a download 20-35% slower.
    lead_rate_ = window_.rate(now);
    const bool slow_connection = lead_rate_ < static_cast<double>(settings_.slower_than);
    window_ = {};
    const auto pos = lead_->position();
    if (!store_bound || !slow_connection || lead_->saw_whole_object() ||
        range_.last < pos + 2 * settings_.part_size)
      co_return;
    lead_->shorten(pos + settings_.part_size - 1);
    next_part_ = pos + settings_.part_size;
    in_parts_ = true;
    judged_ = false;
    strikes_ = 0;
    if (settings_.budget) settings_.budget->count_in_parts();
    if (!st_) st_ = std::make_shared<download_state>(co_await net::this_coro::executor);
    round_start_ = clock::now();
    round_first_ = pos;
    const auto first_part = next_part_;
    top_up(co_await net::this_coro::executor);
    round_end_ = next_part_;
    // No part started (the memory budget is spent): nothing to judge, the download goes on part by part on
    // its own connection.
    judged_ = next_part_ == first_part;
  }

  // The round being judged is in: every byte of it was asked for, the lead's part and every part of it have
  // all their bytes.
  bool round_in() const {
    if (lead_ || next_part_ < round_end_) return false;
    for (const auto& p : parts_)
      if (p->first < round_end_ && !p->done) return false;
    return true;
  }

  // When a round is in: when it did not come half as fast again as the lead alone before, twice in a row, the
  // store's bandwidth is shared rather than capped per connection (a busy store nearby, or one link), and
  // more connections only cost requests. The first round is the lead's last part and the parts started beside
  // it; the second, as many parts started after the first was judged (the first round alone may only show a
  // store slow to answer new connections). Measured over whole parts, from the round's start to the end of
  // its last part: bytes come from the sockets in bursts. The parts already started are handed on, the rest
  // goes on one connection, and parts are considered again once four times the bytes read so far are handed
  // on (a few tries in a long download, should the store's load change).
  void judge_parts() {
    const auto ended = std::max(lead_done_, st_->last_done);
    const auto bytes = static_cast<double>(round_end_ - round_first_);
    const double seconds = std::chrono::duration<double>(ended - round_start_).count();
    if (seconds <= 0 || bytes >= 1.5 * lead_rate_ * seconds) {  // (no time: nothing to judge)
      judged_ = true;
      return;
    }
    if (++strikes_ < 2 && next_part_ <= range_.last) {
      round_start_ = clock::now();  // parts started before (as others were handed on) are not of it
      round_first_ = next_part_;
      round_end_ = std::min(range_.last + 1, next_part_ + settings_.parts * settings_.part_size);
      return;
    }
    judged_ = true;
    if (strikes_ < 2) return;  // no second round left to judge: the download ends in parts
    in_parts_ = false;
    consider_from_ = 4 * (next_part_ - range_.first);
    if (settings_.budget) settings_.budget->count_parts_stopped();
  }

  // Starts parts until `parts` connections are busy (the lead counts as one), the range is covered or the
  // process-wide budget is spent. Parts read but not yet handed on count too: that bounds the memory.
  void top_up(net::any_io_executor ex) {
    if (!in_parts_) return;
    while (next_part_ <= range_.last && parts_.size() + (lead_ ? 1 : 0) < settings_.parts) {
      if (strikes_ > 0 && !judged_ && next_part_ >= round_end_) break;  // a second round is judged as it is
      const auto last = std::min(range_.last, next_part_ + settings_.part_size - 1);
      const auto length = last - next_part_ + 1;
      if (settings_.budget && !settings_.budget->try_take(length)) break;
      auto p = std::make_shared<download_part>();
      if (settings_.budget) p->hold.adopt(settings_.budget, length);
      p->first = next_part_;
      p->last = last;
      p->data.reset(new char[p->length()]);
      next_part_ = p->last + 1;
      parts_.push_back(p);
      net::co_spawn(ex, fetch_part(client_, where_, key_, meta_, st_, p, max_resumes_), net::detached);
    }
  }

  // The next part read on one connection straight into the caller's buffer (no memory held ahead).
  std::unique_ptr<s3_range_reader> part_on_lead() {
    return lead_for(std::min(range_.last, next_part_ + settings_.part_size - 1));
  }
  // What is left of the range on one connection, once parts were stopped.
  std::unique_ptr<s3_range_reader> rest_on_lead() {
    window_ = {};  // the rate of the rest is measured afresh
    return lead_for(range_.last);
  }
  std::unique_ptr<s3_range_reader> lead_for(std::uint64_t last) {
    const http::byte_range span{next_part_, last};
    next_part_ = last + 1;
    return std::make_unique<s3_range_reader>(client_, where_, key_, meta_, span, max_resumes_, on_changed_);
  }

  std::unique_ptr<s3_range_reader> lead_;
  std::shared_ptr<s3::client> client_;
  s3_location where_;
  std::string key_;
  object_meta meta_;
  http::byte_range range_;
  download_settings settings_;
  int max_resumes_;
  std::function<void(const std::string&)> on_changed_;
  rate_window window_;
  std::uint64_t handed_ = 0;         // bytes handed on so far
  std::uint64_t consider_from_ = 0;  // parts are not considered before so many bytes are handed on
  double lead_rate_ = 0;             // bytes a second the lead delivered when parts were started
  // The round of parts being judged: when it began, the bytes it covers; when the lead's part ended; how
  // many rounds did not pay.
  clock::time_point round_start_, lead_done_;
  std::uint64_t round_first_ = 0, round_end_ = 0;
  int strikes_ = 0;
  bool in_parts_ = false, judged_ = false;
  std::shared_ptr<download_state> st_;  // set once parts are used
  std::deque<std::shared_ptr<download_part>> parts_;
  std::uint64_t next_part_ = 0;
};

// The metadata in an answer's headers; an error when the ETag is missing or weak.
result<object_meta> meta_of(const s3::response& res, std::uint64_t size) {
  object_meta meta;
  meta.etag = res.header("etag");
  if (meta.etag.size() < 2 || meta.etag.front() != '"' || meta.etag.back() != '"')
    return error{errc::upstream_unavailable, "storage answered without a strong ETag"};
  meta.size = size;
  meta.last_modified = http::parse_http_date(res.header("last-modified")).value_or(0);
  meta.content_type = res.header("content-type");
  return meta;
}

}  // namespace

std::optional<s3_location> parse_s3_url(std::string_view url) {
  if (!url.starts_with("s3://")) return std::nullopt;
  url.remove_prefix(5);
  const auto slash = url.find('/');
  s3_location loc;
  loc.bucket = std::string(url.substr(0, slash));
  if (loc.bucket.empty() || loc.bucket.size() > 63) return std::nullopt;
  if (slash != std::string_view::npos) {
    loc.prefix = std::string(url.substr(slash + 1));
    if (!loc.prefix.empty() && loc.prefix.back() != '/') loc.prefix += '/';
  }
  return loc;
}

s3_storage::s3_storage(std::shared_ptr<s3::client> client, s3_location where,
                       std::chrono::milliseconds meta_ttl, int max_resumes,
                       std::shared_ptr<const key_invalidations> changes)
    : client_(std::move(client)),
      where_(std::move(where)),
      meta_ttl_(meta_ttl),
      max_resumes_(max_resumes),
      changes_(std::move(changes)) {}

std::string s3_storage::describe() const {
  return "s3://" + where_.bucket + "/" + where_.prefix + " at " +
         (client_->settings().ep.tls ? "https://" : "http://") + client_->settings().ep.host_header();
}

net::awaitable<result<object_meta>> s3_storage::stat(std::string key) {
  const auto generation = changes_ ? changes_->generation() : 0;
  if (const auto* cached = fresh_meta(key)) co_return *cached;
  meta_cache_.erase(key);  // stale or invalidated, if there was one
  s3::request_spec spec;
  spec.method = "HEAD";
  spec.key = where_.prefix + key;
  auto r = co_await client_->send(spec);
  if (!r) co_return r.err();
  auto& res = **r;
  if (res.status() != 200) co_return error_from(res.status(), {}, where_, key, *client_);
  auto length = res.content_length();
  if (!length) co_return error{errc::upstream_unavailable, "storage answered HEAD without a length"};
  auto meta = meta_of(res, *length);
  if (!meta) co_return meta.err();
  remember(key, *meta, generation);
  co_return meta;
}

// `generation` is the invalidations' generation read before the request that gave `meta` was sent.
// `fetched`: when storage gave it (now, unless it came through the ends another loop keeps).
void s3_storage::remember(const std::string& key, const object_meta& meta, std::uint64_t generation,
                          std::optional<std::chrono::steady_clock::time_point> fetched) {
  if (meta_ttl_.count() <= 0) return;
  if (meta_cache_.size() >= kMetaCacheMax) meta_cache_.clear();
  meta_cache_[key] = {meta, fetched.value_or(std::chrono::steady_clock::now()) + meta_ttl_, generation};
}

// The store has another version of `key` than the one cached: neither this loop's metadata nor the bytes kept
// for every loop may be used for it again.
void s3_storage::forget_version(const std::string& key) {
  meta_cache_.erase(key);
  ends_->forget(key);
}

const object_meta* s3_storage::fresh_meta(const std::string& key) const {
  auto it = meta_cache_.find(key);
  if (it == meta_cache_.end() || it->second.expires <= std::chrono::steady_clock::now()) return nullptr;
  if (changes_ && changes_->changed_since(key, it->second.generation)) return nullptr;
  return &it->second.meta;
}

// A download's reader (read_hint::download) of a body long enough for parts; else the one-connection reader.
std::unique_ptr<range_reader> s3_storage::maybe_download(std::unique_ptr<range_reader> reader,
                                                         const std::string& key, const object_meta& meta,
                                                         http::byte_range range, const read_hint& hint) {
  const auto& d = download_;
  if (!hint.download || d.parts < 2 || d.part_size == 0 || range.length() < d.after + 2 * d.part_size)
    return reader;
  std::unique_ptr<s3_range_reader> lead(static_cast<s3_range_reader*>(reader.release()));
  return std::make_unique<download_reader>(std::move(lead), client_, where_, key, meta, range, d,
                                           max_resumes_, [this](const std::string& k) { forget_version(k); });
}

// One GET instead of a HEAD and then a GET: its Content-Range gives the size, the ETag, date and type come
// with it, and its body is the hinted range (checked exactly as open() checks its answers).
net::awaitable<result<stat_and_reader>> s3_storage::stat_and_open(std::string key, read_hint hint) {
  if (hint.suffix && *hint.suffix == 0) co_return co_await storage::stat_and_open(key, hint);
  const object_meta* cached = fresh_meta(key);
  if (!cached && meta_ttl_.count() > 0) {
    // The version of a head or tail kept for another loop (a player's next request came on another
    // connection): its metadata, as fresh as this loop's own cache would hold it.
    auto kept = ends_->meta(key, meta_ttl_);
    if (kept && !(changes_ && changes_->changed_since(key, kept->generation))) {
      remember(key, kept->meta, kept->generation, kept->fetched);
      cached = fresh_meta(key);
    }
  }
  if (cached) {
    // What stat() would answer, without its coroutine and lookups; open() then makes the one round trip.
    stat_and_reader out{*cached, nullptr, {}};
    if (!hint.download) co_return out;
    const auto* meta = &out.meta;
    if (meta->size == 0 || hint.first >= meta->size) co_return out;
    const http::byte_range want{hint.first, std::min(hint.last.value_or(meta->size - 1), meta->size - 1)};
    auto reader = std::make_unique<s3_range_reader>(client_, where_, key, *meta, want, max_resumes_,
                                                    [this](const std::string& k) { forget_version(k); });
    auto started = co_await reader->start();
    if (started) {
      out.reader = maybe_download(std::move(reader), key, *meta, want, hint);
      out.range = want;
      co_return out;
    }
    if (started.err().code != errc::changed) co_return started.err();
    forget_version(key);  // replaced since its metadata was cached: ask the store afresh, below
  }
  // A player's first request (bytes=0-) of an MP4: its tail too, in parallel (the index may follow the
  // media), and its head kept (s3_ends.hpp). Not for the slice cache's reads (whole slices: a closed range;
  // it asks for tails itself), nor for Safari's probe (bytes=0-1) or a download.
  const bool player_start = is_player_start(hint, key);
  const auto generation = changes_ ? changes_->generation() : 0;
  if (player_start) co_await ends_->start_tail(client_, where_.prefix + key, key, generation);
  s3::request_spec spec;
  spec.key = where_.prefix + key;
  // (a player's start asks for its head alone: set_first_read; so does the slice cache's run for one)
  const bool cache_head_first =
      hint.head_first && hint.first == 0 && !hint.suffix && hint.last && *hint.last >= first_read_;
  const bool head_only = (player_start || cache_head_first) && first_read_ > 0;
  const auto last = head_only   ? std::to_string(first_read_ - 1)
                    : hint.last ? std::to_string(*hint.last)
                                : std::string();
  spec.headers = {{"range", hint.suffix ? "bytes=-" + std::to_string(*hint.suffix)
                                        : "bytes=" + std::to_string(hint.first) + "-" + last}};
  auto r = co_await client_->send(spec);
  if (!r) co_return r.err();
  auto& res = **r;
  const auto status = res.status();
  if (status == 416 || status == 200) {
    // 416: empty, or the hint starts past the end, and the answer gives no size. 200: the store ignored the
    // range, so its length is only its word for the size: ask HEAD, and read ranges as open() does.
    if (status == 416)
      (void)co_await res.read_all(64 * 1024);  // a short error document: keeps the connection
    r->reset();                                // a whole object: dropped with its connection
    co_return co_await storage::stat_and_open(key, hint);
  }
  if (status != 206) {
    auto body = co_await res.read_all(64 * 1024);
    co_return error_from(status, body ? *body : std::string(), where_, key, *client_);
  }
  const auto length = res.content_length();
  const auto cr = http::parse_content_range(res.header("content-range"));
  if (!cr || !length || *length != cr->last - cr->first + 1)
    co_return error{errc::upstream_unavailable,
                    "storage answered a range with Content-Range '" + res.header("content-range") + "'"};
  auto meta = meta_of(res, cr->size);
  if (!meta) co_return meta.err();
  remember(key, *meta, generation);
  stat_and_reader out{*meta, nullptr, {}};
  // The reader, when the answer holds exactly what the hint asked for (clamped to the size).
  const auto size = meta->size;
  if (size == 0 || (!hint.suffix && hint.first >= size)) co_return out;
  const auto want = hint.suffix
                        ? http::byte_range{size - std::min(*hint.suffix, size), size - 1}
                        : http::byte_range{hint.first, std::min(hint.last.value_or(size - 1), size - 1)};
  const bool head_of_more = head_only && size > first_read_;
  if (cr->first != want.first || cr->last != (head_of_more ? first_read_ - 1 : want.last)) co_return out;
  auto reader = std::make_unique<s3_range_reader>(client_, where_, key, *meta, want, max_resumes_,
                                                  [this](const std::string& k) { forget_version(k); });
  if (head_of_more)
    reader->adopt_head(std::move(*r), first_read_ - 1);
  else
    reader->adopt(std::move(*r), 0);
  out.reader = maybe_download(std::move(reader), key, *meta, want, hint);
  if (player_start) out.reader = ends_->record_head(key, *meta, generation, std::move(out.reader));
  out.range = want;
  co_return out;
}

net::awaitable<result<std::unique_ptr<range_reader>>> s3_storage::open(std::string key, object_meta meta,
                                                                       http::byte_range range) {
  // From memory when a kept head or tail of this version holds the first bytes (s3_ends.hpp).
  if (ends_->may_hold(range, meta.size)) {
    s3_ends::rest_reader rest = [this, key, meta](http::byte_range r) -> std::unique_ptr<range_reader> {
      return std::make_unique<s3_range_reader>(client_, where_, key, meta, r, max_resumes_,
                                               [this](const std::string& k) { forget_version(k); });
    };
    const bool splices = !client_->settings().ep.tls;  // (as s3_range_reader::can_splice)
    if (auto kept = co_await ends_->open(key, meta, range, std::move(rest), splices))
      co_return std::move(kept);
  }
  auto forget = [this](const std::string& k) { forget_version(k); };
  auto reader = std::make_unique<s3_range_reader>(client_, where_, std::move(key), std::move(meta), range,
                                                  max_resumes_, std::move(forget));
  auto started = co_await reader->start();
  if (!started) {
    if (started.err().code == errc::changed) forget_version(reader->key());
    co_return started.err();
  }
  co_return std::unique_ptr<range_reader>(std::move(reader));
}

net::awaitable<result<std::vector<listed_object>>> s3_storage::list(std::string prefix) {
  std::vector<listed_object> out;
  std::string token;
  do {
    s3::request_spec spec;
    spec.query = {{"list-type", "2"}, {"prefix", where_.prefix + prefix}};
    if (!token.empty()) spec.query.emplace_back("continuation-token", token);
    auto r = co_await client_->send(spec);
    if (!r) co_return r.err();
    auto body = co_await (*r)->read_all(16 << 20);
    if (!body) co_return body.err();
    if ((*r)->status() != 200) co_return error_from((*r)->status(), *body, where_, prefix, *client_);
    pugi::xml_document doc;
    if (!doc.load_buffer(body->data(), body->size()))
      co_return error{errc::upstream_unavailable, "storage sent a listing that is not XML"};
    auto root = doc.child("ListBucketResult");
    for (auto c : root.children("Contents")) {
      std::string key = c.child_value("Key");
      if (!key.starts_with(where_.prefix) || key.size() == where_.prefix.size() || key.back() == '/')
        continue;
      out.push_back({key.substr(where_.prefix.size()), http::parse_decimal(c.child_value("Size")).value_or(0),
                     http::parse_iso8601_utc(c.child_value("LastModified")).value_or(0),
                     c.child_value("ETag")});
    }
    token = std::string(root.child_value("IsTruncated")) == "true" ? root.child_value("NextContinuationToken")
                                                                   : "";
  } while (!token.empty());
  co_return out;
}

net::awaitable<std::optional<error>> s3_storage::check_access() {
  s3::request_spec spec;
  spec.query = {{"list-type", "2"}, {"max-keys", "1"}, {"prefix", where_.prefix}};
  auto r = co_await client_->send(spec);
  if (!r) co_return r.err();
  if ((*r)->status() == 200) co_return std::nullopt;
  auto body = co_await (*r)->read_all(64 * 1024);
  auto e = s3::parse_s3_error((*r)->status(), body ? *body : std::string());
  if (e.code == "NoSuchBucket")
    co_return error{errc::not_found, "bucket '" + where_.bucket + "' does not exist at " +
                                         client_->settings().ep.host_header()};
  co_return s3::to_storage_error(e, where_.bucket, where_.prefix, client_->settings().anonymous);
}

net::awaitable<result<object_meta>> s3_storage::write(std::string key, std::string content_type,
                                                      body_source source) {
  meta_cache_.erase(key);
  ends_->forget(key);
  auto uploaded = co_await s3::upload_object(*client_, where_.prefix + key, content_type, std::move(source));
  if (!uploaded) co_return uploaded.err();
  meta_cache_.erase(key);
  co_return co_await stat(key);  // the stored ETag, size and date, as later reads will see them
}

net::awaitable<result<bool>> s3_storage::remove(std::string key) {
  meta_cache_.erase(key);
  ends_->forget(key);
  co_return co_await s3::delete_object(*client_, where_.prefix + key);
}

}  // namespace mediagate::storage
