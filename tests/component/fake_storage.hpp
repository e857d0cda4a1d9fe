#pragma once
// An in-memory storage for component tests: objects by key, errors injected per operation and key (for
// every call, or for the next n calls), readers that hand out a few bytes per call and can break after a
// given number of bytes, and counters of every call so that tests can prove what reached storage.
#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "storage/storage.hpp"

namespace mediagate::testing_support {

namespace st = mediagate::storage;

enum class storage_op { stat, open, list, write, remove };

struct fake_object {
  std::string bytes;
  std::string etag;
  std::int64_t last_modified = 0;
  std::string content_type;
};

// The ranges opened and the bytes handed out, shared with the readers (which may outlive a test's view).
struct fake_counters {
  int stats = 0;
  int opens = 0;
  int lists = 0;
  int writes = 0;
  int removes = 0;
  std::vector<http::byte_range> opened;
  std::uint64_t bytes_read = 0;
};

class fake_reader final : public st::range_reader {
 public:
  fake_reader(std::string bytes, std::size_t max_chunk, std::optional<std::uint64_t> fail_after,
              errc fail_code, std::shared_ptr<fake_counters> counters)
      : bytes_(std::move(bytes)),
        max_chunk_(max_chunk),
        fail_after_(fail_after),
        fail_code_(fail_code),
        counters_(std::move(counters)) {}

  boost::asio::awaitable<st::result<st::chunk>> next(std::span<char> buf, bool) override {
    if (fail_after_ && pos_ >= *fail_after_) co_return st::error{fail_code_, "injected failure mid-range"};
    auto n = std::min({buf.size(), max_chunk_, bytes_.size() - pos_});
    if (fail_after_) n = std::min<std::size_t>(n, *fail_after_ - pos_);
    std::copy_n(bytes_.data() + pos_, n, buf.data());
    pos_ += n;
    counters_->bytes_read += n;
    co_return st::chunk{n, std::nullopt};
  }

 private:
  std::string bytes_;
  std::size_t max_chunk_;
  std::size_t pos_ = 0;
  std::optional<std::uint64_t> fail_after_;
  errc fail_code_;
  std::shared_ptr<fake_counters> counters_;
};

class fake_storage final : public st::storage {
 public:
  // Stores an object; the ETag is derived from a version counter so that a replacement gets a new one.
  void put(const std::string& key, std::string bytes, std::string content_type = {},
           std::int64_t last_modified = 1'700'000'000) {
    fake_object o;
    o.bytes = std::move(bytes);
    o.etag = "\"v" + std::to_string(++version_) + "\"";
    o.last_modified = last_modified;
    o.content_type = std::move(content_type);
    objects_[key] = std::move(o);
  }
  const fake_object* find(const std::string& key) const {
    auto it = objects_.find(key);
    return it == objects_.end() ? nullptr : &it->second;
  }
  std::size_t size() const { return objects_.size(); }

  // `op` on `key` fails with `code`: on every call (times < 0) or on the next `times` calls.
  void fail(storage_op op, const std::string& key, errc code, int times = -1) {
    faults_[{op, key}] = {code, times};
  }
  // The `n`-th open() (1-based, counted over all keys from now on) fails with `code`.
  void fail_open_number(int n, errc code) {
    fail_open_at_ = counters_->opens + n;
    fail_open_code_ = code;
  }
  // Readers of `key` fail with `code` once they have handed out `bytes` bytes of their range.
  void break_reads_after(const std::string& key, std::uint64_t bytes,
                         errc code = errc::upstream_unavailable) {
    breaks_[key] = {bytes, code};
  }
  void clear_breaks() { breaks_.clear(); }
  // The most bytes a reader hands out per call: small, so that every range takes several calls.
  void set_max_chunk(std::size_t n) { max_chunk_ = n; }

  const fake_counters& counters() const { return *counters_; }

  boost::asio::awaitable<st::result<st::object_meta>> stat(std::string key) override {
    ++counters_->stats;
    if (auto e = injected(storage_op::stat, key)) co_return *e;
    auto* o = find(key);
    if (!o) co_return st::error{errc::not_found, "no object at " + key};
    st::object_meta m;
    m.size = o->bytes.size();
    m.etag = o->etag;
    m.last_modified = o->last_modified;
    m.content_type = o->content_type;
    co_return m;
  }

  boost::asio::awaitable<st::result<std::unique_ptr<st::range_reader>>> open(
      std::string key, st::object_meta meta, http::byte_range range) override {
    const int number = ++counters_->opens;
    counters_->opened.push_back(range);
    if (number == fail_open_at_) co_return st::error{fail_open_code_, "injected failure of open"};
    if (auto e = injected(storage_op::open, key)) co_return *e;
    auto* o = find(key);
    if (!o) co_return st::error{errc::not_found, "no object at " + key};
    // Like the real backends: only the version that stat() described may be read.
    if (o->etag != meta.etag) co_return st::error{errc::changed, key + " changed since it was examined"};
    if (range.last >= o->bytes.size() || range.first > range.last)
      co_return st::error{errc::io_error, "range outside the object"};
    std::optional<std::uint64_t> fail_after;
    errc fail_code = errc::io_error;
    if (auto it = breaks_.find(key); it != breaks_.end()) {
      fail_after = it->second.first;
      fail_code = it->second.second;
    }
    co_return std::unique_ptr<st::range_reader>(std::make_unique<fake_reader>(
        o->bytes.substr(range.first, range.length()), max_chunk_, fail_after, fail_code, counters_));
  }

  boost::asio::awaitable<st::result<std::vector<st::listed_object>>> list(std::string prefix) override {
    ++counters_->lists;
    if (auto e = injected(storage_op::list, prefix)) co_return *e;
    std::vector<st::listed_object> out;
    for (const auto& [key, o] : objects_)
      if (key.starts_with(prefix)) out.push_back({key, o.bytes.size(), o.last_modified, o.etag});
    co_return out;
  }

  // All or nothing, as the interface demands: the object appears only once the source ended cleanly.
  boost::asio::awaitable<st::result<st::object_meta>> write(std::string key, std::string content_type,
                                                            st::body_source source) override {
    ++counters_->writes;
    if (auto e = injected(storage_op::write, key)) co_return *e;
    std::string bytes;
    std::vector<char> buf(1000);
    while (true) {
      auto n = co_await source(buf);
      if (!n) co_return n.err();
      if (*n == 0) break;
      bytes.append(buf.data(), *n);
    }
    put(key, std::move(bytes), std::move(content_type));
    co_return co_await stat(key);
  }

  boost::asio::awaitable<st::result<bool>> remove(std::string key) override {
    ++counters_->removes;
    if (auto e = injected(storage_op::remove, key)) co_return *e;
    co_return objects_.erase(key) > 0;
  }

  std::string describe() const override { return "fake storage"; }

 private:
  struct fault {
    errc code;
    int times;
  };
  std::optional<st::error> injected(storage_op op, const std::string& key) {
    auto it = faults_.find({op, key});
    if (it == faults_.end() || it->second.times == 0) return std::nullopt;
    if (it->second.times > 0) --it->second.times;
    return st::error{it->second.code, "injected failure for " + key};
  }

  std::map<std::string, fake_object> objects_;
  std::map<std::pair<storage_op, std::string>, fault> faults_;
  std::map<std::string, std::pair<std::uint64_t, errc>> breaks_;
  std::shared_ptr<fake_counters> counters_ = std::make_shared<fake_counters>();
  int version_ = 0;
  int fail_open_at_ = -1;
  errc fail_open_code_ = errc::io_error;
  std::size_t max_chunk_ = 7;
};

}  // namespace mediagate::testing_support
