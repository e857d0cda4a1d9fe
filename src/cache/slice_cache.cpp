#include "cache/slice_cache.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "cache/cache_dir.hpp"
#include "common/crypto.hpp"
#include "common/prometheus_text.hpp"
#include "storage/recent_files.hpp"

namespace mediagate::cache {
namespace fs = std::filesystem;

namespace {

// Slice files never change once committed (a new version is a new name), so a descriptor opened for one
// stays good; the table only spares the open and close of every hit.
using open_slices = storage::recent_files<std::shared_ptr<int>>;

struct found_slice {
  std::string key;
  fs::path path;
  std::uint64_t length;
  std::int64_t mtime;
};

// What a file named like a slice turned out to be.
enum class scanned { slice, torn, foreign };

scanned examine(const fs::path& path, found_slice& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return scanned::foreign;
  struct stat st {};
  const auto h = read_header(fd);
  const bool whole = h && ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
                     static_cast<std::uint64_t>(st.st_size) == kHeaderBytes + h->length;
  const bool ours = has_slice_magic(fd);
  ::close(fd);
  if (!whole) return ours ? scanned::torn : scanned::foreign;
  out = {path.filename().string(), path, h->length, mtime_ns(st)};
  return scanned::slice;
}

}  // namespace

slice_cache::slice_cache(cache_config config, std::shared_ptr<spdlog::logger> log, clock_fn now)
    : config_(std::move(config)),
      log_(std::move(log)),
      now_(std::move(now)),
      index_(config_.capacity_bytes),
      open_files_id_(open_slices::new_owner_id()) {
  if (config_.slice_bytes == 0 || (config_.slice_bytes + kBlockBytes - 1) / kBlockBytes > kMaxBlocks)
    throw std::invalid_argument("--cache-slice must be between 1 byte and 55 MiB");
  take_ownership(config_.dir);
  if (const auto removed = remove_leftover_temp_files(config_.dir / "tmp"))
    log_->info("cache: removed {} unfinished slice files left by an earlier run", removed);
  load_index();
}

slice_cache::~slice_cache() = default;

std::string slice_cache::object_id(std::string_view storage, std::string_view key, std::string_view etag) {
  std::string material;
  material.reserve(storage.size() + key.size() + etag.size() + 2);
  material.append(storage).append("\n").append(key).append("\n").append(etag);
  // Every cached read asks for it, and a SHA-256 through EVP was an eighth of a warm 64 KiB range's
  // instructions: the ids of recent objects are kept per thread (bounded; cleared when full).
  thread_local std::unordered_map<std::string, std::string> recent;
  if (auto it = recent.find(material); it != recent.end()) return it->second;
  auto id = sha256_hex(material).substr(0, 32);
  if (recent.size() >= 4096) recent.clear();
  recent.emplace(std::move(material), id);
  return id;
}

std::string slice_cache::slice_key(const std::string& object, std::uint64_t index) {
  return slice_file_name(object, index);
}

fs::path slice_cache::slice_path(const std::string& object, std::uint64_t index) const {
  return config_.dir / object.substr(0, 2) / slice_key(object, index);
}

// Walks only the cache's own layout (<dir>/<2 hex>/<slice name>): files the cache did not write are
// neither indexed nor deleted.
void slice_cache::load_index() {
  std::vector<found_slice> slices;
  std::size_t foreign = 0, unreadable = 0;
  std::string first_unreadable;
  std::error_code ec;
  for (const auto& sub : fs::directory_iterator(config_.dir, ec)) {
    const auto parent = sub.path().filename().string();
    if (parent.size() != 2 || sub.is_symlink(ec) || !sub.is_directory(ec)) continue;
    for (const auto& file : fs::directory_iterator(sub.path(), ec)) {
      if (!is_slice_file_name(file.path().filename().string(), parent)) continue;
      found_slice s;
      switch (examine(file.path(), s)) {
        case scanned::slice:
          slices.push_back(std::move(s));
          break;
        case scanned::torn:  // or of an older format (an upgrade): one line for all of them, below
          if (unreadable++ == 0) first_unreadable = file.path().string();
          fs::remove(file.path(), ec);
          break;
        case scanned::foreign:
          ++foreign;
          break;
      }
    }
  }
  if (unreadable > 0)
    log_->warn(
        "cache: removed {} slice files that were unreadable or of an older format (the first: {}); "
        "they are fetched again when asked for",
        unreadable, first_unreadable);
  if (foreign > 0)
    log_->warn("cache: left {} files named like slices but without a slice header alone in {}", foreign,
               config_.dir.string());
  // Oldest first, so that the most recently written end up most recently used: the best guess of recency
  // that survives a restart (and what eviction keeps when the budget shrank).
  std::sort(slices.begin(), slices.end(), [](auto& a, auto& b) { return a.mtime < b.mtime; });
  for (auto& s : slices) add_slice(s.key, {s.path, s.length, -1});
  log_->info("cache: {} slices, {} bytes in {}", index_.size(), index_.total_bytes(), config_.dir.string());
}

// Indexes a slice as the most recently used, deleting what eviction drops to stay within the budget.
void slice_cache::add_slice(const std::string& key, slice_index::entry e) {
  const auto evicted = index_.insert(key, std::move(e), [](const slice_index::entry& gone) {
    std::error_code ec;
    fs::remove(gone.path, ec);
  });
  counters_.evictions.fetch_add(evicted, std::memory_order_relaxed);
  counters_.bytes_stored.store(index_.total_bytes(), std::memory_order_relaxed);
}

void slice_cache::drop_slice(const std::string& key, const fs::path& path) {
  index_.erase(key);
  counters_.bytes_stored.store(index_.total_bytes(), std::memory_order_relaxed);
  std::error_code ec;
  fs::remove(path, ec);
}

std::size_t slice_cache::drop_object(const std::string& object, std::uint64_t size) {
  // Bounded: a huge object with few slices cached is not worth millions of lookups on the listener's thread
  // (what is left ages out by LRU, and can never be served: its ETag is gone).
  const auto slices =
      std::min<std::uint64_t>((size + config_.slice_bytes - 1) / config_.slice_bytes, 1u << 16);
  std::size_t dropped = 0;
  for (std::uint64_t i = 0; i < slices; ++i) {
    const auto key = slice_key(object, i);
    if (!index_.contains(key)) continue;
    drop_slice(key, slice_path(object, i));
    ++dropped;
  }
  return dropped;
}

bool slice_cache::has(const std::string& object, std::uint64_t index) const {
  return index_.contains(slice_key(object, index));
}

std::optional<slice_handle> slice_cache::lookup(const std::string& object, std::uint64_t index,
                                                std::uint64_t length) {
  const auto key = slice_key(object, index);
  const auto checked_mtime_ns = index_.touch_checked(key);
  if (!checked_mtime_ns) return std::nullopt;
  auto& table = open_slices::of(open_files_id_);
  const auto now = open_slices::clock::now();
  std::shared_ptr<int> handle;
  if (const auto* recent = table.find(key, now)) handle = *recent;
  int fd = -1;
  if (handle) {
    fd = *handle;
  } else if (const auto path = index_.path_of(key)) {
    fd = ::open(path->c_str(), O_RDONLY | O_CLOEXEC);
  }
  bool ok = fd >= 0;
  struct stat st {};
  ok = ok && ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) == kHeaderBytes + length;
  // Verify a slice once per process, and again whenever its file was touched since (manual damage).
  if (ok && mtime_ns(st) != *checked_mtime_ns) {
    auto h = read_header(fd);
    ok = h && h->length == length && verify_blocks(fd, *h);
    if (ok) index_.mark_checked(key, mtime_ns(st));
  }
  if (!ok) {
    if (handle) {
      table.erase(key);
    } else if (fd >= 0) {
      ::close(fd);
    }
    counters_.corrupt_slices.fetch_add(1, std::memory_order_relaxed);
    const auto path = index_.path_of(key).value_or(slice_path(object, index));
    log_->warn("cache: slice {} is missing or corrupt: fetching it again", path.string());
    drop_slice(key, path);
    return std::nullopt;
  }
  counters_.hits.fetch_add(1, std::memory_order_relaxed);
  if (!handle) {
    handle = std::shared_ptr<int>(new int(fd), [](int* p) {
      ::close(*p);
      delete p;
    });
    table.put(key, handle, now);
  }
  return slice_handle{std::move(handle), length};
}

bool slice_cache::degraded() const {
  std::lock_guard lock(degraded_mutex_);
  return now_() < degraded_until_;
}

slice_cache::claim_outcome slice_cache::claim(const std::string& object, std::uint64_t index,
                                              std::function<void()> on_done) {
  const auto outcome = index_.claim(slice_key(object, index), std::move(on_done), !degraded());
  if (outcome == claim_outcome::in_flight) counters_.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
  return outcome;
}

void slice_cache::release(const std::string& object, std::uint64_t index) {
  index_.release(slice_key(object, index));
}

void slice_cache::note_write_error(const std::string& what) {
  counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
  const auto now = now_();
  std::lock_guard lock(degraded_mutex_);
  if (now >= degraded_until_)
    log_->warn("cache: {}: passing requests through to storage for {} s", what,
               config_.degraded_pause.count() / 1000);
  degraded_until_ = now + config_.degraded_pause;
}

std::unique_ptr<slice_writer> slice_cache::begin(const std::string& object, std::uint64_t index,
                                                 std::uint64_t length) {
  const auto temp = config_.dir / "tmp" / temp_file_name(object, index, temp_counter_++);
  auto writer = slice_writer::create(temp, length);
  if (!writer) {
    note_write_error("cannot create " + temp.string() + ": " + std::strerror(errno));
    release(object, index);
  }
  return writer;
}

bool slice_cache::commit(const std::string& object, std::uint64_t index, std::unique_ptr<slice_writer> w) {
  bool ok = w->written() == w->length();
  if (ok) {
    const auto path = slice_path(object, index);
    ok = w->publish(path);
    if (!ok) {
      note_write_error("cannot store slice " + path.string() + ": " + std::strerror(errno));
    } else {
      // Written and checksummed by this process: trusted until its file changes.
      add_slice(slice_key(object, index), {path, w->length(), w->published_mtime_ns()});
    }
  }
  w.reset();
  release(object, index);
  return ok;
}

std::uint64_t slice_cache::stored_bytes() const { return index_.total_bytes(); }

std::string slice_cache::render_metrics() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, std::uint64_t v) {
    append_metric(out, name, type, help, v);
  };
  metric("mediagate_cache_hits_total", "counter", "Slices served from the cache.", counters_.hits.load());
  metric("mediagate_cache_misses_total", "counter", "Slices fetched from storage.", counters_.misses.load());
  metric("mediagate_cache_upstream_requests_total", "counter", "Ranged reads the cache sent to storage.",
         counters_.upstream_requests.load());
  metric("mediagate_cache_upstream_bytes_total", "counter", "Bytes the cache read from storage.",
         counters_.bytes_from_upstream.load());
  metric("mediagate_cache_served_bytes_total", "counter", "Bytes served from cached slices.",
         counters_.bytes_from_cache.load());
  metric("mediagate_cache_evictions_total", "counter", "Slices evicted to stay within --cache-size.",
         counters_.evictions.load());
  metric("mediagate_cache_coalesced_waits_total", "counter", "Requests that waited for another's fetch.",
         counters_.coalesced_waits.load());
  metric("mediagate_cache_corrupt_slices_total", "counter", "Slices found damaged and fetched again.",
         counters_.corrupt_slices.load());
  metric("mediagate_cache_write_errors_total", "counter", "Failed slice writes (disk full, read-only).",
         counters_.write_errors.load());
  metric("mediagate_cache_stale_served_total", "counter",
         "Objects served with stale metadata while storage failed.", counters_.stale_served.load());
  metric("mediagate_cache_index_prefetches_total", "counter",
         "MP4 indexes (moov after the media) fetched into the cache before the player asked.",
         counters_.index_prefetches.load());
  metric("mediagate_cache_slices_completed_after_leave_total", "counter",
         "Slices a client left in the middle of while they were fetched, read to their end into the cache.",
         counters_.completed_after_leave.load());
  metric("mediagate_cache_tail_prefetches_total", "counter",
         "Tails of MP4 objects asked for together with their first bytes (where a trailing index would be).",
         counters_.tail_prefetches.load());
  metric(
      "mediagate_cache_read_aheads_total", "counter",
      "Runs of missing slices fetched ahead of a client that was reading cached ones (--cache-read-ahead).",
      counters_.read_aheads.load());
  metric("mediagate_cache_stored_bytes", "gauge", "Bytes of slices on disk.", counters_.bytes_stored.load());
  return out;
}

}  // namespace mediagate::cache
