#pragma once
// What handlers use, per event loop: the configuration, the storage, counters and the library. Only
// touched from that loop's thread (the api services are shared and thread-safe).
#include <atomic>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/config.hpp"

namespace spdlog {
class logger;
}
namespace mediagate::storage {
class storage;
}

namespace mediagate::server {

class metrics;
struct api_services;  // server/api.hpp: the catalog, uploads and the web page
struct hls_cache;     // server/hls.cpp: parsed MP4 indexes

struct services {
  const server_config& config;
  storage::storage& store;
  metrics& stats;
  spdlog::logger& log;
  const std::vector<std::function<std::string()>>& metrics_sources;
  api_services* api = nullptr;                  // null: no catalog, API or web page
  const std::atomic<bool>* draining = nullptr;  // set once shutting down: /readyz answers 503
  std::mt19937_64 random{std::random_device{}()};
  std::unordered_map<std::string, std::string> sniffed_types;  // key + ETag → type sniffed from its bytes
  std::shared_ptr<hls_cache>
      hls;  // parsed MP4 indexes, shared by every loop (made here on first use otherwise)
};

}  // namespace mediagate::server
