#include "server/spliced_reader.hpp"

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cstring>
#include <deque>
#include <numeric>
#include <optional>

namespace mediagate::server {
namespace {

namespace net = boost::asio;
using opened_reader = result<std::unique_ptr<storage::range_reader>>;

// A read started ahead (storage::open running in its own coroutine), and the timer its reader waits on.
struct pending_open {
  explicit pending_open(net::any_io_executor ex) : timer(std::move(ex)) {}
  net::steady_timer timer;
  std::optional<opened_reader> got;
};

net::awaitable<void> run_open(storage::storage& store, std::string key, storage::object_meta meta,
                              http::byte_range range, std::shared_ptr<pending_open> p) {
  auto got = co_await store.open(std::move(key), std::move(meta), range);
  p->got.emplace(std::move(got));
  p->timer.cancel();
}

// Reads a range of the payload (the runs one after another) from storage: the runs grouped into requests
// (group_runs), up to options.parallel of them in flight, streamed in order with the caller's buffer. A
// group of one run hands out file chunks (sendfile); the gaps of larger groups are dropped here.
class runs_reader final : public storage::range_reader {
 public:
  runs_reader(storage::storage& store, std::string key, storage::object_meta meta,
              std::vector<spliced_layout::run> pieces, const run_read_options& options)
      : store_(store),
        key_(std::move(key)),
        meta_(std::move(meta)),
        pieces_(std::move(pieces)),
        groups_(group_runs(pieces_, options)),
        parallel_(std::max<std::size_t>(options.parallel, 1)) {}

  net::awaitable<result<storage::chunk>> next(std::span<char> buf, bool zero_copy) override {
    for (;;) {
      if (finished_) {  // the group before: its reader may complete background work with the buffer
        co_await finished_->finish(buf);
        finished_.reset();
      }
      if (!source_) {
        if (group_ == groups_.size()) co_return storage::chunk{};
        if (zero_copy && direct_fd_ >= 0 && started_ == group_ &&
            groups_[group_].first == groups_[group_].last) {
          // The file holds the object as it is (local storage): a run is sent from it without a new read.
          const auto& r = pieces_[groups_[group_].first];
          started_ = ++group_;
          co_return storage::chunk{static_cast<std::size_t>(r.length),
                                   storage::file_region{direct_fd_, r.offset}};
        }
        auto opened = co_await open_group();
        if (!opened) co_return opened.err();
      }
      // Several runs in one read: the bytes between them are dropped here, so no file chunk then.
      auto c = co_await source_->next(buf, zero_copy && single_run_);
      if (!c) co_return c.err();
      const auto n = c->bytes;
      if (n == 0 || n > src_end_ - src_next_)
        co_return error{errc::upstream_unavailable, "the object ended before a sample run did: " + key_};
      std::size_t out = n;
      if (!c->file) out = keep_run_bytes(buf, n);
      src_next_ += n;
      if (src_next_ == src_end_) {
        // A whole run as one file chunk at the run's own offset: the file is the object's bytes as they are
        // stored, so later runs are sent from it directly (its reader kept open: it owns the descriptor).
        if (c->file && c->file->offset + n == src_end_ && n == src_end_ - group_range(group_).first &&
            direct_fd_ < 0 && single_run_) {
          direct_fd_ = c->file->fd;
          fd_owner_ = std::move(source_);
        } else {
          finished_ = std::move(source_);
        }
        ++group_;
      }
      if (c->file) co_return std::move(*c);
      if (out > 0) co_return storage::chunk{out, std::nullopt};
    }
  }

  net::awaitable<void> finish(std::span<char> buf) override {
    if (finished_) co_await finished_->finish(buf);
    finished_.reset();
  }

  // What next() returns for the next run when that is a file chunk of the file already open (local storage)
  // with nothing to finish first, without the cost of a coroutine: a warm segment is ~250 of them.
  std::optional<storage::chunk> next_direct(bool zero_copy) {
    if (!zero_copy || direct_fd_ < 0 || finished_ || source_ || group_ == groups_.size() ||
        started_ != group_ || groups_[group_].first != groups_[group_].last)
      return std::nullopt;
    const auto& r = pieces_[groups_[group_].first];
    started_ = ++group_;
    return storage::chunk{static_cast<std::size_t>(r.length), storage::file_region{direct_fd_, r.offset}};
  }

 private:
  http::byte_range group_range(std::size_t g) const {
    const auto& first = pieces_[groups_[g].first];
    const auto& last = pieces_[groups_[g].last];
    return {first.offset, last.offset + last.length - 1};
  }

  // Opens the read of group_ (or takes the one started ahead) and starts those of the groups after it.
  net::awaitable<result<bool>> open_group() {
    const auto g = group_;
    std::shared_ptr<pending_open> mine;
    if (started_ > g) {
      mine = std::move(pending_.front());
      pending_.pop_front();
    } else {
      started_ = g + 1;
    }
    if (parallel_ > 1 && started_ < groups_.size()) {
      auto ex = co_await net::this_coro::executor;
      for (; started_ < groups_.size() && started_ < g + parallel_; ++started_) {
        auto p = std::make_shared<pending_open>(ex);
        net::co_spawn(ex, run_open(store_, key_, meta_, group_range(started_), p), [p](std::exception_ptr e) {
          if (!e || p->got) return;
          p->got.emplace(error{errc::io_error, "a read of sample runs failed"});
          p->timer.cancel();
        });
        pending_.push_back(std::move(p));
      }
    }
    opened_reader opened;
    if (mine) {
      while (!mine->got) {
        mine->timer.expires_at(net::steady_timer::time_point::max());
        co_await mine->timer.async_wait(net::as_tuple(net::use_awaitable));
      }
      opened = std::move(*mine->got);
    } else {
      const auto range = group_range(g);
      opened = co_await store_.open(key_, meta_, range);
    }
    if (!opened) co_return opened.err();
    source_ = std::move(*opened);
    run_ = groups_[g].first;
    span_last_run_ = groups_[g].last;
    single_run_ = run_ == span_last_run_;
    const auto range = group_range(g);
    src_next_ = range.first;
    src_end_ = range.last + 1;
    co_return true;
  }

  // buf[0, n) holds the object's bytes from src_next_: keeps those inside runs (moved to the front), drops
  // the gaps between them; returns how many were kept.
  std::size_t keep_run_bytes(std::span<char> buf, std::size_t n) {
    std::size_t out = 0, k = 0;
    std::uint64_t p = src_next_;
    while (k < n) {
      const auto& r = pieces_[run_];
      if (p < r.offset) {
        const auto skip = static_cast<std::size_t>(std::min<std::uint64_t>(n - k, r.offset - p));
        k += skip;
        p += skip;
        continue;
      }
      const auto take = static_cast<std::size_t>(std::min<std::uint64_t>(n - k, r.offset + r.length - p));
      if (out != k) std::memmove(buf.data() + out, buf.data() + k, take);
      out += take;
      k += take;
      p += take;
      if (p == r.offset + r.length && run_ < span_last_run_) ++run_;
    }
    return out;
  }

  storage::storage& store_;
  std::string key_;
  storage::object_meta meta_;
  std::vector<spliced_layout::run> pieces_;  // the runs (or parts of them) the range covers, in order
  std::vector<run_group> groups_;
  std::size_t parallel_;
  std::size_t group_ = 0;    // the group being read
  std::size_t started_ = 0;  // groups whose read was started: pending_ holds those after group_
  std::deque<std::shared_ptr<pending_open>> pending_;
  std::unique_ptr<storage::range_reader> source_;
  std::unique_ptr<storage::range_reader> finished_;  // the group just read, until the next call
  std::unique_ptr<storage::range_reader> fd_owner_;  // the read that gave direct_fd_
  int direct_fd_ = -1;  // a file whose offsets are the object's (local storage), once a read showed one
  std::size_t run_ = 0, span_last_run_ = 0;  // the run being read, the last one of the open read
  bool single_run_ = true;
  std::uint64_t src_next_ = 0, src_end_ = 0;  // the open read: next object offset, end (exclusive)
};

// The runs' bytes from `range` of the payload, as runs of the object.
std::vector<spliced_layout::run> pieces_of(const spliced_layout& layout, http::byte_range range) {
  std::vector<spliced_layout::run> out;
  std::uint64_t at = 0;
  for (const auto& r : layout.runs) {
    const auto start = at, end = at + r.length;
    at = end;
    if (r.length == 0 || end <= range.first) continue;
    if (start > range.last) break;
    const auto from = std::max(range.first, start), to = std::min(range.last + 1, end);
    out.push_back({r.offset + (from - start), to - from});
  }
  return out;
}

net::awaitable<opened_reader> open_runs(storage::storage& store, std::string key, storage::object_meta meta,
                                        std::shared_ptr<const spliced_layout> layout, http::byte_range range,
                                        run_read_options options) {
  co_return std::unique_ptr<storage::range_reader>(std::make_unique<runs_reader>(
      store, std::move(key), std::move(meta), pieces_of(*layout, range), options));
}

// The literal head from memory, then the payload through storage::open_derived.
class spliced_reader final : public storage::range_reader {
 public:
  spliced_reader(storage::storage& store, std::string key, storage::object_meta meta,
                 std::shared_ptr<const spliced_layout> layout, http::byte_range range,
                 run_read_options options)
      : store_(store),
        key_(std::move(key)),
        meta_(std::move(meta)),
        layout_(std::move(layout)),
        pos_(range.first),
        end_(range.last + 1),
        options_(options) {}

  net::awaitable<result<storage::chunk>> next(std::span<char> buf, bool zero_copy) override {
    if (pos_ >= end_) co_return storage::chunk{};
    const auto& head = layout_->head;
    if (pos_ < head.size()) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>({buf.size(), head.size() - pos_, end_ - pos_}));
      std::memcpy(buf.data(), head.data() + pos_, n);
      pos_ += n;
      co_return storage::chunk{n, std::nullopt, true};
    }
    if (!payload_) {
      auto opened = co_await open_payload();
      if (!opened) co_return opened.err();
      payload_ = std::move(*opened);
      runs_ = dynamic_cast<runs_reader*>(payload_.get());  // not when a cache in between reads the runs
    }
    std::optional<result<storage::chunk>> c;
    if (runs_) c = runs_->next_direct(zero_copy);
    if (!c) c = co_await payload_->next(buf, zero_copy);
    if (!*c) co_return c->err();
    const auto n = (*c)->bytes;
    if (n == 0 || n > end_ - pos_)
      co_return error{errc::upstream_unavailable, "the samples of a segment ended early: " + key_};
    pos_ += n;
    co_return std::move(*c);
  }

  net::awaitable<void> finish(std::span<char> buf) override {
    if (payload_) co_await payload_->finish(buf);
  }

 private:
  net::awaitable<opened_reader> open_payload() {
    const auto head = layout_->head.size();
    const http::byte_range range{pos_ - head, end_ - 1 - head};
    storage::storage::derived_reader make = [key = key_, meta = meta_, layout = layout_, options = options_](
                                                storage::storage& s, http::byte_range r) {
      return open_runs(s, key, meta, layout, r, options);
    };
    if (layout_->payload_name.empty()) co_return co_await make(store_, range);
    const auto size = layout_->size() - head;
    co_return co_await store_.open_derived(key_, meta_, layout_->payload_name, size, range, std::move(make));
  }

  storage::storage& store_;
  std::string key_;
  storage::object_meta meta_;
  std::shared_ptr<const spliced_layout> layout_;
  std::uint64_t pos_, end_;
  run_read_options options_;
  std::unique_ptr<storage::range_reader> payload_;
  runs_reader* runs_ = nullptr;  // payload_, when it reads the runs itself
};

}  // namespace

std::uint64_t spliced_layout::size() const {
  std::uint64_t n = head.size();
  for (const auto& r : runs) n += r.length;
  return n;
}

std::vector<run_group> group_runs(std::span<const spliced_layout::run> runs,
                                  const run_read_options& options) {
  std::vector<run_group> out;
  if (runs.empty()) return out;
  // joined[i]: run i is read with run i - 1 (over the gap between them).
  std::vector<bool> joined(runs.size(), false);
  std::vector<std::pair<std::uint64_t, std::size_t>> gaps;  // (gap bytes, i) of the joined runs
  std::uint64_t payload = runs[0].length, gap_bytes = 0;
  for (std::size_t i = 1; i < runs.size(); ++i) {
    payload += runs[i].length;
    const auto end = runs[i - 1].offset + runs[i - 1].length;
    if (runs[i].offset < end || runs[i].offset - end > options.max_gap) continue;
    joined[i] = true;
    gaps.emplace_back(runs[i].offset - end, i);
    gap_bytes += runs[i].offset - end;
  }
  const auto budget =
      static_cast<std::uint64_t>(static_cast<double>(payload) * std::max(options.max_extra, 0.0));
  if (gap_bytes > budget) {
    // Largest first; of equal gaps the first one.
    std::sort(gaps.begin(), gaps.end(), [](const auto& a, const auto& b) {
      return a.first != b.first ? a.first > b.first : a.second < b.second;
    });
    for (const auto& [bytes, i] : gaps) {
      if (gap_bytes <= budget) break;
      joined[i] = false;
      gap_bytes -= bytes;
    }
  }
  for (std::size_t i = 0; i < runs.size(); ++i) {
    if (joined[i])
      out.back().last = i;
    else
      out.push_back({i, i});
  }
  return out;
}

std::unique_ptr<storage::range_reader> make_spliced_reader(storage::storage& store, std::string key,
                                                           storage::object_meta meta,
                                                           std::shared_ptr<const spliced_layout> layout,
                                                           http::byte_range range, run_read_options options) {
  return std::make_unique<spliced_reader>(store, std::move(key), std::move(meta), std::move(layout), range,
                                          options);
}

}  // namespace mediagate::server
