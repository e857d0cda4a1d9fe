#pragma once
// What the in-process tests of handlers share: a coroutine runner on a local io_context, the services of one
// event loop around a fake storage, requests built from owned strings, a scripted request body, and the
// draining of a media response's body into the bytes a connection would send.
#include <gtest/gtest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "fake_storage.hpp"
#include "http/media_key.hpp"
#include "http/token.hpp"
#include "server/metrics.hpp"
#include "server/request.hpp"
#include "server/response.hpp"
#include "server/router.hpp"
#include "server/services.hpp"

namespace mediagate::testing_support {

namespace net = boost::asio;
using server::response;

// Runs a coroutine to completion on its own io_context; exceptions propagate.
template <class T>
T run(net::awaitable<T> aw) {
  net::io_context io;
  auto result = net::co_spawn(io, std::move(aw), net::use_future);
  io.run();
  return result.get();
}

// A logger that writes into a string stream the test can read.
struct captured_log {
  std::ostringstream out;
  std::shared_ptr<spdlog::logger> logger;
  explicit captured_log(const std::string& name) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
    sink->set_pattern("%v");
    logger = std::make_shared<spdlog::logger>(name, std::move(sink));
    logger->set_level(spdlog::level::trace);
    logger->flush_on(spdlog::level::trace);
  }
  std::string text() const { return out.str(); }
};

// A request body that hands out scripted chunks, then ends (0) or fails with an error code, and enforces
// the limit the handler sets the way the connection does.
class fake_body final : public server::request_body {
 public:
  std::vector<std::string> chunks;
  std::optional<errc> ending;  // nullopt: a clean end
  std::uint64_t limit = 0;
  int reads = 0;

  net::awaitable<result<std::size_t>> read(std::span<char> buf) override {
    ++reads;
    while (next_ < chunks.size() && offset_ == chunks[next_].size()) {
      ++next_;
      offset_ = 0;
    }
    if (next_ == chunks.size()) {
      if (ending) co_return error{*ending, "injected body failure"};
      co_return std::size_t{0};
    }
    const auto& c = chunks[next_];
    const auto n = std::min(buf.size(), c.size() - offset_);
    std::copy_n(c.data() + offset_, n, buf.data());
    offset_ += n;
    received_ += n;
    if (received_ > limit) co_return error{errc::too_large, "the request body is larger than the limit"};
    co_return n;
  }
  void set_limit(std::uint64_t bytes) override { limit = bytes; }
  std::uint64_t received() const override { return received_; }

 private:
  std::size_t next_ = 0;
  std::size_t offset_ = 0;
  std::uint64_t received_ = 0;
};

// A request whose strings it owns; view() is what a connection would hand the router.
struct test_request {
  std::string method = "GET";
  std::string target = "/";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string peer = "127.0.0.1:40000";
  std::optional<std::uint64_t> content_length;
  bool chunked = false;
  fake_body body;

  test_request(std::string m, std::string t, std::vector<std::pair<std::string, std::string>> h = {})
      : method(std::move(m)), target(std::move(t)), headers(std::move(h)) {}

  server::request view() {
    server::request r;
    r.method_name = method;
    r.verb = server::method_from(method);
    r.target = target;
    const auto parts = http::split_target(target);
    r.path = parts.path;
    r.query = parts.query;
    for (const auto& [name, value] : headers) r.fields.push_back({name, value});
    r.peer = peer;
    r.content_length = content_length;
    r.chunked = chunked;
    r.body = &body;
    return r;
  }
};

// The services of one event loop around a fake storage.
struct service_harness {
  server::server_config config;
  fake_storage store;
  server::metrics stats;
  captured_log log{"component"};
  std::vector<std::function<std::string()>> sources;
  std::atomic<bool> draining{false};
  server::services svc{config, store, stats, *log.logger, sources, nullptr, &draining};

  response handle(test_request& req) {
    return run([](test_request& r, server::services& s) -> net::awaitable<response> {
      const auto view = r.view();
      co_return co_await server::handle_request(view, s);
    }(req, svc));
  }
  response get(const std::string& target, std::vector<std::pair<std::string, std::string>> headers = {}) {
    test_request r("GET", target, std::move(headers));
    return handle(r);
  }
};

// The value of the first header field `name` in `r` (case-insensitive), nullopt when absent.
inline std::optional<std::string> header(const response& r, std::string_view name) {
  for (const auto& [n, v] : r.headers)
    if (http::iequals(n, name)) return std::string(v);
  return std::nullopt;
}
inline std::size_t header_count(const response& r, std::string_view name) {
  std::size_t n = 0;
  for (const auto& h : r.headers)
    if (http::iequals(h.first, name)) ++n;
  return n;
}

// A simple text response: status, body, and a Content-Length that agrees with the body.
inline void expect_text(const response& r, unsigned status, const std::string& body) {
  EXPECT_EQ(r.status, status);
  EXPECT_EQ(r.body, body);
  EXPECT_EQ(header(r, "Content-Length"), std::to_string(body.size()));
  EXPECT_EQ(header(r, "Content-Type"), "text/plain; charset=utf-8");
  EXPECT_EQ(header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(r.media, nullptr);
}

// The body bytes of a response as a connection sends them: the literal body, or for a media response each
// segment's framing followed by its range, drained from the first reader and then from readers the body's
// opener makes. A failure of storage is returned as the error (with the bytes produced before it).
struct drained_body {
  std::string bytes;
  std::optional<error> failure;
};

inline net::awaitable<drained_body> drain_media(server::media_body& body, std::size_t buffer_bytes) {
  drained_body out;
  std::vector<char> buf(buffer_bytes);
  auto reader = std::move(body.first);
  bool first = true;
  for (const auto& segment : body.segments) {
    out.bytes += segment.literal;
    if (!segment.range) continue;
    if (!first || !reader) {
      auto opened = co_await body.open(*segment.range);
      if (!opened) {
        out.failure = opened.err();
        co_return out;
      }
      reader = std::move(*opened);
    }
    first = false;
    std::uint64_t left = segment.range->length();
    while (left > 0) {
      auto n = co_await reader->read_some(buf);
      if (!n) {
        out.failure = n.err();
        co_return out;
      }
      if (*n == 0 || *n > left) {
        out.failure = error{errc::io_error, "the reader handed out " + std::to_string(*n) + " bytes with " +
                                                std::to_string(left) + " left"};
        co_return out;
      }
      out.bytes.append(buf.data(), *n);
      left -= *n;
    }
    // The range is complete: a reader must then report its end.
    auto end = co_await reader->read_some(buf);
    if (!end || *end != 0) {
      out.failure = error{errc::io_error, "the reader went on past its range"};
      co_return out;
    }
    reader.reset();
  }
  co_return out;
}

inline drained_body body_of(response& r, std::size_t buffer_bytes = 64) {
  if (!r.media) return {r.body, std::nullopt};
  return run(drain_media(*r.media, buffer_bytes));
}

}  // namespace mediagate::testing_support
