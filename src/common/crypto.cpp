#include "common/crypto.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include <cctype>
#include <stdexcept>

namespace mediagate {
namespace {

[[noreturn]] void throw_openssl_error(const char* what) {
  char detail[256] = "no detail";
  if (unsigned long code = ERR_get_error(); code != 0) ERR_error_string_n(code, detail, sizeof detail);
  ERR_clear_error();
  throw std::runtime_error(std::string("OpenSSL ") + what + " failed: " + detail);
}

// Algorithms are fetched once: an implicit fetch (EVP_sha256()) would look the provider up on every call.
// Both objects are immutable and safe to share between threads; they live until exit.
const EVP_MD* sha256_md() {
  static EVP_MD* md = [] {
    EVP_MD* fetched = EVP_MD_fetch(nullptr, "SHA256", nullptr);
    if (fetched == nullptr) throw_openssl_error("EVP_MD_fetch(SHA256)");
    return fetched;
  }();
  return md;
}

EVP_MAC* hmac_mac() {
  static EVP_MAC* mac = [] {
    EVP_MAC* fetched = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    if (fetched == nullptr) throw_openssl_error("EVP_MAC_fetch(HMAC)");
    return fetched;
  }();
  return mac;
}

struct md_ctx_deleter {
  void operator()(EVP_MD_CTX* ctx) const { EVP_MD_CTX_free(ctx); }
};
struct mac_ctx_deleter {
  void operator()(EVP_MAC_CTX* ctx) const { EVP_MAC_CTX_free(ctx); }
};
using md_ctx_ptr = std::unique_ptr<EVP_MD_CTX, md_ctx_deleter>;
using mac_ctx_ptr = std::unique_ptr<EVP_MAC_CTX, mac_ctx_deleter>;

md_ctx_ptr new_sha256_ctx() {
  md_ctx_ptr ctx(EVP_MD_CTX_new());
  if (!ctx) throw_openssl_error("EVP_MD_CTX_new");
  if (EVP_DigestInit_ex2(ctx.get(), sha256_md(), nullptr) != 1) throw_openssl_error("EVP_DigestInit_ex2");
  return ctx;
}

}  // namespace

sha256_digest sha256(std::string_view data) {
  // One context per thread: EVP_Digest would allocate and free one on every call.
  thread_local const md_ctx_ptr ctx = [] {
    md_ctx_ptr c(EVP_MD_CTX_new());
    if (!c) throw_openssl_error("EVP_MD_CTX_new");
    return c;
  }();
  sha256_digest out{};
  unsigned int length = 0;
  if (EVP_DigestInit_ex2(ctx.get(), sha256_md(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), data.data(), data.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &length) != 1 || length != out.size()) {
    throw_openssl_error("SHA256");
  }
  return out;
}

std::string sha256_hex(std::string_view data) { return hex(sha256(data)); }

sha256_digest hmac_sha256(std::span<const std::uint8_t> key, std::string_view data) {
  // One context per thread with its digest set once: setting "SHA256" by parameter on every call makes the
  // provider fetch the digest again, which cost more than the HMAC itself (bench: bm_sigv4_*).
  thread_local const mac_ctx_ptr ctx = [] {
    mac_ctx_ptr c(EVP_MAC_CTX_new(hmac_mac()));
    if (!c) throw_openssl_error("EVP_MAC_CTX_new");
    char digest_name[] = "SHA256";
    const OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
                                 OSSL_PARAM_construct_end()};
    if (EVP_MAC_CTX_set_params(c.get(), params) != 1) throw_openssl_error("EVP_MAC_CTX_set_params");
    return c;
  }();
  // A null key pointer means "keep the previous key" to EVP_MAC_init, so an empty key needs a real pointer.
  static constexpr std::uint8_t no_key = 0;
  const std::uint8_t* key_bytes = key.empty() ? &no_key : key.data();
  if (EVP_MAC_init(ctx.get(), key_bytes, key.size(), nullptr) != 1) throw_openssl_error("EVP_MAC_init");
  if (EVP_MAC_update(ctx.get(), reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    throw_openssl_error("EVP_MAC_update");
  }
  sha256_digest out{};
  std::size_t length = 0;
  if (EVP_MAC_final(ctx.get(), out.data(), &length, out.size()) != 1 || length != out.size()) {
    throw_openssl_error("EVP_MAC_final");
  }
  return out;
}

sha256_digest hmac_sha256(std::string_view key, std::string_view data) {
  return hmac_sha256(std::span(reinterpret_cast<const std::uint8_t*>(key.data()), key.size()), data);
}

std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = digits[bytes[i] >> 4];
    out[2 * i + 1] = digits[bytes[i] & 0x0f];
  }
  return out;
}

struct sha256_hasher::impl {
  md_ctx_ptr ctx = new_sha256_ctx();
};

sha256_hasher::sha256_hasher() : impl_(std::make_unique<impl>()) {}
sha256_hasher::~sha256_hasher() = default;
sha256_hasher::sha256_hasher(sha256_hasher&&) noexcept = default;
sha256_hasher& sha256_hasher::operator=(sha256_hasher&&) noexcept = default;

void sha256_hasher::update(std::string_view data) {
  if (EVP_DigestUpdate(impl_->ctx.get(), data.data(), data.size()) != 1)
    throw_openssl_error("EVP_DigestUpdate");
}

void sha256_hasher::update(std::span<const std::byte> data) {
  if (EVP_DigestUpdate(impl_->ctx.get(), data.data(), data.size()) != 1)
    throw_openssl_error("EVP_DigestUpdate");
}

sha256_digest sha256_hasher::finish() {
  sha256_digest out{};
  unsigned int length = 0;
  if (EVP_DigestFinal_ex(impl_->ctx.get(), out.data(), &length) != 1 || length != out.size()) {
    throw_openssl_error("EVP_DigestFinal_ex");
  }
  if (EVP_DigestInit_ex2(impl_->ctx.get(), sha256_md(), nullptr) != 1)
    throw_openssl_error("EVP_DigestInit_ex2");
  return out;
}

std::string base64url(std::span<const std::uint8_t> bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), bytes.data(),
                                static_cast<int>(bytes.size()));
  out.resize(static_cast<std::size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (auto& ch : out) {
    if (ch == '+') ch = '-';
    if (ch == '/') ch = '_';
  }
  return out;
}

std::optional<std::string> base64url_decode(std::string_view text) {
  if (text.size() % 4 == 1 || text.size() > (1u << 20)) return std::nullopt;
  std::string in(text);
  for (auto& ch : in) {
    if (ch == '-')
      ch = '+';
    else if (ch == '_')
      ch = '/';
    else if (!std::isalnum(static_cast<unsigned char>(ch)))
      return std::nullopt;  // no padding, no '+' or '/'
  }
  const std::size_t pad = (4 - in.size() % 4) % 4;
  in.append(pad, '=');
  std::string out(in.size() / 4 * 3, '\0');
  const int n =
      EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                      reinterpret_cast<const unsigned char*>(in.data()), static_cast<int>(in.size()));
  if (n < 0) return std::nullopt;
  out.resize(static_cast<std::size_t>(n) - pad);  // EVP_DecodeBlock counts the padding as zero bytes
  return out;
}

std::optional<std::string> hex_decode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  auto digit = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 2);
  for (std::size_t i = 0; i < text.size(); i += 2) {
    const int hi = digit(text[i]), lo = digit(text[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out += static_cast<char>(hi * 16 + lo);
  }
  return out;
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace mediagate
