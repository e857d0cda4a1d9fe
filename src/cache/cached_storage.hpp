#pragma once
// A storage that puts the shared slice cache in front of another (S3) storage, for one event loop.
// Reads come from slice files when present; missing runs of slices are fetched with one ranged read,
// written to disk while they stream to the client; concurrent misses of a slice wait for one fetch.
#include <memory>

#include "storage/key_invalidations.hpp"
#include "storage/storage.hpp"

namespace spdlog {
class logger;
}

namespace mediagate::cache {
namespace st = mediagate::storage;

class slice_cache;
class metadata_cache;

class cached_storage final : public st::storage {
 public:
  // `meta` caches the upstream's metadata for every loop (HeadObject answers with stale-if-error).
  // `changes`: other nodes' writes and deletes (null: this node is the only writer).
  cached_storage(std::shared_ptr<slice_cache> cache, std::shared_ptr<metadata_cache> meta,
                 std::shared_ptr<st::storage> upstream, std::shared_ptr<spdlog::logger> log,
                 std::shared_ptr<const st::key_invalidations> changes = nullptr);

  boost::asio::awaitable<st::result<st::object_meta>> stat(std::string key) override;
  boost::asio::awaitable<st::result<st::stat_and_reader>> stat_and_open(std::string key,
                                                                        st::read_hint hint) override;
  boost::asio::awaitable<st::result<std::unique_ptr<st::range_reader>>> open(std::string key,
                                                                             st::object_meta meta,
                                                                             http::byte_range range) override;
  // Derived bytes (an HLS segment's samples) are cached as an object of their own, named by `name`: a cold
  // read fetches exactly what `make` reads from storage, and the slices hold just those bytes.
  boost::asio::awaitable<st::result<std::unique_ptr<st::range_reader>>> open_derived(
      std::string key, st::object_meta meta, std::string name, std::uint64_t size, http::byte_range range,
      st::storage::derived_reader make) override;
  boost::asio::awaitable<st::result<std::vector<st::listed_object>>> list(std::string prefix) override;
  // Writes go to storage; the key's cached metadata is dropped (its slices are keyed by ETag, so old ones
  // can never be served for the new version and age out by LRU).
  boost::asio::awaitable<st::result<st::object_meta>> write(std::string key, std::string content_type,
                                                            st::body_source source) override;
  boost::asio::awaitable<st::result<bool>> remove(std::string key) override;
  std::string describe() const override;

 private:
  std::string meta_key(const std::string& key) const { return upstream_id_ + "\n" + key; }

  std::shared_ptr<slice_cache> cache_;
  std::shared_ptr<metadata_cache> meta_;
  std::shared_ptr<st::storage> upstream_;
  std::shared_ptr<spdlog::logger> log_;
  std::string upstream_id_;
  std::shared_ptr<const st::key_invalidations> changes_;
};

}  // namespace mediagate::cache
