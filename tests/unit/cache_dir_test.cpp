#include "cache/cache_dir.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <optional>
#include <string>

#include "cache/slice_file.hpp"
#include "temp_dir.hpp"

namespace mediagate::cache {
namespace {

namespace fs = std::filesystem;
using testing_support::temp_dir;

// -- placement beside the media and the catalog ---------------------------------------------------------

struct placement_case {
  const char* cache;
  std::optional<const char*> media;
  std::optional<const char*> catalog;
  const char* problem;  // a phrase the refusal must contain; nullptr: allowed
};

TEST(cache_dir, placement) {
  const placement_case cases[] = {
      {"/srv/cache", "/srv/media", "/srv/db/mediagate.db", nullptr},
      {"/srv/media", "/srv/media", std::nullopt, "is the media directory"},
      {"/srv/media/", "/srv/media", std::nullopt, "is the media directory"},
      {"/srv/media/./", "/srv/media", std::nullopt, "is the media directory"},
      {"/srv/media/.cache", "/srv/media", std::nullopt, "lies inside the media directory"},
      {"/srv/media/a/b", "/srv/media/", std::nullopt, "lies inside the media directory"},
      {"/srv", "/srv/media", std::nullopt, "contains the media directory"},
      {"/", "/srv/media", std::nullopt, "contains the media directory"},
      // Components, not string prefixes.
      {"/srv/media2", "/srv/media", std::nullopt, nullptr},
      {"/srv/med", "/srv/media", std::nullopt, nullptr},
      // S3 storage: no media directory to overlap.
      {"/srv/media", std::nullopt, std::nullopt, nullptr},
      // The catalog: not its directory, nor one that contains it; a sibling beside it is fine
      // (scripts/run.sh: ./mediagate.db and ./.cache/slices).
      {"/srv/db", std::nullopt, "/srv/db/mediagate.db", "is the directory of the catalog"},
      {"/srv", std::nullopt, "/srv/db/mediagate.db", "contains the catalog"},
      {"/srv/db/.cache/slices", std::nullopt, "/srv/db/mediagate.db", nullptr},
      {"/srv/db2", std::nullopt, "/srv/db/mediagate.db", nullptr},
      {"/srv/db/mediagate.db.cache", std::nullopt, "/srv/db/mediagate.db", nullptr},
  };
  for (const auto& c : cases) {
    std::optional<fs::path> media, catalog;
    if (c.media) media = *c.media;
    if (c.catalog) catalog = *c.catalog;
    const auto problem = placement_problem(c.cache, media, catalog);
    const auto label =
        std::string(c.cache) + " media " + c.media.value_or("-") + " catalog " + c.catalog.value_or("-");
    if (!c.problem) {
      EXPECT_FALSE(problem) << label << ": " << problem.value_or("");
    } else {
      ASSERT_TRUE(problem) << label;
      EXPECT_NE(problem->find(c.problem), std::string::npos) << label << ": " << *problem;
      EXPECT_NE(problem->find("--cache-dir"), std::string::npos) << *problem;
    }
  }
}

TEST(cache_dir, the_message_names_the_option_asked_about) {
  const auto problem =
      placement_problem("/srv/media/idx", fs::path("/srv/media"), std::nullopt, "--hls-index-dir");
  ASSERT_TRUE(problem);
  EXPECT_EQ(problem->rfind("--hls-index-dir /srv/media/idx lies inside the media directory", 0), 0u)
      << *problem;
  EXPECT_EQ(problem->find("--cache-dir"), std::string::npos) << *problem;
}

TEST(cache_dir, resolve_for_comparison_sees_through_symbolic_links_and_dots) {
  temp_dir dir("cache-dir");
  fs::create_directories(dir.path() / "media" / "tmp");
  fs::create_directory_symlink(dir.path() / "media", dir.path() / "link");
  const auto real = fs::canonical(dir.path() / "media");
  EXPECT_EQ(resolve_for_comparison(dir.path() / "link"), real);
  EXPECT_EQ(resolve_for_comparison(dir.path() / "media" / "tmp" / ".."), real);
  EXPECT_EQ(resolve_for_comparison(dir.path() / "link" / "not-yet"), real / "not-yet");
  EXPECT_TRUE(placement_problem(resolve_for_comparison(dir.path() / "link" / "c"), real, std::nullopt));
}

// -- ownership ------------------------------------------------------------------------------------------

TEST(cache_dir, a_new_directory_is_created_and_marked) {
  temp_dir dir("cache-dir");
  const auto cache = dir.path() / "a" / "b";
  take_ownership(cache);
  EXPECT_TRUE(fs::is_directory(cache / "tmp"));
  EXPECT_TRUE(fs::is_regular_file(cache / kMarkerName));
  EXPECT_NO_THROW(take_ownership(cache)) << "a marked directory is accepted again";
}

TEST(cache_dir, an_empty_directory_is_adopted) {
  temp_dir dir("cache-dir");
  take_ownership(dir.path());
  EXPECT_TRUE(fs::is_regular_file(dir.path() / kMarkerName));
}

TEST(cache_dir, a_cache_of_an_older_version_is_adopted) {
  temp_dir dir("cache-dir");
  fs::create_directories(dir.path() / "tmp");
  fs::create_directories(dir.path() / "0a");
  { std::ofstream(dir.path() / "0a" / "0a23456789abcdef0123456789abcdef-1") << "a slice"; }
  take_ownership(dir.path());
  EXPECT_TRUE(fs::is_regular_file(dir.path() / kMarkerName));
  EXPECT_TRUE(fs::exists(dir.path() / "0a" / "0a23456789abcdef0123456789abcdef-1"));
}

TEST(cache_dir, a_directory_holding_other_files_is_refused_and_left_alone) {
  // Issue 11: --cache-dir pointed at the media directory deleted the user's media/tmp/ files.
  temp_dir dir("cache-dir");
  fs::create_directories(dir.path() / "tmp");
  { std::ofstream(dir.path() / "tmp" / "draft.txt") << "the user's"; }
  { std::ofstream(dir.path() / "movie.mp4") << "the user's too"; }
  try {
    take_ownership(dir.path());
    FAIL() << "took a directory with the user's files";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("is not empty and is not a mediagate cache"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir.path() / kMarkerName));
  EXPECT_TRUE(fs::exists(dir.path() / "tmp" / "draft.txt"));
  EXPECT_TRUE(fs::exists(dir.path() / "movie.mp4"));
}

TEST(cache_dir, an_older_layout_with_a_symlink_or_a_file_is_not_adopted) {
  temp_dir dir("cache-dir");
  fs::create_directories(dir.path() / "linked" / "tmp");
  fs::create_directories(dir.path() / "elsewhere");
  fs::create_directory_symlink(dir.path() / "elsewhere", dir.path() / "linked" / "ab");
  EXPECT_THROW(take_ownership(dir.path() / "linked"), std::runtime_error);
  fs::create_directories(dir.path() / "filed" / "tmp");
  { std::ofstream(dir.path() / "filed" / "ab") << "a file, not a slice directory"; }
  EXPECT_THROW(take_ownership(dir.path() / "filed"), std::runtime_error);
}

TEST(cache_dir, a_marker_mediagate_did_not_write_is_refused) {
  temp_dir dir("cache-dir");
  { std::ofstream(dir.path() / kMarkerName) << "something else\n"; }
  EXPECT_THROW(take_ownership(dir.path()), std::runtime_error);
  fs::remove(dir.path() / kMarkerName);
  fs::create_directory(dir.path() / kMarkerName);
  EXPECT_THROW(take_ownership(dir.path()), std::runtime_error);
}

TEST(cache_dir, a_file_in_place_of_the_directory_is_refused) {
  temp_dir dir("cache-dir");
  { std::ofstream(dir.path() / "file") << "x"; }
  EXPECT_THROW(take_ownership(dir.path() / "file"), std::runtime_error);
  EXPECT_EQ(fs::file_size(dir.path() / "file"), 1u);
}

// -- leftover temporary files ---------------------------------------------------------------------------

TEST(cache_dir, only_our_leftover_temporary_files_are_removed) {
  temp_dir dir("cache-dir");
  const auto tmp = dir.path() / "tmp";
  fs::create_directories(tmp);
  const std::string id = "0123456789abcdef0123456789abcdef";
  // Ours: a crash mid-write (temporary magic) and one between the header write and the rename.
  {
    // The writer of an earlier process, which died: its file outlives it (a link stands in for the crash).
    auto w = slice_writer::create(tmp / temp_file_name(id, 1, 0), 10);
    ASSERT_TRUE(w);
    fs::create_hard_link(tmp / temp_file_name(id, 1, 0), tmp / temp_file_name(id, 1, 9));
  }
  {
    auto w = slice_writer::create(tmp / temp_file_name(id, 2, 0), 0);
    ASSERT_TRUE(w);
    ASSERT_TRUE(w->publish(tmp / temp_file_name(id, 2, 1)));  // complete header, still in tmp/
  }
  // Not ours: our name without our magic, a user's file, our magic under another name, a symlink.
  { std::ofstream(tmp / temp_file_name(id, 3, 0)) << "a user's file that happens to have this name"; }
  { std::ofstream(tmp / "notes.txt") << "keep"; }
  fs::copy_file(tmp / temp_file_name(id, 2, 1), tmp / "copy-of-a-slice");
  { std::ofstream(dir.path() / "target") << "keep"; }
  fs::create_symlink(dir.path() / "target", tmp / temp_file_name(id, 4, 0));

  EXPECT_EQ(remove_leftover_temp_files(tmp), 2u);
  EXPECT_FALSE(fs::exists(tmp / temp_file_name(id, 1, 9)));
  EXPECT_FALSE(fs::exists(tmp / temp_file_name(id, 2, 1)));
  EXPECT_TRUE(fs::exists(tmp / temp_file_name(id, 3, 0)));
  EXPECT_TRUE(fs::exists(tmp / "notes.txt"));
  EXPECT_TRUE(fs::exists(tmp / "copy-of-a-slice"));
  EXPECT_TRUE(fs::is_symlink(tmp / temp_file_name(id, 4, 0)));
  EXPECT_TRUE(fs::exists(dir.path() / "target"));
}

}  // namespace
}  // namespace mediagate::cache
