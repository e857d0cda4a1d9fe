#pragma once
// The little the catalog needs from a SQL database, so that one catalog (catalog.cpp) and one migration
// runner (migrations.cpp) run on SQLite (the embedded default) and on PostgreSQL (several nodes sharing one
// catalog). Statements use PostgreSQL's numbered placeholders ($1, $2, ...); the SQLite connection turns
// them into SQLite's ?1, ?2. Rows are read whole into values, so no backend type leaks out of here.
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace mediagate::catalog {

// The database cannot be reached (PostgreSQL down, connection lost and not restored): not the request's
// fault and not a broken database either; the API answers 503 with this message.
class catalog_unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

using sql_value = std::variant<std::monostate, std::int64_t, double, std::string>;

// A parameter from an optional: NULL when empty.
template <class T>
sql_value sql_opt(const std::optional<T>& v) {
  if (!v) return std::monostate{};
  if constexpr (std::is_floating_point_v<T>)
    return static_cast<double>(*v);
  else
    return static_cast<std::int64_t>(*v);
}
inline sql_value sql_text_or_null(std::string_view s) {
  if (s.empty()) return std::monostate{};
  return std::string(s);
}

// One result row. PostgreSQL answers in text and SQLite in its storage classes: the accessors convert.
struct sql_row {
  std::vector<sql_value> values;

  bool is_null(std::size_t column) const;
  std::string text(std::size_t column) const;  // "" for NULL
  std::int64_t integer(std::size_t column) const;
  double real(std::size_t column) const;
};

// A change to an item that other nodes may have cached, as announced to them (sql_connection::notify_change).
struct item_change {
  std::string key;
  std::string old_etag;  // the version that is gone, which other nodes may still cache; "" when none is
  std::uint64_t old_size = 0;
  bool visibility = false;  // the item's visibility may have changed (set, or the item deleted)
};

// The notification's payload and back: "<v or ->\n<old etag>\n<old size>\n<key>" (ETags hold no newline;
// keys may).
std::string change_payload(const item_change& change);
std::optional<item_change> parse_change_payload(std::string_view payload);

enum class sql_dialect { sqlite, postgres };

// One connection. Not thread-safe: the catalog serialises its use.
class sql_connection {
 public:
  virtual ~sql_connection() = default;
  virtual sql_dialect dialect() const = 0;

  // Runs one or more statements without parameters or rows (migrations, BEGIN/COMMIT).
  virtual void exec(std::string_view script) = 0;
  virtual std::vector<sql_row> query(std::string_view sql, std::span<const sql_value> params = {}) = 0;
  // Runs a statement that returns no rows; the number of rows it changed.
  virtual std::int64_t run(std::string_view sql, std::span<const sql_value> params = {}) = 0;

  // A write transaction: SQLite takes the write lock at once (BEGIN IMMEDIATE), so that a read followed by a
  // write in it cannot deadlock with another process; PostgreSQL uses READ COMMITTED.
  virtual void begin() = 0;
  virtual void commit() = 0;
  virtual void rollback() noexcept = 0;

  // Inside a transaction: waits until no other process changes the schema (PostgreSQL: an advisory lock
  // held until the transaction ends; SQLite: BEGIN IMMEDIATE already holds the write lock).
  virtual void lock_schema() = 0;

  // Inside a transaction: tells the other nodes that share the database, once it commits, that the item
  // with this key changed (PostgreSQL NOTIFY); nothing for SQLite, where no other node caches it.
  // `old_etag`/`old_size`: the version that is gone (replaced, deleted, vanished), whose cached copies may
  // go too; "" and 0 when no version is gone (a new key, a visibility change). Only changes marked
  // `visibility` make the other nodes read the item's visibility again.
  virtual void notify_change(const item_change& change) = 0;

  // Throws this backend's error type (sqlite_error, or a PostgreSQL error) with `message`.
  [[noreturn]] virtual void fail(const std::string& message) const = 0;

  // Where the database is, for logs (never a password).
  virtual std::string describe() const = 0;
};

// begin() ... commit(), rolled back when destroyed uncommitted (an exception went through).
class sql_transaction {
 public:
  explicit sql_transaction(sql_connection& c) : c_(c) { c_.begin(); }
  ~sql_transaction() {
    if (!done_) c_.rollback();
  }
  sql_transaction(const sql_transaction&) = delete;
  sql_transaction& operator=(const sql_transaction&) = delete;
  void commit() {
    c_.commit();
    done_ = true;
  }

 private:
  sql_connection& c_;
  bool done_ = false;
};

}  // namespace mediagate::catalog
