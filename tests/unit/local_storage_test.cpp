// local_storage: metadata, pinned versions, the per-thread table of open files, path safety, writes.
#include "storage/local_storage.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <filesystem>
#include <fstream>
#include <random>

namespace mediagate::storage {
namespace {

namespace fs = std::filesystem;

// Runs one coroutine of the storage to completion on a private event loop.
template <class T>
T run(boost::asio::awaitable<T> task) {
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(io, std::move(task), boost::asio::use_future);
  io.run();
  return future.get();
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::string out(n, '\0');
  for (auto& c : out) c = static_cast<char>(gen());
  return out;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

class LocalStorage : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("mediagate-local-" + std::to_string(::getpid()) + "-" +
                                         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
    store_ = std::make_unique<local_storage>(root_);
  }
  void TearDown() override {
    store_.reset();
    fs::remove_all(root_);
  }

  // Every byte of `range` of the object that `meta` describes, read in pieces of `piece` bytes.
  result<std::string> read(const std::string& key, const object_meta& meta, http::byte_range range,
                           std::size_t piece = 4096) {
    auto reader = run(store_->open(key, meta, range));
    if (!reader) return reader.err();
    std::string out, buf(piece, '\0');
    while (true) {
      auto n = run((*reader)->read_some(buf));
      if (!n) return n.err();
      if (*n == 0) break;
      out.append(buf.data(), *n);
    }
    return out;
  }
  result<std::string> read_all(const std::string& key, const object_meta& meta) {
    return read(key, meta, {0, meta.size - 1});
  }

  fs::path root_;
  std::unique_ptr<local_storage> store_;
};

TEST_F(LocalStorage, stat_describes_the_file_and_pins_it) {
  write_file(root_ / "a.mp4", random_bytes(1000, 1));
  auto first = run(store_->stat("a.mp4"));
  ASSERT_TRUE(first) << first.err().message;
  EXPECT_EQ(first->size, 1000u);
  ASSERT_GE(first->etag.size(), 3u);
  EXPECT_EQ(first->etag.front(), '"');
  EXPECT_EQ(first->etag.back(), '"');
  EXPECT_GT(first->last_modified, 0);
  EXPECT_NE(first->pinned, nullptr);
  auto second = run(store_->stat("a.mp4"));  // from the table of open files this time
  ASSERT_TRUE(second);
  EXPECT_EQ(second->etag, first->etag);
  EXPECT_EQ(second->size, first->size);
}

// The table of open files must not hide a replacement: rename(2) over the key unlinks the file it holds.
TEST_F(LocalStorage, a_file_replaced_by_rename_is_seen_at_once) {
  const auto old_bytes = random_bytes(5000, 2), new_bytes = random_bytes(7000, 3);
  write_file(root_ / "v.mp4", old_bytes);
  auto before = run(store_->stat("v.mp4"));
  ASSERT_TRUE(before);
  write_file(root_ / ".v.tmp", new_bytes);
  fs::rename(root_ / ".v.tmp", root_ / "v.mp4");
  auto after = run(store_->stat("v.mp4"));
  ASSERT_TRUE(after);
  EXPECT_NE(after->etag, before->etag);
  EXPECT_EQ(after->size, new_bytes.size());
  auto bytes = read_all("v.mp4", *after);
  ASSERT_TRUE(bytes) << bytes.err().message;
  EXPECT_EQ(*bytes, new_bytes);
  // A response planned from the old version keeps reading the old version: never a mix of the two.
  auto old_read = read_all("v.mp4", *before);
  ASSERT_TRUE(old_read) << old_read.err().message;
  EXPECT_EQ(*old_read, old_bytes);
}

TEST_F(LocalStorage, a_file_written_in_place_gets_a_new_etag_and_the_old_plan_fails) {
  write_file(root_ / "w.bin", random_bytes(3000, 4));
  auto before = run(store_->stat("w.bin"));
  ASSERT_TRUE(before);
  usleep(10'000);  // a later modification time, even on coarse clocks
  std::ofstream(root_ / "w.bin", std::ios::binary | std::ios::app) << "more";
  auto after = run(store_->stat("w.bin"));
  ASSERT_TRUE(after);
  EXPECT_NE(after->etag, before->etag);
  EXPECT_EQ(after->size, 3004u);
  auto stale = run(store_->open("w.bin", *before, {0, 99}));
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.err().code, errc::changed);
}

TEST_F(LocalStorage, a_deleted_file_is_not_found_at_once) {
  write_file(root_ / "d.bin", "x");
  ASSERT_TRUE(run(store_->stat("d.bin")));
  fs::remove(root_ / "d.bin");
  auto gone = run(store_->stat("d.bin"));
  ASSERT_FALSE(gone);
  EXPECT_EQ(gone.err().code, errc::not_found);
}

TEST_F(LocalStorage, keys_that_leave_the_root_or_name_no_file_are_refused) {
  const auto outside = root_.parent_path() / (root_.filename().string() + "-outside.txt");
  write_file(outside, "secret");
  fs::create_symlink(outside, root_ / "link.txt");
  fs::create_directories(root_ / "dir");
  struct {
    const char* key;
    std::vector<errc> accepted;
  } cases[] = {
      {"link.txt", {errc::not_found}},    {"../x", {errc::bad_key, errc::not_found}},
      {"dir", {errc::not_found}},         {"dir/../link.txt", {errc::bad_key, errc::not_found}},
      {"missing.mp4", {errc::not_found}},
  };
  for (const auto& c : cases) {
    auto r = run(store_->stat(c.key));
    ASSERT_FALSE(r) << c.key;
    EXPECT_NE(std::find(c.accepted.begin(), c.accepted.end(), r.err().code), c.accepted.end())
        << c.key << ": " << r.err().message;
  }
  fs::remove(outside);
}

TEST_F(LocalStorage, ranges_come_zero_copy_or_through_the_buffer) {
  const auto bytes = random_bytes(100000, 5);
  write_file(root_ / "r.bin", bytes);
  auto meta = run(store_->stat("r.bin"));
  ASSERT_TRUE(meta);
  const http::byte_range range{1000, 50000};

  auto reader = run(store_->open("r.bin", *meta, range));
  ASSERT_TRUE(reader);
  EXPECT_FALSE((*reader)->needs_buffer());
  std::vector<char> buf(16);
  auto whole = run((*reader)->next(buf, true));
  ASSERT_TRUE(whole);
  ASSERT_TRUE(whole->file.has_value());
  EXPECT_GE(whole->file->fd, 0);
  EXPECT_EQ(whole->file->offset, range.first);
  EXPECT_EQ(whole->bytes, range.length());
  auto end = run((*reader)->next(buf, true));
  ASSERT_TRUE(end);
  EXPECT_EQ(end->bytes, 0u);

  for (std::size_t piece : {7u, 4096u, 65536u}) {
    auto got = read("r.bin", *meta, range, piece);
    ASSERT_TRUE(got) << piece;
    EXPECT_EQ(*got, bytes.substr(range.first, range.length())) << piece;
  }
}

TEST_F(LocalStorage, stat_and_open_reads_the_hinted_range_of_the_file_it_examined) {
  const auto bytes = random_bytes(10000, 6);
  write_file(root_ / "h.bin", bytes);
  auto found = run(store_->stat_and_open("h.bin", read_hint{100, 4999}));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->meta.size, bytes.size());
  ASSERT_TRUE(found->reader);
  EXPECT_EQ(found->range.first, 100u);
  EXPECT_EQ(found->range.last, 4999u);
  EXPECT_FALSE(found->reader->end_at(5000)) << "beyond the hinted range";
  EXPECT_TRUE(found->reader->end_at(199));
  std::string got, buf(64, '\0');
  while (true) {
    auto n = run(found->reader->read_some(buf));
    ASSERT_TRUE(n);
    if (*n == 0) break;
    got.append(buf.data(), *n);
  }
  EXPECT_EQ(got, bytes.substr(100, 100));
  EXPECT_FALSE(found->reader->end_at(150)) << "only before the first read";

  // Open-ended and past-the-end hints: clamped to the size, or no reader at all.
  auto open_ended = run(store_->stat_and_open("h.bin", read_hint{9000, std::nullopt}));
  ASSERT_TRUE(open_ended && open_ended->reader);
  EXPECT_EQ(open_ended->range.last, bytes.size() - 1);
  auto past = run(store_->stat_and_open("h.bin", read_hint{10000, std::nullopt}));
  ASSERT_TRUE(past);
  EXPECT_FALSE(past->reader);
  EXPECT_FALSE(run(store_->stat_and_open("missing.bin", read_hint{})));

  // Suffix hints (bytes=-N): the last N bytes, the whole file when N is larger, none for N = 0.
  read_hint tail;
  tail.suffix = 300;
  auto last = run(store_->stat_and_open("h.bin", tail));
  ASSERT_TRUE(last && last->reader);
  EXPECT_EQ(last->range.first, 9700u);
  EXPECT_EQ(last->range.last, 9999u);
  std::string suffix_bytes;
  while (true) {
    auto n = run(last->reader->read_some(buf));
    ASSERT_TRUE(n);
    if (*n == 0) break;
    suffix_bytes.append(buf.data(), *n);
  }
  EXPECT_EQ(suffix_bytes, bytes.substr(9700));
  tail.suffix = 20000;
  auto all = run(store_->stat_and_open("h.bin", tail));
  ASSERT_TRUE(all && all->reader);
  EXPECT_EQ(all->range.first, 0u);
  EXPECT_EQ(all->range.last, 9999u);
  tail.suffix = 0;
  auto none = run(store_->stat_and_open("h.bin", tail));
  ASSERT_TRUE(none);
  EXPECT_FALSE(none->reader);
}

TEST_F(LocalStorage, write_makes_the_whole_object_visible_and_a_failed_write_leaves_nothing) {
  const auto bytes = random_bytes(300000, 6);
  std::size_t offset = 0;
  body_source source = [&](std::span<char> buf) -> boost::asio::awaitable<result<std::size_t>> {
    const auto n = std::min(buf.size(), bytes.size() - offset);
    std::copy_n(bytes.data() + offset, n, buf.data());
    offset += n;
    co_return n;
  };
  auto written = run(store_->write("up/new.mp4", "video/mp4", source));
  ASSERT_TRUE(written) << written.err().message;
  auto meta = run(store_->stat("up/new.mp4"));
  ASSERT_TRUE(meta);
  EXPECT_EQ(meta->etag, written->etag);
  EXPECT_EQ(meta->size, bytes.size());
  auto back = read_all("up/new.mp4", *meta);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, bytes);

  int calls = 0;
  body_source failing = [&](std::span<char> buf) -> boost::asio::awaitable<result<std::size_t>> {
    if (++calls > 2) co_return error{errc::io_error, "client went away"};
    std::fill(buf.begin(), buf.end(), 'x');
    co_return buf.size();
  };
  auto failed = run(store_->write("up/broken.mp4", "video/mp4", failing));
  ASSERT_FALSE(failed);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(root_ / "up")) names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"new.mp4"}) << "no object and no temporary file may remain";
}

}  // namespace
}  // namespace mediagate::storage
