#include "server/api_form_data.hpp"

#include "http/token.hpp"

namespace mediagate::server {
namespace {

constexpr std::size_t kMaxPadding = 256;  // whitespace allowed between a boundary and its CRLF

// RFC 2046 §5.1.1: 1 to 70 characters from a restricted set, not ending in a space.
bool valid_boundary(std::string_view b) {
  static constexpr std::string_view kAllowed =
      "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'()+_,-./:=? ";
  if (b.empty() || b.size() > 70 || b.back() == ' ') return false;
  return b.find_first_not_of(kAllowed) == std::string_view::npos;
}

// Whether s[i] is a backslash that escapes the next character inside a quoted string. Only \" and \\ are
// escapes: browsers send file names with their backslashes as they are (HTML's form encoding escapes only
// quotes and line breaks), so "C:\videos\clip.mp4" must keep its backslashes (RFC 7578 §4.2 leaves it open).
bool escapes_next(std::string_view s, std::size_t i) {
  return s[i] == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\');
}

// A parameter value: a token, or a quoted-string whose escapes are undone.
std::string param_value(std::string_view v) {
  v = http::trim_ows(v);
  if (v.size() < 2 || v.front() != '"') return std::string(v);
  std::string out;
  for (std::size_t i = 1; i < v.size(); ++i) {
    if (v[i] == '"') break;
    if (escapes_next(v, i)) ++i;
    out += v[i];
  }
  return out;
}

// Splits "type; a=1; b="x;y"" at semicolons outside quotes (with the same escapes as param_value).
std::vector<std::string_view> split_params(std::string_view s) {
  std::vector<std::string_view> out;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (quoted && escapes_next(s, i)) {
      ++i;
      continue;
    }
    if (s[i] == '"') quoted = !quoted;
    if (s[i] == ';' && !quoted) {
      out.push_back(s.substr(start, i - start));
      start = i + 1;
    }
  }
  out.push_back(s.substr(start));
  return out;
}

}  // namespace

std::optional<std::string> form_data_boundary(std::string_view content_type) {
  auto params = split_params(content_type);
  if (!http::iequals(http::trim_ows(params.front()), "multipart/form-data")) return std::nullopt;
  for (std::size_t i = 1; i < params.size(); ++i) {
    const auto p = http::trim_ows(params[i]);
    const auto eq = p.find('=');
    if (eq == std::string_view::npos || !http::iequals(http::trim_ows(p.substr(0, eq)), "boundary")) continue;
    auto value = param_value(p.substr(eq + 1));
    if (!valid_boundary(value)) return std::nullopt;
    return value;
  }
  return std::nullopt;
}

form_data_parser::form_data_parser(std::string boundary, std::size_t max_header_bytes)
    : delimiter_("\r\n--" + boundary), max_header_bytes_(max_header_bytes) {
  // The first delimiter may open the body without the CRLF that precedes every other one.
  pending_ = "\r\n";
}

bool form_data_parser::fail(std::string message) {
  state_ = state::failed;
  error_ = std::move(message);
  return false;
}

form_event form_data_parser::pop_event() {
  auto e = std::move(events_.front());
  events_.pop_front();
  return e;
}

bool form_data_parser::parse_headers(std::string_view block) {
  form_part_header h;
  bool disposition = false;
  while (!block.empty()) {
    const auto eol = block.find("\r\n");
    const auto line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
    const auto colon = line.find(':');
    if (colon == std::string_view::npos) return fail("a part header line has no colon");
    const auto name = http::trim_ows(line.substr(0, colon));
    const auto value = http::trim_ows(line.substr(colon + 1));
    if (http::iequals(name, "content-type")) {
      h.content_type = std::string(value);
    } else if (http::iequals(name, "content-disposition")) {
      auto params = split_params(value);
      if (!http::iequals(http::trim_ows(params.front()), "form-data")) return fail("a part is not form-data");
      disposition = true;
      for (std::size_t i = 1; i < params.size(); ++i) {
        const auto p = http::trim_ows(params[i]);
        const auto eq = p.find('=');
        if (eq == std::string_view::npos) continue;
        const auto key = http::trim_ows(p.substr(0, eq));
        if (http::iequals(key, "name"))
          h.name = param_value(p.substr(eq + 1));
        else if (http::iequals(key, "filename"))
          h.filename = param_value(p.substr(eq + 1));
      }
    }
  }
  if (!disposition) return fail("a part has no Content-Disposition: form-data header");
  events_.push_back({form_event::part_begin, std::move(h), {}});
  return true;
}

bool form_data_parser::feed(std::string_view input) {
  if (state_ == state::failed) return false;
  if (state_ == state::done) return true;
  pending_.append(input);
  while (true) {
    switch (state_) {
      case state::preamble: {
        const auto at = pending_.find(delimiter_);
        if (at == std::string::npos) {
          // Keep only what could still begin a delimiter.
          if (pending_.size() >= delimiter_.size())
            pending_.erase(0, pending_.size() - (delimiter_.size() - 1));
          return true;
        }
        pending_.erase(0, at + delimiter_.size());
        state_ = state::after_delimiter;
        break;
      }
      case state::after_delimiter: {
        // "--" closes the body; otherwise optional whitespace, then CRLF opens a part.
        if (pending_.size() < 2) return true;
        if (pending_.starts_with("--")) {
          state_ = state::done;
          pending_.clear();
          return true;
        }
        // At most kMaxPadding bytes of whitespace, whatever the chunks (one more byte may be the CR of the
        // CRLF).
        const auto crlf = pending_.find("\r\n");
        if (crlf == std::string::npos) {
          if (pending_.size() > kMaxPadding + 1) return fail("garbage after a boundary");
          return true;
        }
        if (crlf > kMaxPadding || pending_.find_first_not_of(" \t") < crlf)
          return fail("garbage after a boundary");
        pending_.erase(0, crlf + 2);
        state_ = state::headers;
        break;
      }
      case state::headers: {
        std::size_t end;
        std::size_t skip;
        if (pending_.starts_with("\r\n")) {
          end = 0;
          skip = 2;
        } else {
          end = pending_.find("\r\n\r\n");
          skip = 4;
        }
        if (end == std::string::npos) {
          // Up to 3 buffered bytes may be the start of the blank line that ends the headers: the limit is on
          // the headers alone, so that it does not depend on how the body was split.
          if (pending_.size() > max_header_bytes_ + 3) return fail("a part header is too large");
          return true;
        }
        if (end > max_header_bytes_) return fail("a part header is too large");
        if (!parse_headers(std::string_view(pending_).substr(0, end))) return false;
        pending_.erase(0, end + skip);
        state_ = state::body;
        break;
      }
      case state::body: {
        const auto at = pending_.find(delimiter_);
        if (at == std::string::npos) {
          // Everything but a possible delimiter prefix at the end is part data.
          const auto keep = delimiter_.size() - 1;
          if (pending_.size() > keep) {
            events_.push_back({form_event::data, {}, pending_.substr(0, pending_.size() - keep)});
            pending_.erase(0, pending_.size() - keep);
          }
          return true;
        }
        if (at > 0) events_.push_back({form_event::data, {}, pending_.substr(0, at)});
        events_.push_back({form_event::part_end, {}, {}});
        pending_.erase(0, at + delimiter_.size());
        state_ = state::after_delimiter;
        break;
      }
      case state::done:
        return true;
      case state::failed:
        return false;
    }
  }
}

}  // namespace mediagate::server
