// The catalog's behaviour on both of its databases: SQLite (a temporary file) and PostgreSQL 15 (a fresh
// database per test in the server that tests/unit/with_postgres.sh starts; its URL in MEDIAGATE_TEST_PG_URL).
// The same tests run on both (CTest catalog_backends_sqlite and catalog_backends_postgres), plus what only
// PostgreSQL has: several nodes on one catalog, change notifications, lost and refused connections.
//
// Under MEDIAGATE_TEST_PG_REQUIRED=1 (set by with_postgres.sh) a missing server fails the PostgreSQL tests
// instead of skipping them.
#include <gtest/gtest.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "catalog/catalog.hpp"
#include "catalog/migrations.hpp"
#include "catalog/postgres.hpp"
#include "catalog/scan.hpp"

namespace mediagate::catalog {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

id_source counting_ids(std::string prefix = "id") {
  auto n = std::make_shared<std::atomic<int>>(0);
  return [n, prefix] { return prefix + std::to_string(n->fetch_add(1)); };
}

storage::listed_object object(std::string key, std::string etag, std::uint64_t size = 100) {
  return {std::move(key), size, 1700000000, std::move(etag)};
}

// One empty catalog database for one test: a SQLite file in a temporary directory, or a new PostgreSQL
// database (dropped afterwards).
class test_database {
 public:
  explicit test_database(const std::string& backend) : backend_(backend) {
    if (backend == "sqlite") {
      std::string pattern = (fs::temp_directory_path() / "catalog-backend-XXXXXX").string();
      dir_ = ::mkdtemp(pattern.data());
      url_ = "sqlite:" + (dir_ / "c.db").string();
      return;
    }
    admin_url_ = env("MEDIAGATE_TEST_PG_URL");
    if (admin_url_.empty()) return;
    std::random_device rd;
    name_ = "t_" + std::to_string(::getpid()) + "_" + std::to_string(rd() % 1000000);
    pg_connection admin(admin_url_);
    admin.exec("CREATE DATABASE " + name_);
    // Same server and credentials, another database: replace the path of the URL.
    const auto slash = admin_url_.find('/', admin_url_.find("://") + 3);
    const auto query = admin_url_.find('?', slash);
    url_ = admin_url_.substr(0, slash + 1) + name_ +
           (query == std::string::npos ? "" : admin_url_.substr(query));
  }
  ~test_database() {
    if (!dir_.empty()) fs::remove_all(dir_);
    if (!name_.empty()) {
      try {
        pg_connection admin(admin_url_);
        admin.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
      } catch (const std::exception& e) {
        ADD_FAILURE() << "cannot drop " << name_ << ": " << e.what();
      }
    }
  }
  bool available() const { return !url_.empty(); }
  const std::string& url() const { return url_; }
  // A connection of its own, to look at the rows.
  std::unique_ptr<sql_connection> connect() const {
    if (backend_ == "sqlite") return std::make_unique<sqlite_connection>(url_.substr(7));
    return std::make_unique<pg_connection>(url_);
  }
  std::int64_t count(const std::string& sql) const { return connect()->query(sql).at(0).integer(0); }

 private:
  std::string backend_, admin_url_, name_, url_;
  fs::path dir_;
};

class backend_test : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    db_ = std::make_unique<test_database>(GetParam());
    if (!db_->available()) {
      if (env("MEDIAGATE_TEST_PG_REQUIRED") == "1")
        FAIL()
            << "MEDIAGATE_TEST_PG_URL is not set but PostgreSQL is required (run through with_postgres.sh)";
      GTEST_SKIP() << "no PostgreSQL: set MEDIAGATE_TEST_PG_URL (tests/unit/with_postgres.sh does)";
    }
  }
  bool postgres() const { return GetParam() == "postgres"; }
  const std::string& url() const { return db_->url(); }

  std::unique_ptr<test_database> db_;
};

TEST_P(backend_test, migrations_apply_once_even_when_nodes_start_together) {
  constexpr int kNodes = 6;
  std::vector<std::thread> nodes;
  std::atomic<int> failures{0};
  for (int i = 0; i < kNodes; ++i)
    nodes.emplace_back([&] {
      try {
        catalog cat(url());
        if (cat.schema_version() != static_cast<int>(migrations().size())) ++failures;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++failures;
      }
    });
  for (auto& t : nodes) t.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(db_->count("SELECT COUNT(*) FROM schema_migrations"), static_cast<int>(migrations().size()));
  EXPECT_EQ(db_->count("SELECT COUNT(DISTINCT version) FROM schema_migrations"),
            static_cast<int>(migrations().size()));
}

TEST_P(backend_test, a_newer_schema_is_refused) {
  { catalog cat(url()); }
  db_->connect()->exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)");
  try {
    catalog again(url());
    ADD_FAILURE() << "a catalog from a newer mediagate was opened";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("upgrade mediagate"), std::string::npos) << e.what();
  }
}

TEST_P(backend_test, upsert_keeps_the_id_and_resets_probes_on_change) {
  catalog cat(url(), counting_ids(), [] { return std::int64_t{1700000000}; });
  auto first = cat.upsert({"v.webm", "video/webm", 10, "\"1\""}, "Custom title");
  EXPECT_EQ(first.id, "id0");
  EXPECT_EQ(first.title, "Custom title");
  EXPECT_EQ(first.created, 1700000000);
  ASSERT_TRUE(cat.set_probe(first.id, "\"1\"", {10.123456789012, 640, 360, ".posters/id0.jpg"}));
  auto probed = *cat.get(first.id);
  EXPECT_FALSE(probed.needs_probe());
  EXPECT_EQ(probed.duration, 10.123456789012);  // doubles read back exactly
  EXPECT_EQ(probed.width, 640);
  EXPECT_EQ(probed.poster_key, ".posters/id0.jpg");
  EXPECT_TRUE(probed.probe_error.empty());

  auto same = cat.upsert({"v.webm", "video/webm", 10, "\"1\""}, "ignored for existing items");
  EXPECT_EQ(same.id, first.id);
  EXPECT_EQ(same.title, "Custom title");
  EXPECT_FALSE(same.needs_probe());

  const std::uint64_t big = 5'000'000'000ull;  // beyond 32 bits
  auto changed = cat.upsert({"v.webm", "video/webm", big, "\"2\""});
  EXPECT_EQ(changed.id, first.id);
  EXPECT_EQ(changed.size, big);
  EXPECT_TRUE(changed.needs_probe());
  EXPECT_FALSE(changed.duration);
  EXPECT_FALSE(cat.set_probe(first.id, "\"1\"", {1.0, 1, 1, ""}));  // a late probe of the old version
  probe_facts failed;
  failed.error = "no audio or video stream found";
  ASSERT_TRUE(cat.set_probe(first.id, "\"2\"", failed));
  EXPECT_EQ(cat.get(first.id)->probe_error, "no audio or video stream found");
  EXPECT_FALSE(cat.get("nope"));
  EXPECT_EQ(cat.get_by_key("v.webm")->id, first.id);
}

TEST_P(backend_test, id_collisions_are_retried) {
  int calls = 0;
  catalog cat(url(),
              [&calls] { return ++calls <= 2 ? std::string("same") : "other" + std::to_string(calls); });
  EXPECT_EQ(cat.upsert({"a.mp4", "video/mp4", 1, "\"1\""}).id, "same");
  EXPECT_EQ(cat.upsert({"b.mp4", "video/mp4", 1, "\"1\""}).id, "other3");
}

TEST_P(backend_test, list_filters_pages_search_and_order) {
  std::int64_t now = 1000;
  catalog cat(url(), counting_ids(), [&now] { return now++; });
  cat.upsert({"a.mp4", "video/mp4", 1, "\"1\""});
  cat.upsert({"b.ogg", "audio/ogg", 1, "\"1\""});
  cat.upsert({"c.jpg", "image/jpeg", 1, "\"1\""});
  cat.upsert({"100%_done.mp4", "video/mp4", 1, "\"1\""});
  auto gone = cat.upsert({"gone.mp4", "video/mp4", 1, "\"1\""});
  cat.set_missing(gone.id, true);
  now = 5000;  // two items created in the same second: ordered by key, byte by byte ('B' < 'a')
  cat.upsert({"same/a.mp4", "video/mp4", 1, "\"1\""});
  now = 5000;
  cat.upsert({"same/B.mp4", "video/mp4", 1, "\"1\""});

  auto all = cat.list({});
  EXPECT_EQ(all.total, 6u);
  ASSERT_EQ(all.items.size(), 6u);
  EXPECT_EQ(all.items[0].key, "same/B.mp4");
  EXPECT_EQ(all.items[1].key, "same/a.mp4");
  EXPECT_EQ(all.items[2].key, "100%_done.mp4");

  list_query videos;
  videos.kind = "video";
  EXPECT_EQ(cat.list(videos).total, 4u);
  list_query with_missing;
  with_missing.include_missing = true;
  EXPECT_EQ(cat.list(with_missing).total, 7u);

  list_query search;
  search.title_contains = "%_";  // wildcards are literal
  auto found = cat.list(search);
  ASSERT_EQ(found.items.size(), 1u);
  EXPECT_EQ(found.items[0].key, "100%_done.mp4");
  search.title_contains = "B";  // case-insensitive
  auto bs = cat.list(search);
  ASSERT_EQ(bs.total, 2u);
  EXPECT_EQ(bs.items.at(0).key, "same/B.mp4");
  EXPECT_EQ(bs.items.at(1).key, "b.ogg");

  list_query page2;
  page2.per_page = 4;
  page2.page = 2;
  auto p = cat.list(page2);
  EXPECT_EQ(p.total, 6u);
  ASSERT_EQ(p.items.size(), 2u);
  EXPECT_EQ(p.items[1].key, "a.mp4");

  list_query visible = page2;
  visible.visible = [](const media_item& item) { return !item.key.starts_with("same/"); };
  auto v = cat.list(visible);
  EXPECT_EQ(v.total, 4u);
  EXPECT_TRUE(v.items.empty());
}

TEST_P(backend_test, title_visibility_missing_and_remove) {
  catalog cat(url(), counting_ids());
  auto item = cat.upsert({"x.mp4", "video/mp4", 1, "\"1\""});
  EXPECT_TRUE(cat.set_title(item.id, "New"));
  EXPECT_EQ(cat.get(item.id)->title, "New");
  EXPECT_FALSE(cat.set_title("nope", "x"));
  EXPECT_TRUE(cat.set_visibility(item.id, "private"));
  EXPECT_FALSE(cat.set_visibility("nope", "private"));
  EXPECT_EQ(cat.visibility_overrides(),
            (std::vector<std::pair<std::string, std::string>>{{"x.mp4", "private"}}));
  EXPECT_TRUE(cat.set_missing(item.id, true));
  EXPECT_TRUE(cat.get(item.id)->missing);
  EXPECT_FALSE(cat.upsert({"x.mp4", "video/mp4", 1, "\"1\""}).missing);  // back, unchanged
  EXPECT_TRUE(cat.remove(item.id));
  EXPECT_FALSE(cat.remove(item.id));
  EXPECT_FALSE(cat.get_by_key("x.mp4"));
  EXPECT_TRUE(cat.visibility_overrides().empty());
}

// Two nodes scan the same bucket at the same moment, each planning from its own snapshot of the catalog:
// one row per object, and a second round finds nothing to do.
TEST_P(backend_test, scans_from_several_nodes_at_once_make_one_row_per_object) {
  std::vector<storage::listed_object> listing;
  for (int i = 0; i < 300; ++i) listing.push_back(object("dir/" + std::to_string(i) + ".mp4", "\"1\""));
  catalog setup(url());  // migrations first, so that the nodes below start at the same moment
  constexpr int kNodes = 3;
  std::vector<std::unique_ptr<catalog>> nodes;
  for (int i = 0; i < kNodes; ++i) nodes.push_back(std::make_unique<catalog>(url()));
  std::vector<scan_plan> plans;
  for (auto& node : nodes) plans.push_back(plan_scan(listing, node->all()));
  std::vector<std::thread> threads;
  std::atomic<std::size_t> added{0};
  for (int i = 0; i < kNodes; ++i)
    threads.emplace_back([&, i] {
      try {
        added += apply_scan(*nodes[i], plans[i]).added;
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(added.load(),
            kNodes * listing.size());  // each node planned them all: the upsert absorbs the rest
  EXPECT_EQ(db_->count("SELECT COUNT(*) FROM items"), 300);
  EXPECT_EQ(db_->count("SELECT COUNT(DISTINCT key) FROM items"), 300);
  for (auto& node : nodes) {
    auto again = apply_scan(*node, plan_scan(listing, node->all()));
    EXPECT_EQ(again.added + again.updated + again.missing, 0u);
  }
}

// Several connections (nodes, or threads of one) write at once: no write lost, no key duplicated.
TEST_P(backend_test, concurrent_writers) {
  catalog first(url());
  catalog second(url());
  constexpr int kThreads = 4, kPerThread = 60;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      catalog& cat = t % 2 == 0 ? first : second;
      try {
        for (int i = 0; i < kPerThread; ++i) {
          const auto key = "t" + std::to_string(t) + "/" + std::to_string(i) + ".mp4";
          auto item = cat.upsert({key, "video/mp4", static_cast<std::uint64_t>(i), "\"1\""});
          cat.set_title(item.id, "title " + std::to_string(i));
          cat.upsert({"common.mp4", "video/mp4", 1, "\"" + std::to_string(i % 3) + "\""});
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(db_->count("SELECT COUNT(*) FROM items"), kThreads * kPerThread + 1);
  EXPECT_EQ(db_->count("SELECT COUNT(*) FROM items WHERE key = 'common.mp4'"), 1);
  EXPECT_EQ(db_->count("SELECT COUNT(*) FROM items WHERE title LIKE 'title %'"), kThreads * kPerThread);
}

// One prober per item: the first claim wins, its owner may claim again, others only once it is stale; a probe
// result ends the need, a new version starts it again.
TEST_P(backend_test, probe_claims) {
  std::int64_t now = 1000;
  catalog a(url(), counting_ids("a"), [&now] { return now; });
  catalog b(url(), counting_ids("b"), [&now] { return now; });
  auto item = a.upsert({"p.mp4", "video/mp4", 1, "\"1\""});
  EXPECT_TRUE(a.claim_probe(item.id, "\"1\"", "node-a", 60));
  EXPECT_FALSE(b.claim_probe(item.id, "\"1\"", "node-b", 60));
  EXPECT_TRUE(a.claim_probe(item.id, "\"1\"", "node-a", 60));
  EXPECT_FALSE(b.claim_probe(item.id, "\"2\"", "node-b", 60));  // not the current version
  now += 61;                                                    // node-a died: its claim goes stale
  EXPECT_TRUE(b.claim_probe(item.id, "\"1\"", "node-b", 60));
  EXPECT_FALSE(a.claim_probe(item.id, "\"1\"", "node-a", 60));
  b.release_probe(item.id, "node-b");
  EXPECT_TRUE(a.claim_probe(item.id, "\"1\"", "node-a", 60));
  ASSERT_TRUE(a.set_probe(item.id, "\"1\"", {1.0, 2, 2, ""}));
  EXPECT_FALSE(b.claim_probe(item.id, "\"1\"", "node-b", 60));  // probed: nothing to claim
  b.upsert({"p.mp4", "video/mp4", 2, "\"2\""});
  EXPECT_TRUE(b.claim_probe(item.id, "\"2\"", "node-b", 60));

  // Many claimants at once: exactly one wins.
  auto fresh = a.upsert({"q.mp4", "video/mp4", 1, "\"1\""});
  std::vector<std::unique_ptr<catalog>> nodes;
  for (int i = 0; i < 4; ++i) nodes.push_back(std::make_unique<catalog>(url()));
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&, i] {
      if (nodes[i]->claim_probe(fresh.id, "\"1\"", "n" + std::to_string(i), 60)) ++wins;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

INSTANTIATE_TEST_SUITE_P(sqlite, backend_test, testing::Values("sqlite"));
INSTANTIATE_TEST_SUITE_P(postgres, backend_test, testing::Values("postgres"));

// -- PostgreSQL only ---------------------------------------------------------------------------------------

class postgres_test : public backend_test {};

// Collects what a listener hears.
struct heard {
  std::mutex mutex;
  std::condition_variable cv;
  std::vector<item_change> changes;
  int resets = 0;

  template <class Pred>
  bool wait(Pred pred, std::chrono::milliseconds timeout = 5s) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, timeout, [&] { return pred(*this); });
  }
  bool has(const std::string& key, const std::string& old_etag) {
    for (const auto& c : changes)
      if (c.key == key && c.old_etag == old_etag) return true;
    return false;
  }
};

std::unique_ptr<pg_listener> listen(const std::string& url, heard& h) {
  auto log = std::make_shared<spdlog::logger>("test");
  auto l = std::make_unique<pg_listener>(
      url,
      [&h](const item_change& c) {
        std::lock_guard lock(h.mutex);
        h.changes.push_back(c);
        h.cv.notify_all();
      },
      [&h] {
        std::lock_guard lock(h.mutex);
        ++h.resets;
        h.cv.notify_all();
      },
      log);
  l->start();
  return l;
}

TEST_P(postgres_test, changes_reach_every_listener_after_commit) {
  catalog a(url()), b(url());
  heard h;
  auto listener = listen(url(), h);
  ASSERT_TRUE(h.wait([](heard& x) { return x.resets >= 1; })) << "the listener never connected";
  auto item = a.upsert({"dir/new clip.mp4", "video/mp4", 1, "\"1\""});
  EXPECT_TRUE(h.wait([](heard& x) { return x.has("dir/new clip.mp4", ""); }));
  b.upsert({"dir/new clip.mp4", "video/mp4", 2, "\"2\""});  // replaced through another node
  EXPECT_TRUE(h.wait([](heard& x) { return x.has("dir/new clip.mp4", "\"1\""); }));
  {
    std::lock_guard lock(h.mutex);
    for (const auto& c : h.changes)
      if (c.old_etag == "\"1\"") {
        EXPECT_EQ(c.old_size, 1u);  // the replaced version's size
      }
  }
  a.set_visibility(item.id, "private");  // the same version: none is gone
  EXPECT_TRUE(h.wait([](heard& x) { return x.changes.size() >= 3; }));
  {
    std::lock_guard lock(h.mutex);
    ASSERT_EQ(h.changes.size(), 3u);
    EXPECT_FALSE(h.changes[0].visibility);  // a new key
    EXPECT_FALSE(h.changes[1].visibility);  // a replacement
    EXPECT_EQ(h.changes[2].old_etag, "");
    EXPECT_TRUE(h.changes[2].visibility);
  }
  a.remove(item.id);
  EXPECT_TRUE(h.wait([](heard& x) { return x.has("dir/new clip.mp4", "\"2\""); }));
  // Nothing changed: nothing announced.
  const auto before = listener->received();
  b.upsert({"other.mp4", "video/mp4", 1, "\"1\""});
  b.upsert({"other.mp4", "video/mp4", 1, "\"1\""});
  EXPECT_TRUE(h.wait([](heard& x) { return x.has("other.mp4", ""); }));
  std::this_thread::sleep_for(200ms);
  EXPECT_EQ(listener->received(), before + 1);
  // A rolled-back change is never announced: a failed transaction sends nothing.
  auto conn = db_->connect();
  conn->begin();
  conn->notify_change({"rolled-back.mp4", "", 0, false});
  conn->rollback();
  std::this_thread::sleep_for(200ms);
  EXPECT_FALSE(h.has("rolled-back.mp4", ""));
}

TEST_P(postgres_test, the_listener_reconnects_and_resets_after_losing_its_connection) {
  catalog a(url());
  heard h;
  auto listener = listen(url(), h);
  ASSERT_TRUE(h.wait([](heard& x) { return x.resets >= 1; }));
  // The server ends the listener's session (as a restart or a network cut would).
  auto admin = db_->connect();
  const auto killed = admin->query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND query "
      "LIKE "
      "'LISTEN%'");
  ASSERT_EQ(killed.size(), 1u);
  EXPECT_TRUE(h.wait([](heard& x) { return x.resets >= 2; })) << "no reset after the reconnection";
  a.upsert({"after.mp4", "video/mp4", 1, "\"1\""});
  EXPECT_TRUE(h.wait([](heard& x) { return x.has("after.mp4", ""); }));
}

TEST_P(postgres_test, a_lost_catalog_connection_is_restored_on_the_next_call) {
  catalog a(url());
  a.upsert({"k.mp4", "video/mp4", 1, "\"1\""});
  auto admin = db_->connect();
  admin->query(
      "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> "
      "pg_backend_pid()");
  EXPECT_TRUE(a.get_by_key("k.mp4"));  // reconnected, not failed
  EXPECT_EQ(a.list({}).total, 1u);
}

TEST(postgres_unavailable, a_server_that_is_not_there_is_catalog_unavailable_with_the_reason) {
  // A port nobody listens on (bound and closed just now), and a password that must not show.
  const auto url = std::string("postgres://mediagate:secret@127.0.0.1:1/none?connect_timeout=2");
  try {
    catalog cat(url);
    ADD_FAILURE() << "connected to nothing";
  } catch (const catalog_unavailable& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("127.0.0.1"), std::string::npos) << what;
    EXPECT_EQ(what.find("secret"), std::string::npos) << what;
  }
}

TEST(postgres_unavailable, urls_are_recognised_and_redacted) {
  EXPECT_TRUE(is_postgres_url("postgres://u@h/db"));
  EXPECT_TRUE(is_postgres_url("postgresql://h/db"));
  EXPECT_FALSE(is_postgres_url("sqlite:/x.db"));
  EXPECT_EQ(redact_postgres_url("postgres://u:pw@h:5/db?sslmode=require"),
            "postgres://u:***@h:5/db?sslmode=require");
  EXPECT_EQ(redact_postgres_url("postgres://u@h:5/db"), "postgres://u@h:5/db");
  EXPECT_EQ(redact_postgres_url("postgres://h:5/db"), "postgres://h:5/db");
  auto c = parse_change_payload(change_payload({"a\nb.mp4", "\"x\"", 5'000'000'000ull, true}));
  ASSERT_TRUE(c);
  EXPECT_EQ(c->key, "a\nb.mp4");
  EXPECT_EQ(c->old_etag, "\"x\"");
  EXPECT_EQ(c->old_size, 5'000'000'000ull);
  EXPECT_TRUE(c->visibility);
  auto plain = parse_change_payload(change_payload({"k", "", 0, false}));
  ASSERT_TRUE(plain);
  EXPECT_FALSE(plain->visibility);
  EXPECT_EQ(plain->key, "k");
  EXPECT_FALSE(parse_change_payload("\n"));
  EXPECT_FALSE(parse_change_payload("-\n\"x\"\n12z\nkey"));
  EXPECT_FALSE(parse_change_payload("-\n\"x\"\n12\n"));
  EXPECT_FALSE(parse_change_payload("x\n\"x\"\n12\nkey"));
}

INSTANTIATE_TEST_SUITE_P(postgres, postgres_test, testing::Values("postgres"));

}  // namespace
}  // namespace mediagate::catalog
