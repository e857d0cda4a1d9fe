#include "server/server.hpp"

#include <spdlog/spdlog.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <unistd.h>

#include <cerrno>
#include <system_error>
#include <thread>

#include "server/http1_connection.hpp"
#include "server/metrics.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {

struct worker {
  worker(const server_config& cfg, metrics& m, spdlog::logger& log, spdlog::logger* access,
         const std::vector<metrics_source>& sources, const storage_factory& factory)
      : io(1), store(factory(io)), svc{cfg, *store, m, log, sources}, context{svc, access} {}
  net::io_context io;
  std::shared_ptr<storage::storage> store;
  services svc;
  connection_context context;
  // This loop's handle on the listening socket (a dup of one descriptor): whichever loop is free takes the
  // next connection, and the connection stays on the loop that accepted it (no hand-over between threads).
  std::unique_ptr<tcp::acceptor> acceptor;
};

struct server::impl {
  server_config config;
  storage_factory factory;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<spdlog::logger> access_log;
  metrics stats;
  std::vector<metrics_source> metrics_sources;
  std::vector<std::unique_ptr<worker>> workers;
  std::shared_ptr<api_services> api;

  net::awaitable<void> accept_loop(worker& w) {
    auto& acceptor = *w.acceptor;
    while (acceptor.is_open()) {
      auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
      if (ec) {
        if (ec == net::error::operation_aborted) break;
        log->warn("accept failed: {}", ec.message());  // e.g. out of file descriptors: keep serving the rest
        continue;
      }
      if (static_cast<std::size_t>(stats.active_connections()) >= config.max_connections) {
        // Over the cap: a short 503 written without waiting, then close (the socket buffer takes it).
        stats.connection_rejected();
        // Framed by the code that frames every other response.
        const auto busy = text_response(503, "service unavailable: too many clients", {{"Retry-After", "1"}});
        const auto message = serialize_response_head(busy, true) + busy.body;
        boost::system::error_code ignored;
        socket.non_blocking(true, ignored);
        socket.write_some(net::buffer(message), ignored);
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        log->warn("connection refused: {} connections open (--max-connections)", config.max_connections);
        continue;
      }
      auto conn = std::make_shared<connection>(std::move(socket));
      net::co_spawn(w.io, run_watchdog(conn), net::detached);
      net::co_spawn(w.io, run_session(conn, w.context), net::detached);
    }
  }
};

server::server(server_config config, storage_factory storage, std::shared_ptr<spdlog::logger> log,
               std::shared_ptr<spdlog::logger> access_log)
    : impl_(std::make_unique<impl>()) {
  impl_->config = std::move(config);
  impl_->factory = std::move(storage);
  impl_->log = std::move(log);
  impl_->access_log = std::move(access_log);
  unsigned threads = impl_->config.threads ? impl_->config.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i)
    impl_->workers.push_back(std::make_unique<worker>(impl_->config, impl_->stats, *impl_->log,
                                                      impl_->access_log.get(), impl_->metrics_sources,
                                                      impl_->factory));
}

server::~server() = default;

metrics& server::counters() { return impl_->stats; }

void server::add_metrics_source(metrics_source source) { impl_->metrics_sources.push_back(std::move(source)); }

void server::set_api(std::shared_ptr<api_services> api) {
  impl_->api = std::move(api);
  for (auto& w : impl_->workers) w->svc.api = impl_->api.get();
}

std::uint16_t server::bind() {
  auto& first = *impl_->workers.front();
  const auto address = net::ip::make_address(impl_->config.listen_host);
  tcp::endpoint endpoint(address, impl_->config.listen_port);
  first.acceptor = std::make_unique<tcp::acceptor>(first.io);
  first.acceptor->open(endpoint.protocol());
  first.acceptor->set_option(tcp::acceptor::reuse_address(true));
  first.acceptor->bind(endpoint);
  first.acceptor->listen(net::socket_base::max_listen_connections);
  for (std::size_t i = 1; i < impl_->workers.size(); ++i) {
    auto& w = *impl_->workers[i];
    const int fd = ::dup(first.acceptor->native_handle());
    if (fd < 0) throw std::system_error(errno, std::generic_category(), "dup of the listening socket");
    w.acceptor = std::make_unique<tcp::acceptor>(w.io);
    w.acceptor->assign(endpoint.protocol(), fd);
  }
  return first.acceptor->local_endpoint().port();
}

void server::run() {
  auto& first = *impl_->workers.front();
  net::signal_set signals(first.io, SIGINT, SIGTERM);
  signals.async_wait([this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    impl_->log->info("signal {}: shutting down", sig);
    stop();
  });
  for (auto& w : impl_->workers)
    if (w->acceptor) net::co_spawn(w->io, impl_->accept_loop(*w), net::detached);
  std::vector<std::thread> threads;
  for (std::size_t i = 1; i < impl_->workers.size(); ++i) {
    auto* w = impl_->workers[i].get();
    threads.emplace_back([w] {
      auto guard = net::make_work_guard(w->io);
      w->io.run();
    });
  }
  first.io.run();
  for (auto& t : threads) t.join();
}

void server::stop() {
  for (auto& w : impl_->workers) w->io.stop();
}

}  // namespace mediagate::server
