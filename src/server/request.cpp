#include "server/request.hpp"

#include "http/token.hpp"

namespace mediagate::server {

method method_from(std::string_view name) {
  // Methods are case-sensitive (RFC 9110 §9.1).
  if (name == "GET") return method::get;
  if (name == "HEAD") return method::head;
  if (name == "POST") return method::post;
  if (name == "PUT") return method::put;
  if (name == "PATCH") return method::patch;
  if (name == "DELETE") return method::delete_;
  if (name == "OPTIONS") return method::options;
  return method::other;
}

std::size_t request::count(std::string_view name) const {
  std::size_t n = 0;
  for (const auto& f : fields)
    if (http::iequals(f.name, name)) ++n;
  return n;
}

std::string_view request::operator[](std::string_view name) const {
  for (const auto& f : fields)
    if (http::iequals(f.name, name)) return f.value;
  return {};
}

std::optional<std::string> request::list_field(std::string_view name) const {
  std::optional<std::string> out;
  for (const auto& f : fields) {
    if (!http::iequals(f.name, name)) continue;
    if (out)
      out->append(", ").append(f.value);
    else
      out.emplace(f.value);
  }
  return out;
}

std::optional<std::string_view> request::single_field(std::string_view name, bool* repeated) const {
  std::optional<std::string_view> out;
  bool twice = false;
  for (const auto& f : fields) {
    if (!http::iequals(f.name, name)) continue;
    if (out) twice = true;
    out = f.value;
  }
  if (repeated) *repeated = twice;
  return out;
}

}  // namespace mediagate::server
