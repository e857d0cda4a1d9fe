#include "server/spliced_reader.hpp"

#include <algorithm>
#include <cstring>

namespace mediagate::server {
namespace {

namespace net = boost::asio;

class spliced_reader final : public storage::range_reader {
 public:
  spliced_reader(storage::storage& store, std::string key, storage::object_meta meta,
                 std::shared_ptr<const spliced_layout> layout, http::byte_range range, std::uint64_t max_gap)
      : store_(store),
        key_(std::move(key)),
        meta_(std::move(meta)),
        layout_(std::move(layout)),
        pos_(range.first),
        end_(range.last + 1),
        max_gap_(max_gap) {
    std::uint64_t at = layout_->head.size();
    starts_.reserve(layout_->runs.size());
    for (const auto& r : layout_->runs) {
      starts_.push_back(at);
      at += r.length;
    }
  }

  net::awaitable<result<storage::chunk>> next(std::span<char> buf, bool zero_copy) override {
    if (finished_) {  // the span before: its reader may complete background work with the buffer, then closes
      co_await finished_->finish(buf);
      finished_.reset();
    }
    if (pos_ >= end_) co_return storage::chunk{};
    const auto& head = layout_->head;
    if (pos_ < head.size()) {
      const auto n =
          static_cast<std::size_t>(std::min<std::uint64_t>({buf.size(), head.size() - pos_, end_ - pos_}));
      std::memcpy(buf.data(), head.data() + pos_, n);
      pos_ += n;
      co_return storage::chunk{n, std::nullopt};
    }
    if (!source_) {
      auto opened = co_await open_span();
      if (!opened) co_return opened.err();
    }
    for (;;) {
      // Several runs in one read: the bytes between them are dropped here, so no file chunk then.
      auto c = co_await source_->next(buf, zero_copy && single_run_);
      if (!c) co_return c.err();
      const auto n = c->bytes;
      if (n == 0 || n > src_end_ - src_next_)
        co_return error{errc::upstream_unavailable, "the object ended before a sample run did: " + key_};
      std::size_t out = n;
      if (!c->file) out = keep_run_bytes(buf, n);
      src_next_ += n;
      pos_ += out;
      if (src_next_ == src_end_) finished_ = std::move(source_);
      if (c->file) co_return std::move(*c);
      if (out > 0) co_return storage::chunk{out, std::nullopt};
      if (!source_) co_return error{errc::io_error, "a sample span ended in a gap: " + key_};
    }
  }

  net::awaitable<void> finish(std::span<char> buf) override {
    if (finished_) co_await finished_->finish(buf);
    finished_.reset();
  }

 private:
  // Opens one storage read from pos_ through the following runs whose gaps are at most max_gap_ bytes
  // (sample runs of a track lie between the other tracks' runs: one read instead of one per run, for a remote
  // store whose every request costs a round trip), ending where the range ends.
  net::awaitable<result<bool>> open_span() {
    const auto it = std::upper_bound(starts_.begin(), starts_.end(), pos_);
    std::size_t i = static_cast<std::size_t>(it - starts_.begin()) - 1;
    const auto& runs = layout_->runs;
    const auto first = runs[i].offset + (pos_ - starts_[i]);
    std::size_t j = i;
    while (j + 1 < runs.size() && starts_[j + 1] < end_ &&
           runs[j + 1].offset >= runs[j].offset + runs[j].length &&
           runs[j + 1].offset - (runs[j].offset + runs[j].length) <= max_gap_)
      ++j;
    const auto last_in_resource = std::min(end_, starts_[j] + runs[j].length);  // exclusive
    const auto last = runs[j].offset + (last_in_resource - starts_[j]);         // exclusive, in the object
    run_ = i;
    span_last_run_ = j;
    single_run_ = i == j;
    src_next_ = first;
    src_end_ = last;
    auto opened = co_await store_.open(key_, meta_, http::byte_range{first, last - 1});
    if (!opened) co_return opened.err();
    source_ = std::move(*opened);
    co_return true;
  }

  // buf[0, n) holds the object's bytes from src_next_: keeps those inside runs (moved to the front), drops
  // the gaps between them; returns how many were kept.
  std::size_t keep_run_bytes(std::span<char> buf, std::size_t n) {
    const auto& runs = layout_->runs;
    std::size_t out = 0, k = 0;
    std::uint64_t p = src_next_;
    while (k < n) {
      const auto& r = runs[run_];
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
  std::shared_ptr<const spliced_layout> layout_;
  std::vector<std::uint64_t> starts_;
  std::uint64_t pos_, end_;
  std::unique_ptr<storage::range_reader> source_;
  std::uint64_t max_gap_;
  std::size_t run_ = 0, span_last_run_ = 0;  // the run being read, the last one of the open read
  bool single_run_ = true;
  std::uint64_t src_next_ = 0, src_end_ = 0;         // the open read: next object offset, end (exclusive)
  std::unique_ptr<storage::range_reader> finished_;  // the run just read, until the next call
};

}  // namespace

std::uint64_t spliced_layout::size() const {
  std::uint64_t n = head.size();
  for (const auto& r : runs) n += r.length;
  return n;
}

std::unique_ptr<storage::range_reader> make_spliced_reader(storage::storage& store, std::string key,
                                                           storage::object_meta meta,
                                                           std::shared_ptr<const spliced_layout> layout,
                                                           http::byte_range range, std::uint64_t max_gap) {
  return std::make_unique<spliced_reader>(store, std::move(key), std::move(meta), std::move(layout), range,
                                          max_gap);
}

}  // namespace mediagate::server
