// server/drained_read.hpp on a real loopback socket: it reads as async_read_some does (bytes, end of stream,
// cancel, close), and after a read that left the socket empty the next read makes no recv() until epoll
// reports new bytes, where Asio's own read tries one at once and finds EAGAIN. Its own executable: it counts
// the process's recv() calls by defining recv().
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <chrono>
#include <optional>
#include <string>

#include "server/drained_read.hpp"

namespace {
std::atomic<int> recv_calls{0};
}

// Every recv() in this process, Asio's and drained_read's, counted and passed to the kernel.
extern "C" ssize_t recv(int fd, void* buf, size_t len, int flags) {
  recv_calls.fetch_add(1);
  return static_cast<ssize_t>(::syscall(SYS_recvfrom, fd, buf, len, flags, nullptr, nullptr));
}

namespace {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using mediagate::server::async_read_drained;
constexpr auto kTuple = net::as_tuple(net::use_awaitable);

struct read_result {
  boost::system::error_code ec;
  std::string bytes;
};

class DrainedRead : public ::testing::Test {
 protected:
  void SetUp() override {
    tcp::acceptor acceptor(io, {net::ip::make_address_v4("127.0.0.1"), 0});
    client.connect(acceptor.local_endpoint());
    acceptor.accept(server);
    server.non_blocking(true);
  }

  // Starts one read of at most `size` bytes; `plain` takes Asio's own async_read_some.
  std::optional<read_result>& start_read(std::size_t size, bool plain = false) {
    result.reset();
    buffer.assign(size, '\0');
    net::co_spawn(
        io,
        [this, plain]() -> net::awaitable<void> {
          boost::system::error_code ec;
          std::size_t n = 0;
          if (plain)
            std::tie(ec, n) = co_await server.async_read_some(net::buffer(buffer), kTuple);
          else
            std::tie(ec, n) = co_await async_read_drained(server, net::buffer(buffer), kTuple);
          result = read_result{ec, buffer.substr(0, n)};
        },
        net::detached);
    return result;
  }

  // Starts a read and lets the loop take it as far as it goes without new bytes: it must still wait.
  void start_waiting_read(bool plain = false) {
    start_read(4096, plain);
    io.restart();
    io.poll();
    EXPECT_FALSE(result.has_value()) << "completed with nothing sent";
  }

  // Runs the loop until the read completes (or two seconds pass: a hung read fails the test).
  read_result finish() {
    io.restart();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (!result && std::chrono::steady_clock::now() < deadline) io.run_for(std::chrono::milliseconds(10));
    EXPECT_TRUE(result.has_value()) << "the read did not complete";
    return result.value_or(read_result{});
  }

  void send(const std::string& bytes) { net::write(client, net::buffer(bytes)); }

  net::io_context io;
  tcp::socket client{io};
  tcp::socket server{io};
  std::string buffer;
  std::optional<read_result> result;
};

TEST_F(DrainedRead, ReadsWhatWasSentAndWaitsForMore) {
  send("GET / HTTP/1.1\r\n\r\n");
  start_read(4096);
  auto r = finish();
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.bytes, "GET / HTTP/1.1\r\n\r\n");

  start_waiting_read();
  send("next");
  r = finish();
  EXPECT_FALSE(r.ec);
  EXPECT_EQ(r.bytes, "next");
}

TEST_F(DrainedRead, AFullBufferLeavesTheRestToTheNextRead) {
  send("0123456789");
  start_read(4);
  EXPECT_EQ(finish().bytes, "0123");
  start_read(4);
  EXPECT_EQ(finish().bytes, "4567");
  start_read(4);
  EXPECT_EQ(finish().bytes, "89");
}

// The first read waits when the bytes come (as a keep-alive connection's next request does): epoll's event
// is taken by that read, none is left over to make the next read try at once.
TEST_F(DrainedRead, NoRecvUntilEpollReportsBytesAfterTheSocketWasEmptied) {
  start_waiting_read();
  send("first");
  ASSERT_EQ(finish().bytes, "first");  // fewer bytes than asked: the socket is empty

  const int before = recv_calls.load();
  start_waiting_read();
  EXPECT_EQ(recv_calls.load(), before) << "a recv() was tried on a socket known to be empty";
  send("second");
  EXPECT_EQ(finish().bytes, "second");
  EXPECT_EQ(recv_calls.load(), before + 1);
}

TEST_F(DrainedRead, AsiosOwnReadTriesAnEmptySocketFirst) {
  // The behaviour drained_read exists to avoid, checked so that the test above can tell the two apart.
  start_waiting_read(true);
  send("first");
  ASSERT_EQ(finish().bytes, "first");

  const int before = recv_calls.load();
  start_waiting_read(true);
  EXPECT_EQ(recv_calls.load(), before + 1) << "Asio's read no longer tries at once (Boost changed?)";
  send("second");
  EXPECT_EQ(finish().bytes, "second");
}

TEST_F(DrainedRead, EndOfStream) {
  send("last");
  client.shutdown(tcp::socket::shutdown_send);
  start_read(4096);
  EXPECT_EQ(finish().bytes, "last");
  start_read(4096);
  auto r = finish();
  EXPECT_EQ(r.ec, net::error::eof);
  EXPECT_EQ(r.bytes, "");
}

TEST_F(DrainedRead, CancelAndCloseEndAWaitingRead) {
  start_waiting_read();
  server.cancel();
  EXPECT_EQ(finish().ec, net::error::operation_aborted);

  start_waiting_read();
  server.close();
  EXPECT_EQ(finish().ec, net::error::operation_aborted);

  start_read(4096);
  EXPECT_EQ(finish().ec, net::error::bad_descriptor);
}

TEST_F(DrainedRead, AResetConnectionIsAnError) {
  client.set_option(net::socket_base::linger(true, 0));
  client.close();  // RST
  start_read(4096);
  auto r = finish();
  EXPECT_TRUE(r.ec == net::error::connection_reset || r.ec == net::error::eof) << r.ec.message();
}

}  // namespace
