#include "catalog/sql.hpp"

#include <charconv>
#include <cstdlib>

namespace mediagate::catalog {

bool sql_row::is_null(std::size_t column) const {
  return std::holds_alternative<std::monostate>(values.at(column));
}

std::string sql_row::text(std::size_t column) const {
  const auto& v = values.at(column);
  if (const auto* s = std::get_if<std::string>(&v)) return *s;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return std::to_string(*i);
  if (const auto* d = std::get_if<double>(&v)) return std::to_string(*d);
  return {};
}

std::int64_t sql_row::integer(std::size_t column) const {
  const auto& v = values.at(column);
  if (const auto* i = std::get_if<std::int64_t>(&v)) return *i;
  if (const auto* d = std::get_if<double>(&v)) return static_cast<std::int64_t>(*d);
  if (const auto* s = std::get_if<std::string>(&v)) {
    std::int64_t n = 0;
    std::from_chars(s->data(), s->data() + s->size(), n);
    return n;
  }
  return 0;
}

double sql_row::real(std::size_t column) const {
  const auto& v = values.at(column);
  if (const auto* d = std::get_if<double>(&v)) return *d;
  if (const auto* i = std::get_if<std::int64_t>(&v)) return static_cast<double>(*i);
  if (const auto* s = std::get_if<std::string>(&v)) return std::strtod(s->c_str(), nullptr);
  return 0;
}

std::string change_payload(std::string_view key, std::string_view old_etag) {
  std::string out(old_etag);
  out += '\n';
  out += key;
  return out;
}

std::optional<item_change> parse_change_payload(std::string_view payload) {
  const auto nl = payload.find('\n');
  if (nl == std::string_view::npos || nl + 1 >= payload.size()) return std::nullopt;
  return item_change{std::string(payload.substr(nl + 1)), std::string(payload.substr(0, nl))};
}

}  // namespace mediagate::catalog
