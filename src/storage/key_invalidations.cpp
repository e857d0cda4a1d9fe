#include "storage/key_invalidations.hpp"

namespace mediagate::storage {

std::uint64_t key_invalidations::generation() const {
  std::lock_guard lock(mutex_);
  return generation_;
}

void key_invalidations::invalidate(const std::string& key) {
  std::lock_guard lock(mutex_);
  ++generation_;
  if (keys_.size() >= kMaxKeys) {
    keys_.clear();
    all_ = generation_;
    return;
  }
  keys_[key] = generation_;
}

void key_invalidations::invalidate_all() {
  std::lock_guard lock(mutex_);
  all_ = ++generation_;
  keys_.clear();
}

bool key_invalidations::changed_since(const std::string& key, std::uint64_t generation) const {
  std::lock_guard lock(mutex_);
  if (all_ > generation) return true;
  auto it = keys_.find(key);
  return it != keys_.end() && it->second > generation;
}

}  // namespace mediagate::storage
