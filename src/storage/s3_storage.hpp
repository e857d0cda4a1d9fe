#pragma once
// Storage backed by an S3 bucket (and optional key prefix): HeadObject for metadata (cached briefly),
// ranged GetObject for exactly the planned bytes, checked and resumed (DESIGN.md "S3 details").
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "storage/download_budget.hpp"
#include "storage/key_invalidations.hpp"
#include "storage/s3_ends.hpp"
#include "storage/storage.hpp"

namespace mediagate::s3 {
class client;
}

namespace mediagate::storage {

struct s3_location {
  std::string bucket;
  std::string prefix;  // "" or ending in "/"
};

// "s3://bucket/some/prefix" → {bucket, "some/prefix/"}; nullopt when malformed.
std::optional<s3_location> parse_s3_url(std::string_view url);

// One client's download of a large body over several S3 connections (parallel ranged GETs of parts, written
// in order). Only for a request without Range (read_hint::download), and only once the client has taken
// `after` bytes from one connection while waiting on S3 for at least half of that time (the store, not the
// client, is the bottleneck) and that connection delivered less than `slower_than` bytes a second (a distant
// store's per-connection limit; a store nearby that is busy would only get more requests). Parts that do not
// raise the download's rate by half over the one connection's, in two rounds in a row (a store whose
// bandwidth is shared, not capped per connection), are stopped: the rest goes on one connection, and parts
// are tried again only once four times the bytes read so far are handed on. Memory: at most `parts` ×
// `part_size` per download, and at most the budget's limit for all downloads of the process together.
struct download_settings {
  std::size_t parts = 6;  // S3 connections for one download at most; 1 or 0: always one
  std::uint64_t part_size = 8ull << 20;
  std::uint64_t after = 8ull << 20;
  std::uint64_t slower_than = 200'000'000;  // bytes per second of the one connection
  std::shared_ptr<download_budget> budget;  // shared by every loop; null: no process-wide bound
};

class s3_storage final : public storage {
 public:
  // `changes`: other nodes' writes and deletes, which end cached metadata early (null: none).
  s3_storage(std::shared_ptr<s3::client> client, s3_location where, std::chrono::milliseconds meta_ttl,
             int max_resumes = 3, std::shared_ptr<const key_invalidations> changes = nullptr);

  boost::asio::awaitable<result<object_meta>> stat(std::string key) override;
  boost::asio::awaitable<result<stat_and_reader>> stat_and_open(std::string key, read_hint hint) override;
  boost::asio::awaitable<result<std::unique_ptr<range_reader>>> open(std::string key, object_meta meta,
                                                                     http::byte_range range) override;
  boost::asio::awaitable<result<std::vector<listed_object>>> list(std::string prefix) override;
  // PutObject, or a multipart upload for bodies larger than one part (aborted on failure: no half object).
  boost::asio::awaitable<result<object_meta>> write(std::string key, std::string content_type,
                                                    body_source source) override;
  boost::asio::awaitable<result<bool>> remove(std::string key) override;
  std::string describe() const override;

  void set_download(download_settings d) { download_ = d; }
  // A player's cold start of an MP4 (bytes=0-) asks S3 for its first `bytes` alone, and for the rest once
  // half of them are sent to the client. A store that reads a whole stripe before the first byte of a longer
  // range (Ceph radosgw: 4 MiB) answers a short one sooner; a player that leaves within the head (the index
  // is at the end) costs no GET for the rest. 0: one GET for the whole range.
  static constexpr std::uint64_t kFirstRead = 1u << 20;
  void set_first_read(std::uint64_t bytes) { first_read_ = bytes; }
  // The kept heads and tails of MP4s, shared by every loop's storage (a browser's requests come on several
  // connections, which may be on several loops).
  static constexpr std::uint64_t kEndBytes = 1u << 20;
  void set_ends(std::shared_ptr<s3_ends> ends) { ends_ = std::move(ends); }

  // Checks that the bucket can be listed with our credentials: an error whose message a user can act on,
  // or nullopt.
  boost::asio::awaitable<std::optional<error>> check_access();

 private:
  struct cached_meta {
    object_meta meta;
    std::chrono::steady_clock::time_point expires;
    std::uint64_t generation = 0;
  };
  void remember(const std::string& key, const object_meta& meta, std::uint64_t generation,
                std::optional<std::chrono::steady_clock::time_point> fetched = std::nullopt);
  // Cached metadata, fresh and not invalidated; null when there is none. Valid until the cache changes.
  const object_meta* fresh_meta(const std::string& key) const;
  void forget_version(const std::string& key);
  // `reader` is this backend's own one-connection reader; wrapped for a download of a long enough body.
  std::unique_ptr<range_reader> maybe_download(std::unique_ptr<range_reader> reader, const std::string& key,
                                               const object_meta& meta, http::byte_range range,
                                               const read_hint& hint);

  std::shared_ptr<s3::client> client_;
  s3_location where_;
  std::chrono::milliseconds meta_ttl_;
  int max_resumes_;
  std::unordered_map<std::string, cached_meta> meta_cache_;  // per event loop: no locking
  std::shared_ptr<const key_invalidations> changes_;
  download_settings download_;
  std::uint64_t first_read_ = kFirstRead;
  // The first and last MiB of an MP4 a browser starts cold (`bytes=0-`), for its next requests: the index at
  // the end and the resume of the head (s3_ends.hpp). Shared by the loops through set_ends().
  std::shared_ptr<s3_ends> ends_ = std::make_shared<s3_ends>(kEndBytes, kEndBytes);
};

}  // namespace mediagate::storage
