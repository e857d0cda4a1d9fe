#pragma once
// A stream of bytes being written somewhere (an upload's body): fills the buffer with the next bytes, 0 at
// the end. An error aborts the write.
#include <boost/asio/awaitable.hpp>
#include <cstddef>
#include <functional>
#include <span>

#include "common/result.hpp"

namespace mediagate {

using body_source = std::function<boost::asio::awaitable<result<std::size_t>>(std::span<char>)>;

}  // namespace mediagate
