#pragma once
// Thin RAII wrappers over SQLite's C API: one owner per sqlite3* and per prepared statement, errors as
// exceptions that carry SQLite's message (they mean a broken or full disk, never bad user input).
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "catalog/sql.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace mediagate::catalog {

class sqlite_error : public std::runtime_error {
 public:
  sqlite_error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const { return code_; }

 private:
  int code_;
};

class statement;

// One open database connection.
class database {
 public:
  // Opens (creating if needed) the database file at `path`; throws sqlite_error.
  explicit database(const std::string& path);
  ~database();
  database(database&& o) noexcept;
  database& operator=(database&&) = delete;
  database(const database&) = delete;
  database& operator=(const database&) = delete;

  // Runs one or more statements that return no rows.
  void exec(std::string_view sql);
  statement prepare(std::string_view sql);
  std::int64_t changes() const;
  sqlite3* handle() const { return db_; }
  [[noreturn]] void fail(int code, std::string_view context) const;

 private:
  sqlite3* db_ = nullptr;
};

// One prepared statement. Bind parameters by 1-based index, then step() through the rows.
class statement {
 public:
  statement(const database& db, sqlite3_stmt* s) : db_(&db), stmt_(s) {}
  ~statement();
  statement(statement&& o) noexcept;
  statement& operator=(statement&&) = delete;
  statement(const statement&) = delete;
  statement& operator=(const statement&) = delete;

  statement& bind(int index, std::string_view text);
  statement& bind(int index, std::int64_t value);
  statement& bind(int index, double value);
  statement& bind_null(int index);
  template <class T>
  statement& bind(int index, const std::optional<T>& value) {
    return value ? bind(index, *value) : bind_null(index);
  }
  statement& bind(int index, int value) { return bind(index, static_cast<std::int64_t>(value)); }

  // True while there is a row to read; false when done.
  bool step();
  // Runs a statement that returns no rows.
  void run() {
    while (step()) {
    }
  }
  void reset();

  bool is_null(int column) const;
  std::string text(int column) const;
  std::int64_t integer(int column) const;
  double real(int column) const;
  int columns() const;
  sql_value value(int column) const;  // in the column's storage class

 private:
  const database* db_;
  sqlite3_stmt* stmt_;
};

// BEGIN IMMEDIATE ... COMMIT, rolled back when destroyed uncommitted (an exception went through).
class transaction {
 public:
  explicit transaction(database& db);
  ~transaction();
  transaction(const transaction&) = delete;
  transaction& operator=(const transaction&) = delete;
  void commit();

 private:
  database& db_;
  bool done_ = false;
};

// The catalog's view of a SQLite database (sql.hpp): $N placeholders become ?N.
class sqlite_connection final : public sql_connection {
 public:
  explicit sqlite_connection(const std::string& path);  // opens (creates) the file
  explicit sqlite_connection(database& db);             // uses an open database (migration tests)

  sql_dialect dialect() const override { return sql_dialect::sqlite; }
  void exec(std::string_view script) override;
  std::vector<sql_row> query(std::string_view sql, std::span<const sql_value> params) override;
  std::int64_t run(std::string_view sql, std::span<const sql_value> params) override;
  void begin() override;
  void commit() override;
  void rollback() noexcept override;
  void lock_schema() override {}
  void notify_change(const item_change&) override {}
  [[noreturn]] void fail(const std::string& message) const override;
  std::string describe() const override { return path_; }
  database& db() { return *db_; }

 private:
  statement prepare_bound(std::string_view sql, std::span<const sql_value> params);

  std::unique_ptr<database> owned_;
  database* db_;
  std::string path_;
};

}  // namespace mediagate::catalog
