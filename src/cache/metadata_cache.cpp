#include "cache/metadata_cache.hpp"

namespace mediagate::cache {

metadata_cache::metadata_cache(metadata_cache_config config, clock_fn now)
    : config_(config), now_(std::move(now)) {}

metadata_cache::lookup_result metadata_cache::lookup(const std::string& key) const {
  const auto now = now_();
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end()) return {};
  const auto& e = it->second;
  const auto age = now - e.fetched;
  if (age < config_.ttl) return {state::fresh, e.meta, e.generation};
  // Storage failed moments ago: serve stale at once instead of making every viewer wait for retries.
  if (now < e.retry_after && age < config_.stale_limit) return {state::stale, e.meta, e.generation};
  return {state::expired, e.meta, e.generation};
}

void metadata_cache::store(const std::string& key, const storage::object_meta& meta,
                           std::uint64_t generation) {
  const auto now = now_();
  std::lock_guard lock(mutex_);
  if (entries_.size() >= config_.max_entries) entries_.clear();
  auto& e = entries_[key];
  e = {meta, now, {}, generation};
  e.meta.pinned.reset();  // kept for a TTL: must not hold the backend's file open
}

void metadata_cache::forget(const std::string& key) {
  std::lock_guard lock(mutex_);
  entries_.erase(key);
}

std::optional<metadata_cache::stale_entry> metadata_cache::on_failure(const std::string& key) {
  const auto now = now_();
  std::lock_guard lock(mutex_);
  auto it = entries_.find(key);
  if (it == entries_.end() || now - it->second.fetched >= config_.stale_limit) return std::nullopt;
  it->second.retry_after = now + config_.ttl;
  return stale_entry{it->second.meta, now - it->second.fetched};
}

bool metadata_cache::begin_first_read(const std::string& key) {
  std::lock_guard lock(mutex_);
  return first_reads_.insert(key).second;
}

void metadata_cache::end_first_read(const std::string& key) {
  std::lock_guard lock(mutex_);
  first_reads_.erase(key);
}

std::size_t metadata_cache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace mediagate::cache
