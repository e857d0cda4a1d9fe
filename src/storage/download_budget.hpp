#pragma once
// The process-wide bound on the memory of parallel download parts (s3_storage.hpp, download_settings): bytes
// read from S3 ahead of a client and held until it takes them. A part starts only when its bytes fit; a
// download that finds the budget spent reads its next part on its own connection instead, through the
// connection's stream buffer (no memory held ahead, one connection's rate), and asks again after it.
// Thread-safe: one budget for every event loop.
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace mediagate::storage {

class download_budget {
 public:
  explicit download_budget(std::uint64_t limit_bytes) : limit_(limit_bytes) {}

  // Takes `n` bytes when they fit under the limit; false (and counts a part refused) when they do not.
  bool try_take(std::uint64_t n);
  void give_back(std::uint64_t n);

  std::uint64_t limit() const { return limit_; }
  std::uint64_t in_use() const { return in_use_.load(std::memory_order_relaxed); }
  std::uint64_t peak() const { return peak_.load(std::memory_order_relaxed); }
  std::uint64_t refused() const { return refused_.load(std::memory_order_relaxed); }

  // Counted here too, as they concern the same downloads: those that went on in parts, and those whose parts
  // did not pay and were stopped.
  void count_in_parts() { in_parts_.fetch_add(1, std::memory_order_relaxed); }
  void count_parts_stopped() { parts_stopped_.fetch_add(1, std::memory_order_relaxed); }
  std::string render_metrics() const;

 private:
  const std::uint64_t limit_;
  std::atomic<std::uint64_t> in_use_{0};
  std::atomic<std::uint64_t> peak_{0};
  std::atomic<std::uint64_t> refused_{0};
  std::atomic<std::uint64_t> in_parts_{0};
  std::atomic<std::uint64_t> parts_stopped_{0};
};

// `n` bytes of a budget, given back when the holder (a download part, with its buffer) is destroyed.
class budget_hold {
 public:
  budget_hold() = default;
  budget_hold(const budget_hold&) = delete;
  budget_hold& operator=(const budget_hold&) = delete;
  ~budget_hold() {
    if (budget_) budget_->give_back(n_);
  }
  // Holds `n` bytes that were taken from `budget` (try_take) until destroyed. Once only.
  void adopt(std::shared_ptr<download_budget> budget, std::uint64_t n) {
    budget_ = std::move(budget);
    n_ = n;
  }

 private:
  std::shared_ptr<download_budget> budget_;
  std::uint64_t n_ = 0;
};

}  // namespace mediagate::storage
