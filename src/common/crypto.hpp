#pragma once

// The three primitives SigV4 needs (SHA-256, HMAC-SHA-256, lowercase hex), over OpenSSL 3's EVP APIs.
// OpenSSL failures here mean a broken library or out of memory, not bad input: they throw std::runtime_error.

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace mediagate {

using sha256_digest = std::array<std::uint8_t, 32>;

sha256_digest sha256(std::string_view data);

// Lowercase hex of the SHA-256 of `data`, as x-amz-content-sha256 and the string to sign want it.
std::string sha256_hex(std::string_view data);

sha256_digest hmac_sha256(std::span<const std::uint8_t> key, std::string_view data);
sha256_digest hmac_sha256(std::string_view key, std::string_view data);

// Lowercase hex, two digits per byte.
std::string hex(std::span<const std::uint8_t> bytes);

// Base64url without padding (RFC 4648 §5), and back; nullopt on bytes outside the alphabet or a bad length.
std::string base64url(std::span<const std::uint8_t> bytes);
std::optional<std::string> base64url_decode(std::string_view text);
// Hex (either case) to bytes; nullopt when not an even run of hex digits.
std::optional<std::string> hex_decode(std::string_view text);

// Equality in time independent of where the inputs differ (only their lengths leak).
bool constant_time_equal(std::string_view a, std::string_view b);

// Incremental SHA-256 for bodies that arrive in pieces (e.g. an upload read from a file).
class sha256_hasher {
 public:
  sha256_hasher();
  ~sha256_hasher();
  sha256_hasher(sha256_hasher&&) noexcept;
  sha256_hasher& operator=(sha256_hasher&&) noexcept;
  sha256_hasher(const sha256_hasher&) = delete;
  sha256_hasher& operator=(const sha256_hasher&) = delete;

  void update(std::string_view data);
  void update(std::span<const std::byte> data);
  // Returns the digest and resets the hasher for a new message.
  sha256_digest finish();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace mediagate
