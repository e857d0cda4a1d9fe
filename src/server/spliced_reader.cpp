#include "server/spliced_reader.hpp"

#include <algorithm>
#include <cstring>

namespace mediagate::server {
namespace {

namespace net = boost::asio;

class spliced_reader final : public storage::range_reader {
 public:
  spliced_reader(storage::storage& store, std::string key, storage::object_meta meta,
                 std::shared_ptr<const spliced_layout> layout, http::byte_range range)
      : store_(store),
        key_(std::move(key)),
        meta_(std::move(meta)),
        layout_(std::move(layout)),
        pos_(range.first),
        end_(range.last + 1) {
    std::uint64_t at = layout_->head.size();
    starts_.reserve(layout_->runs.size());
    for (const auto& r : layout_->runs) {
      starts_.push_back(at);
      at += r.length;
    }
  }

  net::awaitable<result<storage::chunk>> next(std::span<char> buf, bool zero_copy) override {
    if (finished_) {  // the run before: its reader may complete background work with the buffer, then closes
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
      // The run holding pos_, read from there to the end of the run or of the range.
      const auto it = std::upper_bound(starts_.begin(), starts_.end(), pos_);
      const auto i = static_cast<std::size_t>(it - starts_.begin()) - 1;
      const auto& run = layout_->runs[i];
      const auto within = pos_ - starts_[i];
      const auto stop = std::min(end_, starts_[i] + run.length);
      source_left_ = stop - pos_;
      http::byte_range r{run.offset + within, run.offset + within + source_left_ - 1};
      auto opened = co_await store_.open(key_, meta_, r);
      if (!opened) co_return opened.err();
      source_ = std::move(*opened);
    }
    auto c = co_await source_->next(buf, zero_copy);
    if (!c) co_return c.err();
    if (c->bytes == 0 || c->bytes > source_left_)
      co_return error{errc::upstream_unavailable, "the object ended before a sample run did: " + key_};
    pos_ += c->bytes;
    source_left_ -= c->bytes;
    if (source_left_ == 0) finished_ = std::move(source_);
    co_return std::move(*c);
  }

  net::awaitable<void> finish(std::span<char> buf) override {
    if (finished_) co_await finished_->finish(buf);
    finished_.reset();
  }

 private:
  storage::storage& store_;
  std::string key_;
  storage::object_meta meta_;
  std::shared_ptr<const spliced_layout> layout_;
  std::vector<std::uint64_t> starts_;
  std::uint64_t pos_, end_;
  std::unique_ptr<storage::range_reader> source_;
  std::uint64_t source_left_ = 0;
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
                                                           http::byte_range range) {
  return std::make_unique<spliced_reader>(store, std::move(key), std::move(meta), std::move(layout), range);
}

}  // namespace mediagate::server
