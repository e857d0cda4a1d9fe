#pragma once
// The temporary files local_storage writes an upload into before renaming it into place, and the removal of
// those a crash left behind. The name is "." + the target's name (its first 100 bytes) + ".upload-" + 16
// hex digits: hidden from listings, and recognisable, so that start-up can prove a leftover is ours.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace mediagate::storage {

std::string upload_temp_name(std::string_view target_name, std::uint64_t random);
bool is_upload_temp_name(std::string_view name);

struct upload_cleanup {
  std::size_t removed = 0;
  std::size_t recent = 0;  // ours, but written to in the last `min_age`: perhaps an upload still running
};

// Removes, below `root`, the regular files named as upload temporaries, owned by this user and not modified
// for at least `min_age` before `now`: an upload in progress writes continuously, so an hour without a
// write means the process that wrote it is gone. Symbolic links are neither followed nor removed.
upload_cleanup remove_stale_upload_temps(const std::filesystem::path& root,
                                         std::chrono::system_clock::time_point now,
                                         std::chrono::seconds min_age);

}  // namespace mediagate::storage
