#pragma once
// Object metadata (HEAD answers) shared by every event loop in front of one storage, with stale-if-error:
// an entry is fresh for `ttl`; when storage fails, an entry younger than `stale_limit` is served instead of
// an error, and storage is asked again only after another `ttl`, so that viewers do not each wait for the
// failing storage's retries. The clock is injected. Thread-safe.
#include <chrono>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>

#include "cache/clock.hpp"
#include "storage/storage.hpp"

namespace mediagate::cache {

struct metadata_cache_config {
  std::chrono::milliseconds ttl{5'000};
  std::chrono::milliseconds stale_limit{3'600'000};
  std::size_t max_entries = 100'000;  // a bound on memory: the whole table is dropped when it is reached
};

class metadata_cache {
 public:
  explicit metadata_cache(metadata_cache_config config, clock_fn now = real_clock());

  enum class state {
    missing,  // nothing usable: ask storage
    fresh,    // younger than the TTL: use it
    stale,    // storage failed moments ago and the entry is within the stale limit: use it, don't ask
    expired,  // older than the TTL: ask storage (and fall back to it with on_failure() if storage fails)
  };
  struct lookup_result {
    state what = state::missing;
    storage::object_meta meta;     // set unless missing
    std::uint64_t generation = 0;  // what store() was given (storage::key_invalidations)
  };
  lookup_result lookup(const std::string& key) const;

  // `generation`: storage::key_invalidations' generation read before storage was asked (0 without one).
  void store(const std::string& key, const storage::object_meta& meta, std::uint64_t generation = 0);
  void forget(const std::string& key);
  // Storage could not answer for `key`: the cached entry with its age when it is still within the stale
  // limit (and storage is then not asked again for a TTL), else nullopt.
  struct stale_entry {
    storage::object_meta meta;
    std::chrono::steady_clock::duration age;
  };
  std::optional<stale_entry> on_failure(const std::string& key);

  std::size_t size() const;

  // One first read at a time per key: true when the caller may fetch `key`'s metadata together with its
  // first bytes (and must call end_first_read); false when another request does so now (the caller then
  // asks for the metadata alone, and the slices' own claims make it wait for that fetch's bytes).
  bool begin_first_read(const std::string& key);
  void end_first_read(const std::string& key);

 private:
  struct entry {
    storage::object_meta meta;
    std::chrono::steady_clock::time_point fetched;
    std::chrono::steady_clock::time_point retry_after{};  // storage failed: ask it again only after this
    std::uint64_t generation = 0;
  };

  const metadata_cache_config config_;
  const clock_fn now_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> entries_;
  std::unordered_set<std::string> first_reads_;
};

}  // namespace mediagate::cache
