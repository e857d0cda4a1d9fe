#pragma once
// Changes to objects made by other nodes, for the caches of object metadata (s3_storage's per-loop cache,
// cache::metadata_cache). Nodes that share a bucket learn of each other's writes and deletes from the
// catalog (PostgreSQL NOTIFY) and report them here; a cache remembers the generation it read an entry at,
// and an entry read before a later change of its key is not used again. Reading the generation before asking
// storage closes the race with a change that lands while the request is in flight. Thread-safe.
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>

namespace mediagate::storage {

class key_invalidations {
 public:
  // The generation now: remember it before asking storage, and pass it to changed_since() later.
  std::uint64_t generation() const;
  void invalidate(const std::string& key);
  void invalidate_all();  // changes may have been missed (the notification channel was down)
  // True when `key` (or everything) was invalidated after `generation`.
  bool changed_since(const std::string& key, std::uint64_t generation) const;

 private:
  static constexpr std::size_t kMaxKeys = 100'000;  // beyond: one invalidate_all() instead of a growing map

  mutable std::mutex mutex_;
  std::uint64_t generation_ = 0;
  std::uint64_t all_ = 0;  // generation of the last invalidate_all()
  std::unordered_map<std::string, std::uint64_t> keys_;
};

}  // namespace mediagate::storage
