// The cache reader (cached_storage) in front of a fake upstream: exact bytes, hits without upstream
// calls, failures that surface as errors instead of wrong bytes, and `changed` invalidating what was cached.
#include "cache/cached_storage.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>

#include "cache/metadata_cache.hpp"
#include "cache/slice_cache.hpp"
#include "harness.hpp"
#include "server/spliced_reader.hpp"
#include "temp_dir.hpp"

namespace mediagate::testing_support {
namespace {

using namespace std::chrono_literals;
using cache::cached_storage;

std::string counter_bytes(std::size_t n, unsigned salt = 0) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + i / 256 + salt) & 0xff);
  return s;
}

struct read_result {
  std::string bytes;
  std::optional<error> failure;
};

// Reads `length` bytes from `reader` as a connection does, in pieces of `buffer_bytes` (file chunks read with
// pread), then lets the reader finish.
net::awaitable<read_result> drain(st::range_reader& reader, std::uint64_t length, std::size_t buffer_bytes,
                                  bool zero_copy) {
  read_result out;
  std::vector<char> buf(buffer_bytes);
  while (out.bytes.size() < length) {
    auto c = co_await reader.next(buf, zero_copy);
    if (!c) {
      out.failure = c.err();
      co_return out;
    }
    if (c->bytes == 0) break;
    if (c->file) {
      std::string piece(c->bytes, '\0');
      const auto got = ::pread(c->file->fd, piece.data(), piece.size(), static_cast<off_t>(c->file->offset));
      EXPECT_EQ(got, static_cast<ssize_t>(piece.size()));
      out.bytes += piece;
    } else {
      out.bytes.append(buf.data(), c->bytes);
    }
  }
  co_await reader.finish(buf);
  co_return out;
}

// Reads a whole range of `key` as a connection does.
net::awaitable<read_result> read_range(st::storage& s, std::string key, st::object_meta meta,
                                       http::byte_range range, std::size_t buffer_bytes, bool zero_copy) {
  auto reader = co_await s.open(key, meta, range);
  if (!reader) {
    read_result out;
    out.failure = reader.err();
    co_return out;
  }
  co_return co_await drain(**reader, range.length(), buffer_bytes, zero_copy);
}

class cache_reader : public ::testing::Test {
 protected:
  void SetUp() override {
    upstream->put("movie.mp4", object);
    upstream->set_max_chunk(300);  // upstream pieces never line up with slices
    cache::cache_config config;
    config.dir = dir.path() / "cache";
    config.slice_bytes = 1000;
    config.capacity_bytes = 1 << 20;
    auto log = std::make_shared<spdlog::logger>("cache-test",
                                                std::make_shared<spdlog::sinks::ostream_sink_mt>(logs));
    slices = std::make_shared<cache::slice_cache>(config, log, clock);
    cache::metadata_cache_config meta_config;
    meta_config.ttl = 5s;
    meta_config.stale_limit = 1h;
    metadata = std::make_shared<cache::metadata_cache>(meta_config, clock);
    store = std::make_unique<cached_storage>(slices, metadata, upstream, log);
  }

  st::object_meta stat(const std::string& key = "movie.mp4") {
    auto m = run(store->stat(key));
    EXPECT_TRUE(m.ok()) << m.err().message;
    return m.ok() ? *m : st::object_meta{};
  }
  read_result read(http::byte_range range, bool zero_copy = false, std::size_t buffer = 256) {
    return run(read_range(*store, "movie.mp4", stat(), range, buffer, zero_copy));
  }

  temp_dir dir{"component-cache"};
  std::ostringstream logs;
  std::chrono::steady_clock::time_point now = std::chrono::steady_clock::time_point{} + 1000h;
  cache::clock_fn clock = [this] { return now; };
  std::string object = counter_bytes(4500);
  std::shared_ptr<fake_storage> upstream = std::make_shared<fake_storage>();
  std::shared_ptr<cache::slice_cache> slices;
  std::shared_ptr<cache::metadata_cache> metadata;
  std::unique_ptr<cached_storage> store;
};

TEST_F(cache_reader, range_read_returns_exact_bytes_with_one_upstream_read_per_run) {
  auto r = read({1500, 3499});
  EXPECT_FALSE(r.failure.has_value());
  EXPECT_EQ(r.bytes, object.substr(1500, 2000));
  // Slices 1 to 3 are missing: one ranged read of the whole run, from the first slice's start.
  ASSERT_EQ(upstream->counters().opened.size(), 1u);
  EXPECT_EQ(upstream->counters().opened[0], (http::byte_range{1000, 3999}));
  EXPECT_EQ(upstream->counters().stats, 1);
  EXPECT_EQ(slices->counters().misses.load(), 3u);
  EXPECT_EQ(slices->counters().upstream_requests.load(), 1u);
}

TEST_F(cache_reader, second_read_is_served_without_upstream_calls) {
  ASSERT_EQ(read({1500, 3499}).bytes, object.substr(1500, 2000));
  const auto opens = upstream->counters().opens;
  const auto stats = upstream->counters().stats;
  const auto bytes = upstream->counters().bytes_read;
  EXPECT_EQ(bytes, 3000u);  // the run of slices 1-3, read to the end of slice 3 by finish()
  for (bool zero_copy : {false, true}) {
    auto again = read({1500, 3499}, zero_copy);
    EXPECT_FALSE(again.failure.has_value());
    EXPECT_EQ(again.bytes, object.substr(1500, 2000)) << "zero_copy " << zero_copy;
    auto inner = read({2100, 2199}, zero_copy);
    EXPECT_EQ(inner.bytes, object.substr(2100, 100));
  }
  EXPECT_EQ(upstream->counters().opens, opens);
  EXPECT_EQ(upstream->counters().stats, stats);  // the metadata is fresh too
  EXPECT_EQ(upstream->counters().bytes_read, bytes);
  EXPECT_EQ(slices->counters().hits.load(), 8u);  // (3 + 1 slices) in each of the two modes
}

TEST_F(cache_reader, partly_cached_range_fetches_only_the_missing_slices) {
  ASSERT_EQ(read({1000, 1999}).bytes, object.substr(1000, 1000));
  ASSERT_EQ(read({3000, 3999}).bytes, object.substr(3000, 1000));
  upstream->set_max_chunk(4096);
  auto whole = read({0, 4499}, false, 700);
  EXPECT_FALSE(whole.failure.has_value());
  EXPECT_EQ(whole.bytes, object);
  const auto& opened = upstream->counters().opened;
  ASSERT_EQ(opened.size(), 5u);
  EXPECT_EQ(opened[2], (http::byte_range{0, 999}));
  EXPECT_EQ(opened[3], (http::byte_range{2000, 2999}));
  EXPECT_EQ(opened[4], (http::byte_range{4000, 4499}));  // the last slice is short
}

TEST_F(cache_reader, upstream_failure_mid_slice_is_an_error_not_wrong_bytes) {
  upstream->break_reads_after("movie.mp4", 1500, errc::upstream_timeout);
  auto r = read({0, 4499});
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_EQ(r.failure->code, errc::upstream_timeout);
  EXPECT_EQ(r.bytes, object.substr(0, r.bytes.size()));
  EXPECT_LE(r.bytes.size(), 1500u);
  // The complete slice 0 was kept; the broken slice 1 was not: it is fetched again, never served torn.
  upstream->clear_breaks();
  const auto before = upstream->counters().opened.size();
  auto again = read({0, 4499});
  EXPECT_FALSE(again.failure.has_value());
  EXPECT_EQ(again.bytes, object);
  ASSERT_EQ(upstream->counters().opened.size(), before + 1);
  EXPECT_EQ(upstream->counters().opened.back(), (http::byte_range{1000, 4499}));
}

TEST_F(cache_reader, failed_upstream_open_is_an_error_and_releases_the_claims) {
  upstream->fail(storage_op::open, "movie.mp4", errc::upstream_unavailable, 1);
  const auto meta = stat();
  auto failed = run(store->open("movie.mp4", meta, {0, 99}));
  ASSERT_FALSE(failed.ok());
  EXPECT_EQ(failed.err().code, errc::upstream_unavailable);
  // Not claimed forever: the next read fetches the slice itself at once (no wait for a fetch that died).
  const auto started = std::chrono::steady_clock::now();
  auto r = read({0, 99});
  EXPECT_EQ(r.bytes, object.substr(0, 100));
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
}

TEST_F(cache_reader, changed_upstream_invalidates_the_cached_metadata) {
  const auto old_meta = stat();
  upstream->put("movie.mp4", counter_bytes(4500, 7));  // replaced: a new ETag
  const auto new_object = upstream->find("movie.mp4")->bytes;
  // Still fresh in the metadata cache: the old version is announced...
  EXPECT_EQ(stat().etag, old_meta.etag);
  // ...until reading it finds it changed.
  auto r = run(read_range(*store, "movie.mp4", old_meta, {0, 99}, 256, false));
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_EQ(r.failure->code, errc::changed);
  EXPECT_EQ(r.bytes, "");
  const auto stats = upstream->counters().stats;
  const auto fresh = stat();
  EXPECT_EQ(upstream->counters().stats, stats + 1);  // asked upstream again
  EXPECT_NE(fresh.etag, old_meta.etag);
  auto now_read = read({0, 99});
  EXPECT_EQ(now_read.bytes, new_object.substr(0, 100));
}

TEST_F(cache_reader, changed_mid_run_fails_instead_of_splicing_versions) {
  // Slice 0 of the old version is cached; the object is replaced; a read of slices 0-1 with the old
  // metadata must not join old slice 0 to new bytes.
  const auto old_meta = stat();
  ASSERT_EQ(read({0, 999}).bytes, object.substr(0, 1000));
  upstream->put("movie.mp4", counter_bytes(4500, 9));
  auto r = run(read_range(*store, "movie.mp4", old_meta, {0, 1999}, 256, false));
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_EQ(r.failure->code, errc::changed);
  EXPECT_EQ(r.bytes, object.substr(0, r.bytes.size()));  // whatever came is the old version's
}

TEST_F(cache_reader, stale_metadata_is_served_while_upstream_is_down) {
  const auto meta = stat();
  ASSERT_EQ(read({0, 999}).bytes, object.substr(0, 1000));
  now += 10s;  // past the TTL
  upstream->fail(storage_op::stat, "movie.mp4", errc::upstream_unavailable);
  auto stale = run(store->stat("movie.mp4"));
  ASSERT_TRUE(stale.ok());
  EXPECT_EQ(stale->etag, meta.etag);
  EXPECT_EQ(slices->counters().stale_served.load(), 1u);
  // Cached slices keep being served.
  EXPECT_EQ(run(read_range(*store, "movie.mp4", *stale, {0, 999}, 256, false)).bytes, object.substr(0, 1000));
  // Not found is not an outage: no stale answer.
  upstream->fail(storage_op::stat, "movie.mp4", errc::not_found);
  now += 10s;
  auto gone = run(store->stat("movie.mp4"));
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.err().code, errc::not_found);
}

// The media handler over the cache: a replacement found while planning is planned once more.
TEST_F(cache_reader, media_handler_replans_when_the_cache_finds_the_object_changed) {
  ASSERT_EQ(stat().etag, upstream->find("movie.mp4")->etag);  // metadata cached
  upstream->put("movie.mp4", counter_bytes(4500, 3));
  const auto new_object = upstream->find("movie.mp4")->bytes;
  server::server_config config;
  server::metrics stats;
  captured_log log{"handler"};
  std::vector<std::function<std::string()>> sources;
  server::services svc{config, *store, stats, *log.logger, sources};
  test_request req("GET", "/media/movie.mp4", {{"Range", "bytes=10-19"}});
  auto r = run([](test_request& q, server::services& s) -> net::awaitable<response> {
    const auto view = q.view();
    co_return co_await server::handle_request(view, s);
  }(req, svc));
  EXPECT_EQ(r.status, 206u);
  EXPECT_EQ(header(r, "ETag"), upstream->find("movie.mp4")->etag);
  EXPECT_EQ(body_of(r).bytes, new_object.substr(10, 10));
}

// An HLS segment's layout over the object: a moof-like head, then runs of the object (other tracks' bytes
// between them). Read with the spliced reader, as serve_generated does.
struct segment_case {
  std::shared_ptr<server::spliced_layout> layout = [] {
    auto l = std::make_shared<server::spliced_layout>();
    l->head = "HEAD-of-the-segment";
    l->runs = {{100, 50}, {160, 400}, {600, 30}, {1200, 1700}, {2950, 20}, {4000, 300}};
    l->payload_name = "hls \"seg-1\"";
    return l;
  }();
  std::string expected(const std::string& object) const {
    std::string out = layout->head;
    for (const auto& r : layout->runs) out += object.substr(r.offset, r.length);
    return out;
  }
};

net::awaitable<read_result> read_segment(st::storage& s, st::object_meta meta,
                                         std::shared_ptr<const server::spliced_layout> layout,
                                         http::byte_range range, bool zero_copy) {
  server::run_read_options options;
  options.max_gap = 1 << 20;
  options.parallel = 3;
  auto reader = server::make_spliced_reader(s, "movie.mp4", meta, layout, range, options);
  co_return co_await drain(*reader, range.length(), 256, zero_copy);
}

TEST_F(cache_reader, a_segment_is_fetched_as_its_runs_and_cached_as_itself) {
  segment_case seg;
  const auto expected = seg.expected(object);
  const auto meta = stat();
  auto cold = run(read_segment(*store, meta, seg.layout, {0, expected.size() - 1}, false));
  ASSERT_FALSE(cold.failure.has_value()) << cold.failure->message;
  EXPECT_EQ(cold.bytes, expected);
  // Only the runs and the small gaps within 10% of them: never whole slices of the object.
  std::uint64_t payload = 0;
  for (const auto& r : seg.layout->runs) payload += r.length;
  EXPECT_GE(upstream->counters().bytes_read, payload);
  EXPECT_LE(upstream->counters().bytes_read, payload + payload / 10);
  // Gaps of 10, 40, 570, 50 and 1030 bytes beside 2500 bytes of runs: the 1030 and the 570 are skipped
  // (largest first), the rest (100 bytes) read through. Three reads, started together.
  auto opened = upstream->counters().opened;  // in the order the reads started: the later ones go first
  std::sort(opened.begin(), opened.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  EXPECT_EQ(opened, (std::vector<http::byte_range>{{100, 629}, {1200, 2969}, {4000, 4299}}));
  // Warm, as bytes and as file chunks, whole or in part: from the cache, no upstream call.
  const auto opens = upstream->counters().opens;
  for (bool zero_copy : {false, true}) {
    auto warm = run(read_segment(*store, meta, seg.layout, {0, expected.size() - 1}, zero_copy));
    EXPECT_EQ(warm.bytes, expected) << "zero_copy " << zero_copy;
    auto part = run(read_segment(*store, meta, seg.layout, {5, 900}, zero_copy));
    EXPECT_EQ(part.bytes, expected.substr(5, 896)) << "zero_copy " << zero_copy;
  }
  EXPECT_EQ(upstream->counters().opens, opens);
}

TEST_F(cache_reader, a_segment_read_fails_cleanly_when_upstream_fails) {
  segment_case seg;
  const auto expected = seg.expected(object);
  upstream->fail(storage_op::open, "movie.mp4", errc::upstream_unavailable, -1);
  auto r = run(read_segment(*store, stat(), seg.layout, {0, expected.size() - 1}, false));
  ASSERT_TRUE(r.failure.has_value());
  EXPECT_EQ(r.failure->code, errc::upstream_unavailable);
  EXPECT_EQ(r.bytes, seg.layout->head);  // the head, then an error: never wrong or missing bytes
}

}  // namespace
}  // namespace mediagate::testing_support
