#pragma once
// The storage interface: where media bytes come from (a local directory, an S3 bucket, a cache in front).
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/body_source.hpp"
#include "common/result.hpp"
#include "http/byte_range.hpp"
#include "storage/sniff.hpp"

namespace mediagate::storage {

struct object_meta {
  std::uint64_t size = 0;
  std::string etag;                // strong entity tag with its quotes, e.g. "\"5f-1a2b\""
  std::int64_t last_modified = 0;  // seconds since the epoch
  std::string content_type;        // as stored by the backend; empty or generic when it does not know
  // The backend's hold on the version described (local storage: the file it opened to examine it), so
  // that open() reads exactly that version without looking the key up again. Null when the backend has
  // none; caches that keep metadata drop it.
  std::shared_ptr<const void> pinned;
};

// The shared error types (common/result.hpp), under the names the storage layer has always used.
using mediagate::errc;
using mediagate::error;
using mediagate::result;

// One entry of a listing.
struct listed_object {
  std::string key;
  std::uint64_t size = 0;
  std::int64_t last_modified = 0;
  std::string etag;
};

// A region of a regular file that the connection may hand to sendfile(2) instead of copying.
struct file_region {
  int fd = -1;
  std::uint64_t offset = 0;
};

// The next piece of a range: either `bytes` bytes placed in the caller's buffer, or (when the caller
// allows zero-copy) `bytes` bytes to be sent straight from `file`. bytes == 0 means the range is complete.
struct chunk {
  std::size_t bytes = 0;
  std::optional<file_region> file;
  // Bytes made in memory (an HLS segment's moof), not read from storage for this client: the connection
  // need not limit how many of them wait unsent (which bounds storage reads a leaving client wasted).
  bool from_memory = false;
  // The bytes are in the pipe given to next_spliced(), not in the buffer.
  bool in_pipe = false;
};

// Streams one planned byte range of an object, in order, with the caller's buffer (bounded memory).
class range_reader {
 public:
  virtual ~range_reader() = default;
  // The next bytes of the range. A file chunk counts as delivered once returned: the caller sends all of
  // it or closes the client connection. An error after some bytes were delivered means the rest cannot
  // be: the caller must close the client connection (never send wrong or missing bytes under 200/206).
  virtual boost::asio::awaitable<result<chunk>> next(std::span<char> buf, bool zero_copy) = 0;

  // Zero-copy from a store's socket (plain connections to S3): like next(), but the bytes (up to buf.size(),
  // as through the buffer) may be moved into the pipe `pipe_in` (its write end, empty) instead of `buf`
  // (chunk::in_pipe). The caller sends all of them from the pipe or closes its connection. Only called when
  // can_splice().
  virtual bool can_splice() const { return false; }
  virtual boost::asio::awaitable<result<chunk>> next_spliced(std::span<char> buf, int /*pipe_in*/) {
    return next(buf, false);
  }

  // The next chunk when it is there without waiting (a local file's region), else nullopt: the caller then
  // awaits next(). A short range of a file then costs no coroutine for its reads.
  virtual std::optional<chunk> next_ready(bool /*zero_copy*/) { return std::nullopt; }

  // Called once the whole range was sent: a reader may finish background work here (the slice cache
  // reads the rest of a partly requested slice into the cache), using the caller's buffer.
  virtual boost::asio::awaitable<void> finish(std::span<char>) { co_return; }
  // False when finish() has nothing to do, so that the caller can skip it.
  virtual bool has_finish() const { return true; }

  // False when every chunk can come from a file, so that the caller need not allocate a buffer for it.
  virtual bool needs_buffer() const { return true; }

  // Makes the range end at `last` instead (a reader opened speculatively, before the plan was known, for
  // more than the plan asks): true when the reader delivers exactly up to `last` from now on; false when the
  // reader cannot (the caller then opens another one). Before the first next(); S3's readers also later, for
  // a `last` at or after the byte before the next one (a background read that should stop at a slice's end).
  virtual bool end_at(std::uint64_t /*last*/) { return false; }

  // Convenience: the next bytes copied into `buf` (0 at the end).
  boost::asio::awaitable<result<std::size_t>> read_some(std::span<char> buf) {
    auto c = co_await next(buf, false);
    if (!c) co_return c.err();
    co_return c->bytes;
  }
};

using mediagate::body_source;

// A read to start together with the metadata, before the response is planned: bytes=first-last, or
// bytes=first- (to the end) when last is empty.
struct read_hint {
  std::uint64_t first = 0;
  std::optional<std::uint64_t> last;
  // The request had no Range header: a download of the whole object (curl, wget, "save as"), never a media
  // element (browsers' media stacks always send Range). A backend may read such a body over several
  // connections.
  bool download = false;
  // bytes=-N: the last `suffix` bytes, whatever the size (first and last are then unused). Backends that
  // cannot start such a read return the metadata without a reader.
  std::optional<std::uint64_t> suffix;
  // A player's start (bytes=0- of an MP4) that the slice cache turned into a run of whole slices: a backend
  // whose first byte of a long range comes late (S3's --s3-first-read) may ask for the head alone first.
  bool head_first = false;
};

// A player's first request of an MP4 (bytes=0-; not Safari's probe, a suffix or a download): the request
// whose head and tail a backend may fetch specially (its index may follow the media).
inline bool is_player_start(const read_hint& hint, std::string_view key) {
  return hint.first == 0 && !hint.last && !hint.suffix && !hint.download && mp4_family_key(key);
}

// What stat_and_open() found: the metadata and, when the backend could start it in the same round trip,
// a reader of `range` (what the hint asked for, clamped to the object) for that same version.
struct stat_and_reader {
  object_meta meta;
  std::unique_ptr<range_reader> reader;  // null when none was started
  http::byte_range range;
};

class storage {
 public:
  virtual ~storage() = default;
  // Size, entity tag, modification time and stored content type of the object at `key`.
  virtual boost::asio::awaitable<result<object_meta>> stat(std::string key) = 0;
  // A reader of exactly `range` of the object described by `meta` (which came from stat()). Backends
  // must make sure the bytes belong to that same version of the object (ETag), or fail.
  virtual boost::asio::awaitable<result<std::unique_ptr<range_reader>>> open(std::string key,
                                                                             object_meta meta,
                                                                             http::byte_range range) = 0;
  // stat(), and perhaps (when that costs no extra round trip to storage) a reader of the hinted range
  // started with it, so that a cold request waits for one answer from a remote store instead of two. The
  // caller plans with the metadata and uses the reader only for exactly what the plan asks for (end_at());
  // otherwise it drops it, which cancels the read.
  virtual boost::asio::awaitable<result<stat_and_reader>> stat_and_open(std::string key, read_hint /*hint*/) {
    auto meta = co_await stat(std::move(key));
    if (!meta) co_return meta.err();
    co_return stat_and_reader{std::move(*meta), nullptr, {}};
  }
  // Reads `range` of bytes derived from the object at `key` at version `meta` (an HLS media segment's
  // samples, gathered from runs of the MP4): `size` bytes, which `make(source, r)` reads (range r of them,
  // from `source`). `name` names those bytes for good (the same name always means the same bytes: it
  // includes the object's ETag). A caching storage keeps them under `name` and calls `make` with its
  // upstream on a miss, so that they are cached as they are served, not as the slices of `key` they lie in;
  // any other storage just calls `make` with itself.
  using derived_reader = std::function<boost::asio::awaitable<result<std::unique_ptr<range_reader>>>(
      storage&, http::byte_range)>;
  virtual boost::asio::awaitable<result<std::unique_ptr<range_reader>>> open_derived(
      std::string /*key*/, object_meta /*meta*/, std::string /*name*/, std::uint64_t /*size*/,
      http::byte_range range, derived_reader make) {
    co_return co_await make(*this, range);
  }
  // Every object whose key starts with `prefix`, in key order.
  virtual boost::asio::awaitable<result<std::vector<listed_object>>> list(std::string prefix) = 0;
  // Stores the bytes of `source` at `key`, all or nothing: until the source ends, nothing is visible at
  // `key`, and a source error (client gone, size limit) leaves no trace. Returns the new object's metadata.
  virtual boost::asio::awaitable<result<object_meta>> write(std::string /*key*/, std::string /*content_type*/,
                                                            body_source /*source*/) {
    co_return error{errc::forbidden, "this storage is read-only (" + describe() + ")"};
  }
  // Removes the object at `key`; removing a missing object succeeds.
  virtual boost::asio::awaitable<result<bool>> remove(std::string /*key*/) {
    co_return error{errc::forbidden, "this storage is read-only (" + describe() + ")"};
  }
  // A short description for logs ("local directory /srv/media", "s3://bucket/prefix at http://...").
  virtual std::string describe() const = 0;
};

}  // namespace mediagate::storage
