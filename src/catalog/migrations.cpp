#include "catalog/migrations.hpp"

#include <ctime>

namespace mediagate::catalog {
namespace {

// PostgreSQL's types are chosen to read back as SQLite's do: 64-bit integers for sizes and times, double
// precision for durations, and keys compared byte by byte (COLLATE "C", SQLite's BINARY), so that listings
// come out in the same order on both.
constexpr migration kMigrations[] = {
    {1, "create items",
     R"sql(
CREATE TABLE items (
  id TEXT PRIMARY KEY,
  key TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  content_type TEXT NOT NULL DEFAULT '',
  size INTEGER NOT NULL DEFAULT 0,
  etag TEXT NOT NULL DEFAULT '',
  created INTEGER NOT NULL,
  missing INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX items_by_created ON items (created DESC, id);
)sql",
     R"sql(
CREATE TABLE items (
  id TEXT COLLATE "C" PRIMARY KEY,
  key TEXT COLLATE "C" NOT NULL UNIQUE,
  title TEXT NOT NULL,
  content_type TEXT NOT NULL DEFAULT '',
  size BIGINT NOT NULL DEFAULT 0,
  etag TEXT NOT NULL DEFAULT '',
  created BIGINT NOT NULL,
  missing INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX items_by_created ON items (created DESC, id);
)sql"},
    {2, "probe results and posters",
     R"sql(
ALTER TABLE items ADD COLUMN duration REAL;
ALTER TABLE items ADD COLUMN width INTEGER;
ALTER TABLE items ADD COLUMN height INTEGER;
ALTER TABLE items ADD COLUMN poster_key TEXT;
ALTER TABLE items ADD COLUMN probed_etag TEXT;
)sql",
     R"sql(
ALTER TABLE items ADD COLUMN duration DOUBLE PRECISION;
ALTER TABLE items ADD COLUMN width INTEGER;
ALTER TABLE items ADD COLUMN height INTEGER;
ALTER TABLE items ADD COLUMN poster_key TEXT;
ALTER TABLE items ADD COLUMN probed_etag TEXT;
)sql"},
    {3, "why a probe failed",
     R"sql(
ALTER TABLE items ADD COLUMN probe_error TEXT;
)sql",
     R"sql(
ALTER TABLE items ADD COLUMN probe_error TEXT;
)sql"},
    {4, "per-item visibility",
     R"sql(
ALTER TABLE items ADD COLUMN visibility TEXT NOT NULL DEFAULT 'inherit';
)sql",
     R"sql(
ALTER TABLE items ADD COLUMN visibility TEXT NOT NULL DEFAULT 'inherit';
)sql"},
    {5, "probe claims (one prober per item across processes and nodes)",
     R"sql(
ALTER TABLE items ADD COLUMN probe_owner TEXT;
ALTER TABLE items ADD COLUMN probe_claimed_at INTEGER;
)sql",
     R"sql(
ALTER TABLE items ADD COLUMN probe_owner TEXT;
ALTER TABLE items ADD COLUMN probe_claimed_at BIGINT;
)sql"},
};

// Inside a transaction that holds the schema lock: PostgreSQL's CREATE TABLE IF NOT EXISTS is not safe
// against a concurrent one (two sessions may both try, and one fails on the catalog's unique index).
void ensure_table(sql_connection& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
      "applied_at BIGINT NOT NULL)");
}

int current_version(sql_connection& db) {
  auto rows = db.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  return rows.empty() ? 0 : static_cast<int>(rows.front().integer(0));
}

}  // namespace

std::span<const migration> migrations() { return kMigrations; }

int schema_version(sql_connection& db) {
  sql_transaction tx(db);
  db.lock_schema();
  ensure_table(db);
  const int version = current_version(db);
  tx.commit();
  return version;
}

void migrate(sql_connection& db, int target) {
  const int newest = kMigrations[std::size(kMigrations) - 1].version;
  if (target < 0) target = newest;
  if (const int current = schema_version(db); current > newest)
    db.fail("the catalog has schema version " + std::to_string(current) +
            ", newer than this mediagate knows (" + std::to_string(newest) + "): upgrade mediagate");
  for (const auto& m : kMigrations) {
    if (m.version > target) break;
    // SQLite: BEGIN IMMEDIATE, so the version is read and written under the write lock. PostgreSQL: the
    // advisory lock, so a node that starts with others waits, then sees the migration applied and skips it.
    sql_transaction tx(db);
    db.lock_schema();
    ensure_table(db);
    if (m.version <= current_version(db)) continue;  // the transaction rolls back: nothing was written
    db.exec(db.dialect() == sql_dialect::postgres ? m.postgres : m.sql);
    const sql_value params[] = {static_cast<std::int64_t>(m.version), std::string(m.name),
                                static_cast<std::int64_t>(std::time(nullptr))};
    db.run("INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)", params);
    tx.commit();
  }
}

int schema_version(database& db) {
  sqlite_connection c(db);
  return schema_version(c);
}

void migrate(database& db, int target) {
  sqlite_connection c(db);
  migrate(c, target);
}

}  // namespace mediagate::catalog
