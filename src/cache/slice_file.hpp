#pragma once
// One slice on disk: a 3.5 KiB header (magic, length, CRC-32C of every 64 KiB block) followed by the slice's
// bytes. A slice is written under a temporary name in the cache's tmp/ and renamed into place when complete,
// so a crash never leaves a torn slice under a slice's name. Everything here knows only files and bytes:
// which slices exist is the index's business (slice_index.hpp).
#include <sys/stat.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mediagate::cache {

// The slice's bytes start here, off a page boundary on purpose: a warm hit is one sendfile() per slice, and
// on Linux 6.x a sendfile() that starts at a page-aligned file offset cost a fifth more CPU per byte than one
// starting inside a page (the same files and calls otherwise; loopback, bench/results/W1WARM-2026-12-01.md).
// nginx's cache files, whose bodies start after a header of some 700 bytes, get the same benefit.
inline constexpr std::size_t kHeaderBytes = 3584;
static_assert(kHeaderBytes % 4096 != 0, "a slice's bytes must not start at a page boundary");
inline constexpr std::size_t kBlockBytes = 64 * 1024;
// Header bytes 64.. hold the CRCs: 880 blocks of 64 KiB, so a slice holds at most 55 MiB.
inline constexpr std::size_t kCrcOffset = 64;
inline constexpr std::size_t kMaxBlocks = (kHeaderBytes - kCrcOffset) / 4;

struct slice_header {
  std::uint64_t length = 0;         // bytes of data after the header
  std::vector<std::uint32_t> crcs;  // one per 64 KiB block, the last one possibly partial
};

// The checksum of a block (CRC-32C), continued from `crc` (the checksum of the bytes before, or 0).
std::uint32_t block_checksum(std::span<const char> data, std::uint32_t crc = 0);
// The header of a complete slice of `length` bytes with these block CRCs.
std::array<char, kHeaderBytes> encode_header(std::uint64_t length, std::span<const std::uint32_t> crcs);
// A header as stored; nullopt when the magic, the block size or the block count is wrong.
std::optional<slice_header> decode_header(std::span<const char, kHeaderBytes> bytes);
std::optional<slice_header> read_header(int fd);
// Reads the whole slice and checks every block's CRC-32 against the header.
bool verify_blocks(int fd, const slice_header& h);
// True when the file starts with the magic of a slice (of this format or an earlier one) or of a slice still
// being written: proof that this process (or an earlier one) wrote it, asked before the cache deletes a file
// it did not just create.
bool has_slice_magic(int fd);

// The names the cache gives its files, and the only names it ever deletes.
// A slice: "<32 hex object id>-<index>" in the subdirectory named by the id's first two characters.
std::string slice_file_name(std::string_view object, std::uint64_t index);
bool is_slice_file_name(std::string_view name, std::string_view parent);
// A slice being written, in tmp/: "<slice file name>.<counter>".
std::string temp_file_name(std::string_view object, std::uint64_t index, std::uint64_t counter);
bool is_temp_file_name(std::string_view name);

std::int64_t mtime_ns(const struct stat& st);

// Writes one slice to a temporary file; publish() renames it to its final name. Destroying an unpublished
// writer removes the temporary file.
class slice_writer {
 public:
  // Creates `temp` (O_EXCL) and marks it as ours; nullptr with errno set when it cannot.
  static std::unique_ptr<slice_writer> create(std::filesystem::path temp, std::uint64_t length);
  ~slice_writer();
  slice_writer(const slice_writer&) = delete;
  slice_writer& operator=(const slice_writer&) = delete;

  // Appends bytes; false on a write error (disk full, read-only) or past the slice's length.
  bool append(std::span<const char> data);
  std::uint64_t written() const { return written_; }
  std::uint64_t length() const { return length_; }
  // Writes the header and renames the file to `path` (creating its directory). Requires written() ==
  // length(). False with errno set on failure; the temporary file is then removed with the writer.
  bool publish(const std::filesystem::path& path);
  // The published file's modification time (valid after publish()).
  std::int64_t published_mtime_ns() const;

 private:
  slice_writer(int fd, std::filesystem::path temp, std::uint64_t length);

  int fd_;
  std::filesystem::path temp_;
  std::uint64_t length_;
  std::uint64_t written_ = 0;
  std::vector<std::uint32_t> crcs_;
};

}  // namespace mediagate::cache
