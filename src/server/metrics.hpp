#pragma once
// Process-wide counters, rendered in the Prometheus text format. Lock-free: relaxed atomics.
#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "http/signed_link.hpp"

namespace mediagate::server {

class metrics {
 public:
  static constexpr std::array<double, 12> kDurationBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                                              0.05,   0.1,   0.25,   0.5,   1.0,  5.0};

  void record_request(unsigned status, std::uint64_t bytes_sent, double seconds);
  void connection_opened() { active_connections_.fetch_add(1, std::memory_order_relaxed); }
  void connection_closed() { active_connections_.fetch_sub(1, std::memory_order_relaxed); }
  std::int64_t active_connections() const { return active_connections_.load(std::memory_order_relaxed); }
  void connection_rejected() { rejected_connections_.fetch_add(1, std::memory_order_relaxed); }
  void link_refused(http::link_verdict why) {
    link_refusals_[static_cast<std::size_t>(why) % link_refusals_.size()].fetch_add(
        1, std::memory_order_relaxed);
  }

  // TLS handshakes: completed, failed (not TLS, no common version or cipher, broken), timed out.
  enum class handshake { ok, failed, timed_out };
  void tls_handshake(handshake outcome) {
    tls_handshakes_[static_cast<std::size_t>(outcome)].fetch_add(1, std::memory_order_relaxed);
  }

  // HTTP/2: connections, streams (requests), streams the client reset before their response ended, and
  // streams refused or connections closed for abuse (floods, rapid reset, stalls).
  void h2_connection() { h2_connections_.fetch_add(1, std::memory_order_relaxed); }
  void h2_stream() { h2_streams_.fetch_add(1, std::memory_order_relaxed); }
  void h2_stream_reset() { h2_resets_.fetch_add(1, std::memory_order_relaxed); }
  void h2_refusal() { h2_refusals_.fetch_add(1, std::memory_order_relaxed); }

  // Counters of other parts (storage, cache) render themselves after these.
  std::string render() const;

 private:
  std::array<std::atomic<std::uint64_t>, 600> requests_by_status_{};
  std::atomic<std::uint64_t> bytes_sent_{0};
  std::atomic<std::int64_t> active_connections_{0};
  std::atomic<std::uint64_t> rejected_connections_{0};
  std::array<std::atomic<std::uint64_t>, 8> link_refusals_{};  // by http::link_verdict
  std::array<std::atomic<std::uint64_t>, kDurationBuckets.size()> duration_buckets_{};
  std::atomic<std::uint64_t> duration_count_{0};
  std::array<std::atomic<std::uint64_t>, 3> tls_handshakes_{};  // by handshake
  std::atomic<std::uint64_t> duration_sum_us_{0};
  std::atomic<std::uint64_t> h2_connections_{0}, h2_streams_{0}, h2_resets_{0}, h2_refusals_{0};
};

}  // namespace mediagate::server
