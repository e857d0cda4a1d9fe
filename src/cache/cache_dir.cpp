#include "cache/cache_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string_view>

#include "cache/slice_file.hpp"

namespace mediagate::cache {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kMarkerText =
    "mediagate slice cache\n"
    "mediagate created this directory and deletes files in it that it wrote (slices and their temporary "
    "files).\n";

// Compared by components, so that "/srv/media2" is not taken to lie inside "/srv/media".
fs::path normalised(const fs::path& p) {
  fs::path out;
  for (const auto& part : p.lexically_normal())
    if (!part.empty()) out /= part;
  return out;
}

bool is_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin();
  for (auto o = outer.begin(); o != outer.end(); ++o, ++i)
    if (i == inner.end() || *i != *o) return false;
  return true;
}

bool is_two_hex(const std::string& name) {
  return name.size() == 2 && name.find_first_not_of("0123456789abcdef") == std::string::npos;
}

// True when every entry of `dir` is one an older mediagate cache made: tmp/ and the slice subdirectories.
bool looks_like_older_cache(const fs::path& dir) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const auto name = e.path().filename().string();
    if (!e.is_directory(ec) || e.is_symlink(ec) || (name != "tmp" && !is_two_hex(name))) return false;
  }
  return !ec;
}

bool has_our_marker(const fs::path& marker) {
  std::ifstream in(marker, std::ios::binary);
  std::string text(kMarkerText.size(), '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  return in && text == kMarkerText;
}

void write_marker(const fs::path& marker) {
  const int fd = ::open(marker.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
  bool ok = fd >= 0 &&
            ::write(fd, kMarkerText.data(), kMarkerText.size()) == static_cast<ssize_t>(kMarkerText.size());
  const int saved = errno;
  if (fd >= 0) ok = ::close(fd) == 0 && ok;
  if (!ok) throw std::runtime_error("cannot write " + marker.string() + ": " + std::strerror(saved));
}

}  // namespace

std::optional<std::string> placement_problem(const fs::path& cache_dir,
                                             const std::optional<fs::path>& media_dir,
                                             const std::optional<fs::path>& catalog_file,
                                             std::string_view option) {
  const auto cache = normalised(cache_dir);
  const std::string name = std::string(option) + " " + cache.string();
  const std::string why =
      ": it needs a directory of its own, outside the media directory and the catalog's directory";
  if (media_dir) {
    const auto media = normalised(*media_dir);
    if (cache == media) return name + " is the media directory" + why;
    if (is_within(cache, media))
      return name + " lies inside the media directory " + media.string() +
             " (its files would be served and scanned as media)" + why;
    if (is_within(media, cache)) return name + " contains the media directory " + media.string() + why;
  }
  if (catalog_file) {
    const auto catalog_dir = normalised(*catalog_file).parent_path();
    if (cache == catalog_dir)
      return name + " is the directory of the catalog " + catalog_file->string() + why;
    if (is_within(catalog_dir, cache)) return name + " contains the catalog " + catalog_file->string() + why;
  }
  return std::nullopt;
}

fs::path resolve_for_comparison(const fs::path& p) {
  std::error_code ec;
  auto resolved = fs::weakly_canonical(fs::absolute(p), ec);
  return ec ? fs::absolute(p).lexically_normal() : resolved;
}

void take_ownership(const fs::path& dir) {
  std::error_code ec;
  const auto status = fs::symlink_status(dir, ec);
  if (!fs::exists(status)) {
    if (!fs::create_directories(dir, ec) && ec)
      throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  } else if (!fs::is_directory(fs::status(dir, ec))) {
    throw std::runtime_error(dir.string() + " is not a directory");
  }
  const auto marker = dir / kMarkerName;
  if (fs::exists(fs::symlink_status(marker, ec))) {
    if (!fs::is_regular_file(fs::symlink_status(marker, ec)) || !has_our_marker(marker))
      throw std::runtime_error(marker.string() + " was not written by mediagate: refusing to use " +
                               dir.string() + " as a cache directory");
  } else if (fs::is_empty(dir, ec) || looks_like_older_cache(dir)) {
    write_marker(marker);
  } else {
    throw std::runtime_error(
        dir.string() + " is not empty and is not a mediagate cache (it has no " + kMarkerName +
        " file): give an empty or new directory, so that the cache can never delete files "
        "it did not write");
  }
  fs::create_directories(dir / "tmp", ec);
  if (ec) throw std::runtime_error("cannot create " + (dir / "tmp").string() + ": " + ec.message());
}

std::size_t remove_leftover_temp_files(const fs::path& tmp_dir) {
  std::size_t removed = 0;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(tmp_dir, ec)) {
    if (!is_temp_file_name(e.path().filename().string()) || !e.is_regular_file(ec) || e.is_symlink(ec))
      continue;
    const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) continue;
    const bool ours = has_slice_magic(fd);
    ::close(fd);
    if (ours && fs::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

}  // namespace mediagate::cache
