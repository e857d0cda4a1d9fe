#pragma once
// The error and result types shared by every layer (storage, S3, cache, server): expected failures are
// values, never exceptions (STYLE.md rule 6). Each code maps to one client status in one table
// (server/error_status.cpp).
#include <optional>
#include <string>
#include <utility>

namespace mediagate {

enum class errc {
  not_found,             // 404
  bad_key,               // 400: the key is not acceptable (escapes the root, NUL bytes, ...)
  forbidden,             // 403 for local files the server may not read
  upstream_rejected,     // 502: the storage refused our credentials or signature
  upstream_unavailable,  // 502: the storage could not be reached or failed
  upstream_timeout,      // 504: the storage was too slow
  changed,               // the object changed between two reads (If-Match failed): never splice
  io_error,              // 500: a local read failed
  conflict,              // 409: the key names a directory, or a path component is too long
  too_large,             // 413: a request body is larger than the limit
  bad_body,              // 400: a request body is malformed (multipart framing, chunked coding)
  client_gone,           // the client stopped sending the body (or timed out): nothing to answer
  unsupported_media,     // 415: media of a kind this operation does not handle (HLS of a WebM)
  unprocessable,         // 422: media whose structure is broken or hostile (an MP4 index that lies)
};

struct error {
  errc code = errc::io_error;
  std::string message;  // for logs and the client's error body: says what is wrong and what to check
};

// Either a value or an error.
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
  const T& operator*() const { return *value_; }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  const error& err() const { return error_; }

 private:
  std::optional<T> value_;
  error error_;
};

}  // namespace mediagate
