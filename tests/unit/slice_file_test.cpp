#include "cache/slice_file.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace mediagate::cache {
namespace {

namespace fs = std::filesystem;
using testing_support::temp_dir;

std::string pattern_bytes(std::size_t n, unsigned seed) {
  std::string s(n, '\0');
  std::uint32_t x = seed * 2654435761u + 1;
  for (auto& c : s) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  return s;
}

// Opens a file read-only for the test's lifetime.
struct open_file {
  explicit open_file(const fs::path& p) : fd(::open(p.c_str(), O_RDONLY)) { EXPECT_GE(fd, 0) << p; }
  ~open_file() {
    if (fd >= 0) ::close(fd);
  }
  int fd;
};

void flip_byte(const fs::path& file, std::uint64_t offset) {
  const int fd = ::open(file.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  char c = 0;
  ASSERT_EQ(::pread(fd, &c, 1, static_cast<off_t>(offset)), 1);
  c = static_cast<char>(c ^ 0x01);
  ASSERT_EQ(::pwrite(fd, &c, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

// Writes `data` as one slice (in pieces of `piece` bytes) and publishes it at `path`.
void write_slice(const fs::path& temp, const fs::path& path, const std::string& data, std::size_t piece) {
  auto w = slice_writer::create(temp, data.size());
  ASSERT_TRUE(w);
  for (std::size_t at = 0; at < data.size(); at += piece)
    ASSERT_TRUE(w->append(std::span<const char>(data.data() + at, std::min(piece, data.size() - at))));
  ASSERT_TRUE(w->publish(path));
  EXPECT_FALSE(fs::exists(temp));
}

TEST(slice_file, header_round_trip) {
  const std::vector<std::uint32_t> crcs = {0xdeadbeef, 1, 0xffffffff};
  const auto head = encode_header(2 * kBlockBytes + 5, crcs);
  auto h = decode_header(head);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->length, 2 * kBlockBytes + 5);
  EXPECT_EQ(h->crcs, crcs);
  // An empty slice has no blocks.
  auto empty = decode_header(encode_header(0, {}));
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->length, 0u);
  EXPECT_TRUE(empty->crcs.empty());
}

TEST(slice_file, a_header_that_does_not_add_up_is_rejected) {
  const std::vector<std::uint32_t> two = {1, 2};
  auto head = encode_header(kBlockBytes + 1, two);
  ASSERT_TRUE(decode_header(head));
  auto bad_magic = head;
  bad_magic[3] ^= 1;
  EXPECT_FALSE(decode_header(bad_magic));
  // Two CRCs for a length that needs three blocks, or one.
  EXPECT_FALSE(decode_header(encode_header(2 * kBlockBytes + 1, two)));
  EXPECT_FALSE(decode_header(encode_header(kBlockBytes, two)));
  auto bad_block = head;
  bad_block[17] ^= 1;  // the block size field
  EXPECT_FALSE(decode_header(bad_block));
}

TEST(slice_file, written_slice_reads_back_and_verifies) {
  temp_dir dir("slice-file");
  const auto data = pattern_bytes(3 * kBlockBytes + 100, 7);
  const auto path = dir.path() / "ab" / "slice";
  // Pieces that straddle block edges: the CRC of a block continues across appends.
  write_slice(dir.path() / "temp", path, data, 40'000);
  EXPECT_EQ(fs::file_size(path), kHeaderBytes + data.size());
  open_file f(path);
  auto h = read_header(f.fd);
  ASSERT_TRUE(h);
  EXPECT_EQ(h->length, data.size());
  EXPECT_EQ(h->crcs.size(), 4u);
  EXPECT_TRUE(verify_blocks(f.fd, *h));
  EXPECT_TRUE(has_slice_magic(f.fd));
  std::string back(data.size(), '\0');
  ASSERT_EQ(::pread(f.fd, back.data(), back.size(), kHeaderBytes), static_cast<ssize_t>(back.size()));
  EXPECT_TRUE(back == data);
}

TEST(slice_file, one_damaged_byte_in_any_block_fails_verification) {
  temp_dir dir("slice-file");
  const auto data = pattern_bytes(2 * kBlockBytes + 10, 3);
  for (std::uint64_t at : {std::uint64_t{0}, kBlockBytes - 1, kBlockBytes, 2 * kBlockBytes + 9}) {
    const auto path = dir.path() / ("s" + std::to_string(at));
    write_slice(dir.path() / "temp", path, data, data.size());
    flip_byte(path, kHeaderBytes + at);
    open_file f(path);
    auto h = read_header(f.fd);
    ASSERT_TRUE(h) << at;
    EXPECT_FALSE(verify_blocks(f.fd, *h)) << "damage at " << at;
  }
}

TEST(slice_file, a_truncated_slice_fails_verification) {
  temp_dir dir("slice-file");
  const auto path = dir.path() / "s";
  write_slice(dir.path() / "temp", path, pattern_bytes(kBlockBytes + 10, 1), 1000);
  fs::resize_file(path, kHeaderBytes + kBlockBytes);
  open_file f(path);
  auto h = read_header(f.fd);
  ASSERT_TRUE(h);
  EXPECT_FALSE(verify_blocks(f.fd, *h));
}

TEST(slice_file, an_unpublished_writer_removes_its_temporary_file) {
  temp_dir dir("slice-file");
  const auto temp = dir.path() / "temp";
  {
    auto w = slice_writer::create(temp, 10);
    ASSERT_TRUE(w);
    EXPECT_TRUE(fs::exists(temp));
    // Until it is complete the file is marked as ours, but is no slice.
    open_file f(temp);
    EXPECT_TRUE(has_slice_magic(f.fd));
    EXPECT_FALSE(read_header(f.fd));
    ASSERT_TRUE(w->append(std::span<const char>("12345", 5)));
    EXPECT_FALSE(w->publish(dir.path() / "final")) << "only 5 of 10 bytes written";
  }
  EXPECT_FALSE(fs::exists(temp));
  EXPECT_FALSE(fs::exists(dir.path() / "final"));
}

TEST(slice_file, a_writer_refuses_more_bytes_than_the_slice_has) {
  temp_dir dir("slice-file");
  auto w = slice_writer::create(dir.path() / "temp", 4);
  ASSERT_TRUE(w);
  EXPECT_FALSE(w->append(std::span<const char>("12345", 5)));
  EXPECT_TRUE(w->append(std::span<const char>("1234", 4)));
  EXPECT_FALSE(w->append(std::span<const char>("5", 1)));
  EXPECT_EQ(w->written(), 4u);
}

TEST(slice_file, create_fails_on_an_existing_name_or_a_missing_directory) {
  temp_dir dir("slice-file");
  { auto w = slice_writer::create(dir.path() / "taken", 1); }
  { std::ofstream(dir.path() / "taken") << "someone's"; }
  EXPECT_FALSE(slice_writer::create(dir.path() / "taken", 1));
  EXPECT_EQ(fs::file_size(dir.path() / "taken"), 9u) << "an existing file is never overwritten";
  EXPECT_FALSE(slice_writer::create(dir.path() / "missing" / "temp", 1));
}

TEST(slice_file, a_file_without_our_magic_is_not_ours) {
  temp_dir dir("slice-file");
  { std::ofstream(dir.path() / "user") << "MGSLICE0 and more text than eight bytes"; }
  { std::ofstream(dir.path() / "short") << "MG"; }
  open_file user(dir.path() / "user"), short_file(dir.path() / "short");
  EXPECT_FALSE(has_slice_magic(user.fd));
  EXPECT_FALSE(has_slice_magic(short_file.fd));
}

TEST(slice_file, block_checksum_is_crc32c) {
  // The check value of CRC-32C (RFC 3720 appendix B.4), whole and continued across pieces.
  const std::string digits = "123456789";
  EXPECT_EQ(block_checksum(digits), 0xE3069283u);
  EXPECT_EQ(block_checksum(std::string_view(digits).substr(4),
                           block_checksum(std::string_view(digits).substr(0, 4))),
            0xE3069283u);
  EXPECT_EQ(block_checksum(std::string(32, '\0')), 0x8A9136AAu);    // RFC 3720 B.4: 32 bytes of zeros
  EXPECT_EQ(block_checksum(std::string(32, '\xff')), 0x62A8AB43u);  // and of ones
  // Every length and alignment around the 8-byte steps agrees with a byte-at-a-time continuation.
  const auto data = pattern_bytes(100, 5);
  for (std::size_t from = 0; from < 9; ++from)
    for (std::size_t len = 0; from + len <= data.size(); len += 7) {
      const std::string_view piece(data.data() + from, len);
      std::uint32_t bytewise = 0;
      for (char c : piece) bytewise = block_checksum(std::string_view(&c, 1), bytewise);
      EXPECT_EQ(block_checksum(piece), bytewise) << from << "+" << len;
    }
}

TEST(slice_file, slices_of_previous_formats_are_refused_but_still_ours) {
  // Version 1: zlib CRC-32 block checksums. Version 2: a 4 KiB header, so its bytes would be read 512 bytes
  // too late.
  for (const char* magic : {"MGSLICE1", "MGSLICE2"}) {
    temp_dir dir("slice-file");
    const auto path = dir.path() / "s";
    write_slice(dir.path() / "temp", path, pattern_bytes(1000, 2), 1000);
    {
      const int fd = ::open(path.c_str(), O_RDWR);
      ASSERT_GE(fd, 0);
      ASSERT_EQ(::pwrite(fd, magic, 8, 0), 8);
      ::close(fd);
    }
    open_file f(path);
    EXPECT_FALSE(read_header(f.fd)) << magic
                                    << ": must be fetched again, never verified as the current format";
    EXPECT_TRUE(has_slice_magic(f.fd))
        << magic << ": the cache must still know it as its own file, to remove it";
  }
}

TEST(slice_file, the_bytes_start_inside_a_page) {
  // A warm hit sends a slice with one sendfile() from the first byte: starting at a page boundary cost a
  // fifth more CPU per byte (slice_file.hpp). The header still holds the CRCs of the largest slice allowed.
  temp_dir dir("slice-file");
  const auto path = dir.path() / "s";
  const auto data = pattern_bytes(3 * kBlockBytes + 5, 4);
  write_slice(dir.path() / "temp", path, data, data.size());
  EXPECT_NE(kHeaderBytes % 4096, 0u);
  EXPECT_GE(kHeaderBytes, kCrcOffset + 4 * kMaxBlocks);
  EXPECT_GE(kMaxBlocks * kBlockBytes, 55u << 20);
  open_file f(path);
  std::string first(16, '\0');
  ASSERT_EQ(::pread(f.fd, first.data(), first.size(), 3584), static_cast<ssize_t>(first.size()));
  EXPECT_EQ(first, data.substr(0, first.size())) << "the slice's bytes follow a 3,584-byte header";
  EXPECT_EQ(fs::file_size(path), 3584 + data.size());
}

TEST(slice_file, names) {
  const std::string id = "0123456789abcdef0123456789abcdef";
  EXPECT_EQ(slice_file_name(id, 42), id + "-42");
  EXPECT_TRUE(is_slice_file_name(id + "-42", "01"));
  EXPECT_TRUE(is_slice_file_name(id + "-0", "01"));
  EXPECT_FALSE(is_slice_file_name(id + "-42", "02")) << "in the wrong subdirectory";
  EXPECT_FALSE(is_slice_file_name(id + "-", "01"));
  EXPECT_FALSE(is_slice_file_name(id + "-4a", "01"));
  EXPECT_FALSE(is_slice_file_name("0123456789ABCDEF0123456789abcdef-1", "01"));
  EXPECT_FALSE(is_slice_file_name(id.substr(1) + "-1", "12"));
  EXPECT_FALSE(is_slice_file_name("notes.txt", "no"));

  EXPECT_EQ(temp_file_name(id, 3, 17), id + "-3.17");
  EXPECT_TRUE(is_temp_file_name(id + "-3.17"));
  EXPECT_FALSE(is_temp_file_name(id + "-3"));
  EXPECT_FALSE(is_temp_file_name(id + "-3."));
  EXPECT_FALSE(is_temp_file_name(id + "-3.tmp"));
  EXPECT_FALSE(is_temp_file_name("holiday.17"));
  EXPECT_FALSE(is_temp_file_name(".17"));
}

}  // namespace
}  // namespace mediagate::cache
