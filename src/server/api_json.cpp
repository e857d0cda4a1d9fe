#include "server/api_json.hpp"

#include <ctime>

#include "http/media_key.hpp"

namespace mediagate::server {

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
