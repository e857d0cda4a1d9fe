#pragma once
// The media catalog on SQLite: items by id and by storage key, paged listings with filters, and the
// updates that scans, uploads, probes and the API make. Every method is synchronous and thread-safe.
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "catalog/media_item.hpp"
#include "catalog/sqlite.hpp"

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
  // Opens or creates the database at `path` (WAL mode) and applies pending migrations. Throws sqlite_error.
  explicit catalog(const std::string& path, id_source ids = random_ids(),
                   std::function<std::int64_t()> now = {});

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
  bool set_title(std::string_view id, std::string_view title);
  bool set_visibility(std::string_view id, std::string_view visibility);
  // (key, visibility) of every item that does not inherit its visibility from the prefix rules.
  std::vector<std::pair<std::string, std::string>> visibility_overrides();
  bool set_missing(std::string_view id, bool missing);
  bool remove(std::string_view id);

  int schema_version();
  const std::string& path() const { return path_; }

 private:
  std::optional<media_item> get_where(std::string_view column, std::string_view value);

  // One connection behind a mutex rather than a connection per event-loop thread: every statement here
  // takes microseconds, SQLite serialises writers anyway, and one connection keeps one statement cache and
  // one place to reason about transactions. Other processes (`mediagate scan` beside a server) coordinate
  // through WAL and the busy timeout.
  std::mutex mutex_;
  database db_;
  std::string path_;
  id_source ids_;
  std::function<std::int64_t()> now_;
};

}  // namespace mediagate::catalog
