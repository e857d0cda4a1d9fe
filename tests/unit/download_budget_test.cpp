#include "storage/download_budget.hpp"

#include <gtest/gtest.h>

#include <memory>
#include <thread>
#include <vector>

namespace mediagate::storage {
namespace {

TEST(DownloadBudget, TakesWhatFitsAndCountsWhatDoesNot) {
  download_budget b(10);
  EXPECT_TRUE(b.try_take(4));
  EXPECT_TRUE(b.try_take(6));
  EXPECT_FALSE(b.try_take(1));
  EXPECT_EQ(b.in_use(), 10u);
  EXPECT_EQ(b.refused(), 1u);
  b.give_back(6);
  EXPECT_EQ(b.in_use(), 4u);
  EXPECT_FALSE(b.try_take(7));
  EXPECT_TRUE(b.try_take(6));
  EXPECT_EQ(b.peak(), 10u);
  EXPECT_EQ(b.refused(), 2u);
}

TEST(DownloadBudget, MoreThanTheLimitNeverFits) {
  download_budget b(10);
  EXPECT_FALSE(b.try_take(11));
  EXPECT_FALSE(b.try_take(~0ull));
  EXPECT_EQ(b.in_use(), 0u);
  EXPECT_EQ(b.peak(), 0u);
}

TEST(DownloadBudget, HoldGivesBackOnDestruction) {
  auto b = std::make_shared<download_budget>(8);
  {
    ASSERT_TRUE(b->try_take(8));
    budget_hold h;
    h.adopt(b, 8);
    EXPECT_EQ(b->in_use(), 8u);
  }
  EXPECT_EQ(b->in_use(), 0u);
  budget_hold empty;  // holds nothing: destroying it gives nothing back
}

// Many threads taking and giving back never see more than the limit in use.
TEST(DownloadBudget, TheLimitHoldsAcrossThreads) {
  download_budget b(5);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&b] {
      for (int i = 0; i < 20000; ++i)
        if (b.try_take(2)) b.give_back(2);
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(b.in_use(), 0u);
  EXPECT_LE(b.peak(), 4u);  // two parts of 2 fit under 5, never three
  EXPECT_GE(b.peak(), 2u);
}

}  // namespace
}  // namespace mediagate::storage
