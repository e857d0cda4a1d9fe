#pragma once
// Turns a fuzzer's input into structured values. Numbers are taken from the front; strings are delimited by a
// 0xFF byte so that the fuzzer's mutations of one string do not shift the others. Running out of input gives
// zeros and empty strings, never an error. (Debian's clang-16 packages do not ship FuzzedDataProvider.h.)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mediagate::fuzz {

class byte_reader {
 public:
  byte_reader(const std::uint8_t* data, std::size_t size)
      : rest_(reinterpret_cast<const char*>(data), size) {}

  bool empty() const { return rest_.empty(); }

  template <class T>
  T number() {
    T value = 0;
    for (std::size_t i = 0; i < sizeof(T) && !rest_.empty(); ++i) {
      value =
          static_cast<T>((static_cast<std::uint64_t>(value) << 8) | static_cast<std::uint8_t>(rest_.front()));
      rest_.remove_prefix(1);
    }
    return value;
  }

  // A number in [lo, hi], from as few bytes as the span needs (1, 2, 4 or 8).
  std::uint64_t in_range(std::uint64_t lo, std::uint64_t hi) {
    const auto span = hi - lo;
    const std::uint64_t n = span <= 0xFF         ? number<std::uint8_t>()
                            : span <= 0xFFFF     ? number<std::uint16_t>()
                            : span <= 0xFFFFFFFF ? number<std::uint32_t>()
                                                 : number<std::uint64_t>();
    return span == UINT64_MAX ? n : lo + n % (span + 1);
  }

  bool flag() { return (number<std::uint8_t>() & 1) != 0; }

  // Bytes up to the next 0xFF (consumed) or the end.
  std::string_view string() {
    const auto end = rest_.find('\xFF');
    const auto out = rest_.substr(0, end);
    rest_.remove_prefix(end == std::string_view::npos ? rest_.size() : end + 1);
    return out;
  }

  std::string_view remaining() {
    const auto out = rest_;
    rest_ = {};
    return out;
  }

 private:
  std::string_view rest_;
};

}  // namespace mediagate::fuzz
