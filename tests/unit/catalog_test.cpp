// The catalog on a real SQLite file: migrations, the scan plan and its idempotence, concurrent writers.
#include "catalog/catalog.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <set>
#include <thread>

#include "catalog/migrations.hpp"
#include "catalog/probe.hpp"
#include "catalog/scan.hpp"

namespace mediagate::catalog {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
class temp_dir {
 public:
  temp_dir() {
    std::string pattern = (fs::temp_directory_path() / "catalog-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~temp_dir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// Deterministic ids and clock, so that tests never depend on chance or on the time.
id_source counting_ids(std::string prefix = "id") {
  auto n = std::make_shared<std::atomic<int>>(0);
  return [n, prefix] { return prefix + std::to_string(n->fetch_add(1)); };
}
std::function<std::int64_t()> fixed_clock(std::int64_t t = 1700000000) {
  return [t] { return t; };
}

storage::listed_object object(std::string key, std::string etag, std::uint64_t size = 100) {
  return {std::move(key), size, 1700000000, std::move(etag)};
}

int count_rows(const std::string& path, const std::string& sql) {
  database db(path);
  auto s = db.prepare(sql);
  s.step();
  return static_cast<int>(s.integer(0));
}

TEST(migrations, new_database_gets_every_version_once) {
  temp_dir dir;
  const auto path = dir.file("c.db");
  {
    catalog cat(path);
    EXPECT_EQ(cat.schema_version(), static_cast<int>(migrations().size()));
  }
  catalog again(path);  // reopening applies nothing twice
  EXPECT_EQ(again.schema_version(), static_cast<int>(migrations().size()));
  EXPECT_EQ(count_rows(path, "SELECT COUNT(*) FROM schema_migrations"),
            static_cast<int>(migrations().size()));
  EXPECT_EQ(count_rows(path, "SELECT COUNT(DISTINCT version) FROM schema_migrations"),
            static_cast<int>(migrations().size()));
}

TEST(migrations, versions_are_increasing) {
  int previous = 0;
  for (const auto& m : migrations()) {
    EXPECT_EQ(m.version, previous + 1) << m.name;
    previous = m.version;
  }
}

TEST(migrations, old_database_is_upgraded_keeping_its_rows) {
  temp_dir dir;
  const auto path = dir.file("old.db");
  {
    database db(path);
    migrate(db, 1);  // a catalog written by the first release
    EXPECT_EQ(schema_version(db), 1);
    db.exec(
        "INSERT INTO items (id, key, title, content_type, size, etag, created) "
        "VALUES ('old1', 'a/old.mp4', 'Old', 'video/mp4', 42, '\"e1\"', 1600000000)");
  }
  catalog cat(path, counting_ids(), fixed_clock());
  EXPECT_EQ(cat.schema_version(), static_cast<int>(migrations().size()));
  auto item = cat.get("old1");
  ASSERT_TRUE(item);
  EXPECT_EQ(item->key, "a/old.mp4");
  EXPECT_EQ(item->size, 42u);
  EXPECT_FALSE(item->duration);
  EXPECT_TRUE(item->needs_probe());  // columns added by migration 2 start empty
}

TEST(migrations, newer_database_is_refused) {
  temp_dir dir;
  const auto path = dir.file("new.db");
  {
    catalog cat(path);
    database db(path);
    db.exec("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)");
  }
  EXPECT_THROW(catalog{path}, sqlite_error);
}

TEST(catalog, wal_mode_and_ids) {
  temp_dir dir;
  const auto path = dir.file("c.db");
  catalog cat(path);
  {
    database db(path);
    auto s = db.prepare("PRAGMA journal_mode");
    ASSERT_TRUE(s.step());
    EXPECT_EQ(s.text(0), "wal");
  }
  auto item = cat.upsert({"dir/My Clip.mp4", "video/mp4", 1000, "\"a\""});
  EXPECT_EQ(item.title, "My Clip");
  ASSERT_EQ(item.id.size(), 10u);
  for (char c : item.id) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c))) << item.id;
  EXPECT_EQ(cat.get_by_key("dir/My Clip.mp4")->id, item.id);
  EXPECT_FALSE(cat.get("nope"));
}

TEST(catalog, id_collisions_are_retried) {
  temp_dir dir;
  int calls = 0;
  catalog cat(dir.file("c.db"),
              [&calls] { return ++calls <= 2 ? std::string("same") : "other" + std::to_string(calls); });
  EXPECT_EQ(cat.upsert({"a.mp4", "video/mp4", 1, "\"1\""}).id, "same");
  EXPECT_EQ(cat.upsert({"b.mp4", "video/mp4", 1, "\"1\""}).id, "other3");
}

TEST(catalog, upsert_keeps_the_id_and_resets_probes_on_change) {
  temp_dir dir;
  catalog cat(dir.file("c.db"), counting_ids(), fixed_clock());
  auto first = cat.upsert({"v.webm", "video/webm", 10, "\"1\""}, "Custom title");
  EXPECT_EQ(first.title, "Custom title");
  ASSERT_TRUE(cat.set_probe(first.id, "\"1\"", {10.5, 640, 360, ".posters/id0.jpg"}));
  auto probed = *cat.get(first.id);
  EXPECT_FALSE(probed.needs_probe());
  EXPECT_EQ(probed.duration, 10.5);
  EXPECT_EQ(probed.poster_key, ".posters/id0.jpg");

  auto same = cat.upsert({"v.webm", "video/webm", 10, "\"1\""}, "ignored for existing items");
  EXPECT_EQ(same.id, first.id);
  EXPECT_EQ(same.title, "Custom title");
  EXPECT_FALSE(same.needs_probe());

  auto changed = cat.upsert({"v.webm", "video/webm", 20, "\"2\""});
  EXPECT_EQ(changed.id, first.id);
  EXPECT_EQ(changed.size, 20u);
  EXPECT_TRUE(changed.needs_probe());
  EXPECT_FALSE(changed.duration);
  // A probe of the old version that finishes late is not recorded against the new one.
  EXPECT_FALSE(cat.set_probe(first.id, "\"1\"", {1.0, 1, 1, ""}));
  EXPECT_TRUE(cat.get(first.id)->needs_probe());
}

TEST(catalog, a_failed_probe_keeps_its_reason_until_the_next_probe) {
  temp_dir dir;
  catalog cat(dir.file("c.db"), counting_ids(), fixed_clock());
  auto item = cat.upsert({"list.mp4", "video/mp4", 10, "\"1\""});
  EXPECT_TRUE(cat.get(item.id)->probe_error.empty());
  probe_facts failed;
  failed.error = "not a media format the library accepts";
  ASSERT_TRUE(cat.set_probe(item.id, "\"1\"", failed));
  auto stored = *cat.get(item.id);
  EXPECT_FALSE(stored.needs_probe());  // not retried on every scan
  EXPECT_EQ(stored.probe_error, "not a media format the library accepts");
  // The object is replaced by real media: probed again, and the reason goes.
  cat.upsert({"list.mp4", "video/mp4", 20, "\"2\""});
  ASSERT_TRUE(cat.set_probe(item.id, "\"2\"", {4.0, 64, 48, ""}));
  EXPECT_TRUE(cat.get(item.id)->probe_error.empty());
}

TEST(catalog, list_filters_pages_and_search) {
  temp_dir dir;
  std::int64_t now = 1000;
  catalog cat(dir.file("c.db"), counting_ids(), [&now] { return now++; });
  cat.upsert({"a.mp4", "video/mp4", 1, "\"1\""});
  cat.upsert({"b.ogg", "audio/ogg", 1, "\"1\""});
  cat.upsert({"c.jpg", "image/jpeg", 1, "\"1\""});
  cat.upsert({"100%_done.mp4", "video/mp4", 1, "\"1\""});
  auto gone = cat.upsert({"gone.mp4", "video/mp4", 1, "\"1\""});
  cat.set_missing(gone.id, true);

  auto all = cat.list({});
  EXPECT_EQ(all.total, 4u);
  ASSERT_EQ(all.items.size(), 4u);
  EXPECT_EQ(all.items.front().key, "100%_done.mp4");  // newest first

  list_query videos;
  videos.kind = "video";
  EXPECT_EQ(cat.list(videos).total, 2u);
  list_query with_missing;
  with_missing.include_missing = true;
  EXPECT_EQ(cat.list(with_missing).total, 5u);

  list_query search;
  search.title_contains = "%_";  // wildcards are literal
  auto found = cat.list(search);
  ASSERT_EQ(found.items.size(), 1u);
  EXPECT_EQ(found.items[0].key, "100%_done.mp4");
  search.title_contains = "B";  // case-insensitive
  EXPECT_EQ(cat.list(search).items.at(0).key, "b.ogg");

  list_query page2;
  page2.per_page = 3;
  page2.page = 2;
  auto p = cat.list(page2);
  EXPECT_EQ(p.total, 4u);
  ASSERT_EQ(p.items.size(), 1u);
  EXPECT_EQ(p.items[0].key, "a.mp4");
}

TEST(catalog, title_and_remove) {
  temp_dir dir;
  catalog cat(dir.file("c.db"), counting_ids(), fixed_clock());
  auto item = cat.upsert({"x.mp4", "video/mp4", 1, "\"1\""});
  EXPECT_TRUE(cat.set_title(item.id, "New"));
  EXPECT_EQ(cat.get(item.id)->title, "New");
  EXPECT_FALSE(cat.set_title("nope", "x"));
  EXPECT_TRUE(cat.remove(item.id));
  EXPECT_FALSE(cat.remove(item.id));
  EXPECT_FALSE(cat.get_by_key("x.mp4"));
}

TEST(scan, keys_the_library_lists) {
  EXPECT_TRUE(is_catalogued_key("a.mp4"));
  EXPECT_TRUE(is_catalogued_key("dir/sub/b.WEBM"));
  EXPECT_TRUE(is_catalogued_key("song.ogg"));
  EXPECT_TRUE(is_catalogued_key("pic.png"));
  EXPECT_FALSE(is_catalogued_key("notes.txt"));
  EXPECT_FALSE(is_catalogued_key("no-extension"));
  EXPECT_FALSE(is_catalogued_key(".posters/abc.jpg"));
  EXPECT_FALSE(is_catalogued_key("dir/.clip.mp4.upload-1234"));
  EXPECT_FALSE(is_catalogued_key("dir/.hidden/clip.mp4"));
  EXPECT_FALSE(is_catalogued_key("dir/"));
  EXPECT_TRUE(has_hidden_component(".x"));
  EXPECT_FALSE(has_hidden_component("a.b/c.d"));
}

TEST(scan, plan_adds_updates_and_marks_missing) {
  std::vector<media_item> items(3);
  items[0].id = "keep";
  items[0].key = "same.mp4";
  items[0].etag = "\"1\"";
  items[1].id = "chg";
  items[1].key = "changed.mp4";
  items[1].etag = "\"1\"";
  items[2].id = "gone";
  items[2].key = "gone.mp4";
  items[2].etag = "\"1\"";
  const std::vector<storage::listed_object> listing = {
      object("same.mp4", "\"1\""), object("changed.mp4", "\"2\""), object("new.webm", "\"1\""),
      object("notes.txt", "\"1\""), object(".posters/keep.jpg", "\"1\"")};
  auto plan = plan_scan(listing, items);
  ASSERT_EQ(plan.add.size(), 1u);
  EXPECT_EQ(plan.add[0].key, "new.webm");
  EXPECT_EQ(plan.add[0].content_type, "video/webm");
  ASSERT_EQ(plan.update.size(), 1u);
  EXPECT_EQ(plan.update[0].key, "changed.mp4");
  EXPECT_EQ(plan.update[0].etag, "\"2\"");
  EXPECT_EQ(plan.mark_missing, std::vector<std::string>{"gone"});
  EXPECT_EQ(plan.unchanged, 1u);
}

TEST(scan, applying_twice_changes_nothing_the_second_time) {
  temp_dir dir;
  catalog cat(dir.file("c.db"), counting_ids(), fixed_clock());
  std::vector<storage::listed_object> listing = {object("a.mp4", "\"1\""), object("b/c.webm", "\"1\""),
                                                 object("d.jpg", "\"1\"")};
  auto first = apply_scan(cat, plan_scan(listing, cat.all()));
  EXPECT_EQ(first.added, 3u);
  const auto after_first = cat.all();
  auto second = apply_scan(cat, plan_scan(listing, cat.all()));
  EXPECT_EQ(second.added + second.updated + second.missing, 0u);
  EXPECT_EQ(second.unchanged, 3u);
  const auto after_second = cat.all();
  ASSERT_EQ(after_first.size(), after_second.size());
  for (std::size_t i = 0; i < after_first.size(); ++i) {
    EXPECT_EQ(after_first[i].id, after_second[i].id);
    EXPECT_EQ(after_first[i].etag, after_second[i].etag);
  }

  // One object vanishes, one changes: then the same listing again plans nothing.
  listing.erase(listing.begin());
  listing[0].etag = "\"2\"";
  auto third = apply_scan(cat, plan_scan(listing, cat.all()));
  EXPECT_EQ(third.missing, 1u);
  EXPECT_EQ(third.updated, 1u);
  EXPECT_TRUE(cat.get_by_key("a.mp4")->missing);
  auto fourth = apply_scan(cat, plan_scan(listing, cat.all()));
  EXPECT_EQ(fourth.added + fourth.updated + fourth.missing, 0u);

  // The vanished object comes back unchanged: the same item, no longer missing.
  const auto id = cat.get_by_key("a.mp4")->id;
  listing.push_back(object("a.mp4", "\"1\""));
  auto fifth = apply_scan(cat, plan_scan(listing, cat.all()));
  EXPECT_EQ(fifth.updated, 1u);
  EXPECT_FALSE(cat.get_by_key("a.mp4")->missing);
  EXPECT_EQ(cat.get_by_key("a.mp4")->id, id);
}

// Several threads (as the event loops do) and several connections (as `mediagate scan` beside a server
// does) write to one file at once: no write is lost, no key is duplicated, nothing fails with SQLITE_BUSY.
TEST(catalog, concurrent_writers_on_one_file) {
  temp_dir dir;
  const auto path = dir.file("shared.db");
  auto shared = std::make_shared<catalog>(path);
  catalog second_connection(path);
  constexpr int kThreads = 4, kPerThread = 150;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      catalog& cat = t % 2 == 0 ? *shared : second_connection;
      try {
        for (int i = 0; i < kPerThread; ++i) {
          const auto key = "t" + std::to_string(t) + "/" + std::to_string(i) + ".mp4";
          auto item = cat.upsert({key, "video/mp4", static_cast<std::uint64_t>(i), "\"1\""});
          cat.set_title(item.id, "title " + std::to_string(i));
          // Everyone also touches one common key: upserts of one key must never make two rows.
          cat.upsert({"common.mp4", "video/mp4", 1, "\"" + std::to_string(i % 3) + "\""});
        }
      } catch (const std::exception& e) {
        ADD_FAILURE() << e.what();
        ++failures;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(count_rows(path, "SELECT COUNT(*) FROM items"), kThreads * kPerThread + 1);
  EXPECT_EQ(count_rows(path, "SELECT COUNT(*) FROM items WHERE key = 'common.mp4'"), 1);
  EXPECT_EQ(count_rows(path, "SELECT COUNT(*) FROM items WHERE title LIKE 'title %'"), kThreads * kPerThread);
  std::set<std::string> ids;
  for (const auto& item : shared->all()) ids.insert(item.id);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kThreads * kPerThread + 1));
}

TEST(probe, parses_ffprobe_json) {
  auto info = parse_ffprobe_json(R"({"streams": [
      {"codec_type": "video", "width": 640, "height": 360, "disposition": {"attached_pic": 0}},
      {"codec_type": "audio", "sample_rate": "48000"}],
    "format": {"duration": "10.023000", "format_name": "mov,mp4"}})");
  ASSERT_TRUE(info);
  EXPECT_TRUE(info->has_video);
  EXPECT_TRUE(info->has_audio);
  EXPECT_DOUBLE_EQ(*info->duration, 10.023);
  EXPECT_EQ(info->width, 640);
  EXPECT_EQ(info->height, 360);

  auto cover = parse_ffprobe_json(R"({"streams": [{"codec_type": "audio"},
      {"codec_type": "video", "width": 500, "height": 500, "disposition": {"attached_pic": 1}}],
      "format": {"duration": "3.5"}})");
  ASSERT_TRUE(cover);
  EXPECT_FALSE(cover->has_video);  // cover art does not make a song a video
  EXPECT_TRUE(cover->has_audio);

  auto image = parse_ffprobe_json(
      R"({"streams": [{"codec_type": "video", "width": 10, "height": 20}], "format": {}})");
  ASSERT_TRUE(image);
  EXPECT_FALSE(image->duration);
  EXPECT_FALSE(parse_ffprobe_json("not json"));
  EXPECT_FALSE(parse_ffprobe_json("[]"));
  auto odd = parse_ffprobe_json(R"({"format": {"duration": "N/A"}, "streams": "x"})");
  ASSERT_TRUE(odd);
  EXPECT_FALSE(odd->duration);
}

TEST(process, captures_output_exit_codes_and_deadlines) {
  auto ok = run_process({"sh", "-c", "echo hello; echo oops >&2"}, std::chrono::seconds(10));
  EXPECT_TRUE(ok.ok());
  EXPECT_EQ(ok.out, "hello\n");
  EXPECT_EQ(ok.err, "oops\n");
  auto failed = run_process({"sh", "-c", "exit 3"}, std::chrono::seconds(10));
  EXPECT_TRUE(failed.started);
  EXPECT_EQ(failed.exit_code, 3);
  auto slow = run_process({"sleep", "10"}, std::chrono::milliseconds(200));
  EXPECT_TRUE(slow.timed_out);
  auto missing = run_process({"/nonexistent/program"}, std::chrono::seconds(1));
  EXPECT_FALSE(missing.started);
  EXPECT_FALSE(missing.error.empty());
}

}  // namespace
}  // namespace mediagate::catalog
