#pragma once
// The storage interface: where media bytes come from (a local directory, an S3 bucket, a cache in front).
#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "http/byte_range.hpp"

namespace mediagate::storage {

struct object_meta {
  std::uint64_t size = 0;
  std::string etag;                 // strong entity tag with its quotes, e.g. "\"5f-1a2b\""
  std::int64_t last_modified = 0;   // seconds since the epoch
  std::string content_type;         // as stored by the backend; empty or generic when it does not know
};

enum class errc {
  not_found,             // 404
  bad_key,               // 400: the key is not acceptable (escapes the root, NUL bytes, ...)
  forbidden,             // 403 for local files the server may not read
  upstream_rejected,     // 502: the storage refused our credentials or signature
  upstream_unavailable,  // 502: the storage could not be reached or failed
  upstream_timeout,      // 504: the storage was too slow
  changed,               // the object changed between two reads (If-Match failed): never splice
  io_error,              // 500: a local read failed
};

struct error {
  errc code = errc::io_error;
  std::string message;  // for logs and the client's error body: says what is wrong and what to check
};

// Either a value or an error; expected conditions are values, never exceptions (STYLE.md rule 6).
template <class T>
class result {
 public:
  result() : error_{errc::io_error, "no result"} {}  // for futures and default-initialised slots
  result(T value) : value_(std::move(value)) {}
  result(error e) : error_(std::move(e)) {}
  bool ok() const { return value_.has_value(); }
  explicit operator bool() const { return ok(); }
  T& value() { return *value_; }
  const T& value() const { return *value_; }
  T& operator*() { return *value_; }
  T* operator->() { return &*value_; }
  const error& err() const { return error_; }

 private:
  std::optional<T> value_;
  error error_;
};

// One entry of a listing.
struct listed_object {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t last_modified = 0;
  std::string etag;
};

// A regular file and an offset that the connection may hand to sendfile(2) instead of copying.
struct file_region {
  int fd = -1;
  std::uint64_t offset = 0;
};

// Streams one planned byte range of an object, in order, with the caller's buffer (bounded memory).
class range_reader {
 public:
  virtual ~range_reader() = default;
  // Reads up to buf.size() bytes of the range; 0 means the range is complete. An error after some bytes
  // were delivered means the rest cannot be delivered: the caller must close the client connection.
  virtual boost::asio::awaitable<result<std::size_t>> read_some(std::span<char> buf) = 0;
  // For local files: the file and the position of the next unread byte, for zero-copy sendfile. The
  // caller then reports what it sent through advance().
  virtual std::optional<file_region> file() { return std::nullopt; }
  virtual void advance(std::uint64_t) {}
};

class storage {
 public:
  virtual ~storage() = default;
  // Size, entity tag, modification time and stored content type of the object at `key`.
  virtual boost::asio::awaitable<result<object_meta>> stat(std::string key) = 0;
  // A reader of exactly `range` of the object described by `meta` (which came from stat()). Backends
  // must make sure the bytes belong to that same version of the object (ETag), or fail.
  virtual boost::asio::awaitable<result<std::unique_ptr<range_reader>>> open(std::string key, object_meta meta,
                                                                          http::byte_range range) = 0;
  // Every object whose key starts with `prefix`, in key order.
  virtual boost::asio::awaitable<result<std::vector<listed_object>>> list(std::string prefix) = 0;
  // A short description for logs ("local directory /srv/media", "s3://bucket/prefix at http://...").
  virtual std::string describe() const = 0;
};

}  // namespace mediagate::storage
