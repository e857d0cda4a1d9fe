#pragma once
// The media catalog: items by id and by storage key, paged listings with filters, and the updates that
// scans, uploads, probes and the API make. One implementation over a SQL connection (sql.hpp): SQLite, the
// embedded default, or PostgreSQL for several nodes that share the catalog (postgres.hpp). Every method is
// synchronous and thread-safe.
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/media_item.hpp"
#include "catalog/sql.hpp"

namespace mediagate::catalog {

// What is known of an object in storage when it is added or updated.
struct object_facts {
  std::string key;
  std::string content_type;
  std::uint64_t size = 0;
  std::string etag;
};

struct probe_facts {
  std::optional<double> duration;
  std::optional<int> width, height;
  std::string poster_key;
  std::string error;  // non-empty: the probe failed, and this is why (shown by the API)
};

struct list_query {
  std::size_t page = 1;  // 1-based
  std::size_t per_page = 50;
  std::string kind;            // "", "video", "audio" or "image"
  std::string title_contains;  // case-insensitive for ASCII
  bool include_missing = false;
  std::function<bool(const media_item&)> visible;  // set: only the items it accepts (private ones hidden)
};

struct list_page {
  std::vector<media_item> items;
  std::uint64_t total = 0;  // items matching the query over all pages
};

// Makes a new item id (10 random base62 characters by default; tests inject their own).
using id_source = std::function<std::string()>;
id_source random_ids();

// "sqlite:PATH" or a plain PATH → the database path; nullopt for another scheme.
std::optional<std::string> sqlite_path_from_url(std::string_view url);

class catalog {
 public:
  // Opens the catalog at `url` and applies pending migrations: "postgres://USER@HOST:PORT/DB?..." (or
  // postgresql://), else "sqlite:PATH" or a PATH, created if needed (WAL mode). Throws sqlite_error,
  // pg_error, or catalog_unavailable when PostgreSQL cannot be reached.
  explicit catalog(const std::string& url, id_source ids = random_ids(),
                   std::function<std::int64_t()> now = {});
  ~catalog();

  std::optional<media_item> get(std::string_view id);
  std::optional<media_item> get_by_key(std::string_view key);
  list_page list(const list_query& q);
  std::vector<media_item> all();  // every item, missing ones too (for scans)

  // Adds the object, or updates the item that has its key: clears `missing`, and when the ETag changed,
  // takes the new size and type and marks the item for probing again. `title` names new items only
  // (empty: from the key). Returns the item as stored.
  media_item upsert(const object_facts& facts, std::string_view title = {});
  // Records probe results, unless the item changed (its ETag is no longer `etag`) meanwhile.
  bool set_probe(std::string_view id, std::string_view etag, const probe_facts& facts);
  // Claims the probe of version `etag` of item `id` for `owner` (one process), so that of several processes
  // or nodes that want to probe it only one does: true when the item still needs that probe and nobody else
  // holds a claim younger than `stale_after` seconds (a prober that died leaves a claim that expires).
  bool claim_probe(std::string_view id, std::string_view etag, std::string_view owner,
                   std::int64_t stale_after);
  // Gives a claim up without a result (the probe was cancelled at shutdown).
  void release_probe(std::string_view id, std::string_view owner);
  bool set_title(std::string_view id, std::string_view title);
  bool set_visibility(std::string_view id, std::string_view visibility);
  // (key, visibility) of every item that does not inherit its visibility from the prefix rules.
  std::vector<std::pair<std::string, std::string>> visibility_overrides();
  bool set_missing(std::string_view id, bool missing);
  bool remove(std::string_view id);

  int schema_version();
  const std::string& path() const { return path_; }
  std::string describe() const;                                            // for logs: no password
  bool shared() const { return db_->dialect() == sql_dialect::postgres; }  // other nodes may use it

 private:
  std::optional<media_item> get_where(std::string_view column, std::string_view value);

  // One connection behind a mutex rather than a connection per event-loop thread. SQLite: every statement
  // takes microseconds, SQLite serialises writers anyway, and one connection keeps one place to reason about
  // transactions; other processes (`mediagate scan` beside a server) coordinate through WAL and the busy
  // timeout. PostgreSQL: a statement is one round trip on loopback or the LAN (~0.1-0.5 ms), and the
  // catalog is read per API request, not per media request, so one connection is not the bottleneck; it
  // keeps the connections per node at two (this one and the change listener), which matters when many
  // nodes share a server with a max_connections of 100.
  std::mutex mutex_;
  std::unique_ptr<sql_connection> db_;
  std::string path_;
  id_source ids_;
  std::function<std::int64_t()> now_;
};

}  // namespace mediagate::catalog
