#include "cache/metadata_cache.hpp"

#include <gtest/gtest.h>

#include <memory>

namespace mediagate::cache {
namespace {

using namespace std::chrono_literals;
using state = metadata_cache::state;

// A clock the test moves by hand.
struct fake_clock {
  std::chrono::steady_clock::time_point now{std::chrono::hours(1000)};
  clock_fn fn() {
    return [this] { return now; };
  }
};

storage::object_meta meta_of(std::uint64_t size, std::string etag) {
  storage::object_meta m;
  m.size = size;
  m.etag = std::move(etag);
  return m;
}

metadata_cache make(fake_clock& clock, std::chrono::milliseconds ttl = 5s,
                    std::chrono::milliseconds stale = 60s) {
  return metadata_cache({ttl, stale}, clock.fn());
}

TEST(metadata_cache, fresh_for_the_ttl_then_expired) {
  fake_clock clock;
  auto cache = make(clock);
  EXPECT_EQ(cache.lookup("k").what, state::missing);
  cache.store("k", meta_of(10, "\"a\""));
  auto r = cache.lookup("k");
  EXPECT_EQ(r.what, state::fresh);
  EXPECT_EQ(r.meta.size, 10u);
  EXPECT_EQ(r.meta.etag, "\"a\"");
  clock.now += 4999ms;
  EXPECT_EQ(cache.lookup("k").what, state::fresh);
  clock.now += 1ms;
  r = cache.lookup("k");
  EXPECT_EQ(r.what, state::expired);
  EXPECT_EQ(r.meta.etag, "\"a\"") << "an expired entry still carries its metadata for stale-if-error";
  // Storing again restarts the TTL.
  cache.store("k", meta_of(11, "\"b\""));
  EXPECT_EQ(cache.lookup("k").what, state::fresh);
  EXPECT_EQ(cache.lookup("k").meta.etag, "\"b\"");
}

TEST(metadata_cache, a_ttl_of_zero_never_serves_without_asking) {
  fake_clock clock;
  auto cache = make(clock, 0ms);
  cache.store("k", meta_of(1, "\"a\""));
  EXPECT_EQ(cache.lookup("k").what, state::expired);
}

TEST(metadata_cache, a_failure_serves_stale_and_holds_off_storage_for_a_ttl) {
  fake_clock clock;
  auto cache = make(clock, 5s, 60s);
  cache.store("k", meta_of(10, "\"a\""));
  clock.now += 20s;
  ASSERT_EQ(cache.lookup("k").what, state::expired);
  auto stale = cache.on_failure("k");
  ASSERT_TRUE(stale);
  EXPECT_EQ(stale->meta.etag, "\"a\"");
  EXPECT_EQ(stale->age, std::chrono::steady_clock::duration(20s));
  // For the next TTL every viewer gets the stale entry at once, without asking the failing storage.
  EXPECT_EQ(cache.lookup("k").what, state::stale);
  clock.now += 4999ms;
  EXPECT_EQ(cache.lookup("k").what, state::stale);
  clock.now += 1ms;
  EXPECT_EQ(cache.lookup("k").what, state::expired) << "then storage is asked again";
}

TEST(metadata_cache, nothing_stale_beyond_the_stale_limit) {
  fake_clock clock;
  auto cache = make(clock, 5s, 60s);
  cache.store("k", meta_of(10, "\"a\""));
  clock.now += 58s;
  ASSERT_TRUE(cache.on_failure("k"));
  clock.now += 1s;  // 59 s old, retry not yet due, still within the limit
  EXPECT_EQ(cache.lookup("k").what, state::stale);
  clock.now += 1s;  // 60 s: past the limit although the retry pause has not ended
  EXPECT_EQ(cache.lookup("k").what, state::expired);
  EXPECT_FALSE(cache.on_failure("k"));
  EXPECT_FALSE(cache.on_failure("never stored"));
}

TEST(metadata_cache, forget_drops_an_entry) {
  fake_clock clock;
  auto cache = make(clock);
  cache.store("k", meta_of(10, "\"a\""));
  cache.store("other", meta_of(1, "\"o\""));
  cache.forget("k");
  EXPECT_EQ(cache.lookup("k").what, state::missing);
  EXPECT_FALSE(cache.on_failure("k"));
  EXPECT_EQ(cache.lookup("other").what, state::fresh);
}

TEST(metadata_cache, a_stored_entry_does_not_pin_the_backend_file) {
  fake_clock clock;
  auto cache = make(clock);
  auto m = meta_of(10, "\"a\"");
  auto pin = std::make_shared<int>(7);
  m.pinned = pin;
  cache.store("k", m);
  EXPECT_EQ(pin.use_count(), 2) << "only the caller's copy and the test hold it";
  EXPECT_FALSE(cache.lookup("k").meta.pinned);
}

TEST(metadata_cache, the_table_is_bounded) {
  fake_clock clock;
  metadata_cache cache({5s, 60s, 3}, clock.fn());
  for (int i = 0; i < 3; ++i) cache.store("k" + std::to_string(i), meta_of(i, "\"e\""));
  EXPECT_EQ(cache.size(), 3u);
  cache.store("k3", meta_of(3, "\"e\""));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.lookup("k3").what, state::fresh);
  EXPECT_EQ(cache.lookup("k0").what, state::missing);
}

}  // namespace
}  // namespace mediagate::cache
