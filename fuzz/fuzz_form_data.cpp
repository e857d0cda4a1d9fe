// The multipart/form-data parser, fed in chunks of every size:
//  - any body: the events and the outcome do not depend on how the body was split into chunks, and parts
//    are well nested (begin, data..., end);
//  - a body built from parts (names, file names, types and file bytes chosen by the fuzzer): the parser gives
//    back exactly those parts and bytes, however the body is split.
#include <string>
#include <vector>

#include "byte_reader.hpp"
#include "fuzz_check.hpp"
#include "server/api_form_data.hpp"

using mediagate::fuzz::byte_reader;
using namespace mediagate::server;

namespace {

struct part {
  form_part_header header;
  std::string bytes;
  bool ended = false;
  friend bool operator==(const part& a, const part& b) {
    return a.header.name == b.header.name && a.header.filename == b.header.filename &&
           a.header.content_type == b.header.content_type && a.bytes == b.bytes && a.ended == b.ended;
  }
};

struct outcome {
  std::vector<part> parts;
  bool failed = false;
  bool done = false;
  std::string error;
  friend bool operator==(const outcome&, const outcome&) = default;
};

// Feeds `body` in chunks whose sizes come from `splits` (cycled; a zero byte means one whole remaining chunk)
// and collects the events, checking that they nest.
outcome parse(const std::string& boundary, std::size_t max_header, std::string_view body,
              std::string_view splits) {
  form_data_parser parser(boundary, max_header);
  outcome out;
  std::size_t at = 0, k = 0;
  while (at < body.size() && !out.failed) {
    std::size_t n = body.size() - at;
    if (!splits.empty()) {
      const auto s = static_cast<unsigned char>(splits[k++ % splits.size()]);
      if (s != 0) n = std::min<std::size_t>(n, s);
    }
    out.failed = !parser.feed(body.substr(at, n));
    at += n;
    while (parser.has_event()) {
      auto e = parser.pop_event();
      const bool open = !out.parts.empty() && !out.parts.back().ended;
      switch (e.kind) {
        case form_event::part_begin:
          FUZZ_CHECK(!open, "a part begins only after the previous one ended");
          out.parts.push_back({std::move(e.header), {}, false});
          break;
        case form_event::data:
          FUZZ_CHECK(open, "data only inside a part");
          FUZZ_CHECK(!e.bytes.empty(), "no empty data events");
          out.parts.back().bytes += e.bytes;
          break;
        case form_event::part_end:
          FUZZ_CHECK(open, "a part ends only once");
          out.parts.back().ended = true;
          break;
      }
    }
  }
  out.done = parser.done();
  if (out.failed) out.error = parser.error();
  FUZZ_CHECK(!(out.done && out.failed), "done and failed exclude each other");
  if (out.done)
    FUZZ_CHECK(out.parts.empty() || out.parts.back().ended, "the closing delimiter ends the last part");
  return out;
}

// Characters a browser may put in a name, file name or type; '"' and '\\' are escaped when quoted.
std::string printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s)
    if (c >= 0x20 && c != 0x7F) out += static_cast<char>(c);
  return out;
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + '"';
}

void any_body(byte_reader& in) {
  const std::string boundary(in.string());
  const std::size_t max_header = in.flag() ? 16 * 1024 : in.in_range(1, 300);
  const auto splits = in.string();
  const auto body = in.remaining();
  if (boundary.empty()) return;
  const auto whole = parse(boundary, max_header, body, {});
  const auto split = parse(boundary, max_header, body, splits);
  FUZZ_CHECK(whole == split, "the outcome does not depend on the chunk sizes");
  if (const auto b = form_data_boundary("multipart/form-data; boundary=" + boundary)) {
    FUZZ_CHECK(!b->empty() && b->size() <= 70, "a boundary has 1 to 70 characters");
  }
}

void built_body(byte_reader& in) {
  static constexpr std::string_view kBoundaryChars =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'()+_,-./:=? ";
  std::string boundary;
  for (unsigned char c : in.string().substr(0, 70)) boundary += kBoundaryChars[c % kBoundaryChars.size()];
  while (!boundary.empty() && boundary.back() == ' ') boundary.pop_back();
  if (boundary.empty()) boundary = "b";
  const std::string delimiter = "\r\n--" + boundary;
  FUZZ_CHECK(form_data_boundary("multipart/form-data; boundary=" + quoted(boundary)) == boundary,
             "a valid boundary is accepted as it is");

  std::vector<part> expected;
  std::string body(in.string());  // the preamble
  if (("\r\n" + body).find(delimiter) != std::string::npos) return;
  const unsigned count = in.number<std::uint8_t>() % 5;
  for (unsigned i = 0; i < count; ++i) {
    part p;
    p.header.name = printable(in.string());
    if (in.flag()) p.header.filename = printable(in.string());
    p.header.content_type = printable(in.string());
    while (!p.header.content_type.empty() && p.header.content_type.back() == ' ')
      p.header.content_type.pop_back();
    while (!p.header.content_type.empty() && p.header.content_type.front() == ' ')
      p.header.content_type.erase(0, 1);
    p.bytes = in.string();
    p.ended = true;
    if (p.bytes.find(delimiter) != std::string::npos) return;  // such a file needs another boundary
    body += (body.empty() && i == 0 ? "--" : "\r\n--") + boundary + "\r\n";
    body += "Content-Disposition: form-data; name=" + quoted(p.header.name);
    if (p.header.filename) body += "; filename=" + quoted(*p.header.filename);
    body += "\r\n";
    if (!p.header.content_type.empty()) body += "Content-Type: " + p.header.content_type + "\r\n";
    body += "\r\n" + p.bytes;
    expected.push_back(std::move(p));
  }
  body += (body.empty() ? "--" : "\r\n--") + boundary + "--\r\n";
  body += in.string();  // the epilogue is ignored
  const auto splits = in.remaining();

  for (auto s : {std::string_view(), splits}) {
    const auto got = parse(boundary, 16 * 1024, body, s);
    FUZZ_CHECK(!got.failed, "a well-formed body parses");
    FUZZ_CHECK(got.done, "the closing delimiter is seen");
    FUZZ_CHECK(got.parts == expected, "the parts come back exactly as sent");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  byte_reader in(data, size);
  if (in.flag())
    built_body(in);
  else
    any_body(in);
  return 0;
}
