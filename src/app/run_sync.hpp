#pragma once
// The one-shot commands (ls, put, the start-up access check) run a single coroutine and wait for it.
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>
#include <functional>

namespace mediagate::app {

// Runs one coroutine to completion on a private event loop.
template <class T>
T run_sync(std::function<boost::asio::awaitable<T>(boost::asio::io_context&)> body) {
  boost::asio::io_context io;
  auto future = boost::asio::co_spawn(io, body(io), boost::asio::use_future);
  io.run();
  return future.get();
}

}  // namespace mediagate::app
