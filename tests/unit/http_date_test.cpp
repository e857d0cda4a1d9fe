// HTTP-date (RFC 9110 §5.6.7) and the ISO 8601 timestamps S3 and STS write.
#include "http/http_date.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <ctime>
#include <optional>
#include <string>
#include <vector>

namespace mediagate::http {
namespace {

// RFC 9110 §5.6.7's example instant.
constexpr std::int64_t kExample = 784111777;

TEST(format_http_date, rfc_example) {
  EXPECT_EQ(format_http_date(kExample), "Sun, 06 Nov 1994 08:49:37 GMT");
}

TEST(format_http_date, fixed_values) {
  const std::pair<std::int64_t, const char*> rows[] = {
      {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
      {-1, "Wed, 31 Dec 1969 23:59:59 GMT"},
      {-86400, "Wed, 31 Dec 1969 00:00:00 GMT"},
      {-86401, "Tue, 30 Dec 1969 23:59:59 GMT"},
      {86399, "Thu, 01 Jan 1970 23:59:59 GMT"},
      {951782400, "Tue, 29 Feb 2000 00:00:00 GMT"},
      {1709164800, "Thu, 29 Feb 2024 00:00:00 GMT"},
      {946684799, "Fri, 31 Dec 1999 23:59:59 GMT"},
      {946684800, "Sat, 01 Jan 2000 00:00:00 GMT"},
      {2147483647, "Tue, 19 Jan 2038 03:14:07 GMT"},
      {2147483648, "Tue, 19 Jan 2038 03:14:08 GMT"},
      {3155759999, "Tue, 31 Dec 2069 23:59:59 GMT"},
      {-11670998400, "Tue, 29 Feb 1600 00:00:00 GMT"},
      {13574608245, "Tue, 29 Feb 2400 12:30:45 GMT"},
      {-30610224000, "Wed, 01 Jan 1000 00:00:00 GMT"},
      {-62135596800, "Mon, 01 Jan 0001 00:00:00 GMT"},
      {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
  };
  for (const auto& [t, text] : rows) EXPECT_EQ(format_http_date(t), text) << t;
}

// An independent oracle: glibc's gmtime_r and strftime in the C locale (no time zone state involved).
std::string strftime_utc(std::int64_t t, const char* format) {
  const std::time_t tt = static_cast<std::time_t>(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[128];
  const auto n = std::strftime(buf, sizeof buf, format, &tm);
  return std::string(buf, n);
}

// Instants spread over years 1000-9999 (four-digit years, where strftime's %Y agrees with the fixed format),
// with odd strides so that every time of day, weekday, month and leap day is reached.
std::vector<std::int64_t> sample_instants() {
  std::vector<std::int64_t> out;
  const std::int64_t lo = -30610224000, hi = 253402300799;
  for (std::int64_t t = lo; t <= hi; t += 86400LL * 97 + 3607) out.push_back(t);  // ~8 000 over 9 000 years
  for (std::int64_t t = -2208988800; t <= 4102444800; t += 86400 + 61)
    out.push_back(t);                                                      // every day 1900-2100
  for (std::int64_t t = -100000; t <= 100000; t += 997) out.push_back(t);  // around the epoch
  out.push_back(lo);
  out.push_back(hi);
  return out;
}

TEST(format_http_date, always_emits_a_valid_imf_fixdate) {
  // A sender MUST generate IMF-fixdate, whose year is exactly 4DIGIT (RFC 9110 §5.6.7). A Last-Modified taken
  // from a file's mtime can lie outside years 0000-9999 (tmpfs and btrfs keep 64-bit seconds); whatever the
  // server does with such an instant (clamp, or omit the field), it must not send a malformed date.
  for (const std::int64_t t : {std::int64_t{253402300800},   // Sat, 01 Jan 10000 00:00:00
                               std::int64_t{400000000000},   // year 14645
                               std::int64_t{-62167219201},   // 31 Dec -0001 23:59:59
                               std::int64_t{-100000000000},  // year -1199
                               std::int64_t{INT64_MAX}}) {
    const auto text = format_http_date(t);
    EXPECT_EQ(text.size(), 29u) << t << " -> " << text;
    EXPECT_TRUE(parse_http_date(text).has_value()) << t << " -> " << text;
  }
}

TEST(format_http_date, agrees_with_strftime) {
  for (const auto t : sample_instants()) {
    ASSERT_EQ(format_http_date(t), strftime_utc(t, "%a, %d %b %Y %H:%M:%S GMT")) << t;
  }
}

TEST(parse_http_date, round_trips_all_three_forms) {
  for (const auto t : sample_instants()) {
    const auto imf = format_http_date(t);
    ASSERT_EQ(parse_http_date(imf), t) << imf;
    const auto asctime = strftime_utc(t, "%a %b %e %H:%M:%S %Y");
    ASSERT_EQ(parse_http_date(asctime), t) << asctime;
    const auto year = std::stoll(strftime_utc(t, "%Y"));
    if (year >= 1970 && year <= 2069) {  // two-digit years: only where the century is unambiguous here
      const auto rfc850 = strftime_utc(t, "%A, %d-%b-%y %H:%M:%S GMT");
      ASSERT_EQ(parse_http_date(rfc850), t) << rfc850;
    }
  }
}

TEST(parse_http_date, years_before_1000_round_trip) {
  for (std::int64_t t = -62135596800; t < -30610224000; t += 86400LL * 367 + 12345) {
    const auto imf = format_http_date(t);
    ASSERT_EQ(imf.size(), 29u) << imf;
    ASSERT_EQ(parse_http_date(imf), t) << imf;
  }
}

struct date_case {
  const char* name;
  std::string text;
  std::optional<std::int64_t> expected;
};

void PrintTo(const date_case& c, std::ostream* os) { *os << c.name << ": [" << c.text << "]"; }

class parse_http_date_table : public ::testing::TestWithParam<date_case> {};

TEST_P(parse_http_date_table, exact) {
  const auto& c = GetParam();
  EXPECT_EQ(parse_http_date(c.text), c.expected);
}

const date_case kRfcForms[] = {
    {"imf_fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", kExample},
    {"rfc850", "Sunday, 06-Nov-94 08:49:37 GMT", kExample},
    {"asctime", "Sun Nov  6 08:49:37 1994", kExample},
    {"asctime_two_digit_day", "Wed Nov 16 08:49:37 1994", 784975777},
    {"asctime_zero_padded_day", "Sun Nov 06 08:49:37 1994", kExample},  // date3 allows 2DIGIT
    {"imf_epoch", "Thu, 01 Jan 1970 00:00:00 GMT", 0},
    {"imf_before_epoch", "Wed, 31 Dec 1969 23:59:59 GMT", -1},
    {"imf_2038", "Tue, 19 Jan 2038 03:14:08 GMT", 2147483648},
    {"imf_9999", "Fri, 31 Dec 9999 23:59:59 GMT", 253402300799},
    {"rfc850_1999", "Friday, 31-Dec-99 23:59:59 GMT", 946684799},
    {"rfc850_2000", "Saturday, 01-Jan-00 00:00:00 GMT", 946684800},
    {"rfc850_epoch", "Thursday, 01-Jan-70 00:00:00 GMT", 0},
    {"rfc850_2025", "Wednesday, 01-Jan-25 00:00:00 GMT", 1735689600},
    {"asctime_epoch", "Thu Jan  1 00:00:00 1970", 0},
};
INSTANTIATE_TEST_SUITE_P(rfc9110_5_6_7, parse_http_date_table, ::testing::ValuesIn(kRfcForms),
                         [](const auto& info) { return std::string(info.param.name); });

// Calendar validity: days that do not exist are not dates.
const date_case kCalendar[] = {
    {"feb_29_2000_leap", "Tue, 29 Feb 2000 00:00:00 GMT", 951782400},
    {"feb_29_2024_leap", "Thu, 29 Feb 2024 00:00:00 GMT", 1709164800},
    {"feb_29_1600_leap", "Tue, 29 Feb 1600 00:00:00 GMT", -11670998400},
    {"feb_29_2400_leap", "Tue, 29 Feb 2400 12:30:45 GMT", 13574608245},
    {"feb_29_1900_not_leap", "Thu, 29 Feb 1900 00:00:00 GMT", std::nullopt},
    {"feb_29_2100_not_leap", "Mon, 29 Feb 2100 00:00:00 GMT", std::nullopt},
    {"feb_29_2023_not_leap", "Wed, 29 Feb 2023 00:00:00 GMT", std::nullopt},
    {"feb_30", "Wed, 30 Feb 2000 00:00:00 GMT", std::nullopt},
    {"feb_31", "Thu, 31 Feb 2000 00:00:00 GMT", std::nullopt},
    {"apr_31", "Sun, 31 Apr 1994 00:00:00 GMT", std::nullopt},
    {"jun_31", "Fri, 31 Jun 1994 00:00:00 GMT", std::nullopt},
    {"sep_31", "Sat, 31 Sep 1994 00:00:00 GMT", std::nullopt},
    {"nov_31", "Thu, 31 Nov 1994 00:00:00 GMT", std::nullopt},
    {"dec_31", "Sat, 31 Dec 1994 00:00:00 GMT", 788832000},
    {"day_00", "Sat, 00 Jan 1994 00:00:00 GMT", std::nullopt},
    {"day_32", "Sat, 32 Jan 1994 00:00:00 GMT", std::nullopt},
    {"day_99", "Sat, 99 Jan 1994 00:00:00 GMT", std::nullopt},
    {"hour_24", "Sun, 06 Nov 1994 24:00:00 GMT", std::nullopt},
    {"minute_60", "Sun, 06 Nov 1994 08:60:00 GMT", std::nullopt},
    {"second_61", "Sun, 06 Nov 1994 08:49:61 GMT", std::nullopt},
    {"rfc850_feb_29_2000", "Tuesday, 29-Feb-00 00:00:00 GMT", 951782400},
    {"rfc850_feb_29_2001", "Thursday, 29-Feb-01 00:00:00 GMT", std::nullopt},
    {"rfc850_feb_30", "Wednesday, 30-Feb-94 00:00:00 GMT", std::nullopt},
    {"asctime_feb_30", "Wed Feb 30 00:00:00 1994", std::nullopt},
    {"asctime_feb_29_1900", "Thu Feb 29 00:00:00 1900", std::nullopt},
    {"asctime_feb_29_2000", "Tue Feb 29 00:00:00 2000", 951782400},
    {"asctime_day_0", "Sun Nov  0 08:49:37 1994", std::nullopt},
};
INSTANTIATE_TEST_SUITE_P(calendar, parse_http_date_table, ::testing::ValuesIn(kCalendar),
                         [](const auto& info) { return std::string(info.param.name); });

// Syntax: HTTP-date is case-sensitive and fixed-width (RFC 9110 §5.6.7).
const date_case kSyntax[] = {
    {"empty", "", std::nullopt},
    {"epoch_number", "784111777", std::nullopt},
    {"lowercase_gmt", "Sun, 06 Nov 1994 08:49:37 gmt", std::nullopt},
    {"utc_zone", "Sun, 06 Nov 1994 08:49:37 UTC", std::nullopt},
    {"numeric_zone", "Sun, 06 Nov 1994 08:49:37 +0000", std::nullopt},
    {"no_zone", "Sun, 06 Nov 1994 08:49:37", std::nullopt},
    {"zone_with_suffix", "Sun, 06 Nov 1994 08:49:37 GMTX", std::nullopt},
    {"no_space_after_comma", "Sun,06 Nov 1994 08:49:37 GMT", std::nullopt},
    {"no_comma", "Sun 06 Nov 1994 08:49:37 GMT", std::nullopt},
    {"one_digit_day", "Sun, 6 Nov 1994 08:49:37 GMT", std::nullopt},
    {"two_digit_year", "Sun, 06 Nov 94 08:49:37 GMT", std::nullopt},
    {"five_digit_year", "Sun, 06 Nov 19940 08:49:37 GMT", std::nullopt},
    {"uppercase_month", "Sun, 06 NOV 1994 08:49:37 GMT", std::nullopt},
    {"lowercase_month", "Sun, 06 nov 1994 08:49:37 GMT", std::nullopt},
    {"long_month", "Sun, 06 November 1994 08:49:37 GMT", std::nullopt},
    {"unknown_month", "Sun, 06 Foo 1994 08:49:37 GMT", std::nullopt},
    {"lowercase_day_name", "sun, 06 Nov 1994 08:49:37 GMT", std::nullopt},
    {"unknown_day_name", "Xyz, 06 Nov 1994 08:49:37 GMT", std::nullopt},
    {"long_day_in_imf", "Sunday, 06 Nov 1994 08:49:37 GMT", std::nullopt},
    {"one_digit_hour", "Sun, 06 Nov 1994 8:49:37 GMT", std::nullopt},
    {"dashes_in_time", "Sun, 06 Nov 1994 08-49-37 GMT", std::nullopt},
    {"no_seconds", "Sun, 06 Nov 1994 08:49 GMT", std::nullopt},
    {"fractional_seconds", "Sun, 06 Nov 1994 08:49:37.5 GMT", std::nullopt},
    {"signed_day", "Sun, +6 Nov 1994 08:49:37 GMT", std::nullopt},
    {"letters_in_year", "Sun, 06 Nov 19x4 08:49:37 GMT", std::nullopt},
    {"double_space", "Sun, 06  Nov 1994 08:49:37 GMT", std::nullopt},
    {"iso8601", "1994-11-06T08:49:37Z", std::nullopt},
    {"two_dates", "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT", std::nullopt},
    {"rfc850_short_day", "Sun, 06-Nov-94 08:49:37 GMT", std::nullopt},
    {"rfc850_lowercase_day", "sunday, 06-Nov-94 08:49:37 GMT", std::nullopt},
    {"rfc850_unknown_day", "Someday, 06-Nov-94 08:49:37 GMT", std::nullopt},
    {"rfc850_four_digit_year", "Sunday, 06-Nov-1994 08:49:37 GMT", std::nullopt},
    {"rfc850_one_digit_day", "Sunday, 6-Nov-94 08:49:37 GMT", std::nullopt},
    {"rfc850_lowercase_month", "Sunday, 06-nov-94 08:49:37 GMT", std::nullopt},
    {"rfc850_spaces", "Sunday, 06 Nov 94 08:49:37 GMT", std::nullopt},
    {"rfc850_utc", "Sunday, 06-Nov-94 08:49:37 UTC", std::nullopt},
    {"rfc850_no_zone", "Sunday, 06-Nov-94 08:49:37", std::nullopt},
    {"asctime_single_space_day", "Sun Nov 6 08:49:37 1994", std::nullopt},
    {"asctime_two_digit_year", "Sun Nov  6 08:49:37 94", std::nullopt},
    {"asctime_with_zone", "Sun Nov  6 08:49:37 1994 GMT", std::nullopt},
    {"asctime_lowercase_month", "Sun nov  6 08:49:37 1994", std::nullopt},
    {"asctime_unknown_day", "Xyz Nov  6 08:49:37 1994", std::nullopt},
    {"asctime_trailing_space_day", "Sun Nov 6  08:49:37 1994", std::nullopt},
    {"asctime_comma", "Sun, Nov  6 08:49:37 1994", std::nullopt},
    {"nul_inside", std::string("Sun, 06 Nov 1994 08:49:37 GM\0", 29), std::nullopt},
};
INSTANTIATE_TEST_SUITE_P(syntax, parse_http_date_table, ::testing::ValuesIn(kSyntax),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(parse_iso8601_utc, s3_and_sts_forms) {
  EXPECT_EQ(parse_iso8601_utc("2009-10-12T17:50:30.000Z"), 1255369830);
  EXPECT_EQ(parse_iso8601_utc("2009-10-12T17:50:30Z"), 1255369830);
  EXPECT_EQ(parse_iso8601_utc("2009-10-12T17:50:30.123456Z"), 1255369830);  // fraction dropped
  EXPECT_EQ(parse_iso8601_utc("1970-01-01T00:00:00Z"), 0);
  EXPECT_EQ(parse_iso8601_utc("1969-12-31T23:59:59Z"), -1);
  EXPECT_EQ(parse_iso8601_utc("2000-02-29T00:00:00Z"), 951782400);
  EXPECT_EQ(parse_iso8601_utc("2038-01-19T03:14:08.000Z"), 2147483648);
}

TEST(parse_iso8601_utc, rejects) {
  for (const char* s : {"",
                        "2009-10-12",
                        "2009-10-12T17:50:30",
                        "2009-10-12 17:50:30Z",
                        "2009-10-12t17:50:30Z",
                        "2009-10-12T17:50:30z",
                        "2009-10-12T17:50:30+00:00",
                        "2009-10-12T17:50:30.Z",
                        "2009-10-12T17:50:30.1x2Z",
                        "2009-10-12T17:50:30,000Z",
                        "2009-13-12T17:50:30Z",
                        "2009-00-12T17:50:30Z",
                        "2009-10-32T17:50:30Z",
                        "2009-02-29T00:00:00Z",
                        "2009-10-12T24:00:00Z",
                        "2009-10-12T17:60:30Z",
                        "2009/10/12T17:50:30Z",
                        "09-10-12T17:50:30.000Z",
                        "2009-1-12T17:50:30.000Z",
                        "Sun, 06 Nov 1994 08:49:37 GMT"})
    EXPECT_EQ(parse_iso8601_utc(s), std::nullopt) << s;
}

}  // namespace
}  // namespace mediagate::http
