#pragma once
// The on-disk slice cache shared by every event loop: slice files (slice_file.hpp) in a directory the cache
// owns (cache_dir.hpp), an index with LRU eviction by bytes and claims that make concurrent misses of one
// slice share a single fetch (slice_index.hpp), degraded mode after write errors, and counters. Thread-safe.
//
// Slices found on disk at start-up, or whose file changed since it was checked, are verified against their
// CRCs before they are served; a corrupt one is deleted and fetched again.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "cache/clock.hpp"
#include "cache/slice_file.hpp"
#include "cache/slice_index.hpp"

namespace spdlog {
class logger;
}

namespace mediagate::cache {

struct cache_config {
  std::filesystem::path dir;
  std::uint64_t capacity_bytes = 20ull << 30;
  std::uint64_t slice_bytes = 1u << 20;
  std::chrono::milliseconds degraded_pause{30'000};  // after a write error: pass-through for this long
  std::uint64_t max_run_slices = 64;                 // slices fetched by one ranged GET at most
  // The first read of an MP4 from its start also asks for its last this many bytes (whole slices of them are
  // kept), in parallel: the index (moov) of a file whose index follows the media is then here by the time
  // the player asks for it. 0: off.
  std::uint64_t tail_prefetch_bytes = 2u << 20;
  // A client reading cached slices has the missing ones among its next this many bytes (of its range) fetched
  // in the background, while it drains those it has: it then seldom waits for a whole S3 round trip where the
  // cached run ends. 0: off.
  std::uint64_t read_ahead_bytes = 8u << 20;
};

// An open, verified slice file: sendfile from `fd` at kHeaderBytes + offset within the slice.
struct slice_handle {
  std::shared_ptr<int> fd;  // closes on last release; the file may be unlinked (evicted) meanwhile
  std::uint64_t length = 0;
};

struct cache_counters {
  std::atomic<std::uint64_t> hits{0};    // slices served from disk
  std::atomic<std::uint64_t> misses{0};  // slices fetched from storage
  std::atomic<std::uint64_t> upstream_requests{0};
  std::atomic<std::uint64_t> bytes_from_upstream{0};
  std::atomic<std::uint64_t> bytes_from_cache{0};
  std::atomic<std::uint64_t> evictions{0};
  std::atomic<std::uint64_t> coalesced_waits{0};
  std::atomic<std::uint64_t> corrupt_slices{0};
  std::atomic<std::uint64_t> write_errors{0};
  std::atomic<std::uint64_t> stale_served{0};
  std::atomic<std::uint64_t> bytes_stored{0};
  std::atomic<std::uint64_t> index_prefetches{0};  // moov boxes after the media, fetched ahead of the player
  std::atomic<std::uint64_t> completed_after_leave{0};  // slices read to their end after their client left
  std::atomic<std::uint64_t> tail_prefetches{0};        // tails of MP4s asked for together with their head
  std::atomic<std::uint64_t> read_aheads{0};            // runs of slices fetched ahead of a client's reads
};

class slice_cache {
 public:
  using claim_outcome = cache::claim_outcome;

  // Takes ownership of the cache directory (creating it; see take_ownership, which throws when the
  // directory holds files that are not the cache's), removes leftover temporary slices and rebuilds the
  // index from the slice files in it.
  slice_cache(cache_config config, std::shared_ptr<spdlog::logger> log, clock_fn now = real_clock());
  ~slice_cache();

  const cache_config& config() const { return config_; }
  cache_counters& counters() { return counters_; }

  // The name of one version of one object in the cache: never the same for two ETags.
  static std::string object_id(std::string_view storage, std::string_view key, std::string_view etag);

  // Whether the index holds the slice (not verified, not marked used, no file opened).
  bool has(const std::string& object, std::uint64_t index) const;
  // A verified slice, if the cache has it (and marks it recently used).
  std::optional<slice_handle> lookup(const std::string& object, std::uint64_t index, std::uint64_t length);

  // Claims the right to fetch a missing slice. in_flight: another request fetches it; `on_done` is called
  // (from any thread) once that fetch ends either way. unavailable: the cache is not writing (degraded).
  claim_outcome claim(const std::string& object, std::uint64_t index, std::function<void()> on_done);

  // Starts writing a claimed slice; nullptr on a disk error (the claim is then released).
  std::unique_ptr<slice_writer> begin(const std::string& object, std::uint64_t index, std::uint64_t length);
  // Publishes a completely written slice and releases its claim. False when it could not be stored.
  bool commit(const std::string& object, std::uint64_t index, std::unique_ptr<slice_writer> writer);
  // Releases a claim without a slice (fetch failed or was abandoned); waiters retry.
  void release(const std::string& object, std::uint64_t index);

  // Deletes every cached slice of `object` (an object_id) of `size` bytes: another node replaced or deleted
  // that version, so no request will ask for it again. The number of slices deleted.
  std::size_t drop_object(const std::string& object, std::uint64_t size);

  std::uint64_t stored_bytes() const;
  std::string render_metrics() const;

 private:
  static std::string slice_key(const std::string& object, std::uint64_t index);
  std::filesystem::path slice_path(const std::string& object, std::uint64_t index) const;
  void load_index();
  void add_slice(const std::string& key, slice_index::entry e);
  void drop_slice(const std::string& key, const std::filesystem::path& path);
  void note_write_error(const std::string& what);
  bool degraded() const;

  cache_config config_;
  std::shared_ptr<spdlog::logger> log_;
  clock_fn now_;
  cache_counters counters_;
  slice_index index_;
  mutable std::mutex degraded_mutex_;
  std::chrono::steady_clock::time_point degraded_until_{};
  std::atomic<std::uint64_t> temp_counter_{0};
  std::uint64_t open_files_id_;  // names this cache in the per-thread table of open slice files
};

}  // namespace mediagate::cache
