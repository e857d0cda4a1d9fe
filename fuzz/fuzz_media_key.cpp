// Media keys and request targets: a decoded key is always one that cannot leave the storage root,
// decode(encode(k)) == k for every accepted key, encoding is undone by percent-decoding for any bytes, and
// split_target only ever returns pieces of the target.
#include <string>

#include "byte_reader.hpp"
#include "fuzz_check.hpp"
#include "http/media_key.hpp"

using namespace mediagate::http;

namespace {

bool within(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

bool url_safe(std::string_view s) {
  for (unsigned char c : s) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
                    c == '_' || c == '.' || c == '~' || c == '/' || c == '%';
    if (!ok) return false;
  }
  return true;
}

void check_key(const std::string& key) {
  FUZZ_CHECK(!key.empty() && key.size() <= kMaxKeyBytes, "a key has 1 to 1024 bytes");
  FUZZ_CHECK(key.front() != '/', "a key is relative");
  for (unsigned char c : key)
    FUZZ_CHECK(c >= 0x20 && c != 0x7F && c != '\\', "no control bytes or backslashes");
  std::string_view rest = key;
  while (true) {
    const auto slash = rest.find('/');
    const auto segment = rest.substr(0, slash);
    FUZZ_CHECK(!segment.empty() && segment != "." && segment != "..", "no empty, . or .. segment");
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  if (auto key = decode_media_key(input)) {
    check_key(*key);
    FUZZ_CHECK(percent_decode(input) == key, "the key is the percent-decoded path");
    const auto encoded = encode_key_for_url(*key);
    FUZZ_CHECK(url_safe(encoded), "an encoded key needs no further escaping in a URL");
    FUZZ_CHECK(decode_media_key(encoded) == key, "decode(encode(k)) == k");
  }

  // Encoding any bytes is undone by percent-decoding.
  const auto encoded = encode_key_for_url(input);
  FUZZ_CHECK(url_safe(encoded), "encoded bytes need no further escaping");
  FUZZ_CHECK(percent_decode(encoded) == std::string(input), "percent_decode(encode(s)) == s");
  if (input.find_first_of("%+") == std::string_view::npos)
    FUZZ_CHECK(percent_decode(input, true) == std::string(input), "plain text decodes to itself");

  const auto [path, query] = split_target(input);
  FUZZ_CHECK(path == "/" || within(path, input), "the path is part of the target");
  FUZZ_CHECK(within(query, input), "the query is part of the target");
  FUZZ_CHECK(path.find('?') == std::string_view::npos, "the path stops at the first '?'");
  std::string scheme(input.substr(0, 8));
  for (char& c : scheme) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (!scheme.starts_with("http://") && !scheme.starts_with("https://")) {
    std::string joined(path);
    if (input.find('?') != std::string_view::npos) joined.append("?").append(query);
    FUZZ_CHECK(joined == input, "an origin-form target is path '?' query");
  }

  // Query parameters: a name that is present is found, its value decoded with '+' as a space.
  mediagate::fuzz::byte_reader in(data, size);
  const auto name = in.string();
  if (auto value = query_param(query, name)) FUZZ_CHECK(value->size() <= query.size(), "values only shrink");
  return 0;
}
