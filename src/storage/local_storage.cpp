#include "storage/local_storage.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "http/media_key.hpp"

namespace mediagate::storage {
namespace {

// Owns one file descriptor.
class unique_fd {
 public:
  explicit unique_fd(int fd = -1) : fd_(fd) {}
  unique_fd(unique_fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  unique_fd& operator=(unique_fd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~unique_fd() { reset(); }
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

std::string make_etag(const struct stat& st) {
  // Strong: size, modification time in nanoseconds and inode change together whenever the file's bytes can.
  char buf[96];
  std::snprintf(buf, sizeof buf, "\"%llx-%llx-%llx\"", static_cast<unsigned long long>(st.st_size),
                static_cast<unsigned long long>(st.st_mtim.tv_sec) * 1000000000ull +
                    static_cast<unsigned long long>(st.st_mtim.tv_nsec),
                static_cast<unsigned long long>(st.st_ino));
  return buf;
}

object_meta meta_from_stat(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_size), make_etag(st), static_cast<std::int64_t>(st.st_mtim.tv_sec),
          {}};
}

class file_reader final : public range_reader {
 public:
  file_reader(unique_fd fd, http::byte_range range)
      : fd_(std::move(fd)), offset_(range.first), remaining_(range.length()) {}

  bool needs_buffer() const override { return false; }

  boost::asio::awaitable<result<chunk>> next(std::span<char> buf, bool zero_copy) override {
    if (remaining_ == 0) co_return chunk{};
    if (zero_copy) {
      // The whole rest of the range, straight from the file: the caller sendfile()s it.
      chunk c{static_cast<std::size_t>(remaining_), file_region{fd_.get(), offset_}};
      offset_ += remaining_;
      remaining_ = 0;
      co_return c;
    }
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_));
    const auto n = ::pread(fd_.get(), buf.data(), want, static_cast<off_t>(offset_));
    if (n < 0) co_return error{errc::io_error, std::string("read failed: ") + std::strerror(errno)};
    // The file shrank under us: the planned bytes no longer exist.
    if (n == 0) co_return error{errc::changed, "the file became shorter while it was being sent"};
    offset_ += static_cast<std::uint64_t>(n);
    remaining_ -= static_cast<std::uint64_t>(n);
    co_return chunk{static_cast<std::size_t>(n), std::nullopt};
  }

 private:
  unique_fd fd_;
  std::uint64_t offset_;
  std::uint64_t remaining_;
};

}  // namespace

local_storage::local_storage(const std::filesystem::path& root) : root_(std::filesystem::absolute(root)) {
  root_fd_ = ::open(root_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (root_fd_ < 0)
    throw std::runtime_error("cannot open media directory " + root_.string() + ": " + std::strerror(errno));
}

local_storage::~local_storage() {
  if (root_fd_ >= 0) ::close(root_fd_);
}

std::string local_storage::describe() const { return "local directory " + root_.string(); }

result<int> local_storage::open_beneath(const std::string& key) const {
  if (!http::decode_media_key(http::encode_key_for_url(key)))
    return error{errc::bad_key, "the key is not a valid relative path"};
  // RESOLVE_BENEATH refuses "..", absolute paths and symlinks that would leave the root (Linux 5.6+).
  struct open_how how {};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(::syscall(SYS_openat2, root_fd_, key.c_str(), &how, sizeof how));
  if (fd < 0 && errno == ENOSYS) {
    // Older kernels: resolve the real path and require it to stay below the root's real path.
    std::error_code ec;
    auto real_root = std::filesystem::canonical(root_, ec);
    auto real = std::filesystem::canonical(root_ / key, ec);
    if (ec) return error{errc::not_found, "no such object"};
    auto rel = real.lexically_relative(real_root);
    if (rel.empty() || *rel.begin() == "..") return error{errc::not_found, "no such object"};
    fd = ::open(real.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  }
  if (fd < 0) {
    switch (errno) {
      case ENOENT:
      case ENOTDIR:
      case EXDEV:  // would escape the root: answered like a missing object, so nothing leaks about outside
      case ELOOP:
        return error{errc::not_found, "no such object"};
      case EACCES:
      case EPERM:
        return error{errc::forbidden, "the server may not read this file"};
      case ENAMETOOLONG:
        return error{errc::bad_key, "the key is too long"};
      default:
        return error{errc::io_error, std::string("cannot open: ") + std::strerror(errno)};
    }
  }
  return fd;
}

result<object_meta> local_storage::stat_now(const std::string& key) const {
  auto fd = open_beneath(key);
  if (!fd) return fd.err();
  unique_fd owner(*fd);
  struct stat st {};
  if (::fstat(owner.get(), &st) != 0) return error{errc::io_error, std::strerror(errno)};
  if (!S_ISREG(st.st_mode)) return error{errc::not_found, "no such object"};
  return meta_from_stat(st);
}

boost::asio::awaitable<result<object_meta>> local_storage::stat(std::string key) { co_return stat_now(key); }

boost::asio::awaitable<result<std::unique_ptr<range_reader>>> local_storage::open(std::string key,
                                                                                 object_meta meta,
                                                                                 http::byte_range range) {
  auto fd = open_beneath(key);
  if (!fd) co_return fd.err();
  unique_fd owner(*fd);
  struct stat st {};
  if (::fstat(owner.get(), &st) != 0) co_return error{errc::io_error, std::strerror(errno)};
  if (!S_ISREG(st.st_mode)) co_return error{errc::not_found, "no such object"};
  if (make_etag(st) != meta.etag) co_return error{errc::changed, "the file changed since it was examined"};
  co_return std::unique_ptr<range_reader>(std::make_unique<file_reader>(std::move(owner), range));
}

boost::asio::awaitable<result<std::vector<listed_object>>> local_storage::list(std::string prefix) {
  std::vector<listed_object> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(
           root_, std::filesystem::directory_options::skip_permission_denied, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec) || it->is_symlink(ec)) continue;
    auto key = it->path().lexically_relative(root_).generic_string();
    if (!key.starts_with(prefix) || key.starts_with(".")) continue;
    struct stat st {};
    if (::stat(it->path().c_str(), &st) != 0) continue;
    out.push_back({key, static_cast<std::uint64_t>(st.st_size), static_cast<std::int64_t>(st.st_mtim.tv_sec),
                   make_etag(st)});
  }
  if (ec) co_return error{errc::io_error, "cannot list " + root_.string() + ": " + ec.message()};
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.key < b.key; });
  co_return out;
}

}  // namespace mediagate::storage
