#include "storage/download_budget.hpp"

#include "common/prometheus_text.hpp"

namespace mediagate::storage {

bool download_budget::try_take(std::uint64_t n) {
  auto used = in_use_.load(std::memory_order_relaxed);
  do {
    if (n > limit_ || used > limit_ - n) {
      refused_.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
  } while (!in_use_.compare_exchange_weak(used, used + n, std::memory_order_relaxed));
  auto peak = peak_.load(std::memory_order_relaxed);
  while (used + n > peak && !peak_.compare_exchange_weak(peak, used + n, std::memory_order_relaxed)) {
  }
  return true;
}

void download_budget::give_back(std::uint64_t n) { in_use_.fetch_sub(n, std::memory_order_relaxed); }

std::string download_budget::render_metrics() const {
  std::string out;
  append_metric(out, "mediagate_s3_download_memory_limit_bytes", "gauge",
                "Process-wide limit on the memory of parallel download parts (--s3-download-memory).",
                limit_);
  append_metric(out, "mediagate_s3_download_memory_bytes", "gauge",
                "Memory held now by parallel download parts (read from S3, not yet taken by the client).",
                in_use());
  append_metric(out, "mediagate_s3_download_memory_peak_bytes", "gauge",
                "The most memory parallel download parts held at once since start-up.", peak());
  append_metric(out, "mediagate_s3_download_parts_over_budget_total", "counter",
                "Download parts not started in parallel because the memory limit was reached (read on the "
                "download's own connection instead).",
                refused());
  append_metric(out, "mediagate_s3_downloads_in_parts_total", "counter",
                "Downloads that went on in parallel parts: the client drained faster than one S3 connection "
                "delivered.",
                in_parts_.load(std::memory_order_relaxed));
  append_metric(out, "mediagate_s3_download_parts_stopped_total", "counter",
                "Downloads whose parts did not raise the rate by half over one connection (a store whose "
                "bandwidth is shared): the rest went on one connection.",
                parts_stopped_.load(std::memory_order_relaxed));
  return out;
}

}  // namespace mediagate::storage
