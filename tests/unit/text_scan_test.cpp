// http/token.hpp's has_byte_below: the word-at-a-time scan agrees with a byte-by-byte one.
#include <gtest/gtest.h>

#include <random>
#include <string>

#include "http/token.hpp"

namespace {

using mediagate::http::has_byte_below;

bool naive(const std::string& text, unsigned char limit) {
  for (const char c : text)
    if (static_cast<unsigned char>(c) < limit) return true;
  return false;
}

TEST(has_byte_below, agrees_with_a_byte_by_byte_scan_at_every_position_and_value) {
  for (const unsigned char limit : {1, 14, 33, 128}) {
    for (std::size_t size : {0u, 1u, 7u, 8u, 9u, 16u, 23u}) {
      for (std::size_t at = 0; at < size; ++at) {
        for (int value = 0; value < 256; ++value) {
          std::string text(size, '\xff');  // bytes of 128 and up never count
          text[at] = static_cast<char>(value);
          ASSERT_EQ(has_byte_below(text, limit), naive(text, limit))
              << "limit " << int(limit) << " size " << size << " at " << at << " value " << value;
        }
      }
      const std::string plain(size, 'a');
      EXPECT_EQ(has_byte_below(plain, limit), naive(plain, limit));
    }
  }
  std::mt19937 random(15);  // fixed seed: mixed bytes, where a borrow from one byte runs into the next
  for (int i = 0; i < 20000; ++i) {
    std::string text(random() % 40, ' ');
    for (char& c : text) c = static_cast<char>(random() % 2 ? 20 + random() % 30 : random() % 256);
    for (const unsigned char limit : {1, 14, 33, 128})
      ASSERT_EQ(has_byte_below(text, limit), naive(text, limit)) << i << " " << int(limit);
  }
  EXPECT_FALSE(has_byte_below("", 128));
  EXPECT_TRUE(has_byte_below("bytes=0-1\r\n", '\r' + 1));
  EXPECT_FALSE(has_byte_below("AWS4-HMAC-SHA256 Credential=x/20261201/us-east-1/s3/aws4_request", ' '));
}

}  // namespace
