#pragma once
// Where the slice cache may live, and what in it the cache may delete. The cache deletes only files it can
// prove it wrote: inside a directory that carries its marker file, under its own names, starting with its
// own magic. A cache directory that holds anything else is refused, as is one that overlaps the media or
// the catalog (issue 11: `--cache-dir` equal to the media directory once cost a user media/tmp/).
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace mediagate::cache {

// The file that marks a directory as a slice cache that mediagate created.
inline constexpr const char* kMarkerName = ".mediagate-cache";

// Why `cache_dir` may not hold the cache, or nullopt when it may. `media_dir` is the local storage's root
// (nullopt for S3), `catalog_file` the catalog database (nullopt when there is none). The cache may not be,
// contain or lie inside the media directory (slices would be served and scanned, media files would be
// walked as slices); it may not be or contain the catalog's directory (a sibling beside the catalog, such
// as ./.cache next to ./mediagate.db, is fine). Pure and lexical: the caller passes absolute paths with
// symbolic links resolved (see resolve_for_comparison). `option` names the directory in the message (the
// same rule holds for --hls-index-dir, whose index files must not be served or scanned as media either).
std::optional<std::string> placement_problem(const std::filesystem::path& cache_dir,
                                             const std::optional<std::filesystem::path>& media_dir,
                                             const std::optional<std::filesystem::path>& catalog_file,
                                             std::string_view option = "--cache-dir");

// An absolute, normalised path with the symbolic links of its existing part resolved.
std::filesystem::path resolve_for_comparison(const std::filesystem::path& p);

// Makes `dir` a cache directory this process may write and clean: creates it (and tmp/) with the marker
// when it is missing or empty, adopts a cache directory of an older version (nothing but tmp/ and
// two-hex-digit directories), accepts one that carries the marker. Throws std::runtime_error saying why
// otherwise, having deleted nothing.
void take_ownership(const std::filesystem::path& dir);

// Removes the temporary slice files a crash left in `tmp_dir` (only files named and marked as ours); returns
// how many. Anything else there is left alone.
std::size_t remove_leftover_temp_files(const std::filesystem::path& tmp_dir);

}  // namespace mediagate::cache
