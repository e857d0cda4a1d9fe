#include "http/https_redirect.hpp"

#include "http/token.hpp"

namespace mediagate::http {
namespace {

bool is_name_char(char ch) {
  return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '-' ||
         ch == '.';
}

bool is_ipv6_char(char ch) {
  return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F') || ch == ':' ||
         ch == '.';
}

// The host part of a Host field without its port, if the whole field is well formed.
std::optional<std::string_view> host_part(std::string_view field) {
  std::string_view host, port;
  if (field.starts_with('[')) {
    const auto close = field.find(']');
    if (close == std::string_view::npos || close < 3) return std::nullopt;
    host = field.substr(0, close + 1);
    for (char ch : host.substr(1, host.size() - 2))
      if (!is_ipv6_char(ch)) return std::nullopt;
    const auto rest = field.substr(close + 1);
    if (!rest.empty() && !rest.starts_with(':')) return std::nullopt;
    port = rest.empty() ? rest : rest.substr(1);
    if (!rest.empty() && port.empty()) return std::nullopt;
  } else {
    const auto colon = field.find(':');
    host = field.substr(0, colon);
    port = colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1);
    if (host.empty() || host.size() > 253) return std::nullopt;
    for (char ch : host)
      if (!is_name_char(ch)) return std::nullopt;
    if (colon != std::string_view::npos && port.empty()) return std::nullopt;
  }
  if (!port.empty() && (port.size() > 5 || !parse_decimal(port) || *parse_decimal(port) > 65535))
    return std::nullopt;
  return host;
}

}  // namespace

std::optional<std::string> https_location(std::string_view host, std::string_view target,
                                          std::uint16_t port) {
  const auto name = host_part(trim_ows(host));
  if (!name) return std::nullopt;
  std::string location = "https://";
  location += *name;
  if (port != 443) location += ":" + std::to_string(port);
  location += target.starts_with('/') ? target : std::string_view("/");
  return location;
}

}  // namespace mediagate::http
