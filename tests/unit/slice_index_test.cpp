#include "cache/slice_index.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace mediagate::cache {
namespace {

slice_index::entry sized(std::uint64_t length) { return {"/cache/" + std::to_string(length), length, -1}; }

// Inserts and returns the keys evicted, in eviction order.
std::vector<std::string> insert(slice_index& index, const std::string& key, std::uint64_t length) {
  std::vector<std::string> evicted;
  const auto n = index.insert(key, {"/cache/" + key, length, -1}, [&](const slice_index::entry& e) {
    evicted.push_back(e.path.filename().string());
  });
  EXPECT_EQ(n, evicted.size());
  return evicted;
}

using keys = std::vector<std::string>;

TEST(slice_index, evicts_least_recently_used_first_by_bytes) {
  slice_index index(1000);
  EXPECT_EQ(insert(index, "a", 400), keys{});
  EXPECT_EQ(insert(index, "b", 400), keys{});
  EXPECT_EQ(insert(index, "c", 200), keys{}) << "exactly the budget fits";
  EXPECT_EQ(index.total_bytes(), 1000u);
  EXPECT_EQ(insert(index, "d", 1), keys{"a"});
  EXPECT_EQ(insert(index, "e", 900), (keys{"b", "c"})) << "601 + 900: two must go, oldest first";
  EXPECT_EQ(index.total_bytes(), 901u);
  EXPECT_EQ(index.size(), 2u);
  EXPECT_FALSE(index.contains("a"));
  EXPECT_TRUE(index.contains("d"));
}

TEST(slice_index, touch_makes_an_entry_most_recently_used) {
  slice_index index(300);
  insert(index, "a", 100);
  insert(index, "b", 100);
  insert(index, "c", 100);
  auto a = index.touch("a");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->length, 100u);
  EXPECT_EQ(a->path, "/cache/a");
  EXPECT_EQ(insert(index, "d", 100), keys{"b"});
  EXPECT_EQ(insert(index, "e", 100), keys{"c"});
  EXPECT_EQ(insert(index, "f", 100), keys{"a"});
  EXPECT_FALSE(index.touch("a"));
}

TEST(slice_index, replacing_a_key_counts_its_bytes_once) {
  slice_index index(1000);
  insert(index, "a", 700);
  EXPECT_EQ(insert(index, "a", 900), keys{});
  EXPECT_EQ(index.total_bytes(), 900u);
  EXPECT_EQ(index.size(), 1u);
}

TEST(slice_index, an_entry_larger_than_the_budget_evicts_everything_and_itself) {
  slice_index index(100);
  insert(index, "a", 50);
  EXPECT_EQ(insert(index, "huge", 101), (keys{"a", "huge"}));
  EXPECT_EQ(index.total_bytes(), 0u);
  EXPECT_EQ(index.size(), 0u);
}

TEST(slice_index, erase_and_mark_checked) {
  slice_index index(1000);
  index.insert("a", sized(10), nullptr);
  index.mark_checked("a", 1234);
  EXPECT_EQ(index.touch("a")->checked_mtime_ns, 1234);
  index.mark_checked("gone", 1);  // harmless
  EXPECT_TRUE(index.erase("a"));
  EXPECT_FALSE(index.erase("a"));
  EXPECT_EQ(index.total_bytes(), 0u);
  // An erased entry leaves the LRU too: filling the budget evicts nothing stale.
  EXPECT_EQ(insert(index, "b", 1000), keys{});
}

TEST(slice_index, claims_share_one_fetch) {
  slice_index index(1000);
  int woken = 0;
  EXPECT_EQ(index.claim(
                "a", [] {}, true),
            claim_outcome::claimed);
  EXPECT_EQ(index.claim(
                "a", [&] { ++woken; }, true),
            claim_outcome::in_flight);
  EXPECT_EQ(index.claim(
                "a", [&] { ++woken; }, false),
            claim_outcome::in_flight)
      << "waiting needs no disk";
  EXPECT_EQ(index.claim(
                "b", [] {}, true),
            claim_outcome::claimed);
  EXPECT_EQ(woken, 0);
  index.release("a");
  EXPECT_EQ(woken, 2);
  index.release("a");  // twice, or never claimed: harmless
  index.release("zzz");
  EXPECT_EQ(woken, 2);
  EXPECT_EQ(index.claim(
                "a", [] {}, true),
            claim_outcome::claimed)
      << "a released claim can be taken again";
}

TEST(slice_index, claims_of_present_or_unwritable_slices) {
  slice_index index(1000);
  index.insert("a", sized(10), nullptr);
  EXPECT_EQ(index.claim(
                "a", [] {}, true),
            claim_outcome::present);
  EXPECT_EQ(index.claim(
                "a", [] {}, false),
            claim_outcome::present);
  EXPECT_EQ(index.claim(
                "b", [] {}, false),
            claim_outcome::unavailable);
  EXPECT_EQ(index.claim(
                "b", [] {}, true),
            claim_outcome::claimed)
      << "unavailable took no claim";
}

TEST(slice_index, a_waiter_sees_the_slice_published_before_it_is_woken) {
  slice_index index(1000);
  bool found = false;
  ASSERT_EQ(index.claim(
                "a", [] {}, true),
            claim_outcome::claimed);
  ASSERT_EQ(index.claim(
                "a", [&] { found = index.contains("a"); }, true),
            claim_outcome::in_flight);
  index.insert("a", sized(10), nullptr);
  index.release("a");
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace mediagate::cache
