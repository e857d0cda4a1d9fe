#include "catalog/sqlite.hpp"

#include <sqlite3.h>

#include <utility>

namespace mediagate::catalog {

database::database(const std::string& path) {
  const int rc = sqlite3_open_v2(path.c_str(), &db_,
                                 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
    sqlite3_close(db_);
    db_ = nullptr;
    throw sqlite_error(rc, "cannot open catalog " + path + ": " + message);
  }
  sqlite3_extended_result_codes(db_, 1);
}

database::~database() {
  if (db_) sqlite3_close_v2(db_);
}

database::database(database&& o) noexcept : db_(std::exchange(o.db_, nullptr)) {}

void database::fail(int code, std::string_view context) const {
  throw sqlite_error(code, std::string(context) + ": " + (db_ ? sqlite3_errmsg(db_) : sqlite3_errstr(code)));
}

void database::exec(std::string_view sql) {
  const std::string text(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &message);
  if (rc != SQLITE_OK) {
    std::string what = message ? message : sqlite3_errstr(rc);
    sqlite3_free(message);
    throw sqlite_error(rc, "catalog statement failed: " + what);
  }
}

statement database::prepare(std::string_view sql) {
  sqlite3_stmt* s = nullptr;
  const int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &s, nullptr);
  if (rc != SQLITE_OK) fail(rc, "cannot prepare catalog statement");
  return statement(*this, s);
}

std::int64_t database::changes() const { return sqlite3_changes64(db_); }

statement::~statement() {
  if (stmt_) sqlite3_finalize(stmt_);
}

statement::statement(statement&& o) noexcept : db_(o.db_), stmt_(std::exchange(o.stmt_, nullptr)) {}

statement& statement::bind(int index, std::string_view text) {
  const int rc = sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  if (rc != SQLITE_OK) db_->fail(rc, "cannot bind a catalog parameter");
  return *this;
}

statement& statement::bind(int index, std::int64_t value) {
  const int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK) db_->fail(rc, "cannot bind a catalog parameter");
  return *this;
}

statement& statement::bind(int index, double value) {
  const int rc = sqlite3_bind_double(stmt_, index, value);
  if (rc != SQLITE_OK) db_->fail(rc, "cannot bind a catalog parameter");
  return *this;
}

statement& statement::bind_null(int index) {
  const int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK) db_->fail(rc, "cannot bind a catalog parameter");
  return *this;
}

bool statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  db_->fail(rc, "catalog query failed");
}

void statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

bool statement::is_null(int column) const { return sqlite3_column_type(stmt_, column) == SQLITE_NULL; }

std::string statement::text(int column) const {
  const auto* p = sqlite3_column_text(stmt_, column);
  if (!p) return {};
  return std::string(reinterpret_cast<const char*>(p),
                     static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::int64_t statement::integer(int column) const { return sqlite3_column_int64(stmt_, column); }

double statement::real(int column) const { return sqlite3_column_double(stmt_, column); }

int statement::columns() const { return sqlite3_column_count(stmt_); }

sql_value statement::value(int column) const {
  switch (sqlite3_column_type(stmt_, column)) {
    case SQLITE_NULL:
      return std::monostate{};
    case SQLITE_INTEGER:
      return integer(column);
    case SQLITE_FLOAT:
      return real(column);
    default:
      return text(column);
  }
}

transaction::transaction(database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

transaction::~transaction() {
  if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

}  // namespace mediagate::catalog

namespace mediagate::catalog {
namespace {

// "$12" → "?12": SQLite's numbered parameters. The catalog's SQL has no '$' anywhere else.
std::string sqlite_placeholders(std::string_view sql) {
  std::string out;
  out.reserve(sql.size());
  for (std::size_t i = 0; i < sql.size(); ++i) {
    const bool numbered = sql[i] == '$' && i + 1 < sql.size() && sql[i + 1] >= '0' && sql[i + 1] <= '9';
    out += numbered ? '?' : sql[i];
  }
  return out;
}

}  // namespace

sqlite_connection::sqlite_connection(const std::string& path)
    : owned_(std::make_unique<database>(path)), db_(owned_.get()), path_(path) {}

sqlite_connection::sqlite_connection(database& db) : db_(&db), path_("sqlite") {}

void sqlite_connection::exec(std::string_view script) { db_->exec(script); }

statement sqlite_connection::prepare_bound(std::string_view sql, std::span<const sql_value> params) {
  auto s = db_->prepare(sqlite_placeholders(sql));
  int index = 1;
  for (const auto& p : params) {
    if (const auto* text = std::get_if<std::string>(&p))
      s.bind(index, std::string_view(*text));
    else if (const auto* i = std::get_if<std::int64_t>(&p))
      s.bind(index, *i);
    else if (const auto* d = std::get_if<double>(&p))
      s.bind(index, *d);
    else
      s.bind_null(index);
    ++index;
  }
  return s;
}

std::vector<sql_row> sqlite_connection::query(std::string_view sql, std::span<const sql_value> params) {
  auto s = prepare_bound(sql, params);
  std::vector<sql_row> rows;
  while (s.step()) {
    sql_row row;
    const int n = s.columns();
    row.values.reserve(static_cast<std::size_t>(n));
    for (int c = 0; c < n; ++c) row.values.push_back(s.value(c));
    rows.push_back(std::move(row));
  }
  return rows;
}

std::int64_t sqlite_connection::run(std::string_view sql, std::span<const sql_value> params) {
  prepare_bound(sql, params).run();
  return db_->changes();
}

void sqlite_connection::begin() { db_->exec("BEGIN IMMEDIATE"); }

void sqlite_connection::commit() { db_->exec("COMMIT"); }

void sqlite_connection::rollback() noexcept {
  sqlite3_exec(db_->handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void sqlite_connection::fail(const std::string& message) const { throw sqlite_error(0, message); }

}  // namespace mediagate::catalog
