#include "mp4/box.hpp"

namespace mediagate::mp4 {

std::string fourcc_text(std::uint32_t type) {
  std::string s(4, '?');
  for (int i = 0; i < 4; ++i) {
    const auto c = static_cast<char>(type >> (24 - 8 * i));
    if (c >= 0x20 && c < 0x7f) s[i] = c;
  }
  return s;
}

error unprocessable(std::string reason) { return {errc::unprocessable, "unprocessable MP4: " + reason}; }
error unsupported(std::string reason) { return {errc::unsupported_media, "unsupported media: " + reason}; }

std::optional<box_header> read_box_header(bytes data) {
  cursor c(data);
  box_header h;
  std::uint64_t size = c.u32();
  h.type = c.u32();
  if (!c.ok()) return std::nullopt;
  if (size == 1) {
    size = c.u64();
    if (!c.ok()) return std::nullopt;
    h.header = 16;
  } else if (size == 0) {
    h.size = 0;
    return h;
  }
  if (h.type == fourcc("uuid")) h.header += 16;
  h.size = size;
  return h;
}

result<std::vector<box>> read_boxes(bytes data, std::string_view where) {
  std::vector<box> out;
  std::size_t pos = 0;
  while (pos < data.size()) {
    if (out.size() >= kMaxChildren)
      return unprocessable("more than " + std::to_string(kMaxChildren) + " boxes in " + std::string(where));
    const auto rest = data.subspan(pos);
    auto h = read_box_header(rest);
    if (!h) return unprocessable("a truncated box header in " + std::string(where));
    std::uint64_t size = h->size == 0 ? rest.size() : h->size;
    if (size < h->header || size > rest.size())
      return unprocessable("box '" + fourcc_text(h->type) + "' in " + std::string(where) + " has size " +
                           std::to_string(size) + " but " + std::to_string(rest.size()) + " bytes are left");
    out.push_back({h->type, h->header, rest.subspan(0, static_cast<std::size_t>(size))});
    pos += static_cast<std::size_t>(size);
  }
  return out;
}

const box* find_box(const std::vector<box>& boxes, std::uint32_t type) {
  for (const auto& b : boxes)
    if (b.type == type) return &b;
  return nullptr;
}

}  // namespace mediagate::mp4
