#pragma once
// --redirect-http: where a request that came over plain HTTP is sent on the HTTPS listener.
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mediagate::http {

// "https://HOST[:PORT]TARGET" for a request with this Host field (RFC 9110 §7.2) and origin-form target;
// the port is left out when it is 443. Nullopt when the Host is empty or not a plain host name, IPv4 or
// bracketed IPv6 address (with an optional port, which is replaced): its bytes are never reflected into a
// Location otherwise. A target that is not origin-form becomes "/".
std::optional<std::string> https_location(std::string_view host, std::string_view target, std::uint16_t port);

}  // namespace mediagate::http
