#include "app/byte_size.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace mediagate::app {
namespace {

constexpr std::uint64_t kKiB = 1ull << 10, kMiB = 1ull << 20, kGiB = 1ull << 30, kTiB = 1ull << 40;
constexpr std::uint64_t kMax = std::numeric_limits<std::uint64_t>::max();

struct size_case {
  std::string_view text;
  std::optional<std::uint64_t> bytes;
};

void PrintTo(const size_case& c, std::ostream* os) { *os << '"' << c.text << '"'; }

class parse_byte_size_test : public testing::TestWithParam<size_case> {};

TEST_P(parse_byte_size_test, parses) {
  const auto& c = GetParam();
  EXPECT_EQ(parse_byte_size(c.text), c.bytes) << '"' << c.text << '"';
}

INSTANTIATE_TEST_SUITE_P(plain_numbers, parse_byte_size_test,
                         testing::Values(size_case{"0", 0}, size_case{"1", 1}, size_case{"1048576", kMiB},
                                         size_case{"1b", 1}, size_case{"1B", 1}, size_case{"007", 7},
                                         size_case{"18446744073709551615", kMax}));

INSTANTIATE_TEST_SUITE_P(
    binary_suffixes, parse_byte_size_test,
    testing::Values(size_case{"512k", 512 * kKiB}, size_case{"512K", 512 * kKiB}, size_case{"4KiB", 4 * kKiB},
                    size_case{"4kib", 4 * kKiB}, size_case{"1MiB", kMiB}, size_case{"1mib", kMiB},
                    size_case{"1MIB", kMiB}, size_case{"1M", kMiB}, size_case{"1m", kMiB},
                    size_case{"20GiB", 20 * kGiB}, size_case{"20G", 20 * kGiB}, size_case{"20g", 20 * kGiB},
                    size_case{"2TiB", 2 * kTiB}, size_case{"2T", 2 * kTiB}, size_case{"0MiB", 0}));

INSTANTIATE_TEST_SUITE_P(decimal_suffixes, parse_byte_size_test,
                         testing::Values(size_case{"1kB", 1000}, size_case{"1MB", 1000 * 1000},
                                         size_case{"20GB", 20'000'000'000ull},
                                         size_case{"3TB", 3'000'000'000'000ull}));

INSTANTIATE_TEST_SUITE_P(whitespace, parse_byte_size_test,
                         testing::Values(size_case{" 1MiB ", kMiB}, size_case{"\t64k\t", 64 * kKiB},
                                         size_case{"1 MiB", kMiB}));

INSTANTIATE_TEST_SUITE_P(rejected, parse_byte_size_test,
                         testing::Values(size_case{"", std::nullopt}, size_case{" ", std::nullopt},
                                         size_case{"MiB", std::nullopt}, size_case{"-1", std::nullopt},
                                         size_case{"+1", std::nullopt}, size_case{"1.5GiB", std::nullopt},
                                         size_case{"1,5GiB", std::nullopt}, size_case{"1e6", std::nullopt},
                                         size_case{"0x10", std::nullopt}, size_case{"1XiB", std::nullopt},
                                         size_case{"1MiBs", std::nullopt}, size_case{"1 M iB", std::nullopt},
                                         size_case{"1P", std::nullopt}, size_case{"1PiB", std::nullopt},
                                         size_case{"1Mi", std::nullopt}, size_case{"one", std::nullopt},
                                         size_case{"1 2", std::nullopt}, size_case{"1MiB 2", std::nullopt}));

INSTANTIATE_TEST_SUITE_P(overflow, parse_byte_size_test,
                         testing::Values(size_case{"18446744073709551616", std::nullopt},  // 2^64
                                         size_case{"99999999999999999999999", std::nullopt},
                                         size_case{"16777216TiB", std::nullopt},     // exactly 2^64
                                         size_case{"16777215TiB", kMax - kTiB + 1},  // 2^64 - 2^40
                                         size_case{"17179869184G", std::nullopt},    // 2^34 GiB = 2^64
                                         size_case{"18446744073709552k", std::nullopt},
                                         size_case{"18446744073709552MB", std::nullopt},
                                         size_case{"18446744073709551TB", std::nullopt}));

}  // namespace
}  // namespace mediagate::app
