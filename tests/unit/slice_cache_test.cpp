#include "cache/slice_cache.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "cache/cache_dir.hpp"
#include "temp_dir.hpp"

namespace mediagate::cache {
namespace {

namespace fs = std::filesystem;
using testing_support::temp_dir;

std::shared_ptr<spdlog::logger> null_logger() {
  return std::make_shared<spdlog::logger>("slice-cache-test",
                                          std::make_shared<spdlog::sinks::null_sink_mt>());
}

cache_config config_for(const fs::path& dir, std::uint64_t capacity = 1ull << 30,
                        std::uint64_t slice = 1000) {
  cache_config c;
  c.dir = dir;
  c.capacity_bytes = capacity;
  c.slice_bytes = slice;
  c.degraded_pause = std::chrono::hours(1);
  return c;
}

std::unique_ptr<slice_cache> open_cache(const cache_config& c, clock_fn now = real_clock()) {
  return std::make_unique<slice_cache>(c, null_logger(), std::move(now));
}

// Deterministic bytes that differ between slices and positions.
std::string pattern_bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

// Claims, writes (in the given pieces) and commits one slice.
void put_slice(slice_cache& cache, const std::string& object, std::uint64_t index, const std::string& data,
               std::size_t piece = 0) {
  ASSERT_EQ(cache.claim(object, index, [] {}), slice_cache::claim_outcome::claimed);
  auto w = cache.begin(object, index, data.size());
  ASSERT_TRUE(w) << "begin failed";
  const std::size_t step = piece == 0 ? data.size() : piece;
  for (std::size_t at = 0; at < data.size(); at += step)
    ASSERT_TRUE(w->append(std::span<const char>(data.data() + at, std::min(step, data.size() - at))));
  ASSERT_TRUE(cache.commit(object, index, std::move(w)));
}

std::string read_all(const slice_handle& h) {
  std::string out(h.length, '\0');
  const auto n = ::pread(*h.fd, out.data(), out.size(), static_cast<off_t>(kHeaderBytes));
  EXPECT_EQ(n, static_cast<ssize_t>(out.size()));
  return out;
}

fs::path slice_file(const fs::path& dir, const std::string& object, std::uint64_t index) {
  return dir / object.substr(0, 2) / (object + "-" + std::to_string(index));
}

// Overwrites one byte of a file in place, then gives the file a different mtime (so that the damage is
// visible to a cache that re-verifies changed files, whatever the file system's timestamp granularity).
void damage_byte(const fs::path& file, std::uint64_t offset) {
  const int fd = ::open(file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << file;
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  c = static_cast<char>(c ^ 0x5a);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  struct stat st {};
  ASSERT_EQ(::fstat(fd, &st), 0);
  const timespec times[2] = {st.st_atim, {st.st_mtim.tv_sec - 7, st.st_mtim.tv_nsec}};
  ASSERT_EQ(::futimens(fd, times), 0);
  ::close(fd);
}

void set_mtime(const fs::path& file, std::time_t seconds) {
  const timespec times[2] = {{seconds, 0}, {seconds, 0}};
  ASSERT_EQ(::utimensat(AT_FDCWD, file.c_str(), times, 0), 0) << file;
}

const std::string kObject =
    slice_cache::object_id("s3://bucket/ at http://127.0.0.1:1", "movie.mp4", "\"etag-1\"");

// -- object ids -----------------------------------------------------------------------------------------

// Another node replaced an object: every cached slice of the old version goes, files included; other
// versions and objects stay.
TEST(slice_cache, drop_object_deletes_one_version) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  const auto old_version = slice_cache::object_id("s3://b", "k.mp4", "\"1\"");
  const auto new_version = slice_cache::object_id("s3://b", "k.mp4", "\"2\"");
  put_slice(*cache, old_version, 0, pattern_bytes(1000, 1));
  put_slice(*cache, old_version, 2, pattern_bytes(500, 2));  // the last slice of a 2500-byte object
  put_slice(*cache, new_version, 0, pattern_bytes(1000, 3));
  EXPECT_EQ(cache->stored_bytes(), 2500u);
  EXPECT_EQ(cache->drop_object(old_version, 2500), 2u);
  EXPECT_FALSE(cache->lookup(old_version, 0, 1000));
  EXPECT_FALSE(cache->lookup(old_version, 2, 500));
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), old_version, 0)));
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), old_version, 2)));
  EXPECT_TRUE(cache->lookup(new_version, 0, 1000));
  EXPECT_EQ(cache->stored_bytes(), 1000u);
  EXPECT_EQ(cache->drop_object(old_version, 2500), 0u);
}

TEST(slice_cache, object_id_names_one_version_of_one_object) {
  const auto a = slice_cache::object_id("store", "key", "\"e1\"");
  EXPECT_EQ(a.size(), 32u);
  EXPECT_EQ(a.find_first_not_of("0123456789abcdef"), std::string::npos) << a;
  EXPECT_EQ(a, slice_cache::object_id("store", "key", "\"e1\""));
  EXPECT_NE(a, slice_cache::object_id("store", "key", "\"e2\""));
  EXPECT_NE(a, slice_cache::object_id("store", "key2", "\"e1\""));
  EXPECT_NE(a, slice_cache::object_id("store2", "key", "\"e1\""));
}

// -- configuration --------------------------------------------------------------------------------------

TEST(slice_cache, rejects_slice_sizes_its_header_cannot_describe) {
  temp_dir dir;
  EXPECT_THROW(open_cache(config_for(dir.path(), 1 << 20, 0)), std::invalid_argument);
  EXPECT_THROW(open_cache(config_for(dir.path(), 1 << 20, 55 * (1ull << 20) + 1)), std::invalid_argument);
  EXPECT_NO_THROW(open_cache(config_for(dir.path(), 1 << 20, 55 * (1ull << 20))));
  EXPECT_NO_THROW(open_cache(config_for(dir.path(), 1 << 20, 1)));
}

TEST(slice_cache, creates_the_directory_its_tmp_and_its_marker) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path() / "a" / "b"));
  EXPECT_TRUE(fs::is_directory(dir.path() / "a" / "b" / "tmp"));
  EXPECT_TRUE(fs::is_regular_file(dir.path() / "a" / "b" / kMarkerName));
  EXPECT_EQ(cache->stored_bytes(), 0u);
}

// -- write, commit, lookup ------------------------------------------------------------------------------

TEST(slice_cache, write_commit_lookup_round_trip) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path(), 1ull << 30, 200'000));
  // 150,000 bytes: three CRC blocks, the last partial; written in pieces that straddle block edges.
  const auto data = pattern_bytes(150'000, 1);
  EXPECT_FALSE(cache->lookup(kObject, 3, data.size()));
  put_slice(*cache, kObject, 3, data, 40'000);

  auto h = cache->lookup(kObject, 3, data.size());
  ASSERT_TRUE(h);
  EXPECT_EQ(h->length, data.size());
  EXPECT_TRUE(read_all(*h) == data);
  EXPECT_EQ(cache->counters().hits.load(), 1u);
  EXPECT_EQ(cache->counters().corrupt_slices.load(), 0u);
  EXPECT_EQ(cache->stored_bytes(), data.size());
  EXPECT_EQ(cache->counters().bytes_stored.load(), data.size());

  // Published under its final name, header + data; nothing left in tmp/.
  const auto file = slice_file(dir.path(), kObject, 3);
  ASSERT_TRUE(fs::is_regular_file(file)) << file;
  EXPECT_EQ(fs::file_size(file), kHeaderBytes + data.size());
  EXPECT_TRUE(fs::is_empty(dir.path() / "tmp"));

  // Another slice of the same object and the same index of another object are different entries.
  EXPECT_FALSE(cache->lookup(kObject, 2, data.size()));
  EXPECT_FALSE(cache->lookup(slice_cache::object_id("s", "movie.mp4", "\"etag-2\""), 3, data.size()));
}

TEST(slice_cache, one_byte_slice_round_trip) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  put_slice(*cache, kObject, 0, "x");
  auto h = cache->lookup(kObject, 0, 1);
  ASSERT_TRUE(h);
  EXPECT_EQ(read_all(*h), "x");
}

TEST(slice_cache, a_handle_outlives_the_eviction_of_its_file) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path(), 1000, 1000));
  const auto a = pattern_bytes(1000, 1);
  put_slice(*cache, kObject, 0, a);
  auto h = cache->lookup(kObject, 0, a.size());
  ASSERT_TRUE(h);
  put_slice(*cache, kObject, 1, pattern_bytes(1000, 2));  // evicts slice 0 and unlinks its file
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 0)));
  EXPECT_TRUE(read_all(*h) == a);  // a client still sending it reads through its open descriptor
}

TEST(slice_cache, an_abandoned_writer_leaves_nothing) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  int notified = 0;
  ASSERT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
  ASSERT_EQ(cache->claim(kObject, 0, [&] { ++notified; }), slice_cache::claim_outcome::in_flight);
  {
    auto w = cache->begin(kObject, 0, 1000);
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->append(std::span<const char>(pattern_bytes(500, 1))));
    EXPECT_FALSE(fs::is_empty(dir.path() / "tmp"));
  }
  EXPECT_TRUE(fs::is_empty(dir.path() / "tmp"));
  EXPECT_EQ(notified, 0);  // the claim is still held until released
  cache->release(kObject, 0);
  EXPECT_EQ(notified, 1);
  EXPECT_FALSE(cache->lookup(kObject, 0, 1000));
  EXPECT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
  EXPECT_EQ(cache->counters().write_errors.load(), 0u);
}

TEST(slice_cache, an_incomplete_slice_is_not_committed) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  int notified = 0;
  ASSERT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
  ASSERT_EQ(cache->claim(kObject, 0, [&] { ++notified; }), slice_cache::claim_outcome::in_flight);
  auto w = cache->begin(kObject, 0, 1000);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->append(std::span<const char>(pattern_bytes(999, 1))));
  EXPECT_FALSE(cache->commit(kObject, 0, std::move(w)));
  EXPECT_EQ(notified, 1);  // the claim is released either way
  EXPECT_FALSE(cache->lookup(kObject, 0, 1000));
  EXPECT_EQ(cache->stored_bytes(), 0u);
  EXPECT_TRUE(fs::is_empty(dir.path() / "tmp"));
  // A short slice is the fetch's fault, not the disk's: the cache keeps writing.
  EXPECT_EQ(cache->counters().write_errors.load(), 0u);
  EXPECT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::claimed);
}

TEST(slice_cache, a_writer_refuses_more_bytes_than_the_slice_has) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  ASSERT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
  auto w = cache->begin(kObject, 0, 10);
  ASSERT_TRUE(w);
  EXPECT_TRUE(w->append(std::span<const char>(std::string(6, 'a'))));
  EXPECT_FALSE(w->append(std::span<const char>(std::string(5, 'b'))));
  EXPECT_EQ(w->written(), 6u);
  EXPECT_TRUE(w->append(std::span<const char>(std::string(4, 'c'))));
  EXPECT_TRUE(cache->commit(kObject, 0, std::move(w)));
  auto h = cache->lookup(kObject, 0, 10);
  ASSERT_TRUE(h);
  EXPECT_EQ(read_all(*h), "aaaaaacccc");
}

// -- LRU eviction by bytes ------------------------------------------------------------------------------

TEST(slice_cache, evicts_the_least_recently_used_slice_by_bytes) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path(), 2500, 1000));  // room for two 1000-byte slices, not three
  put_slice(*cache, kObject, 0, pattern_bytes(1000, 0));
  put_slice(*cache, kObject, 1, pattern_bytes(1000, 1));
  EXPECT_EQ(cache->stored_bytes(), 2000u);
  EXPECT_EQ(cache->counters().evictions.load(), 0u);

  put_slice(*cache, kObject, 2, pattern_bytes(1000, 2));
  EXPECT_EQ(cache->counters().evictions.load(), 1u);
  EXPECT_EQ(cache->stored_bytes(), 2000u);
  EXPECT_EQ(cache->counters().bytes_stored.load(), 2000u);
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 0)));
  EXPECT_FALSE(cache->lookup(kObject, 0, 1000));
  EXPECT_TRUE(cache->lookup(kObject, 1, 1000));
  EXPECT_TRUE(cache->lookup(kObject, 2, 1000));
  EXPECT_EQ(cache->counters().corrupt_slices.load(), 0u);  // an evicted slice is a plain miss
}

TEST(slice_cache, lookup_refreshes_recency) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path(), 2500, 1000));
  put_slice(*cache, kObject, 0, pattern_bytes(1000, 0));
  put_slice(*cache, kObject, 1, pattern_bytes(1000, 1));
  ASSERT_TRUE(cache->lookup(kObject, 0, 1000));  // 0 is now more recent than 1
  put_slice(*cache, kObject, 2, pattern_bytes(1000, 2));
  EXPECT_EQ(cache->counters().evictions.load(), 1u);
  EXPECT_TRUE(cache->lookup(kObject, 0, 1000));
  EXPECT_FALSE(cache->lookup(kObject, 1, 1000));
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 1)));
  EXPECT_TRUE(cache->lookup(kObject, 2, 1000));
}

TEST(slice_cache, eviction_counts_bytes_not_slices) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path(), 1000, 1000));
  // Small last slices: four of 250 bytes fit where one full slice does.
  for (std::uint64_t i = 0; i < 4; ++i)
    put_slice(*cache, slice_cache::object_id("s", "k" + std::to_string(i), "\"e\""), 0,
              pattern_bytes(250, i));
  EXPECT_EQ(cache->counters().evictions.load(), 0u);
  EXPECT_EQ(cache->stored_bytes(), 1000u);
  put_slice(*cache, kObject, 0, pattern_bytes(600, 9));  // needs three of them gone
  EXPECT_EQ(cache->counters().evictions.load(), 3u);
  EXPECT_EQ(cache->stored_bytes(), 850u);
  EXPECT_TRUE(cache->lookup(slice_cache::object_id("s", "k3", "\"e\""), 0, 250));
  EXPECT_FALSE(cache->lookup(slice_cache::object_id("s", "k2", "\"e\""), 0, 250));
}

// -- restart --------------------------------------------------------------------------------------------

TEST(slice_cache, index_survives_a_restart) {
  temp_dir dir;
  const auto cfg = config_for(dir.path(), 1ull << 30, 1000);
  std::vector<std::string> data;
  {
    auto cache = open_cache(cfg);
    for (unsigned i = 0; i < 3; ++i) {
      data.push_back(pattern_bytes(1000, i));
      put_slice(*cache, kObject, i, data.back(), 333);
    }
  }
  auto cache = open_cache(cfg);
  EXPECT_EQ(cache->stored_bytes(), 3000u);
  EXPECT_EQ(cache->counters().bytes_stored.load(), 3000u);
  for (unsigned i = 0; i < 3; ++i) {
    EXPECT_EQ(cache->claim(kObject, i, [] {}), slice_cache::claim_outcome::present) << i;
    auto h = cache->lookup(kObject, i, 1000);
    ASSERT_TRUE(h) << i;
    EXPECT_TRUE(read_all(*h) == data[i]) << i;
  }
  EXPECT_EQ(cache->counters().corrupt_slices.load(), 0u);
}

TEST(slice_cache, restart_removes_its_own_torn_and_temporary_files_only) {
  temp_dir dir;
  const auto cfg = config_for(dir.path(), 1ull << 30, 1000);
  {
    auto cache = open_cache(cfg);
    for (unsigned i = 0; i < 4; ++i) put_slice(*cache, kObject, i, pattern_bytes(1000, i));
    // A crash mid-write leaves a temporary file behind (a link to it stands in for the crash).
    auto w = cache->begin(kObject, 9, 10);
    ASSERT_TRUE(w);
    fs::create_hard_link(dir.path() / "tmp" / (kObject + "-9.4"), dir.path() / "tmp" / (kObject + "-9.99"));
    cache->release(kObject, 9);
  }
  // Not ours although named like ours: no magic.
  { std::ofstream(dir.path() / "tmp" / (kObject + "-8.0")) << pattern_bytes(kHeaderBytes + 10, 9); }
  // Torn: cut short, magic intact (ours). Bad header: magic overwritten. Garbage: the right name, no slice.
  fs::resize_file(slice_file(dir.path(), kObject, 1), kHeaderBytes + 500);
  damage_byte(slice_file(dir.path(), kObject, 2), 0);
  { std::ofstream(slice_file(dir.path(), kObject, 7)) << "not a slice"; }

  auto cache = open_cache(cfg);
  EXPECT_FALSE(fs::exists(dir.path() / "tmp" / (kObject + "-9.99")));
  EXPECT_TRUE(fs::exists(dir.path() / "tmp" / (kObject + "-8.0")));
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 1)));
  // Files the cache cannot prove it wrote are neither indexed nor deleted.
  EXPECT_TRUE(fs::exists(slice_file(dir.path(), kObject, 2)));
  EXPECT_TRUE(fs::exists(slice_file(dir.path(), kObject, 7)));
  EXPECT_EQ(cache->stored_bytes(), 2000u);
  EXPECT_TRUE(cache->lookup(kObject, 0, 1000));
  EXPECT_FALSE(cache->lookup(kObject, 1, 1000));
  EXPECT_FALSE(cache->lookup(kObject, 2, 1000));
  EXPECT_TRUE(cache->lookup(kObject, 3, 1000));
  EXPECT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::claimed);  // fetched again
  // A fetched slice replaces the damaged file by rename.
  EXPECT_EQ(cache->claim(kObject, 2, [] {}), slice_cache::claim_outcome::claimed);
  auto w = cache->begin(kObject, 2, 1000);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->append(std::span<const char>(pattern_bytes(1000, 2))));
  ASSERT_TRUE(cache->commit(kObject, 2, std::move(w)));
  EXPECT_TRUE(cache->lookup(kObject, 2, 1000));
}

// An upgrade to a new slice format finds every slice of the old one unreadable: one line says so, not one per
// file (a large cache holds hundreds of thousands).
TEST(slice_cache, slices_removed_at_start_are_reported_in_one_line) {
  temp_dir dir;
  const auto cfg = config_for(dir.path(), 1ull << 30, 1000);
  {
    auto cache = open_cache(cfg);
    for (unsigned i = 0; i < 6; ++i) put_slice(*cache, kObject, i, pattern_bytes(1000, i));
  }
  for (unsigned i = 1; i < 6; ++i) fs::resize_file(slice_file(dir.path(), kObject, i), kHeaderBytes + 500);
  std::ostringstream out;
  auto log = std::make_shared<spdlog::logger>("slice-cache-test",
                                              std::make_shared<spdlog::sinks::ostream_sink_mt>(out));
  log->set_pattern("%l %v");
  slice_cache cache(cfg, log, real_clock());
  EXPECT_EQ(cache.stored_bytes(), 1000u);
  const auto text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 2) << text;  // the removal, then the index's size
  EXPECT_NE(text.find("warning cache: removed 5 slice files that were unreadable or of an older format (the "
                      "first: " +
                      dir.path().string()),
            std::string::npos)
      << text;
}

TEST(slice_cache, restart_detects_damaged_data_on_first_lookup) {
  temp_dir dir;
  const auto cfg = config_for(dir.path(), 1ull << 30, 200'000);
  {
    auto cache = open_cache(cfg);
    put_slice(*cache, kObject, 0, pattern_bytes(150'000, 0));
    put_slice(*cache, kObject, 1, pattern_bytes(150'000, 1));
  }
  // The header and the length are intact; one byte in the third CRC block is not.
  damage_byte(slice_file(dir.path(), kObject, 1), kHeaderBytes + 140'000);
  auto cache = open_cache(cfg);
  EXPECT_EQ(cache->stored_bytes(), 300'000u);
  EXPECT_TRUE(cache->lookup(kObject, 0, 150'000));
  EXPECT_FALSE(cache->lookup(kObject, 1, 150'000));
  EXPECT_EQ(cache->counters().corrupt_slices.load(), 1u);
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 1)));
  EXPECT_EQ(cache->stored_bytes(), 150'000u);
  EXPECT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::claimed);
}

TEST(slice_cache, restart_with_a_smaller_capacity_keeps_the_newest_slices) {
  temp_dir dir;
  {
    auto cache = open_cache(config_for(dir.path(), 1ull << 30, 1000));
    for (unsigned i = 0; i < 4; ++i) put_slice(*cache, kObject, i, pattern_bytes(1000, i));
  }
  // Recency after a restart is the file's mtime: make slice 2 the oldest and 0 the second oldest.
  set_mtime(slice_file(dir.path(), kObject, 2), 1'600'000'000);
  set_mtime(slice_file(dir.path(), kObject, 0), 1'600'000'100);
  set_mtime(slice_file(dir.path(), kObject, 1), 1'600'000'200);
  set_mtime(slice_file(dir.path(), kObject, 3), 1'600'000'300);
  auto cache = open_cache(config_for(dir.path(), 2000, 1000));
  EXPECT_EQ(cache->stored_bytes(), 2000u);
  EXPECT_EQ(cache->counters().evictions.load(), 2u);
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 2)));
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 0)));
  EXPECT_TRUE(cache->lookup(kObject, 1, 1000));
  EXPECT_TRUE(cache->lookup(kObject, 3, 1000));
}

TEST(slice_cache, a_directory_of_other_files_is_refused_and_left_alone) {
  // --cache-dir pointed at a directory that holds other files (a typo, "--cache-dir ." or the media root):
  // the cache must not delete what it did not write (issue 11: media/tmp/ was emptied).
  temp_dir dir;
  fs::create_directories(dir.path() / "media");
  fs::create_directories(dir.path() / "tmp");
  {
    std::ofstream(dir.path() / "notes.txt") << "keep me";
    std::ofstream(dir.path() / "media" / "movie.mp4") << "keep me too";
    std::ofstream(dir.path() / "tmp" / "draft.txt") << "and me";
  }
  EXPECT_THROW(open_cache(config_for(dir.path())), std::runtime_error);
  EXPECT_TRUE(fs::exists(dir.path() / "notes.txt"));
  EXPECT_TRUE(fs::exists(dir.path() / "media" / "movie.mp4"));
  EXPECT_TRUE(fs::exists(dir.path() / "tmp" / "draft.txt"));
}

TEST(slice_cache, restart_leaves_other_files_in_its_directory_alone) {
  temp_dir dir;
  { auto cache = open_cache(config_for(dir.path())); }
  fs::create_directories(dir.path() / "ab" / "cd");
  {
    std::ofstream(dir.path() / "notes.txt") << "keep me";
    std::ofstream(dir.path() / "ab" / "notes.txt") << "keep me";
    std::ofstream(dir.path() / "ab" / "cd" / (kObject + "-1")) << "keep me";
    std::ofstream(dir.path() / "tmp" / "notes.txt") << "keep me";
  }
  auto cache = open_cache(config_for(dir.path()));
  EXPECT_EQ(cache->stored_bytes(), 0u);
  for (const auto& p : {dir.path() / "notes.txt", dir.path() / "ab" / "notes.txt",
                        dir.path() / "ab" / "cd" / (kObject + "-1"), dir.path() / "tmp" / "notes.txt"})
    EXPECT_TRUE(fs::exists(p)) << p;
}

// -- corruption while running ---------------------------------------------------------------------------

TEST(slice_cache, a_damaged_slice_is_never_served) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path(), 1ull << 30, 200'000));
  const auto data = pattern_bytes(150'000, 4);
  put_slice(*cache, kObject, 5, data);
  ASSERT_TRUE(cache->lookup(kObject, 5, data.size()));

  damage_byte(slice_file(dir.path(), kObject, 5), kHeaderBytes + 70'000);
  EXPECT_FALSE(cache->lookup(kObject, 5, data.size()));
  EXPECT_EQ(cache->counters().corrupt_slices.load(), 1u);
  EXPECT_EQ(cache->counters().hits.load(), 1u);
  EXPECT_FALSE(fs::exists(slice_file(dir.path(), kObject, 5)));
  EXPECT_EQ(cache->stored_bytes(), 0u);

  // Fetched and stored again, it is served again.
  put_slice(*cache, kObject, 5, data);
  auto h = cache->lookup(kObject, 5, data.size());
  ASSERT_TRUE(h);
  EXPECT_TRUE(read_all(*h) == data);
}

TEST(slice_cache, a_damaged_header_or_a_truncated_file_is_never_served) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  put_slice(*cache, kObject, 0, pattern_bytes(1000, 0));
  put_slice(*cache, kObject, 1, pattern_bytes(1000, 1));
  damage_byte(slice_file(dir.path(), kObject, 0), 64);  // the first block's CRC
  fs::resize_file(slice_file(dir.path(), kObject, 1), kHeaderBytes + 999);
  EXPECT_FALSE(cache->lookup(kObject, 0, 1000));
  EXPECT_FALSE(cache->lookup(kObject, 1, 1000));
  EXPECT_EQ(cache->counters().corrupt_slices.load(), 2u);
  EXPECT_EQ(cache->stored_bytes(), 0u);
}

TEST(slice_cache, a_deleted_slice_file_is_a_miss) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  put_slice(*cache, kObject, 0, pattern_bytes(1000, 0));
  fs::remove(slice_file(dir.path(), kObject, 0));
  EXPECT_FALSE(cache->lookup(kObject, 0, 1000));
  EXPECT_EQ(cache->stored_bytes(), 0u);
  EXPECT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
}

// -- claims ---------------------------------------------------------------------------------------------

TEST(slice_cache, claim_then_in_flight_until_released) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  int first = 0, second = 0;
  EXPECT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
  EXPECT_EQ(cache->claim(kObject, 0, [&] { ++first; }), slice_cache::claim_outcome::in_flight);
  EXPECT_EQ(cache->claim(kObject, 0, [&] { ++second; }), slice_cache::claim_outcome::in_flight);
  EXPECT_EQ(cache->counters().coalesced_waits.load(), 2u);
  // Other slices, and the same slice of another object, are independent.
  EXPECT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::claimed);
  EXPECT_EQ(cache->claim(slice_cache::object_id("s", "k", "\"e\""), 0, [] {}),
            slice_cache::claim_outcome::claimed);
  EXPECT_EQ(first + second, 0);

  cache->release(kObject, 0);
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 1);
  cache->release(kObject, 0);  // releasing twice (or a slice never claimed) is harmless
  cache->release(kObject, 42);
  EXPECT_EQ(first, 1);
  // A waiter woken by a release finds no slice and claims it itself.
  EXPECT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
}

TEST(slice_cache, waiters_are_called_on_commit_and_then_find_the_slice) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  int woken = 0;
  ASSERT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
  ASSERT_EQ(cache->claim(kObject, 0,
                         [&] {
                           ++woken;
                           // Called after the slice is published: a waiter looking it up right away must find
                           // it.
                           EXPECT_TRUE(cache->lookup(kObject, 0, 1000));
                         }),
            slice_cache::claim_outcome::in_flight);
  auto w = cache->begin(kObject, 0, 1000);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->append(std::span<const char>(pattern_bytes(1000, 0))));
  EXPECT_EQ(woken, 0);
  ASSERT_TRUE(cache->commit(kObject, 0, std::move(w)));
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(cache->claim(kObject, 0, [&] { ++woken; }), slice_cache::claim_outcome::present);
  EXPECT_EQ(woken, 1);
}

TEST(slice_cache, concurrent_claims_of_one_slice_have_one_winner) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  constexpr int kThreads = 8, kSlices = 200;
  std::atomic<int> claimed{0}, waiting{0}, woken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < kSlices; ++i) {
        switch (cache->claim(kObject, i, [&] { ++woken; })) {
          case slice_cache::claim_outcome::claimed:
            ++claimed;
            break;
          case slice_cache::claim_outcome::in_flight:
            ++waiting;
            break;
          default:
            ADD_FAILURE() << "unexpected claim outcome";
        }
      }
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(claimed.load(), kSlices);
  EXPECT_EQ(waiting.load(), (kThreads - 1) * kSlices);
  for (int i = 0; i < kSlices; ++i) cache->release(kObject, i);
  EXPECT_EQ(woken.load(), (kThreads - 1) * kSlices);
}

// -- degraded mode after write errors -------------------------------------------------------------------

TEST(slice_cache, a_failed_temporary_file_degrades_to_pass_through) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  put_slice(*cache, kObject, 0, pattern_bytes(1000, 0));
  // The disk "goes bad": tmp/ becomes a regular file, so no temporary file can be created (this works as
  // root too, unlike chmod).
  fs::remove_all(dir.path() / "tmp");
  { std::ofstream(dir.path() / "tmp") << "in the way"; }

  int woken = 0;
  ASSERT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::claimed);
  ASSERT_EQ(cache->claim(kObject, 1, [&] { ++woken; }), slice_cache::claim_outcome::in_flight);
  EXPECT_EQ(cache->begin(kObject, 1, 1000), nullptr);
  EXPECT_EQ(cache->counters().write_errors.load(), 1u);
  EXPECT_EQ(woken, 1);  // begin() released the claim

  // Degraded: no new claims, so that requests pass through instead of each failing on the disk.
  EXPECT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::unavailable);
  EXPECT_EQ(cache->claim(kObject, 2, [] {}), slice_cache::claim_outcome::unavailable);
  // What is cached is still served.
  EXPECT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::present);
  EXPECT_TRUE(cache->lookup(kObject, 0, 1000));
}

TEST(slice_cache, degraded_mode_ends_after_its_pause) {
  temp_dir dir;
  auto cfg = config_for(dir.path());
  cfg.degraded_pause = std::chrono::seconds(30);
  auto now = std::chrono::steady_clock::time_point(std::chrono::hours(1));
  auto cache = open_cache(cfg, [&] { return now; });
  fs::remove_all(dir.path() / "tmp");
  { std::ofstream(dir.path() / "tmp") << "in the way"; }
  ASSERT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::claimed);
  EXPECT_EQ(cache->begin(kObject, 1, 1000), nullptr);
  EXPECT_EQ(cache->counters().write_errors.load(), 1u);
  fs::remove(dir.path() / "tmp");
  fs::create_directory(dir.path() / "tmp");
  now += std::chrono::milliseconds(29'999);
  EXPECT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::unavailable);
  // After the pause the next fetch tries the disk again (and, with tmp/ back, succeeds).
  now += std::chrono::milliseconds(1);
  put_slice(*cache, kObject, 1, pattern_bytes(1000, 1));
  EXPECT_TRUE(cache->lookup(kObject, 1, 1000));
}

TEST(slice_cache, another_write_error_extends_the_pause) {
  temp_dir dir;
  auto cfg = config_for(dir.path());
  cfg.degraded_pause = std::chrono::seconds(30);
  auto now = std::chrono::steady_clock::time_point(std::chrono::hours(1));
  auto cache = open_cache(cfg, [&] { return now; });
  fs::remove_all(dir.path() / "tmp");
  { std::ofstream(dir.path() / "tmp") << "in the way"; }
  ASSERT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::claimed);
  ASSERT_EQ(cache->claim(kObject, 2, [] {}), slice_cache::claim_outcome::claimed);
  EXPECT_EQ(cache->begin(kObject, 1, 1000), nullptr);
  now += std::chrono::seconds(20);
  EXPECT_EQ(cache->begin(kObject, 2, 1000), nullptr);  // a fetch claimed before the first error
  now += std::chrono::seconds(20);
  EXPECT_EQ(cache->claim(kObject, 3, [] {}), slice_cache::claim_outcome::unavailable)
      << "30 s from the second";
  now += std::chrono::seconds(10);
  EXPECT_EQ(cache->claim(kObject, 3, [] {}), slice_cache::claim_outcome::claimed);
}

TEST(slice_cache, a_failed_rename_degrades_and_publishes_nothing) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path()));
  // A directory where the slice file should go: rename(2) fails with EISDIR.
  fs::create_directories(slice_file(dir.path(), kObject, 0) / "blocker");
  int woken = 0;
  ASSERT_EQ(cache->claim(kObject, 0, [] {}), slice_cache::claim_outcome::claimed);
  ASSERT_EQ(cache->claim(kObject, 0, [&] { ++woken; }), slice_cache::claim_outcome::in_flight);
  auto w = cache->begin(kObject, 0, 1000);
  ASSERT_TRUE(w);
  ASSERT_TRUE(w->append(std::span<const char>(pattern_bytes(1000, 0))));
  EXPECT_FALSE(cache->commit(kObject, 0, std::move(w)));
  EXPECT_EQ(woken, 1);
  EXPECT_EQ(cache->counters().write_errors.load(), 1u);
  EXPECT_EQ(cache->stored_bytes(), 0u);
  EXPECT_TRUE(fs::is_empty(dir.path() / "tmp"));
  EXPECT_EQ(cache->claim(kObject, 1, [] {}), slice_cache::claim_outcome::unavailable);
}

TEST(slice_cache, a_cache_dir_that_is_a_file_is_an_error_at_start) {
  temp_dir dir;
  { std::ofstream(dir.path() / "file") << "x"; }
  EXPECT_THROW(open_cache(config_for(dir.path() / "file")), std::exception);
}

// -- metrics -------------------------------------------------------------------------------

TEST(slice_cache, metrics_name_every_counter) {
  temp_dir dir;
  auto cache = open_cache(config_for(dir.path(), 1000, 1000));
  put_slice(*cache, kObject, 0, pattern_bytes(1000, 0));
  put_slice(*cache, kObject, 1, pattern_bytes(400, 1));
  ASSERT_TRUE(cache->lookup(kObject, 1, 400));
  const auto text = cache->render_metrics();
  for (const char* line :
       {"mediagate_cache_hits_total 1\n", "mediagate_cache_misses_total 0\n",
        "mediagate_cache_evictions_total 1\n", "mediagate_cache_stored_bytes 400\n",
        "mediagate_cache_corrupt_slices_total 0\n", "mediagate_cache_write_errors_total 0\n",
        "mediagate_cache_stale_served_total 0\n", "mediagate_cache_coalesced_waits_total 0\n",
        "mediagate_cache_upstream_requests_total 0\n", "mediagate_cache_upstream_bytes_total 0\n",
        "mediagate_cache_served_bytes_total 0\n", "# TYPE mediagate_cache_stored_bytes gauge\n",
        "# TYPE mediagate_cache_hits_total counter\n"})
    EXPECT_NE(text.find(line), std::string::npos) << line << " missing from\n" << text;
}

}  // namespace
}  // namespace mediagate::cache
