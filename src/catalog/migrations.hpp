#pragma once
// Versioned schema migrations of the catalog, applied in order at start-up. Each runs once, inside a
// transaction that also records it in schema_migrations, so that two processes starting together (the
// server and `mediagate scan`) never apply one twice. Never edit a released migration: add the next one.
#include <span>
#include <string_view>

#include "catalog/sqlite.hpp"

namespace mediagate::catalog {

struct migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// Every migration, in version order.
std::span<const migration> migrations();

// The highest applied version (0 for a new database).
int schema_version(database& db);

// Applies the migrations above the database's version, up to `target` (default: all). Throws when the
// database comes from a newer mediagate (its version is above every migration we know).
void migrate(database& db, int target = -1);

}  // namespace mediagate::catalog
