#pragma once
// Storage backed by an S3 bucket (and optional key prefix): HeadObject for metadata (cached briefly),
// ranged GetObject for exactly the planned bytes, checked and resumed (DESIGN.md "S3 details").
#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>

#include "storage/key_invalidations.hpp"
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

  // Checks that the bucket can be listed with our credentials: an error whose message a user can act on,
  // or nullopt.
  boost::asio::awaitable<std::optional<error>> check_access();

 private:
  struct cached_meta {
    object_meta meta;
    std::chrono::steady_clock::time_point expires;
    std::uint64_t generation = 0;
  };
  void remember(const std::string& key, const object_meta& meta, std::uint64_t generation);
  bool known(const std::string& key) const;  // cached metadata, fresh and not invalidated

  std::shared_ptr<s3::client> client_;
  s3_location where_;
  std::chrono::milliseconds meta_ttl_;
  int max_resumes_;
  std::unordered_map<std::string, cached_meta> meta_cache_;  // per event loop: no locking
  std::shared_ptr<const key_invalidations> changes_;
};

}  // namespace mediagate::storage
