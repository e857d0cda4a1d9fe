#pragma once
// The first and last bytes of an MP4 kept in memory for a moment, for S3 storage without a slice cache
// (issue 15). A browser starting a file whose index (moov) follows the media asks for `bytes=0-`, drops it
// once the head shows where the index is, asks for the index at the end, and then resumes the media from
// where it stopped reading the head: three round trips to S3 in a row. Here the first request also asks for
// the object's last bytes in parallel (a suffix range: the size is not known yet), and the head it reads is
// kept up to head_bytes (read to that point after the client left, never further): the index request and
// the resume are answered from memory (a resume past the kept head continues with a GET of the rest).
// Bounded: at most kMaxEntries heads and as many tails, each at most its byte limit, for kLife. Shared by
// every event loop (a browser's requests come on several connections): thread-safe.
#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/storage.hpp"

namespace mediagate::s3 {
class client;
}

namespace mediagate::storage {

struct kept_bytes;

class s3_ends {
 public:
  static constexpr std::size_t kMaxEntries = 32;
  static constexpr std::chrono::seconds kLife{10};
  // How long a request for bytes still being read waits for them before it asks storage itself.
  static constexpr std::chrono::seconds kMaxWait{2};
  // How long a request following a head still read by its client waits for its next bytes before it asks
  // storage for the rest (its client may have paused).
  static constexpr std::chrono::milliseconds kFollowStall{50};

  s3_ends(std::uint64_t head_bytes, std::uint64_t tail_bytes)
      : head_bytes_(head_bytes), tail_bytes_(tail_bytes) {}

  // Starts reading the last tail bytes of `key` (`object_key` in the bucket) with `client` in the background,
  // unless a tail of it is being read or was read moments ago, or the table is full.
  boost::asio::awaitable<void> start_tail(std::shared_ptr<s3::client> client, std::string object_key,
                                          std::string key, std::uint64_t generation);

  // The metadata a kept head or tail of `key` came with (S3's answer), when it is at most `max_age` old:
  // another loop's storage (each caches metadata for itself) then knows the version the bytes are of without
  // asking S3 again. With the invalidations' generation read before it was asked for, and when it came.
  struct known_meta {
    object_meta meta;
    std::uint64_t generation = 0;
    std::chrono::steady_clock::time_point fetched;
  };
  std::optional<known_meta> meta(const std::string& key, std::chrono::steady_clock::duration max_age) const;

  // `reader` (of bytes=0- of the version `meta` of `key`), keeping the first head bytes it reads; when its
  // client leaves earlier, the reader is read to that point in the background.
  // `generation`: the storage's key_invalidations generation read before the GET that gave `meta` was sent.
  std::unique_ptr<range_reader> record_head(const std::string& key, const object_meta& meta,
                                            std::uint64_t generation, std::unique_ptr<range_reader> reader);

  // Whether open() could find anything for `range` of an object of `size` bytes: its first byte is in a
  // head or a tail. When not (most ranges of a large object), callers skip open() and what it takes (a
  // coroutine, copies of the key and metadata, the rest_reader).
  bool may_hold(http::byte_range range, std::uint64_t size) const {
    return size > 0 && range.last < size &&
           (range.first < head_bytes_ || range.first >= size - std::min(tail_bytes_, size));
  }
  // A reader of `range` of the version `meta` of `key` that starts from memory, when a kept head or tail
  // holds its first byte (waiting up to kMaxWait for one still being read by no client; following one still
  // read by its client while its bytes come); the bytes after a kept head come from
  // `rest(range of them)`, whose readers can splice when `rest_splices`. Null otherwise: read from storage.
  using rest_reader = std::function<std::unique_ptr<range_reader>(http::byte_range)>;
  boost::asio::awaitable<std::unique_ptr<range_reader>> open(std::string key, object_meta meta,
                                                             http::byte_range range, rest_reader rest,
                                                             bool rest_splices);

  void forget(const std::string& key);

 private:
  using table = std::unordered_map<std::string, std::shared_ptr<kept_bytes>>;
  std::shared_ptr<kept_bytes> find(const table& t, const std::string& key) const;
  static void drop_expired(table& t);

  const std::uint64_t head_bytes_;
  const std::uint64_t tail_bytes_;
  mutable std::mutex mutex_;
  table heads_;
  table tails_;
};

}  // namespace mediagate::storage
