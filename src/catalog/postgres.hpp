#pragma once
// The catalog on PostgreSQL (libpq), for several nodes that share one catalog and one bucket:
// `--catalog postgres://USER@HOST:PORT/DB?sslmode=...`. libpq's header stays in postgres.cpp.
//
// pg_connection is the catalog's connection (sql.hpp); it reconnects after a lost connection and turns
// PostgreSQL's errors into messages an operator can act on (catalog_unavailable when the server cannot be
// reached). pg_listener is a second connection, on a thread of its own, that LISTENs for the other nodes'
// changes and hands them to a callback.
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "catalog/sql.hpp"

struct pg_conn;

namespace spdlog {
class logger;
}

namespace mediagate::catalog {

// The channel on which catalog changes are announced (sql_connection::notify_change).
inline constexpr std::string_view kChangeChannel = "mediagate_items";

// A statement failed for a reason other than the connection: its message and SQLSTATE.
class pg_error : public std::runtime_error {
 public:
  pg_error(const std::string& what, std::string sqlstate) : std::runtime_error(what), sqlstate_(sqlstate) {}
  const std::string& sqlstate() const { return sqlstate_; }

 private:
  std::string sqlstate_;
};

// "postgres://..." or "postgresql://...".
bool is_postgres_url(std::string_view url);

// The URL without its password (for logs and error messages).
std::string redact_postgres_url(std::string_view url);

class pg_connection final : public sql_connection {
 public:
  // Connects (throws catalog_unavailable with the reason when the server cannot be reached).
  explicit pg_connection(std::string url);
  ~pg_connection() override;
  pg_connection(const pg_connection&) = delete;
  pg_connection& operator=(const pg_connection&) = delete;

  sql_dialect dialect() const override { return sql_dialect::postgres; }
  void exec(std::string_view script) override;
  std::vector<sql_row> query(std::string_view sql, std::span<const sql_value> params) override;
  std::int64_t run(std::string_view sql, std::span<const sql_value> params) override;
  void begin() override;
  void commit() override;
  void rollback() noexcept override;
  void lock_schema() override;
  void notify_change(const item_change& change) override;
  [[noreturn]] void fail(const std::string& message) const override;
  std::string describe() const override { return redacted_; }

 private:
  struct result_holder;
  result_holder execute(std::string_view sql, std::span<const sql_value> params, bool script = false);
  void ensure_connected();

  std::string url_, redacted_;
  pg_conn* conn_ = nullptr;
  bool in_transaction_ = false;
  std::chrono::steady_clock::time_point retry_after_{};
  std::chrono::milliseconds retry_pause_{0};
  std::string last_error_;
};

// Listens on kChangeChannel from a thread of its own. `on_change` gets each change another node (or this
// one) committed; `on_reset` is called after every (re)connection, since changes may have been missed while
// the connection was down, and for a payload it cannot parse. Both run on the listener's thread.
class pg_listener {
 public:
  pg_listener(std::string url, std::function<void(const item_change&)> on_change,
              std::function<void()> on_reset, std::shared_ptr<spdlog::logger> log);
  ~pg_listener();  // stops and joins
  pg_listener(const pg_listener&) = delete;
  pg_listener& operator=(const pg_listener&) = delete;

  void start();
  void stop();
  // Notifications handed to on_change so far (for tests and metrics).
  std::uint64_t received() const { return received_.load(); }
  bool connected() const { return connected_.load(); }

 private:
  void run();
  bool listen_once();  // one connection's life; false when stopped

  std::string url_;
  std::function<void(const item_change&)> on_change_;
  std::function<void()> on_reset_;
  std::shared_ptr<spdlog::logger> log_;
  int stop_fd_ = -1;
  std::thread thread_;
  std::atomic<std::uint64_t> received_{0};
  std::atomic<bool> connected_{false};
};

}  // namespace mediagate::catalog
