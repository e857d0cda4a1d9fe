#include "mp4/locate.hpp"

#include "mp4/box.hpp"

namespace mediagate::mp4 {
namespace {

bool known_top_level(std::uint32_t type) {
  const auto name = fourcc_text(type);
  for (const char* t : {"ftyp", "moov", "mdat", "free", "skip", "wide", "pnot", "uuid", "meta", "pdin",
                        "styp", "sidx", "junk", "PICT", "prfl", "udta", "moof", "mfra", "emsg", "prft"})
    if (name == t) return true;
  return false;
}

}  // namespace

result<locate_step> locate_moov(bytes data, std::uint64_t at, std::uint64_t file_size,
                                std::uint64_t max_moov) {
  if (at == 0 && data.size() >= 4 && data[0] == 0x1a && data[1] == 0x45 && data[2] == 0xdf && data[3] == 0xa3)
    return unsupported("WebM/Matroska is not repackaged (MP4 or MOV with H.264, H.265 or AAC is)");
  std::uint64_t pos = at;
  for (int boxes = 0; boxes < 1024; ++boxes) {
    if (pos >= file_size) return unprocessable("no moov box in the file");
    if (pos < at || pos - at >= data.size()) return locate_step{std::nullopt, pos};
    auto h = read_box_header(data.subspan(static_cast<std::size_t>(pos - at)));
    if (!h) {
      if (at + data.size() >= file_size)
        return unprocessable("a truncated box header at " + std::to_string(pos));
      return locate_step{std::nullopt, pos};
    }
    if (!known_top_level(h->type)) {
      if (pos == 0) return unsupported("not an MP4 or MOV file");
      return unprocessable("an unknown top-level box '" + fourcc_text(h->type) + "' at " +
                           std::to_string(pos));
    }
    if (h->type == fourcc("moof")) return unsupported("fragmented MP4 input (moof before moov)");
    const std::uint64_t size = h->size == 0 ? file_size - pos : h->size;
    if (size < h->header || size > file_size - pos)
      return unprocessable("box '" + fourcc_text(h->type) + "' at " + std::to_string(pos) +
                           " runs past the end");
    if (h->type == fourcc("moov")) {
      if (size > max_moov)
        return unprocessable("moov is " + std::to_string(size) + " bytes, more than the limit of " +
                             std::to_string(max_moov));
      return locate_step{moov_location{pos, size, h->header}, 0};
    }
    pos += size;
  }
  return unprocessable("more than 1024 top-level boxes before moov");
}

}  // namespace mediagate::mp4
