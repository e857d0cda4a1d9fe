#pragma once
// The library's background work: scans of the storage and probes of new or changed items (duration,
// size, posters). One worker thread with its own event loop and its own storage instance runs the jobs
// in order, so that neither the blocking ffprobe/ffmpeg runs nor the scans ever hold up a request.
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "catalog/catalog.hpp"
#include "catalog/probe.hpp"
#include "catalog/scan.hpp"

namespace spdlog {
class logger;
}

namespace mediagate::catalog {

using storage_maker = std::function<std::shared_ptr<storage::storage>(boost::asio::io_context&)>;

class library {
 public:
  library(std::shared_ptr<catalog> cat, storage_maker make_storage, probe_tools tools,
          std::shared_ptr<spdlog::logger> log);
  ~library();
  library(const library&) = delete;
  library& operator=(const library&) = delete;

  // Starts the worker. `media_url` is the server's own base for media ("http://127.0.0.1:PORT/media/"),
  // from which ffprobe and ffmpeg read.
  void start(std::string media_url);
  void stop();

  // Queue work (thread-safe; a probe already queued is not queued twice).
  void request_scan();
  void request_probe(const std::string& id);
  // Blocks until the queue is empty and the worker idle; returns the last scan's report.
  std::optional<scan_report> wait_idle();

  catalog& items() { return *cat_; }

 private:
  void run();
  void do_scan();
  void do_probe(const std::string& id);

  std::shared_ptr<catalog> cat_;
  storage_maker make_storage_;
  probe_tools tools_;
  std::shared_ptr<spdlog::logger> log_;
  std::string media_url_;

  boost::asio::io_context io_;
  std::shared_ptr<storage::storage> store_;  // made on the worker's event loop

  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<std::string> queue_;  // "" is a scan, anything else an item id to probe
  bool busy_ = false;
  bool stopping_ = false;
  std::optional<scan_report> last_scan_;
  std::thread thread_;
};

}  // namespace mediagate::catalog
