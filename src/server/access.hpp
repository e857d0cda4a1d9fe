#pragma once
// Who may read what: signed links for private media (config access_policy), and CORS for other origins.
#include <optional>
#include <string>
#include <string_view>

#include "server/request.hpp"
#include "server/response.hpp"
#include "server/services.hpp"

namespace mediagate::server {

// Whether `key` needs a signed link under the prefix rules (longest matching prefix wins).
bool needs_signature(const access_policy& policy, std::string_view key);

// Whether `key` needs a link: the item's own visibility when it has one, else the prefix rules.
bool needs_link(const services& svc, const std::string& key);
// The same, for code outside a request (the library's probes); `api` may be null.
bool needs_link(const access_policy& policy, const api_services* api, const std::string& key);

// For a request of `key` that needs a link: nullopt when the link is good, else the 403 (no storage touched).
std::optional<response> check_link(const request& req, services& svc, std::string_view key);

// CORS on every answer (errors, 304, 206 included) when the request's Origin is allowed.
void add_cors_headers(const request& req, const server_config& cfg, response& r);

// An OPTIONS request: a CORS preflight, or `OPTIONS *` / a plain OPTIONS (204 with Allow).
response answer_options(const request& req, const server_config& cfg);

}  // namespace mediagate::server
