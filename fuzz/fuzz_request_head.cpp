// The request head as the server reads it (src/server/session.cpp, router.cpp): Boost.Beast's
// request_parser<empty_body> with a 16 KiB header limit, fed as the socket delivers it, then the target
// split, the media key decoded and the response planned for an object. Checks: the parse does not depend on
// how the bytes arrive, a parsed head has a target and a known version, the path and query are pieces of the
// target, a decoded key stays inside the storage root, and the plan keeps every invariant of plan_check.hpp.
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <cstring>
#include <memory>
#include <optional>
#include <string>

#include "byte_reader.hpp"
#include "fuzz_check.hpp"
#include "http/media_key.hpp"
#include "plan_check.hpp"

namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using namespace mediagate;

namespace {

constexpr std::size_t kHeaderLimit = 16 * 1024;  // serve's --max-header-bytes default (server/config.hpp)

struct head_result {
  bool complete = false;                                             // a whole head was read
  beast::error_code ec;                                              // the parse error, if any
  std::unique_ptr<bhttp::request_parser<bhttp::empty_body>> parser;  // neither copied nor moved
};

// Feeds `bytes` to a fresh parser `chunk` bytes at a time (0: all at once), keeping what it has not
// consumed in a flat_buffer, as async_read_header does.
head_result read_head(std::string_view bytes, std::size_t chunk) {
  head_result out;
  out.parser = std::make_unique<bhttp::request_parser<bhttp::empty_body>>();
  auto& parser = *out.parser;
  parser.header_limit(kHeaderLimit);
  parser.body_limit(std::numeric_limits<std::uint64_t>::max());
  beast::flat_buffer buffer;
  std::size_t at = 0;
  while (!parser.is_header_done()) {
    if (at == bytes.size()) return out;  // the peer stopped sending: end of stream before a head
    const auto n = chunk == 0 ? bytes.size() - at : std::min(chunk, bytes.size() - at);
    auto dest = buffer.prepare(n);
    std::memcpy(dest.data(), bytes.data() + at, n);
    buffer.commit(n);
    at += n;
    beast::error_code ec;
    const auto used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_more) continue;
    if (ec) {
      out.ec = ec;
      return out;
    }
  }
  out.complete = true;
  return out;
}

// As router.cpp: list fields joined with ", ", singleton fields only when they occur once.
std::optional<std::string> field(const bhttp::request_header<>& req, bhttp::field f) {
  auto [first, last] = req.equal_range(f);
  if (first == last) return std::nullopt;
  std::string value(first->value());
  for (auto it = std::next(first); it != last; ++it) value.append(", ").append(it->value());
  return value;
}
std::optional<std::string> single_field(const bhttp::request_header<>& req, bhttp::field f) {
  return req.count(f) == 1 ? field(req, f) : std::nullopt;
}

bool within(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void route(const bhttp::request_header<>& req) {
  const std::string_view target = req.target();
  FUZZ_CHECK(!target.empty(), "a parsed request has a target");
  const auto [path, query] = http::split_target(target);
  FUZZ_CHECK(path == "/" || within(path, target), "the path is part of the target");
  FUZZ_CHECK(within(query, target), "the query is part of the target");
  if (path.empty() || path.front() != '/' || !path.starts_with("/media/")) return;
  const auto key = http::decode_media_key(path.substr(7));
  if (!key) return;
  FUZZ_CHECK(!key->starts_with('/') && *key != ".." && !key->starts_with("../") && !key->ends_with("/..") &&
                 key->find("/../") == std::string::npos,
             "a key never leaves the storage root");
  FUZZ_CHECK(http::decode_media_key(http::encode_key_for_url(*key)) == key, "decode(encode(k)) == k");

  const auto m = req.method() == bhttp::verb::get    ? http::method::get
                 : req.method() == bhttp::verb::head ? http::method::head
                                                     : http::method::other;
  if (m == http::method::other) return;  // answered 405 before any planning
  const auto range = single_field(req, bhttp::field::range), if_match = field(req, bhttp::field::if_match),
             if_none_match = field(req, bhttp::field::if_none_match),
             if_modified_since = single_field(req, bhttp::field::if_modified_since),
             if_unmodified_since = single_field(req, bhttp::field::if_unmodified_since),
             if_range = single_field(req, bhttp::field::if_range);
  auto view = [](const std::optional<std::string>& v) {
    return v ? std::optional<std::string_view>(*v) : std::nullopt;
  };
  http::request_view rv;
  rv.m = m;
  rv.range = view(range);
  rv.conditions = {view(if_match), view(if_none_match), view(if_modified_since), view(if_unmodified_since),
                   view(if_range)};
  // An object whose validators the seeds name: 1000 bytes, "5f-1a2b", Sun, 06 Nov 1994 08:49:37 GMT.
  const http::representation rep{1000, "\"5f-1a2b\"", 784111777, "video/mp4"};
  http::plan_options opts;
  opts.boundary = "mediagate-0123456789abcdef";
  fuzz::check_plan(rv, rep, opts, http::plan_response(rv, rep, opts));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::byte_reader in(data, size);
  const auto chunk = in.number<std::uint8_t>();
  const auto bytes = in.remaining();

  const auto whole = read_head(bytes, 0);
  const auto split = read_head(bytes, chunk);
  // Beast checks the request line as soon as it has one, but once a head took more than one read it only
  // looks for the blank line: "GET / HTTP/1.1\nHost: x\n\n" (bare LF) is "bad version" when it arrives
  // at once and an unfinished head otherwise (closed at the header deadline). Outcomes may thus differ
  // between an error and an unfinished head, never between a head and anything else.
  // Beast applies the header limit to what it holds at each put(), so a head within one read of the limit
  // may pass in pieces and fail at once (a seed of 16,408 bytes, 200 at a time): the limit still holds to
  // within one read. Away from the limit the outcome must not depend on how the bytes arrive.
  const auto end = bytes.find("\r\n\r\n");
  const bool near_limit =
      end != std::string_view::npos && end + 4 + 2 * 256 > kHeaderLimit && end + 4 < kHeaderLimit + 2 * 256;
  if (!near_limit)
    FUZZ_CHECK(whole.complete == split.complete, "a head is read whole however the bytes arrive");
  if (whole.complete != split.complete) return 0;
  if (!whole.complete) return 0;
  const auto& req = whole.parser->get();
  const auto& again = split.parser->get();
  FUZZ_CHECK(req.method_string() == again.method_string() && req.target() == again.target() &&
                 req.version() == again.version(),
             "the same request line however the bytes arrive");
  FUZZ_CHECK(std::distance(req.begin(), req.end()) == std::distance(again.begin(), again.end()),
             "the same fields however the bytes arrive");
  FUZZ_CHECK(req.version() == 10 || req.version() == 11, "HTTP/1.0 or HTTP/1.1");
  route(req);
  return 0;
}
