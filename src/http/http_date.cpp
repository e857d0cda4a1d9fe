#include "http/http_date.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>

#include "http/token.hpp"

namespace mediagate::http {
namespace {

constexpr std::array<std::string_view, 7> kDays = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
constexpr std::array<std::string_view, 7> kLongDays = {"Sunday",   "Monday", "Tuesday", "Wednesday",
                                                       "Thursday", "Friday", "Saturday"};
constexpr std::array<std::string_view, 12> kMonths = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

// Civil-date conversions by Howard Hinnant's algorithm: exact for every proleptic Gregorian date, no libc
// time zone state involved (timegm is not thread-safe on every libc and is not constexpr).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

void civil_from_days(std::int64_t z, std::int64_t& y, unsigned& m, unsigned& d) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = doy - (153 * mp + 2) / 5 + 1;
  m = mp < 10 ? mp + 3 : mp - 9;
  y = static_cast<std::int64_t>(yoe) + era * 400 + (m <= 2);
}

std::optional<unsigned> parse_fixed_digits(std::string_view s) {
  auto v = parse_decimal(s);
  if (!v || *v > 1000000) return std::nullopt;
  return static_cast<unsigned>(*v);
}

std::optional<unsigned> month_index(std::string_view s) {
  for (unsigned i = 0; i < kMonths.size(); ++i)
    if (s == kMonths[i]) return i + 1;
  return std::nullopt;
}

// "08:49:37"
bool parse_time(std::string_view s, unsigned& h, unsigned& mi, unsigned& sec) {
  if (s.size() != 8 || s[2] != ':' || s[5] != ':') return false;
  auto a = parse_fixed_digits(s.substr(0, 2)), b = parse_fixed_digits(s.substr(3, 2)),
       c = parse_fixed_digits(s.substr(6, 2));
  if (!a || !b || !c || *a > 23 || *b > 59 || *c > 60) return false;
  h = *a, mi = *b, sec = *c;
  return true;
}

unsigned days_in_month(std::int64_t y, unsigned m) {
  static constexpr unsigned kLen[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  return m == 2 && leap ? 29 : kLen[m - 1];
}

std::optional<std::int64_t> to_unix(std::int64_t y, unsigned m, unsigned d, unsigned h, unsigned mi,
                                    unsigned s) {
  if (m < 1 || m > 12 || d < 1 || d > days_in_month(y, m)) return std::nullopt;
  return days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s;
}

}  // namespace

http_date_text http_date(std::int64_t t) {
  // Every response formats its Last-Modified: the last one is kept per thread (most answers are for a few
  // files).
  thread_local std::int64_t last_time = INT64_MIN;
  thread_local http_date_text last;
  if (t == last_time) return last;
  last_time = t;
  // IMF-fixdate has a 4-digit year: clamp instants outside 0000..9999 (64-bit file times can be anything).
  t = std::clamp<std::int64_t>(t, -62167219200, 253402300799);
  std::int64_t days = t >= 0 ? t / 86400 : (t - 86399) / 86400;
  std::int64_t secs = t - days * 86400;
  std::int64_t y;
  unsigned m, d;
  civil_from_days(days, y, m, d);
  const auto weekday = static_cast<std::size_t>(((days % 7) + 11) % 7);  // 1970-01-01 was a Thursday
  // Digits by hand: this runs for every response (Last-Modified), and snprintf showed in profiles.
  http_date_text out;
  std::memcpy(out.chars, "Www, DD Mmm YYYY hh:mm:ss GMT", sizeof out.chars);
  auto put = [&out](std::size_t at, std::int64_t value, int width) {
    for (int i = width - 1; i >= 0; --i, value /= 10)
      out.chars[at + static_cast<std::size_t>(i)] = static_cast<char>('0' + value % 10);
  };
  std::memcpy(out.chars, kDays[weekday].data(), 3);
  put(5, d, 2);
  std::memcpy(out.chars + 8, kMonths[m - 1].data(), 3);
  put(12, y, 4);
  put(17, secs / 3600, 2);
  put(20, secs / 60 % 60, 2);
  put(23, secs % 60, 2);
  last = out;
  return out;
}

std::string format_http_date(std::int64_t t) { return std::string(http_date(t).view()); }

std::optional<std::int64_t> parse_http_date(std::string_view s) {
  s = trim_ows(s);
  unsigned h, mi, sec;
  // IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT"
  if (s.size() == 29 && s[3] == ',' && s[4] == ' ' && s.substr(25) == " GMT") {
    auto d = parse_fixed_digits(s.substr(5, 2));
    auto m = month_index(s.substr(8, 3));
    auto y = parse_fixed_digits(s.substr(12, 4));
    if (!d || !m || !y || s[7] != ' ' || s[11] != ' ' || s[16] != ' ') return std::nullopt;
    if (!parse_time(s.substr(17, 8), h, mi, sec)) return std::nullopt;
    bool day_ok = false;
    for (auto name : kDays) day_ok |= s.substr(0, 3) == name;
    if (!day_ok) return std::nullopt;
    return to_unix(*y, *m, *d, h, mi, sec);
  }
  // RFC 850: "Sunday, 06-Nov-94 08:49:37 GMT"; two-digit years are read as within 50 years of 1970-2069.
  if (auto comma = s.find(", "); comma != std::string_view::npos && comma >= 6) {
    bool day_ok = false;
    for (auto name : kLongDays) day_ok |= s.substr(0, comma) == name;
    auto rest = s.substr(comma + 2);
    if (!day_ok || rest.size() != 22 || rest[2] != '-' || rest[6] != '-' || rest[9] != ' ' ||
        rest.substr(18) != " GMT")
      return std::nullopt;
    auto d = parse_fixed_digits(rest.substr(0, 2));
    auto m = month_index(rest.substr(3, 3));
    auto yy = parse_fixed_digits(rest.substr(7, 2));
    if (!d || !m || !yy || !parse_time(rest.substr(10, 8), h, mi, sec)) return std::nullopt;
    const std::int64_t y = *yy < 70 ? 2000 + *yy : 1900 + *yy;
    return to_unix(y, *m, *d, h, mi, sec);
  }
  // asctime: "Sun Nov  6 08:49:37 1994"
  if (s.size() == 24 && s[3] == ' ' && s[7] == ' ' && s[10] == ' ' && s[19] == ' ') {
    bool day_ok = false;
    for (auto name : kDays) day_ok |= s.substr(0, 3) == name;
    auto m = month_index(s.substr(4, 3));
    auto day_text = s.substr(8, 2);
    if (day_text[0] == ' ') day_text.remove_prefix(1);
    auto d = parse_fixed_digits(day_text);
    auto y = parse_fixed_digits(s.substr(20, 4));
    if (!day_ok || !m || !d || !y || !parse_time(s.substr(11, 8), h, mi, sec)) return std::nullopt;
    return to_unix(*y, *m, *d, h, mi, sec);
  }
  return std::nullopt;
}

std::optional<std::int64_t> parse_iso8601_utc(std::string_view s) {
  s = trim_ows(s);
  if (s.size() < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s.back() != 'Z') return std::nullopt;
  auto y = parse_fixed_digits(s.substr(0, 4)), m = parse_fixed_digits(s.substr(5, 2)),
       d = parse_fixed_digits(s.substr(8, 2));
  unsigned h, mi, sec;
  if (!y || !m || !d || !parse_time(s.substr(11, 8), h, mi, sec)) return std::nullopt;
  auto rest = s.substr(19, s.size() - 20);  // optional fraction between the seconds and 'Z'
  if (!rest.empty() && (rest[0] != '.' || !parse_decimal(rest.substr(1)))) return std::nullopt;
  return to_unix(*y, *m, *d, h, mi, sec);
}

}  // namespace mediagate::http
