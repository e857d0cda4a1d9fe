#pragma once
// GoogleTest printers shared by the unit tests (one definition for the whole test binary).
#include <ostream>

#include "http/byte_range.hpp"

namespace mediagate::http {
inline void PrintTo(const byte_range& r, std::ostream* os) { *os << "[" << r.first << ", " << r.last << "]"; }
}  // namespace mediagate::http
