#pragma once
// The cache's notion of "now", injected so that expiry, staleness and degraded mode are tested with a fake
// clock instead of sleeps. Production passes real_clock().
#include <chrono>
#include <functional>

namespace mediagate::cache {

using clock_fn = std::function<std::chrono::steady_clock::time_point()>;

inline clock_fn real_clock() {
  return [] { return std::chrono::steady_clock::now(); };
}

}  // namespace mediagate::cache
