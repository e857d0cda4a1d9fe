#include "catalog/thumbnails.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace mediagate::catalog {
namespace {

TEST(ThumbnailPlan, NoneWithoutAUsableDuration) {
  EXPECT_FALSE(plan_thumbnails(std::nullopt));
  EXPECT_FALSE(plan_thumbnails(0.0));
  EXPECT_FALSE(plan_thumbnails(-3.0));
  EXPECT_FALSE(plan_thumbnails(std::numeric_limits<double>::quiet_NaN()));
  EXPECT_FALSE(plan_thumbnails(std::numeric_limits<double>::infinity()));
  EXPECT_FALSE(plan_thumbnails(100.0 * 3600 + 1));
  EXPECT_TRUE(plan_thumbnails(100.0 * 3600));
}

TEST(ThumbnailPlan, ShortClipsGetATileEveryTwoSeconds) {
  auto p = plan_thumbnails(10.0);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->interval, 2.0);
  EXPECT_EQ(p->count, 5u);
  EXPECT_EQ(p->rows(), 1u);
  EXPECT_EQ(p->times(0), (std::vector<double>{1, 3, 5, 7, 9}));
  auto tiny = plan_thumbnails(0.5);
  ASSERT_TRUE(tiny);
  EXPECT_EQ(tiny->count, 1u);
  EXPECT_EQ(tiny->times(0), std::vector<double>{0.25});
  // 10.008 s (a WebM whose container outlasts its last frame): no tile for the last 8 ms, whose frame at
  // 10.004 s would not exist; the last tile stretches to the end.
  auto webm = plan_thumbnails(10.008);
  ASSERT_TRUE(webm);
  EXPECT_EQ(webm->count, 5u);
  EXPECT_EQ(webm->end_of(4), 10.008);
  EXPECT_DOUBLE_EQ(webm->times(0).back(), 9.004);
}

TEST(ThumbnailPlan, LongVideosAreCappedAndCoverTheWholeDuration) {
  for (double d : {119.0, 120.0, 121.0, 599.5, 3600.0, 7200.0, 36000.0, 100.0 * 3600}) {
    auto p = plan_thumbnails(d);
    ASSERT_TRUE(p) << d;
    EXPECT_LE(p->count, kMaxThumbnails) << d;
    EXPECT_GE(p->interval, 2.0) << d;
    EXPECT_EQ(p->interval, std::floor(p->interval)) << d;  // whole seconds: exact cue times
    EXPECT_GE(p->count * p->interval, d) << d;             // the last tile reaches the end
    EXPECT_LT((p->count - 1) * p->interval, d) << d;       // and starts before it
    std::size_t tiles = 0;
    for (std::size_t r = 0; r < p->rows(); ++r) {
      const auto t = p->times(r);
      EXPECT_LE(t.size(), thumbnail_plan::per_row);
      EXPECT_TRUE(std::all_of(t.begin(), t.end(), [&](double x) { return x > 0 && x <= d - 0.5; })) << d;
      tiles += t.size();
    }
    EXPECT_EQ(tiles, p->count) << d;
    EXPECT_TRUE(p->times(p->rows()).empty());
  }
}

TEST(ThumbnailKey, UnderThePostersHiddenPrefix) {
  EXPECT_EQ(thumbnail_key("AbC123", 0), ".posters/AbC123-thumbs-0.jpg");
  EXPECT_EQ(thumbnail_key("AbC123", 5), ".posters/AbC123-thumbs-5.jpg");
}

TEST(ThumbnailsVtt, CuesTileTheTimelineAndPointAtTheirSprite) {
  auto p = plan_thumbnails(25.5);  // 13 tiles of 2 s: two sprites, the last cue ends at the duration
  ASSERT_TRUE(p);
  ASSERT_EQ(p->count, 13u);
  const auto vtt = thumbnails_vtt(*p, "", "?exp=1&sig=x");
  EXPECT_EQ(vtt.substr(0, 7), "WEBVTT\n");
  EXPECT_NE(vtt.find("\n00:00:00.000 --> 00:00:02.000\nthumbs-0.jpg?exp=1&sig=x#xywh=0,0,160,90\n"),
            std::string::npos)
      << vtt;
  EXPECT_NE(vtt.find("\n00:00:18.000 --> 00:00:20.000\nthumbs-0.jpg?exp=1&sig=x#xywh=1440,0,160,90\n"),
            std::string::npos);
  EXPECT_NE(vtt.find("\n00:00:20.000 --> 00:00:22.000\nthumbs-1.jpg?exp=1&sig=x#xywh=0,0,160,90\n"),
            std::string::npos);
  EXPECT_NE(vtt.find("\n00:00:24.000 --> 00:00:25.500\nthumbs-1.jpg?exp=1&sig=x#xywh=320,0,160,90\n"),
            std::string::npos);
  EXPECT_EQ(std::count(vtt.begin(), vtt.end(), '>'), 13);
  auto hours = plan_thumbnails(2 * 3600 + 61.25);
  ASSERT_TRUE(hours);
  EXPECT_NE(thumbnails_vtt(*hours, "/v/x/", "").find(" --> 02:01:01.250\n/v/x/thumbs-5.jpg#xywh="),
            std::string::npos);
}

TEST(ThumbnailRowArgs, EveryInputIsLimitedAndSeeksOnItsOwn) {
  probe_tools tools;
  tools.ffmpeg = "/usr/bin/ffmpeg";
  const auto args =
      thumbnail_row_args(tools, "http://127.0.0.1:1/media/a.mp4", "mov", {0, 2.5, 30}, "/tmp/out");
  EXPECT_EQ(args.front(), "/usr/bin/ffmpeg");
  EXPECT_EQ(std::count(args.begin(), args.end(), "-i"), 3);
  EXPECT_EQ(std::count(args.begin(), args.end(), "-protocol_whitelist"), 3);
  EXPECT_EQ(std::count(args.begin(), args.end(), "-format_whitelist"), 3);
  EXPECT_EQ(std::count(args.begin(), args.end(), "-enable_drefs"), 3);
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "-protocol_whitelist") {
      EXPECT_EQ(args[i + 1], kProbeProtocols);
    }
    if (args[i] == "-format_whitelist") {
      EXPECT_EQ(args[i + 1], kProbeFormats);
    }
  }
  auto ss = std::find(args.begin(), args.end(), "-ss");
  ASSERT_NE(ss, args.end());
  EXPECT_EQ(*(ss + 1), "0.000");
  EXPECT_EQ(*(ss + 2), "-i");  // -ss before -i: a seek by ranged reads
  EXPECT_NE(std::find(args.begin(), args.end(), "2.500"), args.end());  // three decimals
  const auto graph = std::find(args.begin(), args.end(), "-filter_complex");
  ASSERT_NE(graph, args.end());
  EXPECT_NE((graph + 1)->find("hstack=inputs=3[row]"), std::string::npos) << *(graph + 1);
  EXPECT_NE((graph + 1)->find("[2:v:0]trim=end_frame=1"), std::string::npos);
  EXPECT_EQ(args.back(), "/tmp/out");

  const auto one = thumbnail_row_args(tools, "http://x/a.webm", "matroska", {4}, "/tmp/o");
  const auto g1 = std::find(one.begin(), one.end(), "-filter_complex");
  ASSERT_NE(g1, one.end());
  EXPECT_EQ((g1 + 1)->find("hstack"), std::string::npos);
  EXPECT_NE((g1 + 1)->find("setsar=1[row]"), std::string::npos) << *(g1 + 1);
  EXPECT_EQ(std::count(one.begin(), one.end(), "-enable_drefs"), 0);  // a mov option only
}

}  // namespace
}  // namespace mediagate::catalog
