#pragma once
// Files opened for recent requests, kept open for a short time so that a hot object costs an fstat instead
// of a path lookup, an open and a close (the idea of nginx's open_file_cache). One table per thread and
// owner: no locks on the hot path. Callers decide what makes an entry unusable before it is too old.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>

namespace mediagate::storage {

template <class Handle>
class recent_files {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr auto max_age = std::chrono::seconds(2);
  static constexpr std::size_t max_entries = 256;

  // The table of this thread for `owner` (an id from new_owner_id()).
  static recent_files& of(std::uint64_t owner) {
    thread_local std::unordered_map<std::uint64_t, recent_files> tables;
    return tables[owner];
  }
  static std::uint64_t new_owner_id() {
    static std::atomic<std::uint64_t> next{1};
    return next.fetch_add(1, std::memory_order_relaxed);
  }

  // The handle opened for `key` less than max_age ago, or null.
  const Handle* find(const std::string& key, clock::time_point now) {
    sweep(now);
    auto it = files_.find(key);
    if (it == files_.end()) return nullptr;
    if (now - it->second.opened < max_age) return &it->second.handle;
    files_.erase(it);
    return nullptr;
  }
  void put(const std::string& key, Handle handle, clock::time_point now) {
    if (files_.size() >= max_entries) files_.clear();
    files_.insert_or_assign(key, entry{std::move(handle), now});
  }
  void erase(const std::string& key) { files_.erase(key); }

 private:
  struct entry {
    Handle handle;
    clock::time_point opened;
  };
  // Closes what is too old, at most once per max_age, so that deleted files are not held open for long.
  void sweep(clock::time_point now) {
    if (now - swept_ < max_age) return;
    swept_ = now;
    std::erase_if(files_, [&](const auto& e) { return now - e.second.opened >= max_age; });
  }
  std::unordered_map<std::string, entry> files_;
  clock::time_point swept_{};
};

}  // namespace mediagate::storage
