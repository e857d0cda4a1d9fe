#include "catalog/postgres.hpp"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <system_error>

namespace mediagate::catalog {
namespace {

// Any fixed number: the advisory lock that serialises schema migrations of every node.
constexpr long long kSchemaLockKey = 0x6d6564696167;  // "mediag"

// Payloads above PostgreSQL's 8000-byte limit are sent as "\n": listeners then drop everything they cache.
constexpr std::size_t kMaxPayload = 7900;

// SQLSTATE classes and codes that mean "the server is not there" rather than "the statement is wrong":
// connection exceptions (08), the server shutting down or starting (57P01-57P03), too many connections.
bool is_unavailable_state(std::string_view state) {
  return state.starts_with("08") || state == "57P01" || state == "57P02" || state == "57P03" ||
         state == "53300";
}

std::string trim_message(std::string m) {
  while (!m.empty() && (m.back() == '\n' || m.back() == ' ')) m.pop_back();
  return m;
}

// libpq takes the URL as dbname (expand_dbname); settings before it are defaults the URL can override.
// Every catalog call blocks an event loop, so nothing may wait for long: connecting takes at most 5 s, a
// statement at most 15 s, and TCP keepalives notice a peer that vanished (a cut network) within ~25 s rather
// than the kernel's two hours, which also matters to the listener's idle connection.
PGconn* connect(const std::string& url) {
  const char* keys[] = {"connect_timeout",  "application_name", "keepalives_idle", "keepalives_interval",
                        "keepalives_count", "options",          "dbname",          nullptr};
  const char* values[] = {"5",         "mediagate", "10", "5", "3", "-c statement_timeout=15000",
                          url.c_str(), nullptr};
  return PQconnectdbParams(keys, values, 1);
}

}  // namespace

bool is_postgres_url(std::string_view url) {
  return url.starts_with("postgres://") || url.starts_with("postgresql://");
}

std::string redact_postgres_url(std::string_view url) {
  const auto scheme = url.find("://");
  if (scheme == std::string_view::npos) return std::string(url);
  const auto authority_end = url.find_first_of("/?", scheme + 3);
  const auto at = url.rfind('@', authority_end == std::string_view::npos ? url.size() : authority_end);
  if (at == std::string_view::npos || at < scheme + 3) return std::string(url);
  const auto colon = url.find(':', scheme + 3);
  if (colon == std::string_view::npos || colon > at) return std::string(url);
  return std::string(url.substr(0, colon)) + ":***" + std::string(url.substr(at));
}

// A PGresult owned until destroyed.
struct pg_connection::result_holder {
  PGresult* res = nullptr;
  explicit result_holder(PGresult* r) : res(r) {}
  ~result_holder() { PQclear(res); }
  result_holder(result_holder&& o) noexcept : res(std::exchange(o.res, nullptr)) {}
  result_holder(const result_holder&) = delete;
};

pg_connection::pg_connection(std::string url) : url_(std::move(url)), redacted_(redact_postgres_url(url_)) {
  conn_ = connect(url_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    const auto why = trim_message(PQerrorMessage(conn_));
    PQfinish(conn_);
    conn_ = nullptr;
    throw catalog_unavailable("cannot connect to the PostgreSQL catalog " + redacted_ + ": " + why);
  }
  // Notices (e.g. "relation already exists, skipping") are not errors: keep them out of stderr.
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
}

pg_connection::~pg_connection() {
  if (conn_) PQfinish(conn_);
}

void pg_connection::ensure_connected() {
  if (conn_ && PQstatus(conn_) == CONNECTION_OK) return;
  if (in_transaction_)  // the transaction died with the connection: the caller's work must fail
    throw catalog_unavailable("lost the connection to the PostgreSQL catalog " + redacted_ +
                              " in a transaction");
  // After a failed attempt the next waits a little (100 ms, doubling up to 2 s): each call meanwhile fails at
  // once with the last reason instead of spending a connect timeout of the event loop that made it.
  const auto now = std::chrono::steady_clock::now();
  if (now < retry_after_)
    throw catalog_unavailable("the PostgreSQL catalog " + redacted_ + " is unreachable: " + last_error_);
  if (!conn_)
    conn_ = connect(url_);
  else
    PQreset(conn_);
  if (PQstatus(conn_) != CONNECTION_OK) {
    last_error_ = trim_message(PQerrorMessage(conn_));
    retry_pause_ =
        std::clamp(retry_pause_ * 2, std::chrono::milliseconds(100), std::chrono::milliseconds(2000));
    retry_after_ = std::chrono::steady_clock::now() + retry_pause_;
    throw catalog_unavailable("the PostgreSQL catalog " + redacted_ + " is unreachable: " + last_error_);
  }
  retry_pause_ = std::chrono::milliseconds(0);
  PQsetNoticeProcessor(
      conn_, [](void*, const char*) {}, nullptr);
}

pg_connection::result_holder pg_connection::execute(std::string_view sql, std::span<const sql_value> params,
                                                    bool script) {
  // Parameters go as text, typed by the server from their use; numbers in a form that reads back exactly.
  std::vector<std::string> texts(params.size());
  std::vector<const char*> values(params.size(), nullptr);
  for (std::size_t i = 0; i < params.size(); ++i) {
    if (const auto* s = std::get_if<std::string>(&params[i]))
      texts[i] = *s;
    else if (const auto* n = std::get_if<std::int64_t>(&params[i]))
      texts[i] = std::to_string(*n);
    else if (const auto* d = std::get_if<double>(&params[i])) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "%.17g", *d);
      texts[i] = buf;
    } else
      continue;
    values[i] = texts[i].c_str();
  }
  const std::string text(sql);
  // One retry outside transactions: a connection that was lost since the last call (a PostgreSQL restart)
  // is reset and the statement sent again. The catalog's statements are idempotent (updates that set values,
  // inserts that do nothing on conflict), so a statement that committed before the connection broke may be
  // repeated.
  for (int attempt = 0;; ++attempt) {
    ensure_connected();
    // Scripts (several statements, no parameters) need the simple protocol; the rest the extended one.
    result_holder r(script ? PQexec(conn_, text.c_str())
                           : PQexecParams(conn_, text.c_str(), static_cast<int>(params.size()), nullptr,
                                          values.data(), nullptr, nullptr, 0));
    const auto status = PQresultStatus(r.res);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return r;
    const char* state_field = r.res ? PQresultErrorField(r.res, PG_DIAG_SQLSTATE) : nullptr;
    const std::string state = state_field ? state_field : "";
    const bool lost = PQstatus(conn_) != CONNECTION_OK || is_unavailable_state(state);
    const auto message = trim_message(r.res ? PQresultErrorMessage(r.res) : PQerrorMessage(conn_));
    if (lost) {
      // A fresh connection next (even when libpq still thinks this one fine: the server said it is going).
      PQfinish(conn_);
      conn_ = nullptr;
      if (attempt == 0 && !in_transaction_) continue;
      throw catalog_unavailable("the PostgreSQL catalog " + redacted_ + " is unavailable: " + message);
    }
    throw pg_error(
        "PostgreSQL catalog statement failed: " + message + (state.empty() ? "" : " [" + state + "]"), state);
  }
}

void pg_connection::exec(std::string_view script) { execute(script, {}, true); }

std::vector<sql_row> pg_connection::query(std::string_view sql, std::span<const sql_value> params) {
  auto r = execute(sql, params);
  std::vector<sql_row> rows;
  const int n = PQntuples(r.res), columns = PQnfields(r.res);
  rows.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    sql_row row;
    row.values.reserve(static_cast<std::size_t>(columns));
    for (int c = 0; c < columns; ++c) {
      if (PQgetisnull(r.res, i, c))
        row.values.emplace_back(std::monostate{});
      else
        row.values.emplace_back(
            std::string(PQgetvalue(r.res, i, c), static_cast<std::size_t>(PQgetlength(r.res, i, c))));
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

std::int64_t pg_connection::run(std::string_view sql, std::span<const sql_value> params) {
  auto r = execute(sql, params);
  const char* n = PQcmdTuples(r.res);
  return n && *n ? std::stoll(n) : 0;
}

void pg_connection::begin() {
  execute("BEGIN", {});
  in_transaction_ = true;
}

void pg_connection::commit() {
  in_transaction_ = false;  // either way the transaction is over: COMMIT of a failed one rolls back
  execute("COMMIT", {});
}

void pg_connection::rollback() noexcept {
  in_transaction_ = false;
  if (conn_ && PQstatus(conn_) == CONNECTION_OK) PQclear(PQexec(conn_, "ROLLBACK"));
}

void pg_connection::lock_schema() {
  const sql_value key = static_cast<std::int64_t>(kSchemaLockKey);
  execute("SELECT pg_advisory_xact_lock($1)", {&key, 1});
}

void pg_connection::notify_change(const item_change& change) {
  auto payload = change_payload(change);
  if (payload.size() > kMaxPayload) payload = "\n";
  const sql_value params[] = {std::string(kChangeChannel), std::move(payload)};
  execute("SELECT pg_notify($1, $2)", params);
}

void pg_connection::fail(const std::string& message) const { throw pg_error(message, ""); }

pg_listener::pg_listener(std::string url, std::function<void(const item_change&)> on_change,
                         std::function<void()> on_reset, std::shared_ptr<spdlog::logger> log)
    : url_(std::move(url)),
      on_change_(std::move(on_change)),
      on_reset_(std::move(on_reset)),
      log_(std::move(log)),
      stop_fd_(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) {
  if (stop_fd_ < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
}

pg_listener::~pg_listener() {
  stop();
  ::close(stop_fd_);
}

void pg_listener::start() {
  thread_ = std::thread([this] { run(); });
}

void pg_listener::stop() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const auto n = ::write(stop_fd_, &one, sizeof one);
  if (thread_.joinable()) thread_.join();
}

void pg_listener::run() {
  auto pause = std::chrono::milliseconds(250);
  while (true) {
    const bool had_connection = listen_once();
    connected_ = false;
    pollfd p{stop_fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) return;
    // Reconnect with a growing pause (up to 5 s) while the server is away; at once after a working session.
    if (had_connection) pause = std::chrono::milliseconds(250);
    if (::poll(&p, 1, static_cast<int>(pause.count())) > 0) return;
    pause = std::min(pause * 2, std::chrono::milliseconds(5000));
  }
}

bool pg_listener::listen_once() {
  const auto redacted = redact_postgres_url(url_);
  PGconn* conn = connect(url_);
  struct closer {
    PGconn* c;
    ~closer() { PQfinish(c); }
  } guard{conn};
  if (PQstatus(conn) != CONNECTION_OK) {
    log_->warn("catalog changes: cannot connect to {}: {}", redacted, trim_message(PQerrorMessage(conn)));
    return false;
  }
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  const std::string listen = "LISTEN " + std::string(kChangeChannel);
  PGresult* r = PQexec(conn, listen.c_str());
  const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
  PQclear(r);
  if (!ok) {
    log_->warn("catalog changes: LISTEN failed on {}: {}", redacted, trim_message(PQerrorMessage(conn)));
    return false;
  }
  connected_ = true;
  log_->info("catalog changes: listening on {}", redacted);
  // Whatever changed while no connection listened is unknown: every node forgets what it cached.
  on_reset_();
  while (true) {
    pollfd fds[2] = {{PQsocket(conn), POLLIN, 0}, {stop_fd_, POLLIN, 0}};
    const int n = ::poll(fds, 2, -1);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || (fds[1].revents & POLLIN)) return true;
    if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK) {
      log_->warn("catalog changes: lost the connection to {}: {}; reconnecting", redacted,
                 trim_message(PQerrorMessage(conn)));
      return true;
    }
    while (PGnotify* note = PQnotifies(conn)) {
      auto change = parse_change_payload(note->extra ? note->extra : "");
      PQfreemem(note);
      ++received_;
      if (change)
        on_change_(*change);
      else
        on_reset_();
    }
  }
}

}  // namespace mediagate::catalog
