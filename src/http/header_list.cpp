#include "http/header_list.hpp"

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "http/token.hpp"

namespace mediagate::http {

header_list::field header_list::iterator::operator*() const {
  const auto line = wire_.substr(at_, wire_.find("\r\n", at_) - at_);
  const auto colon = line.find(": ");
  return {line.substr(0, colon), line.substr(colon + 2)};
}

header_list::iterator& header_list::iterator::operator++() {
  at_ = wire_.find("\r\n", at_) + 2;
  return *this;
}

header_list::header_list(std::initializer_list<field> fields) {
  for (const auto& [name, value] : fields) emplace_back(name, value);
}

void header_list::emplace_back(std::string_view name, std::string_view value) {
  const auto start = wire_.size();
  wire_.resize(start + name.size() + value.size() + 4);
  char* p = wire_.data() + start;
  std::memcpy(p, name.data(), name.size());
  p += name.size();
  std::memcpy(p, ": ", 2);
  std::memcpy(p + 2, value.data(), value.size());
  std::memcpy(p + 2 + value.size(), "\r\n", 2);
  if (!has_line_break(value)) return;
  const auto value_begin = wire_.begin() + static_cast<std::ptrdiff_t>(start + name.size() + 2);
  std::replace_if(
      value_begin, value_begin + static_cast<std::ptrdiff_t>(value.size()),
      [](char ch) { return ch == '\r' || ch == '\n' || ch == '\0'; }, ' ');
}

void header_list::set(std::string_view name, std::string_view value) {
  for (auto it = begin(); it != end(); ++it) {
    const auto [n, v] = *it;
    if (!iequals(n, name)) continue;
    const auto next = std::next(it).at_;
    header_list rest;
    rest.wire_ = wire_.substr(next);
    wire_.resize(it.at_);
    emplace_back(name, value);
    wire_ += rest.wire_;
    return;
  }
  emplace_back(name, value);
}

std::optional<std::string_view> header_list::find(std::string_view name) const {
  for (const auto [n, v] : *this)
    if (iequals(n, name)) return v;
  return std::nullopt;
}

std::size_t header_list::size() const { return static_cast<std::size_t>(std::distance(begin(), end())); }

}  // namespace mediagate::http
