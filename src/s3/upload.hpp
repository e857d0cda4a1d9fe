#pragma once
// Uploading an object from a stream of bytes with bounded memory: one PutObject for small bodies, a
// multipart upload (aborted on any failure, so no half object is left) for large ones.
#include <boost/asio/awaitable.hpp>
#include <functional>
#include <span>
#include <string>

#include "common/body_source.hpp"
#include "common/result.hpp"

namespace mediagate::s3 {

class client;

// Fills the buffer with the next bytes of the body; 0 at the end.

inline constexpr std::size_t kDefaultPartBytes = 8u << 20;  // AWS's recommended 8-16 MiB

struct upload_result {
  std::string etag;
  std::uint64_t size = 0;
};

// Uploads `source` to `key` (full key, prefix included). Bodies up to one part go in a single PUT.
boost::asio::awaitable<result<upload_result>> upload_object(client& c, std::string key,
                                                            std::string content_type, body_source source,
                                                            std::size_t part_bytes = kDefaultPartBytes);

// Deletes `key` (full key). Deleting a missing key succeeds, as in S3.
boost::asio::awaitable<result<bool>> delete_object(client& c, std::string key);

}  // namespace mediagate::s3
