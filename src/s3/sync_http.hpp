#pragma once
// A small blocking HTTP(S) client for the credential endpoints (instance metadata, STS). It runs on the
// credentials refresher's own thread, never on an event loop.
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace mediagate::s3 {

struct sync_response {
  unsigned status = 0;
  std::string body;
  std::string error;  // set when no HTTP answer came (connection refused, timeout, TLS failure)
};

// `url` is http[s]://host[:port]/path[?query]. Bodies are limited to 1 MiB.
sync_response sync_request(const std::string& method, const std::string& url,
                           const std::vector<std::pair<std::string, std::string>>& headers,
                           const std::string& body, std::chrono::milliseconds timeout);

}  // namespace mediagate::s3
