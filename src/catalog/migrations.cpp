#include "catalog/migrations.hpp"

#include <ctime>

namespace mediagate::catalog {
namespace {

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
)sql"},
    {2, "probe results and posters",
     R"sql(
ALTER TABLE items ADD COLUMN duration REAL;
ALTER TABLE items ADD COLUMN width INTEGER;
ALTER TABLE items ADD COLUMN height INTEGER;
ALTER TABLE items ADD COLUMN poster_key TEXT;
ALTER TABLE items ADD COLUMN probed_etag TEXT;
)sql"},
    {3, "why a probe failed",
     R"sql(
ALTER TABLE items ADD COLUMN probe_error TEXT;
)sql"},
    {4, "per-item visibility",
     R"sql(
ALTER TABLE items ADD COLUMN visibility TEXT NOT NULL DEFAULT 'inherit';
)sql"},
};

void ensure_table(database& db) {
  db.exec(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
      "applied_at INTEGER NOT NULL)");
}

}  // namespace

std::span<const migration> migrations() { return kMigrations; }

int schema_version(database& db) {
  ensure_table(db);
  auto s = db.prepare("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
  s.step();
  return static_cast<int>(s.integer(0));
}

void migrate(database& db, int target) {
  ensure_table(db);
  const int newest = kMigrations[std::size(kMigrations) - 1].version;
  if (target < 0) target = newest;
  if (const int current = schema_version(db); current > newest)
    throw sqlite_error(0, "the catalog has schema version " + std::to_string(current) +
                              ", newer than this mediagate knows (" + std::to_string(newest) +
                              "): upgrade mediagate");
  for (const auto& m : kMigrations) {
    if (m.version > target) break;
    transaction tx(db);  // BEGIN IMMEDIATE: the version is read and written under the write lock
    if (m.version <= schema_version(db)) continue;  // the transaction rolls back: nothing was written
    db.exec(m.sql);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)")
        .bind(1, m.version)
        .bind(2, m.name)
        .bind(3, static_cast<std::int64_t>(std::time(nullptr)))
        .run();
    tx.commit();
  }
}

}  // namespace mediagate::catalog
