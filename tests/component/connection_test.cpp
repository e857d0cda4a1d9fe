// The HTTP/1.1 connection (run_session) on a real loopback socket with a scripted client: pipelining,
// header limits, framing refusals, Expect, HEAD, unread bodies, the header deadline and the access log.
#include <gtest/gtest.h>

#include <chrono>
#include <regex>
#include <string>

#include "catalog/catalog.hpp"
#include "loopback.hpp"
#include "server/api.hpp"
#include "temp_dir.hpp"

namespace mediagate::testing_support {
namespace {

using namespace std::chrono_literals;

std::string counter_bytes(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 13 + i / 256) & 0xff);
  return s;
}

class connection_layer : public ::testing::Test {
 protected:
  void SetUp() override {
    h.store.put("a.mp4", object);
    h.store.set_max_chunk(1000);
    h.config.header_timeout = 250ms;
    h.config.idle_timeout = 5000ms;
    h.config.send_timeout = 5000ms;
    h.config.stream_buffer_bytes = 4096;
  }

  // Every log line of the access log, after the server stopped.
  std::vector<std::string> access_lines() {
    server.stop();
    std::vector<std::string> lines;
    std::string text = server.access.text();
    for (std::size_t pos = 0; pos < text.size();) {
      const auto eol = text.find('\n', pos);
      lines.push_back(text.substr(pos, eol - pos));
      pos = eol == std::string::npos ? text.size() : eol + 1;
    }
    return lines;
  }

  std::string object = counter_bytes(5000);
  service_harness h;
  loopback_server server{h};
};

TEST_F(connection_layer, pipelined_requests_are_answered_in_order_on_one_connection) {
  server.start();
  raw_client c(server.port());
  c.send(
      "GET /media/a.mp4 HTTP/1.1\r\nHost: t\r\nRange: bytes=100-199\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
      "HEAD /media/a.mp4 HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /media/a.mp4 HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r1 = c.read_response();
  EXPECT_EQ(r1.status_line, "HTTP/1.1 206 Partial Content");
  EXPECT_EQ(r1.header("content-range"), "bytes 100-199/5000");
  EXPECT_EQ(r1.body, object.substr(100, 100));
  EXPECT_FALSE(r1.has("connection"));
  EXPECT_TRUE(r1.has("date"));
  auto r2 = c.read_response();
  EXPECT_EQ(r2.status, 200u);
  EXPECT_EQ(r2.body, "ok\n");
  auto r3 = c.read_response(true);
  EXPECT_EQ(r3.status, 200u);
  EXPECT_EQ(r3.header("content-length"), "5000");
  auto r4 = c.read_response();
  EXPECT_EQ(r4.status, 404u);
  EXPECT_EQ(r4.body, "not found\n");
  auto r5 = c.read_response();
  EXPECT_EQ(r5.status, 200u);
  EXPECT_EQ(r5.body, object);
  EXPECT_EQ(c.pending(), "");
  // Still open: one more request on the same connection.
  c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(c.read_response().body, "ok\n");
  const auto lines = access_lines();
  ASSERT_EQ(lines.size(), 6u);
  EXPECT_NE(lines[0].find("\"GET /media/a.mp4\" range=\"bytes=100-199\" 206 100 "), std::string::npos)
      << lines[0];
  EXPECT_NE(lines[1].find("\"GET /healthz\" range=\"\" 200 3 "), std::string::npos) << lines[1];
  EXPECT_NE(lines[2].find("\"HEAD /media/a.mp4\" range=\"\" 200 0 "), std::string::npos) << lines[2];
  EXPECT_NE(lines[3].find("\"GET /nothing\" range=\"\" 404 10 "), std::string::npos) << lines[3];
  EXPECT_NE(lines[4].find("\"GET /media/a.mp4\" range=\"\" 200 5000 "), std::string::npos) << lines[4];
}

TEST_F(connection_layer, head_has_no_body_even_for_errors) {
  server.start();
  raw_client c(server.port());
  c.send(
      "HEAD /nothing HTTP/1.1\r\nHost: t\r\n\r\n"
      "HEAD /media/a.mp4 HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9\r\n\r\n"
      "GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r1 = c.read_response(true);
  EXPECT_EQ(r1.status, 404u);
  EXPECT_EQ(r1.header("content-length"), "10");
  auto r2 = c.read_response(true);
  EXPECT_EQ(r2.status, 200u);  // Range applies to GET only
  EXPECT_EQ(r2.header("content-length"), "5000");
  // Had a body followed either head, this would not be a status line.
  auto r3 = c.read_response();
  EXPECT_EQ(r3.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r3.body, "ok\n");
}

TEST_F(connection_layer, header_larger_than_the_limit_is_431_and_close) {
  h.config.max_header_bytes = 1024;
  server.start();
  raw_client c(server.port());
  c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2000, 'x') + "\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 431u);
  EXPECT_EQ(r.body, "request header fields too large\n");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_quietly());
}

TEST_F(connection_layer, header_just_within_the_limit_is_served) {
  h.config.max_header_bytes = 1024;
  server.start();
  raw_client c(server.port());
  std::string head = "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: ";
  head += std::string(1024 - head.size() - 4, 'x') + "\r\n\r\n";
  ASSERT_EQ(head.size(), 1024u);
  c.send(head);
  EXPECT_EQ(c.read_response().status, 200u);
}

TEST_F(connection_layer, too_many_fields_is_431_and_close) {
  h.config.max_header_fields = 4;
  server.start();
  raw_client ok(server.port());
  ok.send("GET /healthz HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n");
  EXPECT_EQ(ok.read_response().status, 200u);
  raw_client c(server.port());
  c.send("GET /healthz HTTP/1.1\r\nHost: t\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 431u);
  EXPECT_EQ(r.body, "too many header fields\n");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_quietly());
}

TEST_F(connection_layer, host_is_required_once_in_http11) {
  server.start();
  for (const char* request :
       {"GET /healthz HTTP/1.1\r\n\r\n", "GET /healthz HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n"}) {
    raw_client c(server.port());
    c.send(request);
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u) << request;
    EXPECT_EQ(r.body, "bad request: a request needs exactly one Host header\n");
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closed_quietly());
  }
  raw_client old(server.port());
  old.send("GET /healthz HTTP/1.0\r\n\r\n");
  auto r = old.read_response();
  EXPECT_EQ(r.status_line, "HTTP/1.1 200 OK");
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_TRUE(old.closed_quietly());  // HTTP/1.0 without keep-alive
}

class transfer_codings : public connection_layer, public ::testing::WithParamInterface<const char*> {};

TEST_P(transfer_codings, not_ending_in_chunked_is_400_and_close) {
  server.start();
  raw_client c(server.port());
  // The bytes after the head could be a smuggled request: they must never be answered.
  c.send(std::string("POST /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: ") + GetParam() +
         "\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 400u);
  EXPECT_EQ(r.body, "bad request: a request's Transfer-Encoding must end in chunked\n");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_quietly());
  const auto lines = access_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" 400 " + std::to_string(r.body.size()) + " "), std::string::npos) << lines[0];
}

INSTANTIATE_TEST_SUITE_P(codings, transfer_codings,
                         ::testing::Values("identity", "xchunked", "chunked, identity", "gzip", "chunkedx"));

TEST_F(connection_layer, request_with_unread_body_closes_after_the_answer) {
  server.start();
  raw_client c(server.port());
  c.send(
      "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /healthz HTTP/1.1\r\nHost: "
      "t\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "ok\n");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_quietly());
}

TEST_F(connection_layer, refused_method_with_body_closes_after_the_answer) {
  server.start();
  raw_client c(server.port());
  c.send("POST /media/a.mp4 HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 405u);
  EXPECT_EQ(r.header("allow"), "GET, HEAD");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_quietly());
}

TEST_F(connection_layer, slow_header_gets_408_after_the_header_timeout) {
  server.start();
  // Taken before connecting: the server's deadline can only start later, so the bound below is exact.
  const auto started = std::chrono::steady_clock::now();
  raw_client c(server.port());
  c.send("GET /healthz HTTP/1.1\r\nHo");
  auto r = c.read_response();
  const auto waited = std::chrono::steady_clock::now() - started;
  EXPECT_EQ(r.status, 408u);
  EXPECT_EQ(r.body, "request timeout: the request header took too long\n");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_quietly());
  EXPECT_GE(waited, 250ms);
  EXPECT_LT(waited, 3000ms);
}

TEST_F(connection_layer, silent_connection_is_closed_without_an_answer) {
  server.start();
  const auto started = std::chrono::steady_clock::now();
  raw_client c(server.port());
  EXPECT_TRUE(c.closed_quietly());
  EXPECT_EQ(c.received(), 0u);
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
}

TEST_F(connection_layer, access_log_escapes_target_and_range) {
  server.start();
  raw_client c(server.port());
  c.send("GET /media/x\"y\\z%0A\xc3\xa9 HTTP/1.1\r\nHost: t\r\nRange: bytes=\"0-1\"\t\xff,x\\y\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 400u);
  const auto lines = access_lines();
  ASSERT_EQ(lines.size(), 1u);
  const std::string expected =
      "\"GET /media/x\\\"y\\\\z%0A\\xc3\\xa9\" range=\"bytes=\\\"0-1\\\"\\x09\\xff,x\\\\y\" 400 " +
      std::to_string(r.body.size()) + " ";
  EXPECT_NE(lines[0].find(expected), std::string::npos) << lines[0] << "\nwanted: " << expected;
  EXPECT_TRUE(lines[0].starts_with("127.0.0.1:")) << lines[0];
  // One line per request: nothing the client sent can start another.
  EXPECT_EQ(lines[0].find('\t'), std::string::npos);
}

// The byte count in the log is what the client received of the body, for every kind of body.
TEST_F(connection_layer, access_log_counts_the_body_bytes_the_client_received) {
  h.store.put("big.mp4", counter_bytes(300'000));
  h.store.set_max_chunk(65536);
  server.start();
  raw_client c(server.port());
  c.send(
      "GET /media/big.mp4 HTTP/1.1\r\nHost: t\r\n\r\n"
      "GET /media/a.mp4 HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,4990-\r\n\r\n"
      "GET /media/a.mp4 HTTP/1.1\r\nHost: t\r\nRange: bytes=9999-\r\n\r\n");
  std::vector<std::size_t> got;
  for (int i = 0; i < 3; ++i) {
    auto r = c.read_response();
    EXPECT_EQ(r.body.size(), std::stoull(r.header("content-length")));
    got.push_back(r.body.size());
  }
  const auto lines = access_lines();
  ASSERT_EQ(lines.size(), 3u);
  const std::regex line(R"re(^127\.0\.0\.1:\d+ "GET [^"]*" range="[^"]*" (\d+) (\d+) [0-9.]+ms$)re");
  const unsigned statuses[] = {200, 206, 416};
  for (int i = 0; i < 3; ++i) {
    std::smatch m;
    ASSERT_TRUE(std::regex_match(lines[i], m, line)) << lines[i];
    EXPECT_EQ(std::stoul(m[1]), statuses[i]);
    EXPECT_EQ(std::stoull(m[2]), got[i]) << lines[i];
  }
  EXPECT_EQ(got[0], 300'000u);
}

TEST_F(connection_layer, storage_failing_mid_body_closes_the_connection_short) {
  h.store.break_reads_after("a.mp4", 2500);
  server.start();
  raw_client c(server.port());
  c.send("GET /media/a.mp4 HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.header("content-length"), "5000");
  EXPECT_EQ(r.body, object.substr(0, 2500));  // never wrong bytes; never the next response
  EXPECT_TRUE(c.closed_quietly());
  const auto lines = access_lines();
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_NE(lines[0].find(" 200 2500 "), std::string::npos) << lines[0];
}

TEST_F(connection_layer, failed_open_of_a_later_range_closes_the_connection_short) {
  h.store.fail_open_number(2, errc::upstream_unavailable);
  server.start();
  raw_client c(server.port());
  c.send("GET /media/a.mp4 HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,100-109\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 206u);
  EXPECT_LT(r.body.size(), std::stoull(r.header("content-length")));
  EXPECT_TRUE(r.body.ends_with(object.substr(0, 10))) << "the first part is complete";
  EXPECT_TRUE(c.closed_quietly());
}

TEST_F(connection_layer, storage_error_before_the_head_is_an_honest_status_on_a_kept_connection) {
  h.store.fail(storage_op::stat, "a.mp4", errc::upstream_timeout);
  server.start();
  raw_client c(server.port());
  c.send("GET /media/a.mp4 HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 504u);
  EXPECT_EQ(r.body, "injected failure for a.mp4\n");
  EXPECT_EQ(c.read_response().body, "ok\n");
}

TEST_F(connection_layer, conflicting_message_lengths_are_400_and_close) {
  server.start();
  for (const char* framing :
       {"Content-Length: 5\r\nContent-Length: 6\r\n", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
        "Content-Length: -1\r\n", "Content-Length: 99999999999999999999999\r\n"}) {
    raw_client c(server.port());
    c.send(std::string("POST /healthz HTTP/1.1\r\nHost: t\r\n") + framing +
           "\r\nhelloGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u) << framing;
    EXPECT_TRUE(r.body.starts_with("bad request: ")) << r.body;
    EXPECT_EQ(r.header("connection"), "close");
    EXPECT_TRUE(c.closed_quietly()) << framing;
  }
}

TEST_F(connection_layer, idle_keep_alive_connection_is_closed_quietly) {
  h.config.idle_timeout = 250ms;
  server.start();
  raw_client c(server.port());
  // Taken before the request: the idle deadline starts only once the answer is written.
  const auto started = std::chrono::steady_clock::now();
  c.send("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
  EXPECT_EQ(c.read_response().status, 200u);
  EXPECT_TRUE(c.closed_quietly());
  EXPECT_GE(std::chrono::steady_clock::now() - started, 250ms);
}

// -- request bodies: Expect: 100-continue ----------------------------------------------------------------

class connection_uploads : public connection_layer {
 protected:
  void SetUp() override {
    connection_layer::SetUp();
    library.items = std::make_shared<catalog::catalog>((dir.path() / "catalog.db").string());
    library.admin_token = "tok";
    library.max_upload_bytes = 1000;
    h.svc.api = &library;
  }
  temp_dir dir{"component-conn"};
  server::api_services library;
};

TEST_F(connection_uploads, expect_100_continue_in_http11_gets_the_interim_response) {
  server.start();
  raw_client c(server.port());
  c.send(
      "PUT /api/media/up.mp4 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nExpect: 100-continue\r\n"
      "Content-Length: 5\r\n\r\n");
  auto interim = c.read_response();
  EXPECT_EQ(interim.status_line, "HTTP/1.1 100 Continue");
  c.send("hello");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 201u) << r.body;
  EXPECT_TRUE(c.closed_quietly());
  server.stop();
  ASSERT_NE(h.store.find("up.mp4"), nullptr);
  EXPECT_EQ(h.store.find("up.mp4")->bytes, "hello");
}

TEST_F(connection_uploads, expect_100_continue_in_http10_gets_no_interim_response) {
  server.start();
  raw_client c(server.port());
  c.send(
      "PUT /api/media/up.mp4 HTTP/1.0\r\nHost: t\r\nAuthorization: Bearer tok\r\nExpect: 100-continue\r\n"
      "Content-Length: 5\r\n\r\n");
  // The handler now waits for the body; an HTTP/1.0 client must not get "100 Continue" meanwhile (RFC 9110
  // §10.1.1). The wait is bounded by the same deadline the 1.1 case gets its answer well within.
  EXPECT_FALSE(c.fill(300ms));
  EXPECT_TRUE(c.timed_out());
  EXPECT_EQ(c.received(), 0u);
  c.send("hello");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 201u) << r.body;
  server.stop();
  EXPECT_EQ(h.store.find("up.mp4")->bytes, "hello");
}

TEST_F(connection_uploads, chunked_upload_is_decoded) {
  server.start();
  raw_client c(server.port());
  c.send(
      "PUT /api/media/up.mp4 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nTransfer-Encoding: "
      "chunked\r\n\r\n"
      "3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 201u) << r.body;
  server.stop();
  EXPECT_EQ(h.store.find("up.mp4")->bytes, "abcdefg");
}

TEST_F(connection_uploads, malformed_chunked_upload_is_400_and_nothing_stored) {
  server.start();
  raw_client c(server.port());
  c.send(
      "PUT /api/media/up.mp4 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nTransfer-Encoding: "
      "chunked\r\n\r\n"
      "3\r\nabc\r\nzz\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 400u) << r.body;
  EXPECT_EQ(r.header("connection"), "close");
  server.stop();
  EXPECT_EQ(h.store.find("up.mp4"), nullptr);
}

TEST_F(connection_uploads, chunked_upload_over_the_limit_is_413_and_nothing_stored) {
  server.start();
  raw_client c(server.port());
  c.send(
      "PUT /api/media/up.mp4 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nTransfer-Encoding: "
      "chunked\r\n\r\n"
      "3e9\r\n" +
      std::string(1001, 'x') + "\r\n0\r\n\r\n");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 413u) << r.body;
  EXPECT_EQ(r.header("connection"), "close");
  server.stop();
  EXPECT_EQ(h.store.find("up.mp4"), nullptr);
}

TEST_F(connection_uploads, declared_length_over_the_limit_is_413_without_reading_the_body) {
  server.start();
  raw_client c(server.port());
  c.send(
      "PUT /api/media/up.mp4 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nContent-Length: 1001\r\n\r\n"
      "the first bytes");
  auto r = c.read_response();
  EXPECT_EQ(r.status, 413u) << r.body;
  EXPECT_EQ(r.body,
            "{\"error\":\"the upload is larger than the limit of 1000 bytes (--max-upload-bytes)\"}\n");
  EXPECT_EQ(r.header("connection"), "close");
  EXPECT_TRUE(c.closed_quietly());
  server.stop();
  EXPECT_EQ(h.store.counters().writes, 0);
}

TEST_F(connection_uploads, client_leaving_mid_body_stores_nothing) {
  server.start();
  {
    raw_client c(server.port());
    c.send(
        "PUT /api/media/up.mp4 HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer tok\r\nContent-Length: "
        "100\r\n\r\n"
        "only part of it");
    ::shutdown(c.fd(), SHUT_WR);
    auto r = c.read_response();
    EXPECT_EQ(r.status, 400u) << r.body;
  }
  server.stop();
  EXPECT_EQ(h.store.find("up.mp4"), nullptr);
  EXPECT_EQ(h.store.counters().writes, 1);
}

}  // namespace
}  // namespace mediagate::testing_support
