#include "server/response.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include "storage/storage.hpp"

namespace mediagate::server {

boost::asio::awaitable<result<std::unique_ptr<storage::range_reader>>> no_further_range(http::byte_range r) {
  co_return error{errc::io_error,
                  "no reader for range " + std::to_string(r.first) + "-" + std::to_string(r.last)};
}

response::response() = default;
response::response(response&&) noexcept = default;
response& response::operator=(response&&) noexcept = default;
response::~response() = default;

response make_response(unsigned status, std::string_view content_type, std::string body,
                       http::header_list headers) {
  response r;
  r.status = status;
  r.headers = std::move(headers);
  if (!content_type.empty()) r.headers.emplace_back("Content-Type", content_type);
  r.headers.emplace_back("Content-Length", std::to_string(body.size()));
  r.headers.emplace_back("X-Content-Type-Options", "nosniff");
  r.body = std::move(body);
  return r;
}

response text_response(unsigned status, std::string_view message, http::header_list headers) {
  std::string body(message);
  body += '\n';
  return make_response(status, "text/plain; charset=utf-8", std::move(body), std::move(headers));
}

response json_response(unsigned status, std::string json, http::header_list headers) {
  headers.emplace_back("Cache-Control", "no-store");
  json += '\n';
  return make_response(status, "application/json", std::move(json), std::move(headers));
}

response json_error(unsigned status, std::string_view message, http::header_list headers) {
  boost::json::object o;
  o["error"] = message;
  if (status == 401) headers.emplace_back("WWW-Authenticate", "Bearer realm=\"mediagate\"");
  return json_response(status, boost::json::serialize(o), std::move(headers));
}

response planned_response(http::response_plan plan, std::unique_ptr<media_body> body) {
  response r;
  r.status = plan.status;
  r.headers = std::move(plan.headers);
  if (!plan.body.empty()) {
    body->segments = std::move(plan.body);
    r.media = std::move(body);
  }
  return r;
}

}  // namespace mediagate::server
