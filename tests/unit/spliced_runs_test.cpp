// group_runs: which sample runs of a segment are read with one storage request (issue 14's S3 economy).
#include <gtest/gtest.h>

#include "server/spliced_reader.hpp"

namespace mediagate::server {
namespace {

using runs_t = std::vector<spliced_layout::run>;

std::vector<run_group> group(const runs_t& runs, std::uint64_t max_gap, double max_extra = 0.1) {
  run_read_options o;
  o.max_gap = max_gap;
  o.max_extra = max_extra;
  return group_runs(runs, o);
}

std::uint64_t read_bytes(const runs_t& runs, const std::vector<run_group>& groups) {
  std::uint64_t n = 0;
  for (const auto& g : groups) n += runs[g.last].offset + runs[g.last].length - runs[g.first].offset;
  return n;
}

TEST(GroupRuns, NoRunsNoGroups) { EXPECT_TRUE(group({}, 1 << 20).empty()); }

TEST(GroupRuns, LocalStorageReadsEachRunByItself) {
  const runs_t runs{{0, 100}, {100, 100}, {300, 50}};
  // max_gap 0 joins only runs that touch.
  EXPECT_EQ(group(runs, 0), (std::vector<run_group>{{0, 1}, {2, 2}}));
}

TEST(GroupRuns, SmallGapsWithinTheBudgetAreReadThrough) {
  // 3000 bytes of runs, 250 bytes of gaps: within 10%.
  const runs_t runs{{0, 1000}, {1100, 1000}, {2250, 1000}};
  EXPECT_EQ(group(runs, 1 << 20), (std::vector<run_group>{{0, 2}}));
}

TEST(GroupRuns, TheLargestGapsAreSplitFirstUntilWithinTheBudget) {
  // Runs of 1000; gaps 50, 400, 60, 30: 540 > 10% of 5000 (500). Splitting the 400 leaves 140.
  const runs_t runs{{0, 1000}, {1050, 1000}, {2450, 1000}, {3510, 1000}, {4540, 1000}};
  const auto g = group(runs, 1 << 20);
  EXPECT_EQ(g, (std::vector<run_group>{{0, 1}, {2, 4}}));
  EXPECT_LE(read_bytes(runs, g), 5500u);
}

TEST(GroupRuns, AudioBetweenVideoChunksIsReadRunByRun) {
  // An audio track's runs of 10 KB with 90 KB of video between them: every gap is over the budget.
  runs_t runs;
  for (std::uint64_t i = 0; i < 8; ++i) runs.push_back({i * 100'000, 10'000});
  const auto g = group(runs, 1 << 20);
  ASSERT_EQ(g.size(), 8u);
  EXPECT_EQ(read_bytes(runs, g), 80'000u);
}

TEST(GroupRuns, GapsOverMaxGapOrBackwardsAreNeverJoined) {
  const runs_t runs{{0, 1000}, {5000, 1000}, {100, 10}};
  EXPECT_EQ(group(runs, 1000, 10.0), (std::vector<run_group>{{0, 0}, {1, 1}, {2, 2}}));
  EXPECT_EQ(group(runs, 4000, 10.0), (std::vector<run_group>{{0, 1}, {2, 2}}));
}

TEST(GroupRuns, AlwaysWithinTheBudget) {
  // Pseudo-random layouts: whatever the gaps, the bytes read stay within 1.1x the runs' bytes.
  std::uint64_t seed = 12345;
  auto next = [&] { return (seed = seed * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
  for (int round = 0; round < 200; ++round) {
    runs_t runs;
    std::uint64_t at = 0, payload = 0;
    const auto n = 1 + next() % 40;
    for (std::uint64_t i = 0; i < n; ++i) {
      at += next() % 200'000;
      const auto len = 1 + next() % 300'000;
      runs.push_back({at, len});
      at += len;
      payload += len;
    }
    const auto g = group(runs, 1 << 20);
    EXPECT_LE(read_bytes(runs, g), payload + payload / 10) << "round " << round;
    ASSERT_FALSE(g.empty());
    EXPECT_EQ(g.front().first, 0u);
    EXPECT_EQ(g.back().last, runs.size() - 1);
    for (std::size_t i = 1; i < g.size(); ++i) EXPECT_EQ(g[i].first, g[i - 1].last + 1);
  }
}

}  // namespace
}  // namespace mediagate::server
