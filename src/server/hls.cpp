#include "server/hls.hpp"

#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <list>
#include <mutex>
#include <unordered_map>

#include "catalog/scan.hpp"
#include "common/crypto.hpp"
#include "http/media_key.hpp"
#include "mp4/box.hpp"
#include "mp4/fragment.hpp"
#include "mp4/index_file.hpp"
#include "mp4/locate.hpp"
#include "mp4/movie.hpp"
#include "mp4/playlist.hpp"
#include "mp4/segments.hpp"
#include "mp4/webvtt.hpp"
#include "server/access.hpp"
#include "server/media.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {

// A parsed MP4 index and its segments, per object version and segment length.
struct hls_package {
  mp4::movie movie;
  mp4::segment_index index;
  std::uint64_t bytes = 0;  // roughly what it holds in memory
};

// Values by key, least recently used first out past a limit in bytes (each value's `bytes`); shared by the
// event loops (a mutex held only to look up or insert: values are made outside it, so two loops may make the
// same one once each).
template <class V>
class lru_cache {
 public:
  std::shared_ptr<const V> get(const std::string& key) {
    std::lock_guard lock(mutex_);
    auto it = by_key_.find(key);
    if (it == by_key_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  void put(const std::string& key, std::shared_ptr<const V> v, std::uint64_t limit) {
    std::lock_guard lock(mutex_);
    if (by_key_.count(key)) return;
    bytes_ += v->bytes + key.size();
    lru_.emplace_front(key, std::move(v));
    by_key_[key] = lru_.begin();
    while (bytes_ > limit && lru_.size() > 1) {
      bytes_ -= lru_.back().second->bytes + lru_.back().first.size();
      by_key_.erase(lru_.back().first);
      lru_.pop_back();
    }
  }

 private:
  using entry = std::pair<std::string, std::shared_ptr<const V>>;
  std::mutex mutex_;
  std::list<entry> lru_;  // most recent first
  std::unordered_map<std::string, typename std::list<entry>::iterator> by_key_;
  std::uint64_t bytes_ = 0;
};

// A generated resource as made for one object version: served again as it is (a media segment's moof and
// sample runs, a WebVTT file read from storage, a playlist), so that a warm request builds nothing.
struct hls_resource {
  std::shared_ptr<const spliced_layout> layout;
  std::string etag;
  std::string content_type;
  std::uint64_t bytes = 0;  // roughly what it holds in memory
};

// Parsed indexes, and the resources made from them.
struct hls_cache {
  lru_cache<hls_package> packages;
  lru_cache<hls_resource> resources;
};

std::shared_ptr<hls_cache> make_hls_cache() { return std::make_shared<hls_cache>(); }

namespace {

namespace net = boost::asio;

// Bump when the bytes made for the same source change (it is part of every ETag).
constexpr std::string_view kFormatVersion = "mediagate-cmaf-2";
constexpr std::uint64_t kFirstRead = 64 * 1024;
// Memory for the resources made (all loops): a 6 s segment's moof and runs take ~10 KB.
constexpr std::uint64_t kResourceCacheBytes = 32ull << 20;

template <class T>
std::optional<T> number(std::string_view s) {
  T v{};
  if (s.empty() || s.size() > 12) return std::nullopt;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

net::awaitable<result<std::string>> read_bytes(storage::storage& store, const std::string& key,
                                               const storage::object_meta& meta, std::uint64_t first,
                                               std::uint64_t count) {
  std::string out(static_cast<std::size_t>(count), '\0');
  auto reader = co_await store.open(key, meta, http::byte_range{first, first + count - 1});
  if (!reader) co_return reader.err();
  std::size_t got = 0;
  while (got < out.size()) {
    auto r = co_await (*reader)->read_some(std::span<char>(out.data() + got, out.size() - got));
    if (!r) co_return r.err();
    if (*r == 0) co_return error{errc::upstream_unavailable, "the object ended early: " + key};
    got += *r;
  }
  co_return out;
}

// Parses a moov box (header included) and cuts the segments.
result<std::shared_ptr<const hls_package>> make_package(const std::string& moov,
                                                        const mp4::moov_location& loc,
                                                        std::uint64_t object_size, std::uint32_t target_ms) {
  auto movie =
      mp4::parse_movie(mp4::as_bytes(moov).subspan(static_cast<std::size_t>(loc.header)), object_size);
  if (!movie) return movie.err();
  auto p = std::make_shared<hls_package>();
  p->movie = std::move(*movie);
  p->index = mp4::cut_segments(p->movie, target_ms);
  p->bytes = moov.size();
  for (const auto& t : p->movie.tracks) p->bytes += t.samples.size() * sizeof(mp4::sample);
  for (const auto& t : p->movie.subtitles) p->bytes += t.samples.size() * sizeof(mp4::sample);
  for (const auto& c : p->index.tracks) p->bytes += c.first.size() * 12;
  return std::shared_ptr<const hls_package>(std::move(p));
}

// The on-disk index cache (--hls-index-dir, see mp4/index_file.hpp): one file per object version, named by a
// hash of key and ETag, written whole under a temporary name and renamed into place; the least recently used
// removed past hls_index_dir_bytes. Files are small (a moov: kilobytes to a few MB), read or written once per
// object version and process, on the event loop: one local file access instead of storage round trips.
namespace fs = std::filesystem;

fs::path index_file_path(const services& svc, const std::string& key, const storage::object_meta& meta) {
  return fs::path(svc.config.hls_index_dir) / (sha256_hex(key + '\n' + meta.etag) + ".moov");
}

std::optional<mp4::index_file> load_index_file(services& svc, const std::string& key,
                                               const storage::object_meta& meta) {
  const auto path = index_file_path(svc, key, meta);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (ec || size > svc.config.hls_max_moov_bytes + 64 * 1024) return std::nullopt;
  std::ifstream in(path, std::ios::binary);
  std::string data(static_cast<std::size_t>(size), '\0');
  if (!in.read(data.data(), static_cast<std::streamsize>(data.size()))) return std::nullopt;
  auto f = mp4::decode_index_file(data, key, meta.etag);
  if (!f || f->object_size != meta.size) {
    svc.log.warn("HLS index file {} of {} is not usable: rebuilt from storage", path.string(), key);
    fs::remove(path, ec);
    return std::nullopt;
  }
  fs::last_write_time(path, fs::file_time_type::clock::now(), ec);  // recently used: removed last
  return f;
}

void store_index_file(services& svc, const std::string& key, const storage::object_meta& meta,
                      const mp4::index_file& f) {
  const fs::path dir(svc.config.hls_index_dir);
  std::error_code ec;
  fs::create_directories(dir, ec);
  const auto path = index_file_path(svc, key, meta);
  const auto data = mp4::encode_index_file(key, meta.etag, f);
  static std::atomic<std::uint64_t> serial{0};
  auto tmp = path;
  tmp += ".tmp" + std::to_string(::getpid()) + "-" + std::to_string(serial++);
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    out.close();
    if (!out) {
      svc.log.warn("cannot write the HLS index file {}", tmp.string());
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, path, ec);
  if (ec) {
    svc.log.warn("cannot rename {} into place: {}", tmp.string(), ec.message());
    fs::remove(tmp, ec);
    return;
  }
  // Bounded: the least recently used files go first.
  struct entry {
    fs::file_time_type used;
    std::uint64_t size;
    fs::path path;
  };
  std::vector<entry> files;
  std::uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    if (e.path().extension() != ".moov" || !e.is_regular_file(ec)) continue;
    const auto size = e.file_size(ec);
    files.push_back({e.last_write_time(ec), size, e.path()});
    total += size;
  }
  if (total <= svc.config.hls_index_dir_bytes) return;
  std::sort(files.begin(), files.end(), [](const entry& a, const entry& b) { return a.used < b.used; });
  for (const auto& e : files) {
    if (total <= svc.config.hls_index_dir_bytes) break;
    if (e.path != path && fs::remove(e.path, ec)) total -= e.size;
  }
}

// Finds moov with ranged reads of box headers, reads it, parses it and cuts the segments; or takes it from
// the on-disk index cache.
net::awaitable<result<std::shared_ptr<const hls_package>>> load_package(services& svc, const std::string& key,
                                                                        const storage::object_meta& meta,
                                                                        std::uint32_t target_ms) {
  if (!svc.config.hls_index_dir.empty()) {
    if (auto f = load_index_file(svc, key, meta)) {
      auto package = make_package(f->moov, f->location, meta.size, target_ms);
      if (package) co_return package;
    }
  }
  if (meta.size < 8)
    co_return mp4::unsupported("not an MP4 or MOV file (" + std::to_string(meta.size) + " bytes)");
  std::uint64_t at = 0;
  auto data = co_await read_bytes(svc.store, key, meta, 0, std::min(meta.size, kFirstRead));
  if (!data) co_return data.err();
  for (int reads = 0;; ++reads) {
    auto step = mp4::locate_moov(mp4::as_bytes(*data), at, meta.size, svc.config.hls_max_moov_bytes);
    if (!step) co_return step.err();
    if (step->found) {
      const auto& loc = *step->found;
      std::string moov;
      if (loc.offset >= at && loc.offset + loc.size <= at + data->size()) {
        moov = data->substr(static_cast<std::size_t>(loc.offset - at), static_cast<std::size_t>(loc.size));
      } else {
        auto whole = co_await read_bytes(svc.store, key, meta, loc.offset, loc.size);
        if (!whole) co_return whole.err();
        moov = std::move(*whole);
      }
      auto package = make_package(moov, loc, meta.size, target_ms);
      if (package && !svc.config.hls_index_dir.empty())
        store_index_file(svc, key, meta, mp4::index_file{meta.size, loc, std::move(moov)});
      co_return package;
    }
    if (reads >= 16) co_return mp4::unprocessable("moov not found after 16 reads of box headers");
    at = step->next_read;
    auto next = co_await read_bytes(svc.store, key, meta, at, std::min(meta.size - at, kFirstRead));
    if (!next) co_return next.err();
    data = std::move(next);
  }
}

// The first bytes (up to kMaxTextSampleRead) of samples [span.first, span.end) of a subtitle track: one
// ranged read per group of samples that lie close together in the file (cues are tiny and interleaved with
// the video, so a group is usually one sample).
net::awaitable<result<std::vector<std::string>>> read_text_samples(services& svc, const std::string& key,
                                                                   const storage::object_meta& meta,
                                                                   const mp4::track& t, mp4::text_span span) {
  constexpr std::uint64_t kGap = 64 * 1024, kGroup = 1 << 20;
  std::vector<std::string> out(span.end - span.first);
  std::uint32_t i = span.first;
  while (i < span.end) {
    if (t.samples[i].size == 0) {
      ++i;
      continue;
    }
    const std::uint64_t from = t.samples[i].offset;
    std::uint64_t to = from + std::min(t.samples[i].size, mp4::kMaxTextSampleRead);
    std::uint32_t j = i + 1;
    for (; j < span.end; ++j) {
      const auto& s = t.samples[j];
      if (s.size == 0) continue;
      const auto end = s.offset + std::min(s.size, mp4::kMaxTextSampleRead);
      if (s.offset < from || s.offset > to + kGap || end - from > kGroup) break;
      to = std::max(to, end);
    }
    auto data = co_await read_bytes(svc.store, key, meta, from, to - from);
    if (!data) co_return data.err();
    for (auto k = i; k < j; ++k) {
      const auto& s = t.samples[k];
      if (s.size == 0) continue;
      out[k - span.first] =
          data->substr(static_cast<std::size_t>(s.offset - from), std::min(s.size, mp4::kMaxTextSampleRead));
    }
    i = j;
  }
  co_return out;
}

std::string resource_etag(const storage::object_meta& meta, std::uint32_t target_ms,
                          std::string_view resource) {
  const auto digest = sha256(meta.etag + '\n' + std::to_string(target_ms) + '\n' + std::string(resource) +
                             '\n' + std::string(kFormatVersion));
  return "\"" + hex(std::span<const std::uint8_t>(digest.data(), 16)) + "\"";
}

}  // namespace

std::optional<hls_target> parse_hls_path(std::string_view rest) {
  hls_target t;
  const auto last_slash = rest.rfind('/');
  if (last_slash == std::string_view::npos || last_slash == 0) return std::nullopt;
  const auto last = rest.substr(last_slash + 1);
  auto before = rest.substr(0, last_slash);
  if (last == "master.m3u8") {
    t.what = hls_target::kind::master;
  } else if (last == "manifest.mpd") {
    t.what = hls_target::kind::mpd;
  } else if (last.ends_with(".m3u8")) {
    auto id = number<std::uint32_t>(last.substr(0, last.size() - 5));
    if (!id) return std::nullopt;
    t.what = hls_target::kind::playlist;
    t.track = *id;
  } else if (last == "init.mp4" || last == "whole.vtt" ||
             (last.starts_with("seg-") && (last.ends_with(".m4s") || last.ends_with(".vtt")))) {
    if (last == "init.mp4") {
      t.what = hls_target::kind::init;
    } else if (last == "whole.vtt") {
      t.what = hls_target::kind::vtt_whole;
    } else {
      auto n = number<std::uint64_t>(last.substr(4, last.size() - 8));
      if (!n) return std::nullopt;
      t.what = last.ends_with(".vtt") ? hls_target::kind::vtt_segment : hls_target::kind::segment;
      t.segment = *n;
    }
    const auto track_slash = before.rfind('/');
    if (track_slash == std::string_view::npos || track_slash == 0) return std::nullopt;
    auto id = number<std::uint32_t>(before.substr(track_slash + 1));
    if (!id) return std::nullopt;
    t.track = *id;
    before = before.substr(0, track_slash);
  } else {
    return std::nullopt;
  }
  t.key = before;
  t.resource = rest.substr(before.size() + 1);
  return t;
}

net::awaitable<response> serve_hls(const request& req, services& svc, std::string_view rest) {
  auto target = parse_hls_path(rest);
  if (!target)
    co_return text_response(404,
                            "not found: HLS resources are master.m3u8, <track>.m3u8, "
                            "<track>/init.mp4, <track>/seg-<n>.m4s and <track>/seg-<n>.vtt after the key");
  auto key = http::decode_media_key(target->key);
  if (!key) co_return text_response(400, "bad request: the media key is not a valid path");
  if (catalog::has_hidden_component(*key)) co_return text_response(404, "not found");
  const bool link_needed = needs_link(svc, *key);
  if (link_needed) {
    if (auto denied = check_link(req, svc, *key)) co_return std::move(*denied);
  }
  co_return co_await serve_hls_key(req, svc, std::move(*key), target->resource, link_needed);
}

net::awaitable<response> serve_hls_key(const request& req, services& svc, std::string key,
                                       std::string_view resource, bool private_link) {
  if (!req.read_only()) {
    auto r = text_response(405, "method not allowed: HLS supports GET and HEAD", {{"Allow", "GET, HEAD"}});
    r.close = req.has_body();
    co_return r;
  }
  // parse_hls_path wants something before the resource: any one component stands for the key here.
  const std::string path = "k/" + std::string(resource);  // outlives `target`, which points into it
  const auto target = parse_hls_path(path);
  if (!target) co_return text_response(404, "not found");
  auto meta = co_await svc.store.stat(key);
  if (!meta) co_return storage_error_response(req, svc, key, meta.err());
  const auto target_ms = static_cast<std::uint32_t>(svc.config.hls_segment_seconds * 1000 + 0.5);
  if (!svc.hls) svc.hls = std::make_shared<hls_cache>();
  const auto cache_key = key + '\n' + meta->etag + '\n' + std::to_string(target_ms);
  const auto resource_key = cache_key + '\n' + std::string(resource);
  if (auto made = svc.hls->resources.get(resource_key)) {
    generated_resource res{key, std::move(*meta), made->layout, made->etag, made->content_type};
    co_return co_await serve_generated(req, svc, std::move(res), private_link);
  }
  auto package = svc.hls->packages.get(cache_key);
  if (!package) {
    auto loaded = co_await load_package(svc, key, *meta, target_ms);
    if (!loaded) {
      const auto& e = loaded.err();
      if (e.code == errc::unsupported_media || e.code == errc::unprocessable) {
        svc.log.info("{}: HLS of {}: {}", req.peer, key, e.message);
        co_return text_response(e.code == errc::unsupported_media ? 415 : 422, e.message,
                                {{"Cache-Control", "no-store"}});
      }
      co_return storage_error_response(req, svc, key, e);
    }
    package = *loaded;
    svc.hls->packages.put(cache_key, package, svc.config.hls_index_cache_bytes);
  }
  const auto& movie = package->movie;
  std::size_t ti = movie.tracks.size();
  for (std::size_t i = 0; i < movie.tracks.size(); ++i)
    if (movie.tracks[i].id == target->track) ti = i;
  auto layout = std::make_shared<spliced_layout>();
  std::string type;
  std::size_t si = movie.subtitles.size();  // a subtitle track: its playlist and WebVTT files
  for (std::size_t i = 0; i < movie.subtitles.size(); ++i)
    if (movie.subtitles[i].id == target->track) si = i;
  if (si < movie.subtitles.size()) {
    const auto& t = movie.subtitles[si];
    if (target->what == hls_target::kind::playlist) {
      layout->head = mp4::subtitle_playlist(movie, package->index, si);
      type = "application/vnd.apple.mpegurl";
    } else if (target->what == hls_target::kind::vtt_segment || target->what == hls_target::kind::vtt_whole) {
      mp4::text_span span = mp4::whole_text(t);
      const bool segment = target->what == hls_target::kind::vtt_segment;
      if (segment) {
        const auto& cuts = package->index.subtitles[si];
        if (target->segment >= cuts.segments()) co_return text_response(404, "no such segment");
        span = mp4::text_segment(t, cuts, movie.tracks[package->index.lead],
                                 package->index.tracks[package->index.lead],
                                 static_cast<std::size_t>(target->segment));
      }
      auto samples = co_await read_text_samples(svc, key, *meta, t, span);
      if (!samples) co_return storage_error_response(req, svc, key, samples.err());
      layout->head = mp4::webvtt_file(t, span, *samples, segment);
      type = "text/vtt; charset=utf-8";
    } else {
      co_return text_response(404, "no such resource of a subtitle track");
    }
  } else if (target->what == hls_target::kind::vtt_segment || target->what == hls_target::kind::vtt_whole) {
    co_return text_response(404, "no such subtitle track");
  }
  // A subtitle track's resources are made above; the other tracks' (and the manifests) here.
  if (type.empty()) switch (target->what) {
      case hls_target::kind::vtt_segment:
      case hls_target::kind::vtt_whole:
        co_return text_response(404, "no such subtitle track");
      case hls_target::kind::master:
        layout->head = mp4::master_playlist(movie, package->index);
        type = "application/vnd.apple.mpegurl";
        break;
      case hls_target::kind::mpd:
        layout->head = mp4::dash_manifest(movie, package->index);
        type = "application/dash+xml";
        break;
      case hls_target::kind::playlist:
        if (ti == movie.tracks.size()) co_return text_response(404, "no such track");
        layout->head = mp4::media_playlist(movie, package->index, ti);
        type = "application/vnd.apple.mpegurl";
        break;
      case hls_target::kind::init:
      case hls_target::kind::segment: {
        if (ti == movie.tracks.size()) co_return text_response(404, "no such track");
        const auto& t = movie.tracks[ti];
        type = t.kind == mp4::track_kind::video ? "video/mp4" : "audio/mp4";
        if (target->what == hls_target::kind::init) {
          layout->head = mp4::init_segment(movie, t);
          break;
        }
        const auto& cuts = package->index.tracks[ti];
        if (target->segment >= cuts.segments()) co_return text_response(404, "no such segment");
        auto seg = mp4::make_media_segment(t, cuts, static_cast<std::size_t>(target->segment));
        layout->head = std::move(seg.head);
        for (const auto& r : seg.runs) layout->runs.push_back({r.offset, r.length});
        break;
      }
    }
  const auto etag = resource_etag(*meta, target_ms, resource);
  if (!layout->runs.empty()) layout->payload_name = "hls " + etag;  // a segment's samples, cached as such
  auto made = std::make_shared<hls_resource>();
  made->bytes = sizeof(hls_resource) + layout->head.size() +
                layout->runs.size() * sizeof(spliced_layout::run) + layout->payload_name.size() +
                etag.size() + type.size();
  made->layout = layout;
  made->etag = etag;
  made->content_type = type;
  svc.hls->resources.put(resource_key, std::move(made), kResourceCacheBytes);
  generated_resource res{key, std::move(*meta), std::move(layout), etag, std::move(type)};
  co_return co_await serve_generated(req, svc, std::move(res), private_link);
}

}  // namespace mediagate::server
