#pragma once
// A bounded reader of ISO BMFF boxes (ISO/IEC 14496-12 §4.2) over a span: every size is checked against
// its parent, the number of boxes per parent is capped, and sizes that run past the parent are an error.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "mp4/bytes.hpp"

namespace mediagate::mp4 {

struct box {
  std::uint32_t type = 0;
  std::size_t header = 8;  // 8, or 16 with a 64-bit size (plus 16 for uuid)
  bytes whole;             // header and payload
  bytes payload() const { return whole.subspan(header); }
};

inline constexpr std::size_t kMaxChildren = 4096;

// The boxes that make up `data`, in order; an error (422) when one's size is impossible or there are more
// than kMaxChildren. `where` names the parent for the reason.
result<std::vector<box>> read_boxes(bytes data, std::string_view where);

// A box header at the start of `data` (which may hold only part of the box): its type, header size and total
// size (0 from a box that runs to the end of the file). nullopt when `data` is shorter than the header.
struct box_header {
  std::uint32_t type = 0;
  std::size_t header = 8;
  std::uint64_t size = 0;  // 0: to the end of the enclosing space
};
std::optional<box_header> read_box_header(bytes data);

// The first child of type `type`, or nullptr.
const box* find_box(const std::vector<box>& boxes, std::uint32_t type);

error unprocessable(std::string reason);
error unsupported(std::string reason);

}  // namespace mediagate::mp4
