#pragma once
// The on-disk slice cache shared by every event loop: an index of slice files with LRU eviction by bytes,
// claims that make concurrent misses of one slice share a single fetch, and counters. Thread-safe.
//
// A slice file is a 4 KiB header (magic, lengths, CRC-32 of every 64 KiB block) followed by the slice's
// bytes, written under a temporary name and renamed when complete, so a crash leaves no torn slice behind.
// Slices found on disk at start-up, or whose file changed since it was checked, are verified against their
// CRCs before they are served; a corrupt one is deleted and fetched again.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "storage/storage.hpp"

namespace spdlog {
class logger;
}

namespace mediagate::cache {

struct cache_config {
  std::filesystem::path dir;
  std::uint64_t capacity_bytes = 20ull << 30;
  std::uint64_t slice_bytes = 1u << 20;
  std::chrono::milliseconds meta_ttl{5'000};       // HEAD answers are reused this long
  std::chrono::milliseconds stale_limit{3'600'000};  // ... and this long when the storage is failing
  std::chrono::milliseconds degraded_pause{30'000};  // after a write error: pass-through for this long
  std::uint64_t max_run_slices = 64;                 // slices fetched by one ranged GET at most
};

inline constexpr std::size_t kHeaderBytes = 4096;
inline constexpr std::size_t kBlockBytes = 64 * 1024;

// An open, verified slice file: sendfile from `fd` at kHeaderBytes + offset within the slice.
struct slice_handle {
  std::shared_ptr<int> fd;  // closes on last release; the file may be unlinked (evicted) meanwhile
  std::uint64_t length = 0;
};

struct cache_counters {
  std::atomic<std::uint64_t> hits{0};            // slices served from disk
  std::atomic<std::uint64_t> misses{0};          // slices fetched from storage
  std::atomic<std::uint64_t> upstream_requests{0};
  std::atomic<std::uint64_t> bytes_from_upstream{0};
  std::atomic<std::uint64_t> bytes_from_cache{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> coalesced_waits{0};
  std::atomic<std::uint64_t> corrupt_slices{0};
  std::atomic<std::uint64_t> write_errors{0};
  std::atomic<std::uint64_t> stale_served{0};
  std::atomic<std::uint64_t> bytes_stored{0};
};

// Writes one slice to a temporary file; commit() makes it visible. Destroying it uncommitted removes it.
class slice_writer {
 public:
  slice_writer(int fd, std::filesystem::path temp, std::uint64_t length);
  ~slice_writer();
  slice_writer(const slice_writer&) = delete;
  slice_writer& operator=(const slice_writer&) = delete;
  // Appends bytes; false on a write error (disk full, read-only): the slice is then abandoned.
  bool append(std::span<const char> data);
  std::uint64_t written() const { return written_; }
  std::uint64_t length() const { return length_; }

 private:
  friend class slice_cache;
  int fd_;
  std::filesystem::path temp_;
  std::uint64_t length_;
  std::uint64_t written_ = 0;
  std::vector<std::uint32_t> crcs_;
};

class slice_cache {
 public:
  // Opens (creating) the cache directory and rebuilds the index from the slice files in it.
  slice_cache(cache_config config, std::shared_ptr<spdlog::logger> log);
  ~slice_cache();

  const cache_config& config() const { return config_; }
  cache_counters& counters() { return counters_; }

  // The name of one version of one object in the cache: never the same for two ETags.
  static std::string object_id(std::string_view storage, std::string_view key, std::string_view etag);

  // A verified slice, if the cache has it (and marks it recently used).
  std::optional<slice_handle> lookup(const std::string& object, std::uint64_t index, std::uint64_t length);

  enum class claim_outcome { claimed, in_flight, present, unavailable };
  // Claims the right to fetch a missing slice. in_flight: another request fetches it; `on_done` is called
  // (from any thread) once that fetch ends either way. unavailable: the cache is not writing (degraded).
  claim_outcome claim(const std::string& object, std::uint64_t index, std::function<void()> on_done);

  // Starts writing a claimed slice; nullptr on a disk error (the claim is then released).
  std::unique_ptr<slice_writer> begin(const std::string& object, std::uint64_t index, std::uint64_t length);
  // Publishes a completely written slice and releases its claim. False when it could not be stored.
  bool commit(const std::string& object, std::uint64_t index, std::unique_ptr<slice_writer> writer);
  // Releases a claim without a slice (fetch failed or was abandoned); waiters retry.
  void release(const std::string& object, std::uint64_t index);

  // Metadata with its age, for the HEAD cache with stale-if-error.
  struct meta_entry {
    storage::object_meta meta;
    std::chrono::steady_clock::time_point fetched;
    std::chrono::steady_clock::time_point retry_after{};  // storage failed: ask it again only after this
  };
  std::optional<meta_entry> find_meta(const std::string& storage_key);
  void store_meta(const std::string& storage_key, const storage::object_meta& meta);
  void forget_meta(const std::string& storage_key);
  // Storage could not answer for this object: serve the stale entry without asking again for a meta TTL.
  void note_meta_failure(const std::string& storage_key);

  std::uint64_t stored_bytes() const;
  std::string render_metrics() const;

 private:
  struct entry {
    std::filesystem::path path;
    std::uint64_t length = 0;
    std::int64_t checked_mtime_ns = -1;  // -1: never verified in this process
    std::list<std::string>::iterator lru;
  };
  static std::string slice_key(const std::string& object, std::uint64_t index);
  std::filesystem::path slice_path(const std::string& object, std::uint64_t index) const;
  void load_index();
  void evict_locked();
  void note_write_error(const std::string& what);
  bool degraded_locked() const;

  cache_config config_;
  std::shared_ptr<spdlog::logger> log_;
  cache_counters counters_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, entry> entries_;
  std::list<std::string> lru_;  // front: most recently used
  std::uint64_t total_bytes_ = 0;
  std::unordered_map<std::string, std::vector<std::function<void()>>> in_flight_;
  std::chrono::steady_clock::time_point degraded_until_{};
  std::unordered_map<std::string, meta_entry> meta_;
  std::atomic<std::uint64_t> temp_counter_{0};
  std::uint64_t open_files_id_;  // names this cache in the per-thread table of open slice files
};

}  // namespace mediagate::cache
