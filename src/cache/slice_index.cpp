#include "cache/slice_index.hpp"

namespace mediagate::cache {

std::optional<slice_index::entry> slice_index::touch(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.e;
}

std::optional<std::int64_t> slice_index::touch_checked(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  lru_.splice(lru_.begin(), lru_, it->second.lru);
  return it->second.e.checked_mtime_ns;
}

std::optional<std::filesystem::path> slice_index::path_of(const std::string& key) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return std::nullopt;
  return it->second.e.path;
}

std::size_t slice_index::insert(const std::string& key, entry e, const evict_fn& on_evict) {
  std::lock_guard lock(mutex_);
  if (auto old = entries_.find(key); old != entries_.end()) erase_locked(old);
  lru_.push_front(key);
  total_bytes_ += e.length;
  entries_.emplace(key, node{std::move(e), lru_.begin()});
  std::size_t evicted = 0;
  while (total_bytes_ > capacity_ && !lru_.empty()) {
    auto it = entries_.find(lru_.back());
    if (on_evict) on_evict(it->second.e);
    erase_locked(it);
    ++evicted;
  }
  return evicted;
}

void slice_index::mark_checked(const std::string& key, std::int64_t mtime_ns) {
  std::lock_guard lock(mutex_);
  if (auto it = entries_.find(key); it != entries_.end()) it->second.e.checked_mtime_ns = mtime_ns;
}

bool slice_index::erase(const std::string& key) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return false;
  erase_locked(it);
  return true;
}

void slice_index::erase_locked(std::unordered_map<std::string, node>::iterator it) {
  total_bytes_ -= it->second.e.length;
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

bool slice_index::contains(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return entries_.contains(key);
}

std::uint64_t slice_index::total_bytes() const {
  std::lock_guard lock(mutex_);
  return total_bytes_;
}

std::size_t slice_index::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

claim_outcome slice_index::claim(const std::string& key, std::function<void()> on_done, bool may_claim) {
  std::lock_guard lock(mutex_);
  if (entries_.contains(key)) return claim_outcome::present;
  if (auto it = claims_.find(key); it != claims_.end()) {
    it->second.push_back(std::move(on_done));
    return claim_outcome::in_flight;
  }
  if (!may_claim) return claim_outcome::unavailable;
  claims_.emplace(key, std::vector<std::function<void()>>{});
  return claim_outcome::claimed;
}

void slice_index::release(const std::string& key) {
  std::vector<std::function<void()>> waiters;
  {
    std::lock_guard lock(mutex_);
    auto it = claims_.find(key);
    if (it == claims_.end()) return;
    waiters = std::move(it->second);
    claims_.erase(it);
  }
  // Outside the lock: a waiter may look the slice up (or claim it) right away.
  for (auto& w : waiters) w();
}

}  // namespace mediagate::cache
