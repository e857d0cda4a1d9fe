#include "server/index_page.hpp"

#include "http/content_type.hpp"
#include "http/media_key.hpp"

namespace mediagate::server {

std::string html_escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string render_index_page(const std::vector<storage::listed_object>& objects) {
  std::string items;
  std::string first_video;
  for (const auto& o : objects) {
    const auto type = http::content_type_for_key(o.key);
    const auto url = "/media/" + http::encode_key_for_url(o.key);
    std::string kind = type.starts_with("video/") ? "video" : type.starts_with("audio/") ? "audio"
                                                             : type.starts_with("image/") ? "image" : "file";
    if (kind == "video" && first_video.empty()) first_video = url;
    items += "<li><a href=\"" + html_escape(url) + "\" data-kind=\"" + kind + "\">" + html_escape(o.key) +
             "</a> <small>" + std::to_string(o.size) + " bytes</small></li>\n";
  }
  return R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>mediagate</title>
<style>body{font-family:system-ui,sans-serif;margin:1rem;max-width:60rem}video,audio,img{max-width:100%;display:block}
li{margin:.3rem 0}small{color:#666}</style></head>
<body><h1>mediagate</h1>
<div id="player"><video id="video" controls preload="metadata" src=")" +
         html_escape(first_video) + R"("></video></div>
<ul id="media">
)" + items + R"(</ul>
<script>
document.getElementById('media').addEventListener('click', e => {
  const a = e.target.closest('a'); if (!a) return;
  const kind = a.dataset.kind; if (kind === 'file') return;
  e.preventDefault();
  const player = document.getElementById('player');
  const el = document.createElement(kind === 'image' ? 'img' : kind);
  el.src = a.getAttribute('href'); el.id = kind === 'video' ? 'video' : kind;
  if (kind !== 'image') { el.controls = true; el.autoplay = true; }
  player.replaceChildren(el);
});
</script></body></html>
)";
}

}  // namespace mediagate::server
