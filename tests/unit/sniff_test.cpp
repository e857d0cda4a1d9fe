// storage/sniff: where an MP4's index is, from its first bytes.
#include "storage/sniff.hpp"

#include <gtest/gtest.h>

#include <string>

namespace mediagate::storage {
namespace {

std::string box32(std::string_view type, std::uint32_t size, std::size_t body_bytes_here = 0) {
  std::string b;
  for (int shift = 24; shift >= 0; shift -= 8) b += static_cast<char>((size >> shift) & 0xff);
  b += type;
  b += std::string(body_bytes_here, '\0');
  return b;
}

std::string box64(std::string_view type, std::uint64_t size) {
  std::string b = box32(type, 1);
  for (int shift = 56; shift >= 0; shift -= 8) b += static_cast<char>((size >> shift) & 0xff);
  return b;
}

std::optional<std::uint64_t> index_after(const std::string& head, std::uint64_t size) {
  return mp4_index_after_media(std::span<const char>(head.data(), head.size()), size);
}

TEST(mp4_index_after_media, moov_at_end) {
  // ftyp (32), free (8), mdat (1000 bytes with its header), then the moov at 1040.
  const auto head = box32("ftyp", 32, 24) + box32("free", 8) + box32("mdat", 1000);
  EXPECT_EQ(index_after(head, 1040 + 500), 1040u);
  // A 64-bit mdat size (files over 4 GiB).
  const auto big = box32("ftyp", 32, 24) + box64("mdat", 5'000'000'000ULL);
  EXPECT_EQ(index_after(big, 5'000'000'032ULL + 90'000), 5'000'000'032ULL);
}

TEST(mp4_index_after_media, fast_start_and_other_files) {
  // The moov before the media: nothing to fetch ahead.
  EXPECT_EQ(index_after(box32("ftyp", 32, 24) + box32("moov", 86018), 200'000'000), std::nullopt);
  // Not an MP4: the first box must be ftyp.
  EXPECT_EQ(index_after(box32("mdat", 1000), 5000), std::nullopt);
  EXPECT_EQ(index_after(std::string("RIFF....WEBPVP8 "), 5000), std::nullopt);
  EXPECT_EQ(index_after(std::string(), 5000), std::nullopt);
  // An mdat that runs to the end (size 0), or ends exactly at the end: no index after it.
  EXPECT_EQ(index_after(box32("ftyp", 32, 24) + box32("mdat", 0), 5000), std::nullopt);
  EXPECT_EQ(index_after(box32("ftyp", 32, 24) + box32("mdat", 968), 1000), std::nullopt);
  // Sizes that do not add up: a box larger than the file, a box smaller than its header.
  EXPECT_EQ(index_after(box32("ftyp", 32, 24) + box32("mdat", 100000), 5000), std::nullopt);
  EXPECT_EQ(index_after(box32("ftyp", 4, 24) + box32("mdat", 100), 5000), std::nullopt);
  // A head too short to reach the mdat header.
  EXPECT_EQ(index_after(box32("ftyp", 32, 24) + "\0\0", 5000), std::nullopt);
  EXPECT_EQ(index_after(box32("ftyp", 32, 24) + box32("mdat", 1).substr(0, 8), 5000), std::nullopt);
}

}  // namespace
}  // namespace mediagate::storage
