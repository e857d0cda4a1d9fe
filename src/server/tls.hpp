#pragma once
// HTTPS: the certificate pair in force as an OpenSSL context, reloaded on request (SIGHUP) or when its files
// change, and the session-ticket keys shared by every context so that resumption survives a reload.
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace boost::asio::ssl {
class context;
}
namespace spdlog {
class logger;
}

namespace mediagate::server {

struct tls_files {
  std::string cert;  // PEM: the server certificate, then its chain
  std::string key;   // PEM private key
  std::string ocsp;  // DER OCSP response to staple; empty for none
};

// Session-ticket keys (RFC 5077 tickets, TLS 1.2 and 1.3): a new key every `rotate_every`; tickets made
// with the previous key are still accepted (and renewed), older ones mean a full handshake. Thread-safe.
class ticket_keys {
 public:
  struct key {
    unsigned char name[16];
    unsigned char aes[32];
    unsigned char hmac[32];
    std::chrono::steady_clock::time_point made;
  };
  explicit ticket_keys(std::chrono::seconds rotate_every = std::chrono::hours(1))
      : rotate_every_(rotate_every) {}
  // The key that encrypts new tickets at `now` (a fresh one when the current one is too old).
  key current(std::chrono::steady_clock::time_point now);
  // The key named `name`, if it may still decrypt; `renew` is set when it is not the current one.
  bool find(const unsigned char* name, key& out, bool& renew, std::chrono::steady_clock::time_point now);
  std::chrono::seconds rotate_every() const { return rotate_every_; }

 private:
  void rotate(std::chrono::steady_clock::time_point now);
  std::mutex mutex_;
  std::chrono::seconds rotate_every_;
  std::vector<key> keys_;  // newest first; at most two
};

// ALPN protocols a listener offers, most preferred first ("h2", "http/1.1").
using alpn_list = std::vector<std::string>;

// The context new TLS connections use. A reload that fails (unreadable file, key not matching the
// certificate, bad OCSP file) is logged and refused: the previous context keeps serving, and connections
// keep the context they started with.
class tls_store {
 public:
  // Throws std::runtime_error with a message a user can act on when the first pair cannot be loaded.
  tls_store(tls_files files, alpn_list alpn, spdlog::logger& log);
  ~tls_store();
  std::shared_ptr<boost::asio::ssl::context> current() const;
  // Loads the files again; false when refused.
  bool reload(std::string_view why);
  // reload() when a file changed (modification time, size or inode) since the last attempt.
  void reload_if_changed();

 private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

// The ALPN protocol chosen from a client's offer (wire format: length-prefixed names), or "" when none of
// `ours` is offered. Pure: server preference order, as RFC 7301 §3.2 leaves the choice to the server.
std::string_view choose_alpn(std::string_view offer, const alpn_list& ours);

}  // namespace mediagate::server
