#pragma once
// A read of a plain TCP socket that tells Asio's epoll reactor when it left the socket empty, so that the
// next read waits for epoll's next edge instead of trying recv() first. Include only where Asio is already
// included (a .cpp file): it names Asio's reactor internals.
//
// Why: Asio's recv operation reports the socket exhausted only at end of stream, so after every request it
// read, the keep-alive read of the next one is tried at once and finds EAGAIN while the client is still
// reading the response: one wasted system call per request (measured: 2.0 recvfrom per request against
// nginx's 1.0 on random 64 KiB ranges). nginx clears its "ready" flag when a read returns less than it asked
// for; this does the same. Hand-written: Asio offers no public way to say so, and async_wait costs an
// epoll_ctl per wait instead. Tied to Boost 1.81 (Debian 12): other versions take Asio's own read.

#include <sys/socket.h>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/version.hpp>
#include <cerrno>
#include <memory>
#include <type_traits>

#if BOOST_VERSION == 108100 && defined(BOOST_ASIO_HAS_EPOLL) && \
    !defined(BOOST_ASIO_HAS_IO_URING_AS_DEFAULT) && !defined(BOOST_ASIO_HAS_IOCP)
#define MEDIAGATE_DRAINED_READ 1
#include <boost/asio/detail/fenced_block.hpp>
#include <boost/asio/detail/handler_alloc_helpers.hpp>
#include <boost/asio/detail/handler_cont_helpers.hpp>
#include <boost/asio/detail/handler_work.hpp>
#include <boost/asio/detail/reactor.hpp>
#include <boost/asio/detail/reactor_op.hpp>
#include <boost/asio/execution/context.hpp>
#include <boost/asio/query.hpp>
#endif

namespace mediagate::server {

#ifdef MEDIAGATE_DRAINED_READ
namespace drained_detail {

namespace ad = boost::asio::detail;
using tcp = boost::asio::ip::tcp;

// basic_socket's implementation is protected: a member pointer named through a derived class reaches it.
struct socket_access : tcp::socket {
  static auto& of(tcp::socket& s) { return (s.*(&socket_access::impl_)).get_implementation(); }
};

template <class Handler, class IoExecutor>
class drained_recv_op : public ad::reactor_op {
 public:
  BOOST_ASIO_DEFINE_HANDLER_PTR(drained_recv_op);

  drained_recv_op(int fd, boost::asio::mutable_buffer buf, Handler& handler, const IoExecutor& ex)
      : ad::reactor_op(boost::system::error_code(), &drained_recv_op::do_perform,
                       &drained_recv_op::do_complete),
        fd_(fd),
        buf_(buf),
        handler_(std::move(handler)),
        work_(handler_, ex) {}

  // Called by the reactor: at once when Asio may try (after an event), else when epoll reports readable.
  static status do_perform(ad::reactor_op* base) {
    auto* o = static_cast<drained_recv_op*>(base);
    ssize_t n;
    do {
      n = ::recv(o->fd_, o->buf_.data(), o->buf_.size(), MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) return not_done;
      o->ec_ = boost::system::error_code(errno, boost::asio::error::get_system_category());
      return done;
    }
    o->bytes_transferred_ = static_cast<std::size_t>(n);
    if (n == 0) o->ec_ = boost::asio::error::eof;
    // Less than asked: the socket is empty until epoll's next edge.
    return static_cast<std::size_t>(n) < o->buf_.size() ? done_and_exhausted : done;
  }

  static void do_complete(void* owner, ad::operation* base, const boost::system::error_code&, std::size_t) {
    auto* o = static_cast<drained_recv_op*>(base);
    ptr p = {std::addressof(o->handler_), o, o};
    ad::handler_work<Handler, IoExecutor> w(std::move(o->work_));
    // The handler is moved out before the memory is freed: it may own that memory.
    ad::binder2<Handler, boost::system::error_code, std::size_t> handler(o->handler_, o->ec_,
                                                                         o->bytes_transferred_);
    p.h = std::addressof(handler.handler_);
    p.reset();
    if (owner) {
      ad::fenced_block b(ad::fenced_block::half);
      w.complete(handler, handler.handler_);
    }
  }

 private:
  int fd_;
  boost::asio::mutable_buffer buf_;
  Handler handler_;
  ad::handler_work<Handler, IoExecutor> work_;
};

struct initiate_drained_read {
  tcp::socket* socket;

  template <class Handler>
  void operator()(Handler&& handler, boost::asio::mutable_buffer buf) const {
    using handler_type = std::decay_t<Handler>;
    using executor_type = tcp::socket::executor_type;
    using op = drained_recv_op<handler_type, executor_type>;
    auto& impl = socket_access::of(*socket);
    auto& reactor = boost::asio::use_service<ad::reactor>(
        boost::asio::query(socket->get_executor(), boost::asio::execution::context));
    const bool continuation = boost_asio_handler_cont_helpers::is_continuation(handler);
    typename op::ptr p = {std::addressof(handler), op::ptr::allocate(handler), nullptr};
    p.p = new (p.v) op(impl.socket_, buf, handler, socket->get_executor());
    if (impl.socket_ == ad::invalid_socket || buf.size() == 0) {
      p.p->ec_ = impl.socket_ == ad::invalid_socket ? boost::asio::error::bad_descriptor
                                                    : boost::system::error_code();
      reactor.post_immediate_completion(p.p, continuation);
    } else {
      reactor.start_op(ad::reactor::read_op, impl.socket_, impl.reactor_data_, p.p, continuation, true);
    }
    p.v = p.p = nullptr;
  }
};

}  // namespace drained_detail
#endif

// Reads some bytes of `s` into `buf` as async_read_some does. Any stream but plain TCP (TLS) reads with its
// own async_read_some.
template <class Stream, class Token>
auto async_read_drained(Stream& s, boost::asio::mutable_buffer buf, Token&& token) {
  return s.async_read_some(buf, std::forward<Token>(token));
}

// Plain TCP: the read above, which leaves the socket to epoll once it took less than asked. Cancelled by
// s.cancel() and s.close() (not by a per-operation cancellation slot).
template <class Token>
auto async_read_drained(boost::asio::ip::tcp::socket& s, boost::asio::mutable_buffer buf, Token&& token) {
#ifdef MEDIAGATE_DRAINED_READ
  return boost::asio::async_initiate<Token, void(boost::system::error_code, std::size_t)>(
      drained_detail::initiate_drained_read{&s}, token, buf);
#else
  return s.async_read_some(buf, std::forward<Token>(token));
#endif
}

}  // namespace mediagate::server
