// Signs requests read from stdin with mediagate::s3::sign_v4, for the differential test against botocore
// (tests/unit/sigv4_botocore_test.py).
//
// Input: one JSON object per line:
//   {"method": "GET", "host": "127.0.0.1:9000", "path": "/bucket/raw key", "query": [["name", "value"], ...],
//    "headers": [["Range", "bytes=0-9"], ...], "payload_sha256": "..." | "body": "...",
//    "access_key": "...", "secret_key": "...", "session_token": "...", "region": "us-east-1",
//    "service": "s3", "time": <seconds since the epoch>}
// "body", when present, is hashed here (to exercise sha256_hex too) and replaces "payload_sha256".
// Output: one JSON object per line: {"headers": [[name, value], ...], "canonical_path": "...",
//   "canonical_query": "...", "canonical_request": "..."}, or {"error": "..."}.

#include <boost/json.hpp>
#include <chrono>
#include <exception>
#include <iostream>
#include <string>

#include "common/crypto.hpp"
#include "s3/sigv4.hpp"

namespace json = boost::json;
namespace s3 = mediagate::s3;

namespace {

std::string text(const json::object& object, std::string_view key) {
  const json::value* value = object.if_contains(key);
  return value == nullptr ? std::string() : std::string(value->as_string());
}

std::vector<std::pair<std::string, std::string>> pairs(const json::object& object, std::string_view key) {
  std::vector<std::pair<std::string, std::string>> out;
  if (const json::value* value = object.if_contains(key)) {
    for (const json::value& pair : value->as_array()) {
      const json::array& items = pair.as_array();
      out.emplace_back(std::string(items.at(0).as_string()), std::string(items.at(1).as_string()));
    }
  }
  return out;
}

json::object sign_one(const json::object& input) {
  s3::request_to_sign request{.method = text(input, "method"),
                              .host = text(input, "host"),
                              .path = text(input, "path"),
                              .query = pairs(input, "query"),
                              .headers = pairs(input, "headers"),
                              .payload_sha256 = text(input, "payload_sha256")};
  if (input.contains("body")) request.payload_sha256 = mediagate::sha256_hex(text(input, "body"));
  const s3::credentials creds{text(input, "access_key"), text(input, "secret_key"),
                              text(input, "session_token")};
  const auto now =
      std::chrono::system_clock::time_point(std::chrono::seconds(input.at("time").to_number<long long>()));

  const s3::signed_headers signed_request =
      s3::sign_v4(request, creds, text(input, "region"), text(input, "service"), now);
  json::array headers;
  for (const auto& [name, value] : signed_request.headers) headers.push_back(json::array{name, value});
  return {{"headers", std::move(headers)},
          {"canonical_path", signed_request.canonical_path},
          {"canonical_query", signed_request.canonical_query},
          {"canonical_request", signed_request.canonical_request}};
}

}  // namespace

int main() {
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line.empty()) continue;
    json::object output;
    try {
      output = sign_one(json::parse(line).as_object());
    } catch (const std::exception& e) {
      output = {{"error", e.what()}};
    }
    std::cout << json::serialize(output) << '\n';
  }
  return std::cout.good() ? 0 : 1;
}
