#pragma once
// The library's background work: scans of the storage and probes of new or changed items (duration,
// size, posters). A few worker threads (probe_tools::workers), each with its own event loop and its own
// storage instance, take the jobs in order, so that neither the blocking ffprobe/ffmpeg runs nor the scans
// ever hold up a request, and one probe that waits until its deadline does not hold up the others.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "catalog/catalog.hpp"
#include "catalog/probe.hpp"
#include "catalog/scan.hpp"

namespace spdlog {
class logger;
}

namespace mediagate::catalog {

using storage_maker = std::function<std::shared_ptr<storage::storage>(boost::asio::io_context&)>;

// Removes the seek-thumbnail sprites of item `id` from `store` (an item deleted, or probed anew).
boost::asio::awaitable<void> remove_thumbnails(storage::storage& store, std::string id);

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
  // Drops queued work, kills running ffprobe/ffmpeg process groups at once and joins the workers.
  void stop();
  // The first half of stop(), without waiting: no new jobs, running probes killed (a server's drain calls it,
  // since probes read through the server that is draining).
  void begin_stop();
  // Appended to the URL the probes read an item from ("?exp=...&sig=..." for private media, else ""); set
  // before start().
  void set_link_query(std::function<std::string(const std::string& key)> query) {
    link_query_ = std::move(query);
  }

  // Queue work (thread-safe; a probe already queued is not queued twice).
  void request_scan();
  void request_probe(const std::string& id);
  // Blocks until the queue is empty and every worker idle; returns the last scan's report.
  std::optional<scan_report> wait_idle();

  catalog& items() { return *cat_; }
  // This process's name in probe claims (catalog::claim_probe): host, pid and a random part.
  const std::string& owner() const { return owner_; }

 private:
  struct worker {
    boost::asio::io_context io;
    std::shared_ptr<storage::storage> store;  // made on this worker's event loop
    std::thread thread;
  };

  void run(worker& w);
  void do_scan(worker& w);
  void do_probe(worker& w, const std::string& id);

  std::shared_ptr<catalog> cat_;
  storage_maker make_storage_;
  probe_tools tools_;
  std::shared_ptr<spdlog::logger> log_;
  std::string media_url_;
  std::string owner_;
  std::function<std::string(const std::string&)> link_query_;
  process_canceller cancel_;  // ends running probes at stop()

  std::vector<std::unique_ptr<worker>> workers_;

  std::mutex mutex_;
  std::condition_variable wake_, idle_;
  std::deque<std::string> queue_;     // "" is a scan, anything else an item id to probe
  std::vector<std::string> running_;  // jobs being worked on: a job is never run twice at once
  bool stopping_ = false;
  std::optional<scan_report> last_scan_;
};

}  // namespace mediagate::catalog
