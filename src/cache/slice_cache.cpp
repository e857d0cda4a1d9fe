#include "cache/slice_cache.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>

#include "http/metrics_text.hpp"
#include "s3/crypto.hpp"
#include "storage/recent_files.hpp"

namespace mediagate::cache {
namespace fs = std::filesystem;
using clock = std::chrono::steady_clock;

namespace {

constexpr char kMagic[8] = {'M', 'G', 'S', 'L', 'I', 'C', 'E', '1'};
constexpr std::size_t kCrcOffset = 64;
constexpr std::size_t kMaxBlocks = (kHeaderBytes - kCrcOffset) / 4;

struct header {
  std::uint64_t length = 0;
  std::uint32_t block_bytes = 0;
  std::uint32_t blocks = 0;
  std::vector<std::uint32_t> crcs;
};

std::optional<header> read_header(int fd) {
  char buf[kHeaderBytes];
  if (::pread(fd, buf, sizeof buf, 0) != static_cast<ssize_t>(sizeof buf)) return std::nullopt;
  if (std::memcmp(buf, kMagic, sizeof kMagic) != 0) return std::nullopt;
  header h;
  std::memcpy(&h.length, buf + 8, 8);
  std::memcpy(&h.block_bytes, buf + 16, 4);
  std::memcpy(&h.blocks, buf + 20, 4);
  if (h.block_bytes != kBlockBytes || h.blocks > kMaxBlocks ||
      h.blocks != (h.length + kBlockBytes - 1) / kBlockBytes)
    return std::nullopt;
  h.crcs.resize(h.blocks);
  std::memcpy(h.crcs.data(), buf + kCrcOffset, 4 * h.blocks);
  return h;
}

// "<2 hex>/<32 hex object id>-<index>", the only files the cache ever removes.
bool looks_like_slice(const fs::path& p) {
  const auto name = p.filename().string(), parent = p.parent_path().filename().string();
  auto hex = [](std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
  };
  const auto dash = name.find('-');
  if (dash != 32 || !hex(name.substr(0, 32)) || parent != name.substr(0, 2)) return false;
  const auto index = std::string_view(name).substr(33);
  return !index.empty() && std::all_of(index.begin(), index.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Slice files never change once committed (a new version is a new name), so a descriptor opened for one
// stays good; the table only spares the open and close of every hit.
using open_slices = storage::recent_files<std::shared_ptr<int>>;

std::int64_t mtime_ns(const struct stat& st) {
  return static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec;
}

// Reads the whole slice and checks every block's CRC-32 against the header.
bool verify(int fd, const header& h) {
  std::vector<char> buf(kBlockBytes);
  for (std::uint32_t b = 0; b < h.blocks; ++b) {
    const auto len = static_cast<std::size_t>(std::min<std::uint64_t>(kBlockBytes, h.length - b * kBlockBytes));
    if (::pread(fd, buf.data(), len, static_cast<off_t>(kHeaderBytes + b * kBlockBytes)) !=
        static_cast<ssize_t>(len))
      return false;
    const auto crc = static_cast<std::uint32_t>(crc32(0, reinterpret_cast<const Bytef*>(buf.data()),
                                                      static_cast<uInt>(len)));
    if (crc != h.crcs[b]) return false;
  }
  return true;
}

}  // namespace

slice_writer::slice_writer(int fd, fs::path temp, std::uint64_t length)
    : fd_(fd), temp_(std::move(temp)), length_(length) {
  crcs_.reserve((length + kBlockBytes - 1) / kBlockBytes);
}

slice_writer::~slice_writer() {
  if (fd_ >= 0) ::close(fd_);
  if (!temp_.empty()) {
    std::error_code ec;
    fs::remove(temp_, ec);
  }
}

bool slice_writer::append(std::span<const char> data) {
  if (written_ + data.size() > length_) return false;
  std::size_t done = 0;
  while (done < data.size()) {
    const auto n = ::pwrite(fd_, data.data() + done, data.size() - done,
                            static_cast<off_t>(kHeaderBytes + written_ + done));
    if (n <= 0) {
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  // CRC per 64 KiB block, continued across appends that split a block.
  std::size_t pos = 0;
  while (pos < data.size()) {
    const auto in_block = (written_ + pos) % kBlockBytes;
    if (in_block == 0) crcs_.push_back(0);
    const auto take = std::min<std::size_t>(data.size() - pos, kBlockBytes - in_block);
    crcs_.back() = static_cast<std::uint32_t>(
        crc32(crcs_.back(), reinterpret_cast<const Bytef*>(data.data() + pos), static_cast<uInt>(take)));
    pos += take;
  }
  written_ += data.size();
  return true;
}

slice_cache::slice_cache(cache_config config, std::shared_ptr<spdlog::logger> log)
    : config_(std::move(config)), log_(std::move(log)), open_files_id_(open_slices::new_owner_id()) {
  if (config_.slice_bytes == 0 || (config_.slice_bytes + kBlockBytes - 1) / kBlockBytes > kMaxBlocks)
    throw std::invalid_argument("--cache-slice must be between 1 byte and 63 MiB");
  fs::create_directories(config_.dir / "tmp");
  load_index();
}

slice_cache::~slice_cache() = default;

std::string slice_cache::object_id(std::string_view storage, std::string_view key, std::string_view etag) {
  std::string material;
  material.append(storage).append("\n").append(key).append("\n").append(etag);
  return s3::sha256_hex(material).substr(0, 32);
}

std::string slice_cache::slice_key(const std::string& object, std::uint64_t index) {
  return object + "-" + std::to_string(index);
}

fs::path slice_cache::slice_path(const std::string& object, std::uint64_t index) const {
  return config_.dir / object.substr(0, 2) / slice_key(object, index);
}

void slice_cache::load_index() {
  std::error_code ec;
  for (auto& stale : fs::directory_iterator(config_.dir / "tmp", ec)) fs::remove(stale.path(), ec);
  struct found {
    std::string key;
    fs::path path;
    std::uint64_t length;
    std::int64_t mtime;
  };
  std::vector<found> slices;
  for (auto it = fs::recursive_directory_iterator(config_.dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    if (it->path().parent_path().filename() == "tmp" || !it->is_regular_file(ec)) continue;
    if (!looks_like_slice(it->path())) continue;  // not ours: a cache dir shared with other files keeps them
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    struct stat st {};
    auto h = read_header(fd);
    const bool ok = h && ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) == kHeaderBytes + h->length;
    ::close(fd);
    if (!ok) {
      log_->warn("cache: removing unreadable slice file {}", it->path().string());
      fs::remove(it->path(), ec);
      continue;
    }
    slices.push_back({it->path().filename().string(), it->path(), h->length, mtime_ns(st)});
  }
  // Most recently written first: the best guess of recency that survives a restart.
  std::sort(slices.begin(), slices.end(), [](auto& a, auto& b) { return a.mtime > b.mtime; });
  std::lock_guard lock(mutex_);
  for (auto& s : slices) {
    lru_.push_back(s.key);
    entries_[s.key] = {s.path, s.length, -1, std::prev(lru_.end())};
    total_bytes_ += s.length;
  }
  evict_locked();
  counters_.bytes_stored.store(total_bytes_);
  log_->info("cache: {} slices, {} bytes in {}", entries_.size(), total_bytes_, config_.dir.string());
}

std::optional<slice_handle> slice_cache::lookup(const std::string& object, std::uint64_t index,
                                                std::uint64_t length) {
  const auto key = slice_key(object, index);
  fs::path path;
  std::int64_t checked;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    lru_.splice(lru_.begin(), lru_, it->second.lru);
    path = it->second.path;
    checked = it->second.checked_mtime_ns;
  }
  auto& table = open_slices::of(open_files_id_);
  const auto now = open_slices::clock::now();
  std::shared_ptr<int> handle;
  if (const auto* recent = table.find(key, now)) handle = *recent;
  const int fd = handle ? *handle : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  bool ok = fd >= 0;
  struct stat st {};
  ok = ok && ::fstat(fd, &st) == 0 && static_cast<std::uint64_t>(st.st_size) == kHeaderBytes + length;
  // Verify a slice once per process, and again whenever its file was touched since (manual damage).
  if (ok && mtime_ns(st) != checked) {
    auto h = read_header(fd);
    ok = h && h->length == length && verify(fd, *h);
    if (ok) {
      std::lock_guard lock(mutex_);
      if (auto it = entries_.find(key); it != entries_.end()) it->second.checked_mtime_ns = mtime_ns(st);
    }
  }
  if (!ok) {
    if (handle) {
      table.erase(key);
    } else if (fd >= 0) {
      ::close(fd);
    }
    counters_.corrupt_slices.fetch_add(1, std::memory_order_relaxed);
    log_->warn("cache: slice {} is missing or corrupt: fetching it again", path.string());
    std::lock_guard lock(mutex_);
    if (auto it = entries_.find(key); it != entries_.end()) {
      total_bytes_ -= it->second.length;
      lru_.erase(it->second.lru);
      entries_.erase(it);
    }
    std::error_code ec;
    fs::remove(path, ec);
    return std::nullopt;
  }
  counters_.hits.fetch_add(1, std::memory_order_relaxed);
  if (!handle) {
    handle = std::shared_ptr<int>(new int(fd), [](int* p) { ::close(*p); delete p; });
    table.put(key, handle, now);
  }
  return slice_handle{std::move(handle), length};
}

bool slice_cache::degraded_locked() const { return clock::now() < degraded_until_; }

slice_cache::claim_outcome slice_cache::claim(const std::string& object, std::uint64_t index,
                                              std::function<void()> on_done) {
  const auto key = slice_key(object, index);
  std::lock_guard lock(mutex_);
  if (entries_.contains(key)) return claim_outcome::present;
  if (auto it = in_flight_.find(key); it != in_flight_.end()) {
    it->second.push_back(std::move(on_done));
    counters_.coalesced_waits.fetch_add(1, std::memory_order_relaxed);
    return claim_outcome::in_flight;
  }
  if (degraded_locked()) return claim_outcome::unavailable;
  in_flight_.emplace(key, std::vector<std::function<void()>>{});
  return claim_outcome::claimed;
}

void slice_cache::release(const std::string& object, std::uint64_t index) {
  std::vector<std::function<void()>> waiters;
  {
    std::lock_guard lock(mutex_);
    auto it = in_flight_.find(slice_key(object, index));
    if (it == in_flight_.end()) return;
    waiters = std::move(it->second);
    in_flight_.erase(it);
  }
  for (auto& w : waiters) w();
}

void slice_cache::note_write_error(const std::string& what) {
  counters_.write_errors.fetch_add(1, std::memory_order_relaxed);
  std::lock_guard lock(mutex_);
  if (!degraded_locked())
    log_->warn("cache: {}: passing requests through to storage for {} s", what,
               config_.degraded_pause.count() / 1000);
  degraded_until_ = clock::now() + config_.degraded_pause;
}

std::unique_ptr<slice_writer> slice_cache::begin(const std::string& object, std::uint64_t index,
                                                 std::uint64_t length) {
  const auto temp = config_.dir / "tmp" / (slice_key(object, index) + "." + std::to_string(temp_counter_++));
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    note_write_error("cannot create " + temp.string() + ": " + std::strerror(errno));
    release(object, index);
    return nullptr;
  }
  return std::make_unique<slice_writer>(fd, temp, length);
}

bool slice_cache::commit(const std::string& object, std::uint64_t index, std::unique_ptr<slice_writer> w) {
  bool ok = w->written_ == w->length_;
  if (ok) {
    char head[kHeaderBytes] = {};
    std::memcpy(head, kMagic, sizeof kMagic);
    std::memcpy(head + 8, &w->length_, 8);
    const std::uint32_t block = kBlockBytes, blocks = static_cast<std::uint32_t>(w->crcs_.size());
    std::memcpy(head + 16, &block, 4);
    std::memcpy(head + 20, &blocks, 4);
    std::memcpy(head + kCrcOffset, w->crcs_.data(), 4 * w->crcs_.size());
    const auto path = slice_path(object, index);
    std::error_code ec;
    fs::create_directories(path.parent_path(), ec);
    ok = ::pwrite(w->fd_, head, sizeof head, 0) == static_cast<ssize_t>(sizeof head) && !ec &&
         ::rename(w->temp_.c_str(), path.c_str()) == 0;
    if (!ok) {
      note_write_error("cannot store slice " + path.string() + ": " + std::strerror(errno));
    } else {
      w->temp_.clear();
      struct stat st {};
      ::fstat(w->fd_, &st);
      const auto key = slice_key(object, index);
      std::lock_guard lock(mutex_);
      if (auto old = entries_.find(key); old != entries_.end()) {
        total_bytes_ -= old->second.length;
        lru_.erase(old->second.lru);
        entries_.erase(old);
      }
      lru_.push_front(key);
      // Written and checksummed by this process: trusted until its file changes.
      entries_[key] = {path, w->length_, mtime_ns(st), lru_.begin()};
      total_bytes_ += w->length_;
      evict_locked();
      counters_.bytes_stored.store(total_bytes_, std::memory_order_relaxed);
    }
  }
  w.reset();
  release(object, index);
  return ok;
}

void slice_cache::evict_locked() {
  while (total_bytes_ > config_.capacity_bytes && !lru_.empty()) {
    auto it = entries_.find(lru_.back());
    lru_.pop_back();
    if (it == entries_.end()) continue;
    std::error_code ec;
    fs::remove(it->second.path, ec);
    total_bytes_ -= it->second.length;
    entries_.erase(it);
    counters_.evictions.fetch_add(1, std::memory_order_relaxed);
  }
}

std::optional<slice_cache::meta_entry> slice_cache::find_meta(const std::string& storage_key) {
  std::lock_guard lock(mutex_);
  auto it = meta_.find(storage_key);
  if (it == meta_.end()) return std::nullopt;
  return it->second;
}

void slice_cache::store_meta(const std::string& storage_key, const storage::object_meta& meta) {
  std::lock_guard lock(mutex_);
  if (meta_.size() >= 100000) meta_.clear();
  auto& entry = meta_[storage_key];
  entry = {meta, clock::now()};
  entry.meta.pinned.reset();  // kept for a TTL: must not hold the backend's file open
}

void slice_cache::note_meta_failure(const std::string& storage_key) {
  std::lock_guard lock(mutex_);
  if (auto it = meta_.find(storage_key); it != meta_.end()) it->second.retry_after = clock::now() + config_.meta_ttl;
}

void slice_cache::forget_meta(const std::string& storage_key) {
  std::lock_guard lock(mutex_);
  meta_.erase(storage_key);
}

std::uint64_t slice_cache::stored_bytes() const {
  std::lock_guard lock(mutex_);
  return total_bytes_;
}

std::string slice_cache::render_metrics() const {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, std::uint64_t v) {
    http::append_metric(out, name, type, help, v);
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
  metric("mediagate_cache_stale_served_total", "counter", "Objects served with stale metadata while storage failed.",
         counters_.stale_served.load());
  metric("mediagate_cache_stored_bytes", "gauge", "Bytes of slices on disk.", counters_.bytes_stored.load());
  return out;
}

}  // namespace mediagate::cache
