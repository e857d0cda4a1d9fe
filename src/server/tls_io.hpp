#pragma once
// Internal to src/server: TLS on a connection's non-blocking socket, driven by our own code. OpenSSL reads
// and writes the descriptor itself (a socket BIO); a call that cannot go on waits until the socket is
// readable or writable, as OpenSSL asked, and is then made again, as nginx's ngx_event_openssl does.
// This drives OpenSSL's I/O only: the TLS protocol (records, handshake, KeyUpdate, alerts) is OpenSSL's.
#include <openssl/types.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/system/error_code.hpp>
#include <chrono>
#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

namespace mediagate::server {

class tls_io {
 public:
  using result = std::pair<boost::system::error_code, std::size_t>;

  // A server-side SSL of `ctx` on `socket`'s descriptor, which stays the socket's (the SSL never closes it).
  // The socket must be non-blocking. Throws std::runtime_error when OpenSSL cannot make the SSL.
  tls_io(boost::asio::ip::tcp::socket& socket, SSL_CTX* ctx);
  ~tls_io();
  tls_io(const tls_io&) = delete;
  tls_io& operator=(const tls_io&) = delete;

  // The server's side of the handshake; an error when it failed or was cancelled (the deadline).
  boost::asio::awaitable<boost::system::error_code> handshake();
  // At least one byte of application data, or an error (net::error::eof after the client's close_notify,
  // net::ssl::error::stream_truncated when the connection ended without one).
  boost::asio::awaitable<result> read_some(std::span<char> buf);
  // Every byte of `bytes`, or an error and how many were written. The first bytes of a connection, and
  // those after it was quiet for a second, go out in records of one TCP segment each, so that a browser
  // can use them before a whole 16 KiB record arrived; bulk goes in 16 KiB records.
  boost::asio::awaitable<result> write(std::string_view bytes);
  // What of `bytes` goes without waiting, with no coroutine: {error, bytes written}. Fewer than all with no
  // error when the socket is full: write() then takes the rest (before any other write), as OpenSSL requires
  // of a write it could not finish.
  result write_now(std::string_view bytes);
  // OpenSSL's read and write buffers stay allocated between calls (a busy HTTP/2 connection) instead of
  // being freed after each (SSL_MODE_RELEASE_BUFFERS, the context's default).
  void keep_buffers();
  // One attempt at sending close_notify, never waiting.
  void shutdown_now();

  SSL* native_handle() const { return ssl_; }

  // Beast's AsyncReadStream and AsyncWriteStream, for HTTP/1.1 over TLS: each operation is one read_some,
  // or one write of the first non-empty buffer (all of it: one SSL_write, 16 KiB records for bulk), run as a
  // coroutine of its own on the socket's executor, so that it never completes inside the initiating call.
  using executor_type = boost::asio::any_io_executor;
  executor_type get_executor() { return socket_.get_executor(); }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    const auto b = first_buffer<boost::asio::mutable_buffer>(buffers);
    return start(read_some_op(std::span<char>(static_cast<char*>(b.data()), b.size())),
                 std::forward<Token>(token));
  }
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    const auto b = first_buffer<boost::asio::const_buffer>(buffers);
    return start(write(std::string_view(static_cast<const char*>(b.data()), b.size())),
                 std::forward<Token>(token));
  }

 private:
  template <class Buffer, class Buffers>
  static Buffer first_buffer(const Buffers& buffers) {
    for (auto it = boost::asio::buffer_sequence_begin(buffers);
         it != boost::asio::buffer_sequence_end(buffers); ++it)
      if (Buffer b(*it); b.size() > 0) return b;
    return Buffer();
  }
  boost::asio::awaitable<result> read_some_op(std::span<char> buf);
  template <class Token>
  auto start(boost::asio::awaitable<result> op, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
        [this](auto handler, boost::asio::awaitable<result> a) {
          boost::asio::co_spawn(socket_.get_executor(), std::move(a),
                                [h = std::move(handler)](std::exception_ptr e, result r) mutable {
                                  if (e) r = {boost::asio::error::no_memory, 0};
                                  std::move(h)(r.first, r.second);
                                });
        },
        token, std::move(op));
  }
  // What a failed call (`rv`) asked for, as nginx does: wait for the socket, or an error that ends the call.
  boost::asio::awaitable<boost::system::error_code> wait_or_fail(int rv);

  boost::asio::ip::tcp::socket& socket_;
  SSL* ssl_;
  std::size_t small_left_ = 0;  // bytes still to send in small records
  int retry_ = 0;               // SSL_ERROR_WANT_WRITE/READ: the last SSL_write waits to be made again
  std::chrono::steady_clock::time_point last_write_{};
};

}  // namespace mediagate::server
