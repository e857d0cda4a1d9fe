#include "catalog/catalog.hpp"

#include <sqlite3.h>

#include <array>
#include <ctime>
#include <memory>
#include <random>
#include <stdexcept>

#include "catalog/migrations.hpp"
#include "catalog/postgres.hpp"
#include "catalog/sqlite.hpp"

namespace mediagate::catalog {
namespace {

constexpr std::string_view kColumns =
    "id, key, title, content_type, size, etag, created, missing, duration, width, height, poster_key, "
    "probed_etag, probe_error, visibility";

media_item read_item(const sql_row& s) {
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

// SQLite's LIKE ignores ASCII case; PostgreSQL's ILIKE does the same (and more: any letter's case).
std::string like_operator(const sql_connection& db) {
  return db.dialect() == sql_dialect::postgres ? "ILIKE" : "LIKE";
}

std::unique_ptr<sql_connection> open_connection(const std::string& url) {
  if (is_postgres_url(url)) return std::make_unique<pg_connection>(url);
  auto path = sqlite_path_from_url(url);
  if (!path)
    throw std::invalid_argument("the catalog must be sqlite:PATH, a file path or postgres://..., not '" +
                                url + "'");
  auto db = std::make_unique<sqlite_connection>(*path);
  sqlite3_busy_timeout(db->db().handle(), 5000);  // another process writing: wait for it rather than fail
  db->exec("PRAGMA journal_mode = WAL");
  db->exec("PRAGMA synchronous = NORMAL");  // WAL + NORMAL: durable across crashes of the process
  return db;
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

catalog::catalog(const std::string& url, id_source ids, std::function<std::int64_t()> now)
    : db_(open_connection(url)), path_(url), ids_(std::move(ids)), now_(std::move(now)) {
  if (!now_) now_ = [] { return static_cast<std::int64_t>(std::time(nullptr)); };
  migrate(*db_);
}

catalog::~catalog() = default;

std::string catalog::describe() const { return db_->describe(); }

int catalog::schema_version() {
  std::lock_guard lock(mutex_);
  return mediagate::catalog::schema_version(*db_);
}

std::optional<media_item> catalog::get_where(std::string_view column, std::string_view value) {
  const sql_value params[] = {std::string(value)};
  auto rows = db_->query(
      "SELECT " + std::string(kColumns) + " FROM items WHERE " + std::string(column) + " = $1", params);
  if (rows.empty()) return std::nullopt;
  return read_item(rows.front());
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
  std::lock_guard lock(mutex_);
  const auto like = " " + like_operator(*db_) + " ";
  std::vector<sql_value> params;
  std::string where = " WHERE 1 = 1";
  if (!q.include_missing) where += " AND missing = 0";
  if (!q.kind.empty()) {
    params.emplace_back(like_contains(q.kind + "/").substr(1));  // "video/%"
    where += " AND content_type" + like + "$" + std::to_string(params.size()) + " ESCAPE '\\'";
  }
  if (!q.title_contains.empty()) {
    params.emplace_back(like_contains(q.title_contains));
    where += " AND title" + like + "$" + std::to_string(params.size()) + " ESCAPE '\\'";
  }
  list_page out;
  const auto page = std::max<std::size_t>(q.page, 1);
  if (q.visible) {
    // Which items a client may see depends on rules outside the database (prefixes): filter every match here.
    auto rows = db_->query(
        "SELECT " + std::string(kColumns) + " FROM items" + where + " ORDER BY created DESC, key", params);
    const auto skip = (page - 1) * q.per_page;
    for (const auto& row : rows) {
      auto item = read_item(row);
      if (!q.visible(item)) continue;
      if (out.total >= skip && out.items.size() < q.per_page) out.items.push_back(std::move(item));
      ++out.total;
    }
    return out;
  }
  auto count = db_->query("SELECT COUNT(*) FROM items" + where, params);
  out.total = count.empty() ? 0 : static_cast<std::uint64_t>(count.front().integer(0));
  const auto n = params.size();
  params.emplace_back(static_cast<std::int64_t>(q.per_page));
  params.emplace_back(static_cast<std::int64_t>((page - 1) * q.per_page));
  auto rows = db_->query("SELECT " + std::string(kColumns) + " FROM items" + where +
                             " ORDER BY created DESC, key LIMIT $" + std::to_string(n + 1) + " OFFSET $" +
                             std::to_string(n + 2),
                         params);
  for (const auto& row : rows) out.items.push_back(read_item(row));
  return out;
}

std::vector<media_item> catalog::all() {
  std::lock_guard lock(mutex_);
  std::vector<media_item> out;
  for (const auto& row : db_->query("SELECT " + std::string(kColumns) + " FROM items ORDER BY key"))
    out.push_back(read_item(row));
  return out;
}

media_item catalog::upsert(const object_facts& f, std::string_view title) {
  std::lock_guard lock(mutex_);
  sql_transaction tx(*db_);
  const std::string name = title.empty() ? title_from_key(f.key) : std::string(title);
  for (int attempt = 0;; ++attempt) {
    if (auto existing = get_where("key", f.key)) {
      // Conditional updates: of several nodes that record the same change, one changes the row and the
      // others find nothing left to do (and announce nothing).
      const sql_value changed[] = {f.etag, static_cast<std::int64_t>(f.size), f.content_type, existing->id};
      const auto n = db_->run(
          "UPDATE items SET etag = $1, size = $2, content_type = $3, missing = 0, duration = NULL, width = "
          "NULL, "
          "height = NULL, probed_etag = NULL, probe_owner = NULL, probe_claimed_at = NULL "
          "WHERE id = $4 AND etag <> $1",
          changed);
      const sql_value id[] = {existing->id};
      const auto back =
          n == 0 ? db_->run("UPDATE items SET missing = 0 WHERE id = $1 AND missing <> 0", id) : 0;
      // A replaced version is gone (its cached copies may go); an object back from missing is the same one.
      if (n > 0)
        db_->notify_change({f.key, existing->etag, existing->size, false});
      else if (back > 0)
        db_->notify_change({f.key, "", 0, false});
      auto updated = get_where("id", existing->id);
      tx.commit();
      return *updated;
    }
    // No conflict target: a clash on the id (a random id taken) and on the key (another process or node
    // inserted it since the SELECT above) both do nothing, and the loop looks again. PostgreSQL's ON CONFLICT
    // waits for the other transaction's commit, so the next SELECT sees its row.
    const auto id = ids_();
    const sql_value row[] = {id,     f.key, name, f.content_type, static_cast<std::int64_t>(f.size),
                             f.etag, now_()};
    const auto inserted = db_->run(
        "INSERT INTO items (id, key, title, content_type, size, etag, created) VALUES ($1, $2, $3, $4, $5, "
        "$6, $7) "
        "ON CONFLICT DO NOTHING",
        row);
    if (inserted == 1) {
      db_->notify_change({f.key, "", 0, false});
      auto item = get_where("id", id);
      tx.commit();
      return *item;
    }
    if (attempt >= 8) db_->fail("could not find an unused item id");
  }
}

bool catalog::set_probe(std::string_view id, std::string_view etag, const probe_facts& f) {
  std::lock_guard lock(mutex_);
  const sql_value params[] = {
      sql_opt(f.duration),       sql_opt(f.width), sql_opt(f.height), sql_text_or_null(f.poster_key),
      sql_text_or_null(f.error), std::string(id),  std::string(etag)};
  return db_->run(
             "UPDATE items SET duration = $1, width = $2, height = $3, poster_key = $4, probe_error = $5, "
             "probed_etag = etag, probe_owner = NULL, probe_claimed_at = NULL WHERE id = $6 AND etag = $7",
             params) == 1;
}

bool catalog::claim_probe(std::string_view id, std::string_view etag, std::string_view owner,
                          std::int64_t stale_after) {
  std::lock_guard lock(mutex_);
  const auto now = now_();
  const sql_value params[] = {std::string(owner), now, std::string(id), std::string(etag), now - stale_after};
  // One statement, so that it is atomic on both databases: of two processes that claim at once, the second
  // finds the first one's claim (PostgreSQL re-checks the WHERE clause on the row the first one updated).
  return db_->run(
             "UPDATE items SET probe_owner = $1, probe_claimed_at = $2 WHERE id = $3 AND etag = $4 AND "
             "missing = 0 "
             "AND (probed_etag IS NULL OR probed_etag <> etag) "
             "AND (probe_owner IS NULL OR probe_owner = $1 OR probe_claimed_at IS NULL OR probe_claimed_at < "
             "$5)",
             params) == 1;
}

void catalog::release_probe(std::string_view id, std::string_view owner) {
  std::lock_guard lock(mutex_);
  const sql_value params[] = {std::string(id), std::string(owner)};
  db_->run("UPDATE items SET probe_owner = NULL, probe_claimed_at = NULL WHERE id = $1 AND probe_owner = $2",
           params);
}

bool catalog::set_title(std::string_view id, std::string_view title) {
  std::lock_guard lock(mutex_);
  const sql_value params[] = {std::string(title), std::string(id)};
  return db_->run("UPDATE items SET title = $1 WHERE id = $2", params) == 1;
}

bool catalog::set_visibility(std::string_view id, std::string_view visibility) {
  std::lock_guard lock(mutex_);
  sql_transaction tx(*db_);
  const sql_value params[] = {std::string(visibility), std::string(id)};
  auto rows = db_->query("UPDATE items SET visibility = $1 WHERE id = $2 RETURNING key", params);
  if (rows.empty()) return false;
  db_->notify_change({rows.front().text(0), "", 0, true});  // the same version: nothing of it is gone
  tx.commit();
  return true;
}

std::vector<std::pair<std::string, std::string>> catalog::visibility_overrides() {
  std::lock_guard lock(mutex_);
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& row : db_->query("SELECT key, visibility FROM items WHERE visibility <> 'inherit'"))
    out.emplace_back(row.text(0), row.text(1));
  return out;
}

namespace {
// Tells the other nodes about a row a statement changed: `row` is its "RETURNING key, etag, size".
void notify_gone_version(sql_connection& db, const sql_row& row, bool removed) {
  db.notify_change({row.text(0), row.text(1), static_cast<std::uint64_t>(row.integer(2)), removed});
}
}  // namespace

bool catalog::set_missing(std::string_view id, bool missing) {
  std::lock_guard lock(mutex_);
  sql_transaction tx(*db_);
  const sql_value params[] = {static_cast<std::int64_t>(missing ? 1 : 0), std::string(id)};
  auto rows = db_->query("UPDATE items SET missing = $1 WHERE id = $2 RETURNING key, etag, size", params);
  if (rows.empty()) return false;
  notify_gone_version(*db_, rows.front(), false);
  tx.commit();
  return true;
}

bool catalog::remove(std::string_view id) {
  std::lock_guard lock(mutex_);
  sql_transaction tx(*db_);
  const sql_value params[] = {std::string(id)};
  auto rows = db_->query("DELETE FROM items WHERE id = $1 RETURNING key, etag, size", params);
  if (rows.empty()) return false;
  notify_gone_version(*db_, rows.front(), true);
  tx.commit();
  return true;
}

}  // namespace mediagate::catalog
