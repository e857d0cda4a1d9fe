#include "server/tls_io.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <cerrno>
#include <stdexcept>

namespace mediagate::server {
namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);
// Small records: one TCP segment each (1460-byte MSS less the record's 22 bytes of header and tag, and
// room for TCP options), for the first 16 KiB after a second without writes (as H2O and Google's servers do).
constexpr std::size_t kSmallRecord = 1360;
constexpr std::size_t kSmallBytes = 16 * 1024;
constexpr auto kQuietBefore = std::chrono::seconds(1);

// The error of a call that OpenSSL ended for good (`code`: SSL_get_error's answer), taken off the thread's
// error queue.
boost::system::error_code failure(int code) {
  boost::system::error_code ec;
  if (code == SSL_ERROR_ZERO_RETURN) {
    ec = net::error::eof;  // the client's close_notify
  } else if (code == SSL_ERROR_SYSCALL && errno != 0 && ERR_peek_error() == 0) {
    ec.assign(errno, boost::system::system_category());
  } else if (const auto e = ERR_peek_error();
             e == 0 || ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
    ec = net::ssl::error::stream_truncated;  // the connection ended without a close_notify
  } else {
    ec.assign(static_cast<int>(e), net::error::get_ssl_category());
  }
  ERR_clear_error();
  return ec;
}

// Before an SSL call: the thread's error queue must be empty, so that SSL_get_error reads this call's
// failure. It nearly always is (every failure is taken off it), and emptying it costs OpenSSL 3.0 two free()
// per slot of the queue, 32 in all (about 1.7k instructions, measured: 2.5% of an HTTP/2 range request),
// where a look at it costs a few dozen.
void clear_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace

tls_io::tls_io(tcp::socket& socket, SSL_CTX* ctx) : socket_(socket), ssl_(SSL_new(ctx)) {
  // SSL_set_fd gives the SSL a socket BIO without BIO_CLOSE: the descriptor stays the socket's.
  if (!ssl_ || SSL_set_fd(ssl_, socket_.native_handle()) != 1) {
    if (ssl_) SSL_free(ssl_);
    ERR_clear_error();
    throw std::runtime_error("OpenSSL cannot make a TLS connection (out of memory)");
  }
  SSL_set_accept_state(ssl_);
  // A write that waited is made again with the same bytes, possibly at another address; it returns only once
  // all of them are in records (one call per batch, not per record).
  SSL_set_mode(ssl_, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_clear_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE);
}

tls_io::~tls_io() {
  if (ssl_) SSL_free(ssl_);
}

net::awaitable<boost::system::error_code> tls_io::wait_or_fail(int rv) {
  const int code = SSL_get_error(ssl_, rv);
  // A read that must write first (an alert or handshake message queued behind a full socket) waits for
  // room, and a write that must read waits for bytes: never a retry before the socket is ready.
  if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
    clear_errors();
    const auto what = code == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
    auto [ec] = co_await socket_.async_wait(what, kTuple);
    co_return ec;
  }
  co_return failure(code);
}

net::awaitable<boost::system::error_code> tls_io::handshake() {
  while (true) {
    clear_errors();
    errno = 0;
    const int rv = SSL_do_handshake(ssl_);
    if (rv == 1) co_return boost::system::error_code();
    if (auto ec = co_await wait_or_fail(rv)) co_return ec;
  }
}

net::awaitable<tls_io::result> tls_io::read_some(std::span<char> buf) {
  while (true) {
    clear_errors();
    errno = 0;
    std::size_t n = 0;
    const int rv = SSL_read_ex(ssl_, buf.data(), buf.size(), &n);
    if (rv == 1) co_return result{boost::system::error_code(), n};
    if (auto ec = co_await wait_or_fail(rv)) co_return result{ec, 0};
  }
}

net::awaitable<tls_io::result> tls_io::read_some_op(std::span<char> buf) {
  if (buf.empty()) co_return result{};  // as a socket's read of nothing: at once, no error
  co_return co_await read_some(buf);
}

tls_io::result tls_io::write_now(std::string_view bytes) {
  const auto now = std::chrono::steady_clock::now();
  // A write made again goes on with the records it started with (the same lengths, as OpenSSL requires).
  if (retry_ == 0 && now - last_write_ >= kQuietBefore) small_left_ = kSmallBytes;
  last_write_ = now;
  std::size_t done = 0;
  while (done < bytes.size()) {
    const auto n = small_left_ > 0 ? std::min(kSmallRecord, bytes.size() - done) : bytes.size() - done;
    clear_errors();
    errno = 0;
    std::size_t written = 0;
    // The same bytes again after a wait: OpenSSL remembers how many of them it already sent.
    const int rv = SSL_write_ex(ssl_, bytes.data() + done, n, &written);
    if (rv == 1) {
      retry_ = 0;
      done += n;
      small_left_ -= std::min(small_left_, n);
      continue;
    }
    const int code = SSL_get_error(ssl_, rv);
    if (code == SSL_ERROR_WANT_READ || code == SSL_ERROR_WANT_WRITE) {
      clear_errors();
      retry_ = code;
      return result{boost::system::error_code(), done};
    }
    retry_ = 0;
    return result{failure(code), done};
  }
  return result{boost::system::error_code(), done};
}

net::awaitable<tls_io::result> tls_io::write(std::string_view bytes) {
  std::size_t done = 0;
  while (true) {
    const auto now = write_now(bytes.substr(done));
    done += now.second;
    if (now.first) co_return result{now.first, done};
    if (done == bytes.size()) break;
    // A write that must read first (a KeyUpdate or alert behind a full socket) waits for bytes, else for
    // room.
    const auto what = retry_ == SSL_ERROR_WANT_READ ? tcp::socket::wait_read : tcp::socket::wait_write;
    auto [wait_ec] = co_await socket_.async_wait(what, kTuple);
    if (wait_ec) co_return result{wait_ec, done};
  }
  last_write_ = std::chrono::steady_clock::now();
  co_return result{boost::system::error_code(), done};
}

void tls_io::keep_buffers() { SSL_clear_mode(ssl_, SSL_MODE_RELEASE_BUFFERS); }

void tls_io::shutdown_now() {
  if (!ssl_ || !SSL_is_init_finished(ssl_)) return;
  clear_errors();
  SSL_shutdown(ssl_);
  clear_errors();
}

}  // namespace mediagate::server
