#include "mp4/index_file.hpp"

#include <cstring>

#include "common/crypto.hpp"
#include "mp4/bytes.hpp"

namespace mediagate::mp4 {
namespace {

constexpr std::string_view kMagic = "MGMOOV\r\n";

}  // namespace

std::string encode_index_file(std::string_view key, std::string_view etag, const index_file& f) {
  writer w;
  w.raw(kMagic);
  w.u32(kIndexFileVersion);
  w.u32(static_cast<std::uint32_t>(key.size()));
  w.raw(key);
  w.u32(static_cast<std::uint32_t>(etag.size()));
  w.raw(etag);
  w.u64(f.object_size);
  w.u64(f.location.offset);
  w.u64(f.location.header);
  w.u64(f.moov.size());
  w.raw(f.moov);
  const auto digest = sha256(w.str());
  w.raw(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
  return std::move(w.str());
}

std::optional<index_file> decode_index_file(std::string_view data, std::string_view key,
                                            std::string_view etag) {
  if (data.size() < kMagic.size() + 32) return std::nullopt;
  const auto body = data.substr(0, data.size() - 32);
  const auto digest = sha256(body);
  if (std::memcmp(digest.data(), data.data() + body.size(), 32) != 0) return std::nullopt;
  cursor c(as_bytes(body));
  if (as_text(c.take(kMagic.size())) != kMagic || c.u32() != kIndexFileVersion) return std::nullopt;
  const auto key_size = c.u32();
  if (!c.ok() || as_text(c.take(key_size)) != key) return std::nullopt;
  const auto etag_size = c.u32();
  if (!c.ok() || as_text(c.take(etag_size)) != etag) return std::nullopt;
  index_file f;
  f.object_size = c.u64();
  f.location.offset = c.u64();
  f.location.header = c.u64();
  const auto moov_size = c.u64();
  if (!c.ok() || moov_size != c.left()) return std::nullopt;
  f.moov = std::string(as_text(c.take(static_cast<std::size_t>(moov_size))));
  f.location.size = f.moov.size();
  if (!c.ok() || f.location.header > f.moov.size() || f.location.offset > f.object_size ||
      f.moov.size() > f.object_size - f.location.offset)
    return std::nullopt;
  return f;
}

}  // namespace mediagate::mp4
