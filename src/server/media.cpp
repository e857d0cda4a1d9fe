#include "server/media.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>

#include "catalog/scan.hpp"
#include "http/content_type.hpp"
#include "http/http_date.hpp"
#include "http/media_key.hpp"
#include "http/token.hpp"
#include "server/access.hpp"
#include "server/error_status.hpp"
#include "storage/sniff.hpp"
#include "storage/storage.hpp"

namespace mediagate::server {
namespace {

namespace net = boost::asio;

http::method plan_method(method m) {
  if (m == method::get) return http::method::get;
  if (m == method::head) return http::method::head;
  return http::method::other;
}

// The type known without reading the object: the stored type when it says something, else the extension's.
std::optional<std::string_view> known_content_type(const std::string& key, const storage::object_meta& meta) {
  if (!http::is_generic_type(meta.content_type)) return meta.content_type;
  if (auto by_ext = http::content_type_for_key(key); !by_ext.empty()) return by_ext;
  if (meta.size == 0) return "application/octet-stream";
  return std::nullopt;
}

// Otherwise: what the first bytes look like.
net::awaitable<result<std::string>> sniff_content_type(services& svc, const std::string& key,
                                                       const storage::object_meta& meta) {
  const auto cache_key = key + '\n' + meta.etag;  // an ETag names one version: its type never changes
  if (auto it = svc.sniffed_types.find(cache_key); it != svc.sniffed_types.end()) co_return it->second;
  const auto n = std::min<std::uint64_t>(meta.size, storage::kSniffBytes);
  auto reader = co_await svc.store.open(key, meta, http::byte_range{0, n - 1});
  if (!reader) co_return reader.err();
  std::string head(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    auto r = co_await (*reader)->read_some(std::span<char>(head.data() + got, head.size() - got));
    if (!r) co_return r.err();
    if (*r == 0) break;
    got += *r;
  }
  auto type = storage::sniff_content_type({head.data(), got});
  if (svc.sniffed_types.size() >= 4096) svc.sniffed_types.clear();
  svc.sniffed_types.emplace(cache_key, type);
  co_return type;
}

std::string make_boundary(services& svc) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "mediagate-%016llx", static_cast<unsigned long long>(svc.random()));
  return buf;
}

// Whether a browser may render the type inline from our origin: media and plain images only. Anything else
// (HTML, SVG, scripts, styles, wasm, XML) is a download in a sandbox, so that an uploaded file can never run
// as our page.
bool renders_inline(std::string_view type) {
  type = http::trim_ows(type.substr(0, type.find(';')));
  const auto starts = [type](std::string_view prefix) {
    return type.size() >= prefix.size() && http::iequals(type.substr(0, prefix.size()), prefix);
  };
  if (starts("video/") || starts("audio/")) return true;
  if (starts("image/")) return !http::iequals(type, "image/svg+xml");
  return http::iequals(type, "text/vtt") || http::iequals(type, "application/vnd.apple.mpegurl") ||
         http::iequals(type, "application/dash+xml");
}

// If-Unmodified-Since sent more than once is invalid; evaluated conservatively, with its earliest valid date
// (a repeated validator must never make a request more permissive than one of its lines would).
std::optional<std::string_view> earliest_date(const request& req, std::string_view name) {
  std::optional<std::string_view> best;
  std::int64_t best_time = 0;
  for (const auto& f : req.fields) {
    if (!http::iequals(f.name, name)) continue;
    auto t = http::parse_http_date(f.value);
    if (!t) continue;
    if (!best || *t < best_time) {
      best = f.value;
      best_time = *t;
    }
  }
  return best;
}

// If-Match and If-None-Match are lists: repeated lines joined into one (owned here, viewed by the plan).
struct list_validators {
  std::optional<std::string> if_match, if_none_match;
};

http::request_view request_view_of(const request& req, const list_validators& lists) {
  http::request_view view;
  if (lists.if_match) view.conditions.if_match = *lists.if_match;
  if (lists.if_none_match) view.conditions.if_none_match = *lists.if_none_match;
  view.m = plan_method(req.verb);
  bool range_repeated = false, if_range_repeated = false;
  view.range = req.single_field("Range", &range_repeated);
  if (range_repeated) view.range.reset();  // Range is not a list: two lines make it invalid, and ignored
  bool ius_repeated = false, ims_repeated = false;
  view.conditions.if_unmodified_since = req.single_field("If-Unmodified-Since", &ius_repeated);
  if (ius_repeated) view.conditions.if_unmodified_since = earliest_date(req, "If-Unmodified-Since");
  view.conditions.if_modified_since = req.single_field("If-Modified-Since", &ims_repeated);
  if (ims_repeated) view.conditions.if_modified_since.reset();  // ignored: the full answer is always safe
  view.conditions.if_range = req.single_field("If-Range", &if_range_repeated);
  if (if_range_repeated) view.range.reset();  // an If-Range we cannot evaluate vetoes the range
  if (view.range && view.m == http::method::get) view.single_range = http::single_range_spec(*view.range);
  return view;
}

// The headers every media response gets beside the plan's.
void add_media_headers(http::header_list& h, std::string_view type) {
  h.emplace_back("X-Content-Type-Options", "nosniff");
  if (!renders_inline(type)) {
    h.emplace_back("Content-Security-Policy", "sandbox");
    h.emplace_back("Content-Disposition", "attachment");
  }
}

// What to read together with the metadata, when the answer will most likely carry a body: GET with at most
// one plain range (bytes=N-, bytes=N-M; none: bytes=0-). Not for revalidations (If-None-Match or
// If-Modified-Since usually end in 304, for which the metadata alone is one round trip already).
std::optional<storage::read_hint> read_hint_for(const request& req, const http::request_view& view) {
  if (req.verb != method::get) return std::nullopt;
  if (view.conditions.if_none_match || view.conditions.if_modified_since) return std::nullopt;
  if (!view.range) return storage::read_hint{0, std::nullopt, true};
  if (!view.single_range) return std::nullopt;
  return storage::read_hint{view.single_range->first, view.single_range->last};
}

// A response known at once, as an awaitable.
net::awaitable<response> ready_response(response r) { co_return r; }

// A reader that needs no I/O to open, as a range_opener returns it.
net::awaitable<result<std::unique_ptr<storage::range_reader>>> ready_reader(
    std::unique_ptr<storage::range_reader> reader) {
  co_return std::move(reader);
}

}  // namespace

response storage_error_response(const request& req, services& svc, std::string_view what, const error& err) {
  const unsigned status = status_for(err.code);
  if (status >= 500) svc.log.warn("{}: {}: {} ({})", req.peer, what, err.message, status);
  return text_response(status, err.message);
}

// Not a coroutine: it answers at once or hands over to serve_media_key's (one coroutine frame per request
// fewer; request objects outlive the awaitable, which the connection awaits at once).
net::awaitable<response> serve_media(const request& req, services& svc, std::string_view encoded_key) {
  if (!req.read_only()) return serve_media_key(req, svc, std::string());
  auto key = http::decode_media_key(encoded_key);
  if (!key) return ready_response(text_response(400, "bad request: the media key is not a valid path"));
  // Hidden components are the server's own (posters, upload temporaries) and the user's dotfiles.
  if (catalog::has_hidden_component(*key)) return ready_response(text_response(404, "not found"));
  const bool link_needed = needs_link(svc, *key);
  if (link_needed) {
    if (auto denied = check_link(req, svc, *key)) return ready_response(std::move(*denied));
  }
  return serve_media_key(req, svc, std::move(*key), link_needed);
}

net::awaitable<response> serve_media_key(const request& req, services& svc, std::string key,
                                         bool private_link) {
  if (!req.read_only()) {
    auto r = text_response(405, "method not allowed: media supports GET and HEAD", {{"Allow", "GET, HEAD"}});
    r.close = req.has_body();  // a body we will not read
    co_return r;
  }
  const list_validators lists{req.list_field("If-Match"), req.list_field("If-None-Match")};
  const auto view = request_view_of(req, lists);
  // Only a request with several ranges can get a multipart answer; the others skip making a boundary.
  const bool multi = view.range && view.range->find(',') != std::string_view::npos;
  const auto boundary = multi ? make_boundary(svc) : std::string();
  const auto hint = read_hint_for(req, view);
  for (int attempt = 0;; ++attempt) {
    // One round trip to a remote store for a cold GET: the metadata and (speculatively) the hinted range.
    storage::stat_and_reader found;
    if (hint) {
      auto r = co_await svc.store.stat_and_open(key, *hint);
      if (!r) co_return storage_error_response(req, svc, key, r.err());
      found = std::move(*r);
    } else {
      auto r = co_await svc.store.stat(key);
      if (!r) co_return storage_error_response(req, svc, key, r.err());
      found.meta = std::move(*r);
    }
    const auto* meta = &found.meta;
    std::string_view type;
    std::string sniffed;
    if (auto known = known_content_type(key, *meta)) {
      type = *known;
    } else {
      auto got = co_await sniff_content_type(svc, key, *meta);
      if (!got) {
        if (got.err().code == errc::changed && attempt == 0) continue;  // replaced since stat: plan once more
        co_return storage_error_response(req, svc, key, got.err());
      }
      sniffed = std::move(*got);
      type = sniffed;
    }

    http::plan_options options;
    // Answers to signed links are for one viewer: never a public cache lifetime.
    options.cache_control = private_link ? svc.config.access.cache_control : svc.config.cache_control;
    options.limits.max_ranges = svc.config.max_ranges;
    if (multi) options.boundary = boundary;
    auto plan = http::plan_response(view, {meta->size, meta->etag, meta->last_modified, type}, options);
    add_media_headers(plan.headers, type);

    auto body = std::make_unique<media_body>();
    // Ranges after the first (multipart answers) are opened as they are sent.
    if (std::count_if(plan.body.begin(), plan.body.end(), [](auto& s) { return s.range.has_value(); }) > 1)
      body->open = [&store = svc.store, key, m = *meta](http::byte_range r) { return store.open(key, m, r); };
    const auto first_range =
        std::find_if(plan.body.begin(), plan.body.end(), [](auto& s) { return s.range; });
    if (first_range != plan.body.end()) {
      // The read started with the metadata serves the plan only when it begins where the plan's first
      // range does and can stop where it ends; otherwise it is dropped (its read cancelled) unused.
      const auto want = *first_range->range;
      if (found.reader && found.range.first == want.first && want.last <= found.range.last &&
          found.reader->end_at(want.last)) {
        body->first = std::move(found.reader);
        body->what = std::move(key);
        co_return planned_response(std::move(plan), std::move(body));
      }
      found.reader.reset();
      auto opened = co_await svc.store.open(key, *meta, want);
      if (!opened) {
        // Replaced between stat and open: the backends forgot the old metadata, so plan once more.
        if (opened.err().code == errc::changed && attempt == 0) continue;
        co_return storage_error_response(req, svc, key, opened.err());
      }
      body->first = std::move(*opened);
    }
    body->what = std::move(key);
    co_return planned_response(std::move(plan), std::move(body));
  }
}

net::awaitable<response> serve_generated(const request& req, services& svc, generated_resource res,
                                         bool private_link) {
  if (!req.read_only()) {
    auto r = text_response(405, "method not allowed: this resource supports GET and HEAD",
                           {{"Allow", "GET, HEAD"}});
    r.close = req.has_body();
    co_return r;
  }
  const list_validators lists{req.list_field("If-Match"), req.list_field("If-None-Match")};
  const auto view = request_view_of(req, lists);
  const bool multi = view.range && view.range->find(',') != std::string_view::npos;
  const auto boundary = multi ? make_boundary(svc) : std::string();
  http::plan_options options;
  options.cache_control = private_link ? svc.config.access.cache_control : svc.config.cache_control;
  options.limits.max_ranges = svc.config.max_ranges;
  if (multi) options.boundary = boundary;
  const auto size = res.layout->size();
  auto plan = http::plan_response(view, {size, res.etag, res.meta.last_modified, res.content_type}, options);
  add_media_headers(plan.headers, res.content_type);
  auto body = std::make_unique<media_body>();
  body->what = res.key;
  run_read_options reads;
  reads.max_gap = svc.config.hls_read_gap;
  reads.parallel = svc.config.hls_read_parallel;
  body->open = [&store = svc.store, key = res.key, meta = res.meta, layout = res.layout,
                reads](http::byte_range r) {
    return ready_reader(make_spliced_reader(store, key, meta, layout, r, reads));
  };
  const auto first_range = std::find_if(plan.body.begin(), plan.body.end(), [](auto& s) { return s.range; });
  if (first_range != plan.body.end())
    body->first = make_spliced_reader(svc.store, res.key, res.meta, res.layout, *first_range->range, reads);
  co_return planned_response(std::move(plan), std::move(body));
}

}  // namespace mediagate::server
