#pragma once
// Which slices the cache holds, in least-recently-used order within a byte budget, and which are being
// fetched (claims), so that concurrent misses of one slice share one fetch. In memory only: the caller
// owns the files and is told, through a callback, which ones eviction dropped. Thread-safe.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace mediagate::cache {

enum class claim_outcome { claimed, in_flight, present, unavailable };

class slice_index {
 public:
  struct entry {
    std::filesystem::path path;
    std::uint64_t length = 0;
    std::int64_t checked_mtime_ns = -1;  // -1: never verified in this process
  };
  // Called, with the index locked, for each entry evicted to stay within the budget.
  using evict_fn = std::function<void(const entry&)>;

  explicit slice_index(std::uint64_t capacity_bytes) : capacity_(capacity_bytes) {}

  // The entry, marked most recently used.
  std::optional<entry> touch(const std::string& key);
  // The same without a copy of the entry (every cache hit touches one): its verified modification time.
  std::optional<std::int64_t> touch_checked(const std::string& key);
  // The entry's file, when `key` is there.
  std::optional<std::filesystem::path> path_of(const std::string& key) const;
  // Adds (or replaces) `key` as the most recently used entry, then evicts the least recently used ones
  // until the total fits the budget (possibly `key` itself, if it alone is larger). Returns the number
  // evicted.
  std::size_t insert(const std::string& key, entry e, const evict_fn& on_evict);
  // Records that the file was verified with this modification time (ignored if `key` went meanwhile).
  void mark_checked(const std::string& key, std::int64_t mtime_ns);
  // Drops `key` (a damaged or vanished file); false if it was not there.
  bool erase(const std::string& key);
  bool contains(const std::string& key) const;
  std::uint64_t total_bytes() const;
  std::size_t size() const;

  // Claims the right to fetch a missing slice. present: the index has it. in_flight: another claim holds
  // it; `on_done` runs (on the releasing thread) when that claim ends either way. unavailable: not claimed
  // because `may_claim` is false (the cache is not writing).
  claim_outcome claim(const std::string& key, std::function<void()> on_done, bool may_claim);
  // Ends a claim and runs its waiters (outside the lock). Harmless for a key not claimed.
  void release(const std::string& key);

 private:
  struct node {
    entry e;
    std::list<std::string>::iterator lru;
  };
  void erase_locked(std::unordered_map<std::string, node>::iterator it);

  const std::uint64_t capacity_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, node> entries_;
  std::list<std::string> lru_;  // front: most recently used
  std::uint64_t total_bytes_ = 0;
  std::unordered_map<std::string, std::vector<std::function<void()>>> claims_;
};

}  // namespace mediagate::cache
