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

std::string change_payload(const item_change& c) {
  std::string out = c.visibility ? "v\n" : "-\n";
  out += c.old_etag;
  out += '\n';
  out += std::to_string(c.old_size);
  out += '\n';
  out += c.key;
  return out;
}

std::optional<item_change> parse_change_payload(std::string_view payload) {
  if (payload.size() < 2 || (payload[0] != 'v' && payload[0] != '-') || payload[1] != '\n')
    return std::nullopt;
  item_change c;
  c.visibility = payload[0] == 'v';
  payload.remove_prefix(2);
  const auto first = payload.find('\n');
  if (first == std::string_view::npos) return std::nullopt;
  const auto second = payload.find('\n', first + 1);
  if (second == std::string_view::npos || second + 1 >= payload.size()) return std::nullopt;
  c.key = std::string(payload.substr(second + 1));
  c.old_etag = std::string(payload.substr(0, first));
  const auto size = payload.substr(first + 1, second - first - 1);
  const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), c.old_size);
  if (ec != std::errc() || end != size.data() + size.size()) return std::nullopt;
  return c;
}

}  // namespace mediagate::catalog
