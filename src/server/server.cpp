#include "server/server.hpp"

#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <system_error>
#include <thread>

#include "server/hls.hpp"
#include "server/http1_connection.hpp"
#include "server/metrics.hpp"
#include "server/tls.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {
namespace {

constexpr auto kTuple = net::as_tuple(net::use_awaitable);
constexpr std::chrono::milliseconds kAcceptBackoff{100};  // after EMFILE/ENFILE: no busy loop
constexpr std::chrono::milliseconds kDrainPoll{50};

// Raises the soft descriptor limit to the hard one; returns the limit in force.
std::uint64_t raise_descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return 1024;
  if (lim.rlim_cur < lim.rlim_max) {
    rlimit raised = lim;
    raised.rlim_cur = lim.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) lim = raised;
  }
  return lim.rlim_cur == RLIM_INFINITY ? (1u << 20) : static_cast<std::uint64_t>(lim.rlim_cur);
}

// A message logged at most once per second, with the number of times it happened.
class rate_limited_log {
 public:
  template <class F>
  void note(F&& log) {
    ++count_;
    const auto now = clock::now();
    if (now - last_ < std::chrono::seconds(1)) return;
    last_ = now;
    log(count_);
    count_ = 0;
  }

 private:
  clock::time_point last_{};
  std::uint64_t count_ = 0;
};

// A connection that never sent a request is evictable once it has been idle this long (a client that just
// connected is about to send; one silent for a second is holding a descriptor).
constexpr std::chrono::milliseconds kEvictableAfter{1000};

// The oldest connection of a loop that never sent a request: the first to go when descriptors run short.
connection* oldest_fresh(connection_context& ctx) {
  connection* oldest = nullptr;
  const auto cutoff = clock::now() - kEvictableAfter;
  for (auto* c : ctx.open)
    if (c->requests == 0 && c->awaiting_request && c->opened_at <= cutoff &&
        (!oldest || c->opened_at < oldest->opened_at))
      oldest = c;
  return oldest;
}

// What a listening socket speaks: HTTP, HTTPS, or only redirects to HTTPS (--redirect-http).
enum class listener_kind { plain, tls, redirect };

}  // namespace

struct listener {
  std::unique_ptr<tcp::acceptor> acceptor;
  listener_kind kind = listener_kind::plain;
};

struct worker {
  worker(const server_config& cfg, metrics& m, spdlog::logger& log, spdlog::logger* access,
         const std::vector<metrics_source>& sources, const storage_factory& factory)
      : io(1), store(factory(io)), svc{cfg, *store, m, log, sources}, context{svc, access, {}, false} {}
  net::io_context io;
  std::shared_ptr<storage::storage> store;
  services svc;
  connection_context context;
  // This loop's handles on the listening sockets (each a dup of one descriptor): whichever loop is free takes
  // the next connection, and the connection stays on the loop that accepted it (no hand-over between
  // threads). The first is --listen's; then --listen-tls's and the library's loopback one, if any.
  std::vector<listener> listeners;
  rate_limited_log accept_errors, refusals;
  std::atomic<std::size_t> evictions_pending{0};  // asked by other loops, not yet run
};

struct server::impl {
  server_config config;
  storage_factory factory;
  std::shared_ptr<spdlog::logger> log;
  std::shared_ptr<spdlog::logger> access_log;
  metrics stats;
  std::vector<metrics_source> metrics_sources;
  std::unique_ptr<tls_store> tls;  // with a certificate; outlives the workers' connections (declared before)
  std::vector<std::unique_ptr<worker>> workers;
  std::shared_ptr<api_services> api;
  std::size_t connection_cap = 0;
  std::atomic<bool> draining{false};
  std::function<void()> reload;
  std::function<void()> drain_hook;
  std::uint16_t tls_port = 0, library_port = 0;

  // Over the cap: make room by closing a connection that never sent a request, else a short 503 (plain
  // HTTP; a TLS connection is closed before its handshake, which would cost more than the answer is worth).
  bool make_room(worker& w, tcp::socket& socket, bool plain) {
    if (static_cast<std::size_t>(stats.active_connections()) < connection_cap) return true;
    if (auto* idle = oldest_fresh(w.context)) {
      close_if_idle(*idle);
      return true;
    }
    // Another loop holds connections that never sent a request: it closes its oldest, and this one is let in
    // meanwhile (the cap is exceeded by one for as long as that takes).
    // Evictions already asked for are subtracted, so that the excess stays bounded by those connections.
    for (auto& other : workers) {
      if (other.get() == &w) continue;
      auto& pending = other->evictions_pending;
      if (other->context.fresh.load(std::memory_order_relaxed) <= pending.load(std::memory_order_relaxed))
        continue;
      pending.fetch_add(1, std::memory_order_relaxed);
      net::post(other->io, [o = other.get()] {
        if (auto* idle = oldest_fresh(o->context)) close_if_idle(*idle);
        o->evictions_pending.fetch_sub(1, std::memory_order_relaxed);
      });
      return true;
    }
    stats.connection_rejected();
    // Framed by the code that frames every other response; written without waiting (the socket buffer takes
    // it).
    const auto busy = text_response(503, "service unavailable: too many clients", {{"Retry-After", "1"}});
    const auto message = serialize_response_head(busy, true) + busy.body;
    boost::system::error_code ignored;
    socket.non_blocking(true, ignored);
    if (plain) socket.write_some(net::buffer(message), ignored);
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    w.refusals.note([&](std::uint64_t n) {
      log->warn("{} connection(s) refused: {} open (connection cap)", n, connection_cap);
    });
    return false;
  }

  net::awaitable<void> accept_loop(worker& w, listener& l) {
    auto& acceptor = *l.acceptor;
    net::steady_timer backoff(w.io);
    while (acceptor.is_open()) {
      auto [ec, socket] = co_await acceptor.async_accept(kTuple);
      if (ec) {
        if (ec == net::error::operation_aborted || !acceptor.is_open()) break;
        // Out of descriptors (EMFILE/ENFILE) or another transient failure: free a descriptor if an idle
        // connection holds one, pause accepting for a moment, and log once a second at most.
        if (auto* idle = oldest_fresh(w.context)) close_if_idle(*idle);
        w.accept_errors.note(
            [&](std::uint64_t n) { log->warn("accept failed {} time(s): {}", n, ec.message()); });
        backoff.expires_after(kAcceptBackoff);
        co_await backoff.async_wait(kTuple);
        continue;
      }
      if (!make_room(w, socket, l.kind != listener_kind::tls)) continue;
      auto conn = std::make_shared<connection>(std::move(socket));
      if (l.kind == listener_kind::tls) {
        conn->tls_context = tls->current();  // run_session does the handshake
      } else if (l.kind == listener_kind::redirect) {
        conn->redirect_port = tls_port;
      }
      net::co_spawn(w.io, run_watchdog(conn), net::detached);
      net::co_spawn(w.io, run_session(conn, w.context), net::detached);
    }
  }

  // SIGTERM/SIGINT: report not ready at once; after the drain delay (0 by default) stop accepting, let
  // in-flight responses finish (up to the drain timeout), then stop every loop.
  void begin_drain() {
    if (draining.exchange(true)) return;
    if (drain_hook) drain_hook();
    if (config.drain_delay.count() > 0) {
      log->info("draining: /readyz answers 503; still accepting for {} ms", config.drain_delay.count());
      net::co_spawn(workers.front()->io, stop_accepting_after_delay(), net::detached);
      return;
    }
    stop_accepting();
  }

  net::awaitable<void> stop_accepting_after_delay() {
    net::steady_timer timer(workers.front()->io);
    timer.expires_after(config.drain_delay);
    co_await timer.async_wait(kTuple);
    stop_accepting();
  }

  void stop_accepting() {
    log->info("draining: no new connections; {} open, waiting up to {} ms", stats.active_connections(),
              config.drain_timeout.count());
    for (auto& w : workers)
      net::post(w->io, [w = w.get()] {
        boost::system::error_code ignored;
        for (auto& l : w->listeners) l.acceptor->close(ignored);
        w->context.draining = true;
        for (auto* c : std::vector<connection*>(w->context.open.begin(), w->context.open.end()))
          close_if_idle(*c);
      });
    net::co_spawn(workers.front()->io, wait_drained(), net::detached);
  }

  // A listening socket on every loop (the first binds, the others take a dup of its descriptor); its port.
  std::uint16_t add_listener(const std::string& host, std::uint16_t port, listener_kind kind) {
    auto& first = *workers.front();
    tcp::endpoint endpoint(net::ip::make_address(host), port);
    auto acceptor = std::make_unique<tcp::acceptor>(first.io);
    acceptor->open(endpoint.protocol());
    acceptor->set_option(tcp::acceptor::reuse_address(true));
    acceptor->bind(endpoint);
    acceptor->listen(net::socket_base::max_listen_connections);
    const int native = acceptor->native_handle();
    const auto bound = acceptor->local_endpoint().port();
    first.listeners.push_back({std::move(acceptor), kind});
    for (std::size_t i = 1; i < workers.size(); ++i) {
      auto& w = *workers[i];
      const int fd = ::dup(native);
      if (fd < 0) throw std::system_error(errno, std::generic_category(), "dup of the listening socket");
      auto dup = std::make_unique<tcp::acceptor>(w.io);
      dup->assign(endpoint.protocol(), fd);
      w.listeners.push_back({std::move(dup), kind});
    }
    return bound;
  }

  // The certificate files are checked every few seconds; a change reloads them (as SIGHUP does).
  net::awaitable<void> watch_certificate() {
    net::steady_timer timer(workers.front()->io);
    while (!draining.load()) {
      timer.expires_after(config.tls.reload_poll);
      co_await timer.async_wait(kTuple);
      if (!draining.load()) tls->reload_if_changed();
    }
  }

  net::awaitable<void> wait_drained() {
    net::steady_timer timer(workers.front()->io);
    const auto until = clock::now() + config.drain_timeout;
    while (stats.active_connections() > 0 && clock::now() < until) {
      timer.expires_after(kDrainPoll);
      co_await timer.async_wait(kTuple);
    }
    if (stats.active_connections() > 0)
      log->warn("drain timeout: closing {} connection(s) still open", stats.active_connections());
    for (auto& w : workers) w->io.stop();
  }
};

server::server(server_config config, storage_factory storage, std::shared_ptr<spdlog::logger> log,
               std::shared_ptr<spdlog::logger> access_log)
    : impl_(std::make_unique<impl>()) {
  impl_->config = std::move(config);
  impl_->factory = std::move(storage);
  impl_->log = std::move(log);
  impl_->access_log = std::move(access_log);
  if (impl_->config.tls.enabled())
    impl_->tls = std::make_unique<tls_store>(
        tls_files{impl_->config.tls.cert, impl_->config.tls.key, impl_->config.tls.ocsp},
        alpn_list{"h2", "http/1.1"}, *impl_->log);
  unsigned threads =
      impl_->config.threads ? impl_->config.threads : std::max(1u, std::thread::hardware_concurrency());
  for (unsigned i = 0; i < threads; ++i)
    impl_->workers.push_back(std::make_unique<worker>(impl_->config, impl_->stats, *impl_->log,
                                                      impl_->access_log.get(), impl_->metrics_sources,
                                                      impl_->factory));
  for (auto& w : impl_->workers) w->svc.draining = &impl_->draining;
  // One cache of parsed MP4 indexes for every loop: an index is read and parsed once, whichever loop asks.
  const auto hls = make_hls_cache();
  for (auto& w : impl_->workers) w->svc.hls = hls;
  // The connection cap fits the descriptor budget: each connection may hold a few descriptors (its socket,
  // an open file or an upstream connection, a cache file), beside what every loop keeps (upstream pools,
  // open-file tables) and a spare for the logs, the catalog and probes.
  const auto limit = raise_descriptor_limit();
  const std::uint64_t reserved =
      impl_->config.spare_descriptors + threads * impl_->config.descriptors_per_loop;
  const auto budget = limit > reserved ? (limit - reserved) / std::max<std::size_t>(
                                                                  1, impl_->config.descriptors_per_connection)
                                       : 0;
  // Never above --max-connections; never so low that a small descriptor limit leaves no room at all.
  impl_->connection_cap =
      std::min<std::uint64_t>(impl_->config.max_connections, std::max<std::uint64_t>(16, budget));
  impl_->log->info(
      "connection cap {} (--max-connections {}, descriptor limit {}, {} reserved, {} per connection)",
      impl_->connection_cap, impl_->config.max_connections, limit, reserved,
      impl_->config.descriptors_per_connection);
}

server::~server() = default;

metrics& server::counters() { return impl_->stats; }

std::size_t server::connection_cap() const { return impl_->connection_cap; }

void server::add_metrics_source(metrics_source source) {
  impl_->metrics_sources.push_back(std::move(source));
}

void server::set_api(std::shared_ptr<api_services> api) {
  impl_->api = std::move(api);
  for (auto& w : impl_->workers) w->svc.api = impl_->api.get();
}

void server::on_reload(std::function<void()> reload) { impl_->reload = std::move(reload); }

void server::on_drain(std::function<void()> drain) { impl_->drain_hook = std::move(drain); }

std::uint16_t server::bind() {
  const auto& cfg = impl_->config;
  auto kind = listener_kind::plain;
  if (cfg.tls.enabled() && !cfg.tls.separate_listener)
    kind = listener_kind::tls;
  else if (cfg.tls.redirect_http)
    kind = listener_kind::redirect;
  const auto port = impl_->add_listener(cfg.listen_host, cfg.listen_port, kind);
  if (kind == listener_kind::tls) impl_->tls_port = port;
  if (cfg.tls.separate_listener)
    impl_->tls_port = impl_->add_listener(cfg.tls.listen_host, cfg.tls.listen_port, listener_kind::tls);
  // The library's probes read media over plain HTTP on loopback: when --listen does not serve it, a
  // listener of their own on 127.0.0.1 (a port chosen by the kernel).
  impl_->library_port =
      kind == listener_kind::plain ? port : impl_->add_listener("127.0.0.1", 0, listener_kind::plain);
  return port;
}

std::uint16_t server::tls_port() const { return impl_->tls_port; }

std::uint16_t server::library_port() const { return impl_->library_port; }

void server::run() {
  auto& first = *impl_->workers.front();
  net::signal_set signals(first.io, SIGINT, SIGTERM);
  std::function<void(const boost::system::error_code&, int)> on_signal;
  on_signal = [this](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    impl_->log->info("signal {}: shutting down", sig);
    impl_->begin_drain();
  };
  signals.async_wait(on_signal);
  net::signal_set hangup(first.io, SIGHUP);
  std::function<void(const boost::system::error_code&, int)> on_hangup;
  on_hangup = [this, &hangup, &on_hangup](const boost::system::error_code& ec, int) {
    if (ec) return;
    impl_->log->info("SIGHUP: reopening log files");
    if (impl_->reload) impl_->reload();
    if (impl_->tls) impl_->tls->reload("SIGHUP");
    hangup.async_wait(on_hangup);
  };
  hangup.async_wait(on_hangup);
  for (auto& w : impl_->workers)
    for (auto& l : w->listeners) net::co_spawn(w->io, impl_->accept_loop(*w, l), net::detached);
  if (impl_->tls && impl_->config.tls.reload_poll.count() > 0)
    net::co_spawn(first.io, impl_->watch_certificate(), net::detached);
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

void server::stop() { impl_->begin_drain(); }

}  // namespace mediagate::server
