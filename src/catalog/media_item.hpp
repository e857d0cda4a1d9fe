#pragma once
// One record of the catalog: a stored object with what the library knows about it.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mediagate::catalog {

struct media_item {
  std::string id;   // short, URL-safe, random (base62): the public name of the item
  std::string key;  // storage key of the media object
  std::string title;
  std::string content_type;  // e.g. video/mp4
  std::uint64_t size = 0;
  std::string etag;                // the storage's ETag of the version described here
  std::int64_t created = 0;        // seconds since the epoch
  bool missing = false;            // the object vanished from storage (scan)
  std::optional<double> duration;  // seconds, for audio and video
  std::optional<int> width, height;
  std::string poster_key;   // storage key of the poster image; empty when there is none
  std::string probed_etag;  // the ETag whose bytes were probed; differs from `etag` while a probe is due
  std::string
      probe_error;  // why the probe of `probed_etag` failed (not media we accept, a deadline); or empty

  // "public" (opens without a link), "private" (needs a signed link) or "inherit" (the prefix rules decide).
  std::string visibility = "inherit";

  // "video", "audio", "image" or "other", from the content type.
  std::string_view kind() const;
  bool needs_probe() const { return !missing && probed_etag != etag; }
};

std::string_view kind_of_type(std::string_view content_type);

bool is_visibility(std::string_view v);  // public, private or inherit

// A title from a storage key: its last path component without the extension.
std::string title_from_key(std::string_view key);

}  // namespace mediagate::catalog
