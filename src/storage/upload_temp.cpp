#include "storage/upload_temp.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

namespace mediagate::storage {
namespace fs = std::filesystem;

namespace {

constexpr std::string_view kInfix = ".upload-";
constexpr std::size_t kHexDigits = 16;
constexpr std::size_t kMaxTargetBytes = 100;

std::chrono::system_clock::time_point mtime_of(const struct stat& st) {
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::seconds(st.st_mtim.tv_sec) + std::chrono::nanoseconds(st.st_mtim.tv_nsec)));
}

}  // namespace

std::string upload_temp_name(std::string_view target_name, std::uint64_t random) {
  char suffix[kHexDigits + 1];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random));
  return "." + std::string(target_name.substr(0, kMaxTargetBytes)) + std::string(kInfix) + suffix;
}

bool is_upload_temp_name(std::string_view name) {
  const auto fixed = 1 + kInfix.size() + kHexDigits;
  if (name.size() <= fixed || name.size() > fixed + kMaxTargetBytes || name.front() != '.') return false;
  const auto hex = name.substr(name.size() - kHexDigits);
  return name.substr(name.size() - kHexDigits - kInfix.size(), kInfix.size()) == kInfix &&
         hex.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

upload_cleanup remove_stale_upload_temps(const fs::path& root, std::chrono::system_clock::time_point now,
                                         std::chrono::seconds min_age) {
  upload_cleanup report;
  std::error_code ec;
  const auto uid = ::geteuid();
  for (auto it = fs::recursive_directory_iterator(root, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!is_upload_temp_name(it->path().filename().string())) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != uid) continue;
    if (now - mtime_of(st) < min_age) {
      ++report.recent;
      continue;
    }
    std::error_code removed;
    if (fs::remove(it->path(), removed)) ++report.removed;
  }
  return report;
}

}  // namespace mediagate::storage
