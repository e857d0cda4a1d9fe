#pragma once
// A handler's answer. The connection alone frames it (status line, Date, Server, Connection), writes it,
// streams its body, counts and logs it: handlers never touch a socket.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "http/response_plan.hpp"

namespace mediagate::storage {
class range_reader;
}

namespace mediagate::server {

using range_opener =
    std::function<boost::asio::awaitable<result<std::unique_ptr<storage::range_reader>>>(http::byte_range)>;

// The opener of a body that has a reader for its one range only: asked for another, it fails.
boost::asio::awaitable<result<std::unique_ptr<storage::range_reader>>> no_further_range(http::byte_range r);

// The body of a planned media response: the plan's segments (literal framing, then a range of the object),
// the reader of the first range (opened by the handler before answering, so that a storage failure still
// gets an honest status) and how to open the others.
struct media_body {
  std::vector<http::body_segment> segments;
  std::unique_ptr<storage::range_reader> first;
  range_opener open = no_further_range;
  std::string what;  // the object, for log lines ("key")
};

struct response {
  unsigned status = 200;
  http::header_list headers;  // complete but for Date, Server and Connection (Content-Length included)
  std::string body;           // a complete body (errors, JSON, the page), unless `media` is set
  std::unique_ptr<media_body> media;
  bool close = false;  // the connection closes after this response

  response();
  response(response&&) noexcept;
  response& operator=(response&&) noexcept;
  ~response();
};

// A complete small response; adds Content-Type, Content-Length and nosniff.
response make_response(unsigned status, std::string_view content_type, std::string body,
                       http::header_list headers = {});
// "message\n" as text/plain.
response text_response(unsigned status, std::string_view message, http::header_list headers = {});
// A JSON body (one line) with Cache-Control: no-store.
response json_response(unsigned status, std::string json, http::header_list headers = {});
// {"error": message}, with WWW-Authenticate for 401.
response json_error(unsigned status, std::string_view message, http::header_list headers = {});
// A planned media response whose ranges are read by `body`.
response planned_response(http::response_plan plan, std::unique_ptr<media_body> body);

}  // namespace mediagate::server
