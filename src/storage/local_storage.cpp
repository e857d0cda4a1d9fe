#include "storage/local_storage.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <boost/asio/awaitable.hpp>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <optional>
#include <random>
#include <stdexcept>

#include "http/media_key.hpp"
#include "storage/recent_files.hpp"
#include "storage/upload_temp.hpp"

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
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_;
};

std::string make_etag(const struct stat& st) {
  // Strong: size, modification time in nanoseconds and inode change together whenever the file's bytes can.
  const std::uint64_t parts[] = {static_cast<std::uint64_t>(st.st_size),
                                 static_cast<std::uint64_t>(st.st_mtim.tv_sec) * 1000000000ull +
                                     static_cast<std::uint64_t>(st.st_mtim.tv_nsec),
                                 static_cast<std::uint64_t>(st.st_ino)};
  // The last one made on this thread: a hot file's requests follow each other.
  thread_local std::uint64_t last_parts[3] = {~0ull, ~0ull, ~0ull};
  thread_local std::string last_etag;
  if (std::equal(std::begin(parts), std::end(parts), std::begin(last_parts))) return last_etag;
  char buf[80];
  char* p = buf;
  *p++ = '"';
  for (std::size_t i = 0; i < 3; ++i) {
    if (i > 0) *p++ = '-';
    p = std::to_chars(p, buf + sizeof buf, parts[i], 16).ptr;
  }
  *p++ = '"';
  last_etag.assign(buf, p);
  std::copy(std::begin(parts), std::end(parts), std::begin(last_parts));
  return last_etag;
}

object_meta meta_from_stat(const struct stat& st) {
  return {static_cast<std::uint64_t>(st.st_size),
          make_etag(st),
          static_cast<std::int64_t>(st.st_mtim.tv_sec),
          {},
          nullptr};
}

// Reads one range of a file that stat() opened: shared so that every range of a multipart answer reads
// the same version, and the descriptor closes with the last user.
class file_reader final : public range_reader {
 public:
  file_reader(std::shared_ptr<const unique_fd> fd, http::byte_range range)
      : fd_(std::move(fd)), offset_(range.first), remaining_(range.length()) {}

  bool needs_buffer() const override { return false; }

  bool end_at(std::uint64_t last) override {
    if (started_ || last < offset_ || last - offset_ + 1 > remaining_) return false;
    remaining_ = last - offset_ + 1;
    return true;
  }

  std::optional<chunk> next_ready(bool zero_copy) override {
    if (!zero_copy && remaining_ > 0) return std::nullopt;  // a read into the buffer: next()
    started_ = true;
    if (remaining_ == 0) return chunk{};
    // The whole rest of the range, straight from the file: the caller sendfile()s it.
    chunk c{static_cast<std::size_t>(remaining_), file_region{fd_->get(), offset_}};
    offset_ += remaining_;
    remaining_ = 0;
    return c;
  }

  bool has_finish() const override { return false; }

  boost::asio::awaitable<result<chunk>> next(std::span<char> buf, bool zero_copy) override {
    if (auto ready = next_ready(zero_copy)) co_return std::move(*ready);
    started_ = true;
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), remaining_));
    const auto n = ::pread(fd_->get(), buf.data(), want, static_cast<off_t>(offset_));
    if (n < 0) co_return error{errc::io_error, std::string("read failed: ") + std::strerror(errno)};
    // The file shrank under us: the planned bytes no longer exist.
    if (n == 0) co_return error{errc::changed, "the file became shorter while it was being sent"};
    offset_ += static_cast<std::uint64_t>(n);
    remaining_ -= static_cast<std::uint64_t>(n);
    co_return chunk{static_cast<std::size_t>(n), std::nullopt};
  }

 private:
  std::shared_ptr<const unique_fd> fd_;
  std::uint64_t offset_;
  std::uint64_t remaining_;
  bool started_ = false;
};

using open_files = recent_files<std::shared_ptr<const unique_fd>>;

// Linux file systems hold names of at most NAME_MAX (255) bytes per path component.
error name_too_long(std::string_view part) {
  return error{errc::bad_key, "a path component of the key is " + std::to_string(part.size()) +
                                  " bytes long; the file system allows at most " + std::to_string(NAME_MAX)};
}

// Why a file cannot be put in place at a key, for the errors that are the client's to fix.
std::optional<error> placement_error(int err) {
  switch (err) {
    case EISDIR:
      return error{errc::conflict, "the key names a directory: a file cannot replace it"};
    case ENOTDIR:
      return error{errc::conflict, "a component of the key is a file, so it cannot hold other files"};
    case ENAMETOOLONG:
      return error{errc::bad_key, "the key is too long for the file system"};
    default:
      return std::nullopt;
  }
}

}  // namespace

local_storage::local_storage(const std::filesystem::path& root)
    : root_(std::filesystem::absolute(root)), id_(open_files::new_owner_id()) {
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
  auto owner = std::make_shared<const unique_fd>(*fd);
  struct stat st {};
  if (::fstat(owner->get(), &st) != 0) return error{errc::io_error, std::strerror(errno)};
  if (!S_ISREG(st.st_mode)) return error{errc::not_found, "no such object"};
  auto meta = meta_from_stat(st);
  meta.pinned = std::move(owner);  // open() reads this very file: one path lookup per request
  return meta;
}

boost::asio::awaitable<result<object_meta>> local_storage::stat(std::string key) {
  co_return stat_recent(key);
}

result<object_meta> local_storage::stat_recent(const std::string& key) {
  // A file opened for this key moments ago is used while fstat shows it still linked: a replacement by
  // rename or a deletion unlinks it; what fstat cannot see (a parent directory renamed, permissions) is
  // bounded by the table's two seconds.
  auto& table = open_files::of(id_);
  const auto now = open_files::clock::now();
  if (const auto* fd = table.find(key, now)) {
    struct stat st {};
    if (::fstat((*fd)->get(), &st) == 0 && st.st_nlink > 0 && S_ISREG(st.st_mode)) {
      auto meta = meta_from_stat(st);
      meta.pinned = *fd;
      return meta;
    }
    table.erase(key);
  }
  auto meta = stat_now(key);
  if (meta && meta->pinned) table.put(key, std::static_pointer_cast<const unique_fd>(meta->pinned), now);
  return meta;
}

boost::asio::awaitable<result<stat_and_reader>> local_storage::stat_and_open(std::string key,
                                                                             read_hint hint) {
  auto meta = stat_recent(key);
  if (!meta) co_return meta.err();
  auto owner = std::static_pointer_cast<const unique_fd>(meta->pinned);
  const auto size = meta->size;
  stat_and_reader out{std::move(*meta), nullptr, {}};
  if (!owner || size == 0 || (!hint.suffix && hint.first >= size) || hint.suffix == 0u) co_return out;
  // The metadata comes from an fstat of this descriptor just now: the reader needs no second look.
  out.range = hint.suffix ? http::byte_range{size - std::min(*hint.suffix, size), size - 1}
                          : http::byte_range{hint.first, std::min(hint.last.value_or(size - 1), size - 1)};
  out.reader = std::make_unique<file_reader>(std::move(owner), out.range);
  co_return out;
}

boost::asio::awaitable<result<std::unique_ptr<range_reader>>> local_storage::open(std::string key,
                                                                                  object_meta meta,
                                                                                  http::byte_range range) {
  // The file stat() opened when the metadata carries it (only local_storage pins metadata), else a fresh one.
  auto owner = std::static_pointer_cast<const unique_fd>(meta.pinned);
  if (!owner) {
    auto fd = open_beneath(key);
    if (!fd) co_return fd.err();
    owner = std::make_shared<const unique_fd>(*fd);
  }
  struct stat st {};
  if (::fstat(owner->get(), &st) != 0) co_return error{errc::io_error, std::strerror(errno)};
  if (!S_ISREG(st.st_mode)) co_return error{errc::not_found, "no such object"};
  // Written in place since it was examined (a replacement by rename keeps the pinned file intact).
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

result<std::pair<int, std::string>> local_storage::parent_of(const std::string& key, bool create) const {
  if (!http::decode_media_key(http::encode_key_for_url(key)))
    return error{errc::bad_key, "the key is not a valid relative path"};
  // Walk the directories one component at a time without following symlinks, so that a write can never
  // land outside the root (the same guarantee open_beneath gives reads).
  unique_fd dir(::openat(root_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0)
    return error{errc::io_error, std::string("cannot open the media directory: ") + std::strerror(errno)};
  // Every component checked before a directory is made, so that a refused key leaves nothing behind.
  for (std::string_view left = key; !left.empty();) {
    const auto slash = std::min(left.find('/'), left.size());
    if (slash > NAME_MAX) return name_too_long(left.substr(0, slash));
    left.remove_prefix(std::min(slash + 1, left.size()));
  }
  std::string_view rest = key;
  while (true) {
    const auto slash = rest.find('/');
    if (slash == std::string_view::npos) break;
    const std::string part(rest.substr(0, slash));
    rest.remove_prefix(slash + 1);
    if (part.empty() || part == "." || part == "..")
      return error{errc::bad_key, "the key is not a valid relative path"};
    if (create && ::mkdirat(dir.get(), part.c_str(), 0755) != 0 && errno != EEXIST)
      return error{errc::io_error, "cannot create directory " + part + ": " + std::strerror(errno)};
    unique_fd next(::openat(dir.get(), part.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (next.get() < 0) {
      if (errno == ENOENT) return error{errc::not_found, "no such object"};
      if (errno == ENOTDIR)
        return error{errc::conflict, "'" + part + "' in the key is a file, so it cannot hold other files"};
      if (errno == ELOOP) return error{errc::bad_key, "a component of the key is not a directory"};
      if (errno == ENAMETOOLONG) return name_too_long(part);
      return error{errc::io_error, "cannot open directory " + part + ": " + std::strerror(errno)};
    }
    dir = std::move(next);
  }
  if (rest.empty() || rest == "." || rest == "..") return error{errc::bad_key, "the key must name a file"};
  return std::pair<int, std::string>{dir.release(), std::string(rest)};  // the caller owns the descriptor
}

boost::asio::awaitable<result<object_meta>> local_storage::write(std::string key,
                                                                 std::string /*content_type*/,
                                                                 body_source source) {
  auto parent = parent_of(key, true);
  if (!parent) co_return parent.err();
  unique_fd dir(parent->first);
  const std::string name = parent->second;
  // Refused before a byte of the body is read: a directory in the way (rename(2) would fail with EISDIR).
  if (struct stat existing{};
      ::fstatat(dir.get(), name.c_str(), &existing, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(existing.st_mode))
    co_return *placement_error(EISDIR);
  // A hidden name beside the target: rename(2) within one directory is atomic, and listings skip it.
  std::random_device random;
  const std::string temp = upload_temp_name(
      name, static_cast<std::uint64_t>(random()) << 32 ^ static_cast<std::uint64_t>(random()));
  unique_fd file(
      ::openat(dir.get(), temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644));
  if (file.get() < 0)
    co_return error{errc::io_error, "cannot create a temporary file: " + std::string(std::strerror(errno))};

  // Removes the temporary file on every path that does not rename it into place.
  struct temp_guard {
    int dir_fd;
    const std::string& name;
    bool armed = true;
    ~temp_guard() {
      if (armed) ::unlinkat(dir_fd, name.c_str(), 0);
    }
  } guard{dir.get(), temp};

  std::vector<char> buf(256 * 1024);
  while (true) {
    auto n = co_await source(buf);
    if (!n) co_return n.err();
    if (*n == 0) break;
    std::size_t done = 0;
    while (done < *n) {
      const auto w = ::write(file.get(), buf.data() + done, *n - done);
      if (w < 0 && errno == EINTR) continue;
      if (w < 0)
        co_return error{errc::io_error, std::string("writing the file failed: ") + std::strerror(errno)};
      done += static_cast<std::size_t>(w);
    }
  }
  if (::fsync(file.get()) != 0)
    co_return error{errc::io_error, std::string("fsync failed: ") + std::strerror(errno)};
  struct stat st {};
  if (::fstat(file.get(), &st) != 0) co_return error{errc::io_error, std::strerror(errno)};
  if (::renameat(dir.get(), temp.c_str(), dir.get(), name.c_str()) != 0) {
    if (auto e = placement_error(errno)) co_return *e;  // a directory made meanwhile: the client's conflict
    co_return error{errc::io_error,
                    "cannot move the upload into place: " + std::string(std::strerror(errno))};
  }
  guard.armed = false;
  ::fsync(dir.get());  // the rename itself survives a crash
  co_return meta_from_stat(st);
}

boost::asio::awaitable<result<bool>> local_storage::remove(std::string key) {
  auto parent = parent_of(key, false);
  if (!parent) {
    if (parent.err().code == errc::not_found) co_return true;
    co_return parent.err();
  }
  unique_fd dir(parent->first);
  if (::unlinkat(dir.get(), parent->second.c_str(), 0) != 0 && errno != ENOENT) {
    if (errno == EISDIR || errno == EPERM) co_return error{errc::bad_key, "the key names a directory"};
    co_return error{errc::io_error, std::string("cannot remove: ") + std::strerror(errno)};
  }
  co_return true;
}

}  // namespace mediagate::storage
