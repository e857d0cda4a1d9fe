#include "server/api_json.hpp"

#include <boost/json/serialize.hpp>
#include <charconv>
#include <cmath>
#include <ctime>

#include "http/media_key.hpp"

namespace mediagate::server {
namespace {

void append_json(std::string& out, const boost::json::value& v) {
  switch (v.kind()) {
    case boost::json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ',';
        first = false;
        out += boost::json::serialize(boost::json::string_view(kv.key()));
        out += ':';
        append_json(out, kv.value());
      }
      out += '}';
      break;
    }
    case boost::json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& item : v.get_array()) {
        if (!first) out += ',';
        first = false;
        append_json(out, item);
      }
      out += ']';
      break;
    }
    case boost::json::kind::double_:
      out += plain_decimal(v.get_double());
      break;
    default:  // strings (escaped), integers, booleans, null
      out += boost::json::serialize(v);
  }
}

}  // namespace

std::string plain_decimal(double d) {
  if (!std::isfinite(d)) return "null";
  char buf[400];  // fixed notation of the largest double: 309 digits, the point and three decimals
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed, 3);
  if (ec != std::errc()) return "null";
  std::string out(buf, end);
  while (out.size() > 1 && out.back() == '0' && out[out.size() - 2] != '.') out.pop_back();  // 10.000 -> 10.0
  if (out == "-0.0") out = "0.0";
  return out;
}

std::string api_json_text(const boost::json::value& v) {
  std::string out;
  append_json(out, v);
  return out;
}

std::string iso8601_utc(std::int64_t seconds) {
  const std::time_t t = static_cast<std::time_t>(seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

boost::json::object item_json(const catalog::media_item& item) {
  boost::json::object o;
  o["id"] = item.id;
  o["key"] = item.key;
  o["title"] = item.title;
  o["content_type"] = item.content_type;
  o["kind"] = item.kind();
  o["size"] = item.size;
  o["etag"] = item.etag;
  o["created"] = iso8601_utc(item.created);
  o["missing"] = item.missing;
  o["visibility"] = item.visibility;
  // A failed probe counts as not probed; `probe_error` says why (null while pending or when it succeeded).
  o["probed"] = !item.needs_probe() && item.probe_error.empty();
  if (!item.needs_probe() && !item.probe_error.empty())
    o["probe_error"] = item.probe_error;
  else
    o["probe_error"] = nullptr;
  if (item.duration)
    o["duration"] = *item.duration;
  else
    o["duration"] = nullptr;
  if (item.width)
    o["width"] = *item.width;
  else
    o["width"] = nullptr;
  if (item.height)
    o["height"] = *item.height;
  else
    o["height"] = nullptr;
  const auto base = "/v/" + item.id;
  o["url"] = base;
  o["media_url"] = "/media/" + http::encode_key_for_url(item.key);
  if (!item.poster_key.empty())
    o["poster"] = base + "/poster";
  else
    o["poster"] = nullptr;
  return o;
}

}  // namespace mediagate::server
