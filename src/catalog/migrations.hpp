#pragma once
// Versioned schema migrations of the catalog, applied in order at start-up. Each migration is written in
// two dialects (SQLite and PostgreSQL) and runs once, inside a transaction that also records it in
// schema_migrations and holds the schema lock (SQLite's write lock, PostgreSQL's advisory lock), so that
// processes starting together (the server and `mediagate scan`, or several nodes on one PostgreSQL) never
// apply one twice. Never edit a released migration: add the next one.
#include <span>
#include <string_view>

#include "catalog/sql.hpp"
#include "catalog/sqlite.hpp"

namespace mediagate::catalog {

struct migration {
  int version;
  std::string_view name;
  std::string_view sql;       // SQLite
  std::string_view postgres;  // the same change for PostgreSQL
};

// Every migration, in version order.
std::span<const migration> migrations();

// The highest applied version (0 for a new database).
int schema_version(sql_connection& db);
int schema_version(database& db);

// Applies the migrations above the database's version, up to `target` (default: all). Throws (the backend's
// error type) when the database comes from a newer mediagate (its version is above every migration we know).
void migrate(sql_connection& db, int target = -1);
void migrate(database& db, int target = -1);

}  // namespace mediagate::catalog
