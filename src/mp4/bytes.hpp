#pragma once
// Big-endian reads over a span with every bound checked (MP4 is untrusted input: a read past the end sets
// a flag instead of touching memory), and the writes the fragment writer needs.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace mediagate::mp4 {

using bytes = std::span<const std::uint8_t>;

inline bytes as_bytes(std::string_view s) {
  return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}
inline std::string_view as_text(bytes b) { return {reinterpret_cast<const char*>(b.data()), b.size()}; }

constexpr std::uint32_t fourcc(const char (&s)[5]) {
  return (std::uint32_t(std::uint8_t(s[0])) << 24) | (std::uint32_t(std::uint8_t(s[1])) << 16) |
         (std::uint32_t(std::uint8_t(s[2])) << 8) | std::uint32_t(std::uint8_t(s[3]));
}
std::string fourcc_text(std::uint32_t type);  // printable: other bytes as '?'

class cursor {
 public:
  explicit cursor(bytes data) : data_(data) {}
  bool ok() const { return ok_; }
  std::size_t left() const { return ok_ ? data_.size() - pos_ : 0; }
  std::size_t pos() const { return pos_; }
  bytes rest() const { return ok_ ? data_.subspan(pos_) : bytes(); }
  std::uint64_t be(unsigned n) {
    if (!ok_ || data_.size() - pos_ < n) {
      ok_ = false;
      return 0;
    }
    std::uint64_t v = 0;
    for (unsigned i = 0; i < n; ++i) v = (v << 8) | data_[pos_ + i];
    pos_ += n;
    return v;
  }
  std::uint8_t u8() { return static_cast<std::uint8_t>(be(1)); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(be(2)); }
  std::uint32_t u24() { return static_cast<std::uint32_t>(be(3)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(be(4)); }
  std::uint64_t u64() { return be(8); }
  void skip(std::size_t n) {
    if (!ok_ || data_.size() - pos_ < n)
      ok_ = false;
    else
      pos_ += n;
  }
  bytes take(std::size_t n) {
    if (!ok_ || data_.size() - pos_ < n) {
      ok_ = false;
      return {};
    }
    auto b = data_.subspan(pos_, n);
    pos_ += n;
    return b;
  }

 private:
  bytes data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

// Appends big-endian integers and boxes to a string.
class writer {
 public:
  void u8(std::uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(std::uint16_t v) { be(v, 2); }
  void u24(std::uint32_t v) { be(v, 3); }
  void u32(std::uint32_t v) { be(v, 4); }
  void u64(std::uint64_t v) { be(v, 8); }
  void raw(std::string_view s) { out_.append(s); }
  void raw(bytes b) { out_.append(as_text(b)); }
  // Opens a box (size patched by close()); returns its start.
  std::size_t open(std::uint32_t type) {
    auto start = out_.size();
    u32(0);
    u32(type);
    return start;
  }
  std::size_t open_full(std::uint32_t type, std::uint8_t version, std::uint32_t flags) {
    auto start = open(type);
    u8(version);
    u24(flags);
    return start;
  }
  void close(std::size_t start) {
    const auto size = static_cast<std::uint32_t>(out_.size() - start);
    for (int i = 0; i < 4; ++i) out_[start + i] = static_cast<char>(size >> (24 - 8 * i));
  }
  std::string& str() { return out_; }

 private:
  void be(std::uint64_t v, unsigned n) {
    for (unsigned i = 0; i < n; ++i) out_.push_back(static_cast<char>(v >> (8 * (n - 1 - i))));
  }
  std::string out_;
};

}  // namespace mediagate::mp4
