#include "storage/upload_temp.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>
#include <string>

#include "temp_dir.hpp"

namespace mediagate::storage {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing_support::temp_dir;

TEST(upload_temp, names) {
  EXPECT_EQ(upload_temp_name("movie.mp4", 0x1234), ".movie.mp4.upload-0000000000001234");
  EXPECT_EQ(upload_temp_name("a", ~0ull), ".a.upload-ffffffffffffffff");
  const std::string long_name(300, 'x');
  EXPECT_EQ(upload_temp_name(long_name, 1), "." + std::string(100, 'x') + ".upload-0000000000000001");

  for (const auto& ours : {upload_temp_name("movie.mp4", 0xdeadbeefcafe), upload_temp_name(long_name, 7),
                           upload_temp_name(".hidden", 1), upload_temp_name("a", 0)})
    EXPECT_TRUE(is_upload_temp_name(ours)) << ours;
  for (const char* theirs :
       {"movie.mp4", ".movie.mp4", ".upload-0000000000000001", "..upload-000000000000000",
        "movie.upload-0000000000000001", ".movie.upload-000000000000000g", ".movie.upload-0000000000000001x",
        ".movie.upload-00000000000000001", ".movie.upload-ABCDEF0000000001",
        ".movie.uploaded-0000000000000001"})
    EXPECT_FALSE(is_upload_temp_name(theirs)) << theirs;
  EXPECT_FALSE(is_upload_temp_name("." + std::string(101, 'x') + ".upload-0000000000000001"))
      << "too long to be ours";
}

void write(const fs::path& p, const std::string& text) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << text;
}

TEST(upload_temp, only_our_idle_temporaries_are_removed) {
  temp_dir dir("upload-temp");
  const auto& root = dir.path();
  const auto old = root / "shows" / upload_temp_name("ep1.mp4", 1);
  const auto fresh = root / upload_temp_name("ep2.mp4", 2);
  const auto user = root / "tmp" / "draft.upload-notes.txt";
  const auto hidden = root / ".posters" / "1.jpg";
  for (const auto& p : {old, fresh, user, hidden}) write(p, "bytes");
  // A symbolic link named like ours, pointing at a user's file: neither followed nor removed.
  write(root / "elsewhere.txt", "keep");
  fs::create_symlink(root / "elsewhere.txt", root / upload_temp_name("link", 3));
  // A directory named like ours is no upload either.
  fs::create_directories(root / upload_temp_name("dir", 4));

  const auto now = fs::file_time_type::clock::now();
  for (const auto& p : {old, user, hidden}) fs::last_write_time(p, now - 2h);
  fs::last_write_time(fresh, now - 10min);

  const auto report = remove_stale_upload_temps(root, std::chrono::system_clock::now(), 1h);
  EXPECT_EQ(report.removed, 1u);
  EXPECT_EQ(report.recent, 1u);
  EXPECT_FALSE(fs::exists(old));
  EXPECT_TRUE(fs::exists(fresh)) << "perhaps an upload in progress";
  EXPECT_TRUE(fs::exists(user));
  EXPECT_TRUE(fs::exists(hidden));
  EXPECT_TRUE(fs::is_symlink(root / upload_temp_name("link", 3)));
  EXPECT_TRUE(fs::exists(root / "elsewhere.txt"));
  EXPECT_TRUE(fs::is_directory(root / upload_temp_name("dir", 4)));

  // An hour later the other one is idle too.
  const auto later = remove_stale_upload_temps(root, std::chrono::system_clock::now() + 2h, 1h);
  EXPECT_EQ(later.removed, 1u);
  EXPECT_FALSE(fs::exists(fresh));
}

TEST(upload_temp, a_missing_root_removes_nothing) {
  temp_dir dir("upload-temp");
  const auto report = remove_stale_upload_temps(dir.path() / "missing", std::chrono::system_clock::now(), 1h);
  EXPECT_EQ(report.removed, 0u);
  EXPECT_EQ(report.recent, 0u);
}

}  // namespace
}  // namespace mediagate::storage
