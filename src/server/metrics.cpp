#include "server/metrics.hpp"

#include <cstdio>

#include "common/prometheus_text.hpp"

namespace mediagate::server {

void metrics::record_request(unsigned status, std::uint64_t bytes_sent, double seconds) {
  if (status < requests_by_status_.size())
    requests_by_status_[status].fetch_add(1, std::memory_order_relaxed);
  bytes_sent_.fetch_add(bytes_sent, std::memory_order_relaxed);
  for (std::size_t i = 0; i < kDurationBuckets.size(); ++i)
    if (seconds <= kDurationBuckets[i]) {
      duration_buckets_[i].fetch_add(1, std::memory_order_relaxed);
      break;
    }
  duration_count_.fetch_add(1, std::memory_order_relaxed);
  duration_sum_us_.fetch_add(static_cast<std::uint64_t>(seconds * 1e6), std::memory_order_relaxed);
}

std::string metrics::render() const {
  std::string out;
  char line[160];
  out += "# HELP mediagate_http_requests_total HTTP requests answered, by status code.\n";
  out += "# TYPE mediagate_http_requests_total counter\n";
  for (std::size_t s = 100; s < requests_by_status_.size(); ++s)
    if (auto n = requests_by_status_[s].load(std::memory_order_relaxed)) {
      std::snprintf(line, sizeof line, "mediagate_http_requests_total{status=\"%zu\"} %llu\n", s,
                    static_cast<unsigned long long>(n));
      out += line;
    }
  append_metric(out, "mediagate_http_response_bytes_total", "counter", "Bytes of response bodies sent.",
                bytes_sent_.load());
  const auto active = active_connections_.load();
  append_metric(out, "mediagate_active_connections", "gauge", "Client connections open now.",
                active > 0 ? static_cast<std::uint64_t>(active) : 0);
  append_metric(out, "mediagate_rejected_connections_total", "counter",
                "Connections refused because of --max-connections.", rejected_connections_.load());
  out += "# HELP mediagate_http_request_duration_seconds Time from a request's headers to its last byte.\n";
  out += "# TYPE mediagate_http_request_duration_seconds histogram\n";
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < kDurationBuckets.size(); ++i) {
    cumulative += duration_buckets_[i].load(std::memory_order_relaxed);
    std::snprintf(line, sizeof line, "mediagate_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                  kDurationBuckets[i], static_cast<unsigned long long>(cumulative));
    out += line;
  }
  const auto count = duration_count_.load();
  out += "mediagate_http_request_duration_seconds_bucket{le=\"+Inf\"} " + std::to_string(count) + "\n";
  std::snprintf(line, sizeof line, "mediagate_http_request_duration_seconds_sum %.6f\n",
                static_cast<double>(duration_sum_us_.load()) / 1e6);
  out += line;
  out += "mediagate_http_request_duration_seconds_count " + std::to_string(count) + "\n";
  out +=
      "# HELP mediagate_signed_link_refusals_total Requests refused for want of a valid signed link, by "
      "reason.\n";
  out += "# TYPE mediagate_signed_link_refusals_total counter\n";
  for (std::size_t i = 1; i < link_refusals_.size(); ++i) {
    const auto reason = http::verdict_reason(static_cast<http::link_verdict>(i));
    out += "mediagate_signed_link_refusals_total{reason=\"" + std::string(reason) + "\"} " +
           std::to_string(link_refusals_[i].load(std::memory_order_relaxed)) + "\n";
  }
  out += "# HELP mediagate_tls_handshakes_total TLS handshakes, by result.\n";
  out += "# TYPE mediagate_tls_handshakes_total counter\n";
  constexpr const char* kHandshakeResults[] = {"ok", "failed", "timeout"};
  for (std::size_t i = 0; i < tls_handshakes_.size(); ++i)
    out += "mediagate_tls_handshakes_total{result=\"" + std::string(kHandshakeResults[i]) + "\"} " +
           std::to_string(tls_handshakes_[i].load(std::memory_order_relaxed)) + "\n";
  append_metric(out, "mediagate_h2_connections_total", "counter", "HTTP/2 connections.",
                h2_connections_.load());
  append_metric(out, "mediagate_h2_streams_total", "counter", "HTTP/2 requests (streams).",
                h2_streams_.load());
  append_metric(out, "mediagate_h2_stream_resets_total", "counter",
                "HTTP/2 streams the client reset before their response ended.", h2_resets_.load());
  append_metric(out, "mediagate_h2_refusals_total", "counter",
                "HTTP/2 streams refused or connections closed for abuse or stalls.", h2_refusals_.load());
  return out;
}

}  // namespace mediagate::server
