#include "catalog/catalog.hpp"

#include <sqlite3.h>

#include <array>
#include <ctime>
#include <memory>
#include <random>

#include "catalog/migrations.hpp"

namespace mediagate::catalog {
namespace {

constexpr std::string_view kColumns =
    "id, key, title, content_type, size, etag, created, missing, duration, width, height, poster_key, "
    "probed_etag, probe_error, visibility";

media_item read_item(const statement& s) {
  media_item m;
  m.id = s.text(0);
  m.key = s.text(1);
  m.title = s.text(2);
  m.content_type = s.text(3);
  m.size = static_cast<std::uint64_t>(s.integer(4));
  m.etag = s.text(5);
  m.created = s.integer(6);
  m.missing = s.integer(7) != 0;
  if (!s.is_null(8)) m.duration = s.real(8);
  if (!s.is_null(9)) m.width = static_cast<int>(s.integer(9));
  if (!s.is_null(10)) m.height = static_cast<int>(s.integer(10));
  m.poster_key = s.text(11);
  m.probed_etag = s.text(12);
  m.probe_error = s.text(13);
  m.visibility = s.text(14);
  return m;
}

// LIKE with the user's text taken literally: %, _ and the escape character itself are escaped.
std::string like_contains(std::string_view text) {
  std::string out = "%";
  for (char c : text) {
    if (c == '%' || c == '_' || c == '\\') out += '\\';
    out += c;
  }
  out += '%';
  return out;
}

}  // namespace

id_source random_ids() {
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  auto mutex = std::make_shared<std::mutex>();
  return [engine, mutex] {
    static constexpr std::string_view kAlphabet =
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    std::uniform_int_distribution<std::size_t> pick(0, kAlphabet.size() - 1);
    std::string id(10, '0');
    std::lock_guard lock(*mutex);
    for (auto& c : id) c = kAlphabet[pick(*engine)];  // 62^10 ≈ 8·10^17: collisions are retried anyway
    return id;
  };
}

std::optional<std::string> sqlite_path_from_url(std::string_view url) {
  if (url.starts_with("sqlite://"))
    url.remove_prefix(9);
  else if (url.starts_with("sqlite:"))
    url.remove_prefix(7);
  else if (url.find("://") != std::string_view::npos)
    return std::nullopt;
  if (url.empty()) return std::nullopt;
  return std::string(url);
}

catalog::catalog(const std::string& path, id_source ids, std::function<std::int64_t()> now)
    : db_(path), path_(path), ids_(std::move(ids)), now_(std::move(now)) {
  if (!now_) now_ = [] { return static_cast<std::int64_t>(std::time(nullptr)); };
  sqlite3_busy_timeout(db_.handle(), 5000);  // another process writing: wait for it rather than fail
  db_.exec("PRAGMA journal_mode = WAL");
  db_.exec("PRAGMA synchronous = NORMAL");  // WAL + NORMAL: durable across crashes of the process
  migrate(db_);
}

int catalog::schema_version() {
  std::lock_guard lock(mutex_);
  return mediagate::catalog::schema_version(db_);
}

std::optional<media_item> catalog::get_where(std::string_view column, std::string_view value) {
  auto s =
      db_.prepare("SELECT " + std::string(kColumns) + " FROM items WHERE " + std::string(column) + " = ?");
  s.bind(1, value);
  if (!s.step()) return std::nullopt;
  return read_item(s);
}

std::optional<media_item> catalog::get(std::string_view id) {
  std::lock_guard lock(mutex_);
  return get_where("id", id);
}

std::optional<media_item> catalog::get_by_key(std::string_view key) {
  std::lock_guard lock(mutex_);
  return get_where("key", key);
}

list_page catalog::list(const list_query& q) {
  std::string where = " WHERE 1";
  if (!q.include_missing) where += " AND missing = 0";
  if (!q.kind.empty()) where += " AND content_type LIKE ? ESCAPE '\\'";
  if (!q.title_contains.empty()) where += " AND title LIKE ? ESCAPE '\\'";
  auto bind_filters = [&](statement& s) {
    int i = 1;
    if (!q.kind.empty()) s.bind(i++, like_contains(q.kind + "/").substr(1));  // "video/%"
    if (!q.title_contains.empty()) s.bind(i++, like_contains(q.title_contains));
    return i;
  };
  std::lock_guard lock(mutex_);
  list_page out;
  const auto page = std::max<std::size_t>(q.page, 1);
  if (q.visible) {
    // Which items a client may see depends on rules outside the database (prefixes): filter every match here.
    auto s = db_.prepare("SELECT " + std::string(kColumns) + " FROM items" + where +
                         " ORDER BY created DESC, key");
    bind_filters(s);
    const auto skip = (page - 1) * q.per_page;
    while (s.step()) {
      auto item = read_item(s);
      if (!q.visible(item)) continue;
      if (out.total >= skip && out.items.size() < q.per_page) out.items.push_back(std::move(item));
      ++out.total;
    }
    return out;
  }
  auto count = db_.prepare("SELECT COUNT(*) FROM items" + where);
  bind_filters(count);
  count.step();
  out.total = static_cast<std::uint64_t>(count.integer(0));
  auto s = db_.prepare("SELECT " + std::string(kColumns) + " FROM items" + where +
                       " ORDER BY created DESC, key LIMIT ? OFFSET ?");
  const int next = bind_filters(s);
  s.bind(next, static_cast<std::int64_t>(q.per_page));
  s.bind(next + 1, static_cast<std::int64_t>((page - 1) * q.per_page));
  while (s.step()) out.items.push_back(read_item(s));
  return out;
}

std::vector<media_item> catalog::all() {
  std::lock_guard lock(mutex_);
  std::vector<media_item> out;
  auto s = db_.prepare("SELECT " + std::string(kColumns) + " FROM items ORDER BY key");
  while (s.step()) out.push_back(read_item(s));
  return out;
}

media_item catalog::upsert(const object_facts& f, std::string_view title) {
  std::lock_guard lock(mutex_);
  transaction tx(db_);
  if (auto existing = get_where("key", f.key)) {
    if (existing->etag != f.etag) {
      db_.prepare(
             "UPDATE items SET etag = ?, size = ?, content_type = ?, missing = 0, duration = NULL, width = "
             "NULL, "
             "height = NULL, probed_etag = NULL WHERE id = ?")
          .bind(1, f.etag)
          .bind(2, static_cast<std::int64_t>(f.size))
          .bind(3, f.content_type)
          .bind(4, existing->id)
          .run();
    } else if (existing->missing) {
      db_.prepare("UPDATE items SET missing = 0 WHERE id = ?").bind(1, existing->id).run();
    }
    auto updated = get_where("id", existing->id);
    tx.commit();
    return *updated;
  }
  const std::string name = title.empty() ? title_from_key(f.key) : std::string(title);
  for (int attempt = 0;; ++attempt) {
    const auto id = ids_();
    auto s = db_.prepare(
        "INSERT INTO items (id, key, title, content_type, size, etag, created) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING");
    s.bind(1, id)
        .bind(2, f.key)
        .bind(3, name)
        .bind(4, f.content_type)
        .bind(5, static_cast<std::int64_t>(f.size));
    s.bind(6, f.etag).bind(7, now_());
    s.run();
    if (db_.changes() == 1) {
      auto inserted = get_where("id", id);
      tx.commit();
      return *inserted;
    }
    if (attempt >= 8) throw sqlite_error(0, "could not find an unused item id");
  }
}

bool catalog::set_probe(std::string_view id, std::string_view etag, const probe_facts& f) {
  std::lock_guard lock(mutex_);
  auto s = db_.prepare(
      "UPDATE items SET duration = ?, width = ?, height = ?, poster_key = ?, probe_error = ?, "
      "probed_etag = etag WHERE id = ? AND etag = ?");
  s.bind(1, f.duration).bind(2, f.width).bind(3, f.height);
  if (f.poster_key.empty())
    s.bind_null(4);
  else
    s.bind(4, f.poster_key);
  if (f.error.empty())
    s.bind_null(5);
  else
    s.bind(5, f.error);
  s.bind(6, id).bind(7, etag);
  s.run();
  return db_.changes() == 1;
}

bool catalog::set_title(std::string_view id, std::string_view title) {
  std::lock_guard lock(mutex_);
  db_.prepare("UPDATE items SET title = ? WHERE id = ?").bind(1, title).bind(2, id).run();
  return db_.changes() == 1;
}

bool catalog::set_visibility(std::string_view id, std::string_view visibility) {
  std::lock_guard lock(mutex_);
  db_.prepare("UPDATE items SET visibility = ? WHERE id = ?").bind(1, visibility).bind(2, id).run();
  return db_.changes() == 1;
}

std::vector<std::pair<std::string, std::string>> catalog::visibility_overrides() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> out;
  auto s = db_.prepare("SELECT key, visibility FROM items WHERE visibility != 'inherit'");
  while (s.step()) out.emplace_back(s.text(0), s.text(1));
  return out;
}

bool catalog::set_missing(std::string_view id, bool missing) {
  std::lock_guard lock(mutex_);
  db_.prepare("UPDATE items SET missing = ? WHERE id = ?").bind(1, missing ? 1 : 0).bind(2, id).run();
  return db_.changes() == 1;
}

bool catalog::remove(std::string_view id) {
  std::lock_guard lock(mutex_);
  db_.prepare("DELETE FROM items WHERE id = ?").bind(1, id).run();
  return db_.changes() == 1;
}

}  // namespace mediagate::catalog
