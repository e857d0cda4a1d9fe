#pragma once
// HLS (and, over the same CMAF segments, DASH) made on the fly from a stored MP4 (issue 14):
//   /hls/<key>/master.m3u8, /hls/<key>/<track>.m3u8, /hls/<key>/<track>/init.mp4,
//   /hls/<key>/<track>/seg-<n>.m4s, and for a subtitle track /hls/<key>/<track>/seg-<n>.vtt (WebVTT per
//   segment) and /hls/<key>/<track>/whole.vtt (all of its cues, for DASH)
// and the same under /v/{id}/hls/; DASH's /dash/<key>/manifest.mpd names the same init and media segments
// (/dash/<key>/<track>/init.mp4, ...: one set of CMAF segments, two manifests). The MP4's index (moov) is
// found and read with ranged reads, parsed once per object version and kept in memory; a segment is its moof
// followed by ranged reads of exactly its samples.
#include <boost/asio/awaitable.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "server/request.hpp"
#include "server/response.hpp"
#include "server/services.hpp"

namespace mediagate::server {

struct hls_target {
  enum class kind { master, playlist, init, segment, mpd, vtt_segment, vtt_whole };
  std::string_view key;  // still URL-encoded
  kind what = kind::master;
  std::uint32_t track = 0;
  std::uint64_t segment = 0;
  std::string_view resource;  // what follows the key, e.g. "1/seg-3.m4s"
};

// The cache of parsed MP4 indexes (thread-safe), shared by every event loop's services.
std::shared_ptr<hls_cache> make_hls_cache();

// Splits what follows /hls/ into the key and the resource, read from the right; nullopt when it names none.
std::optional<hls_target> parse_hls_path(std::string_view rest);

// /hls/<rest> and /dash/<rest>: the key decoded and checked as /media/ does (hidden components, signed
// links).
boost::asio::awaitable<response> serve_hls(const request& req, services& svc, std::string_view rest);

// The resource `resource` (what follows the key) of the object at `key` (decoded and allowed).
boost::asio::awaitable<response> serve_hls_key(const request& req, services& svc, std::string key,
                                               std::string_view resource, bool private_link);

}  // namespace mediagate::server
