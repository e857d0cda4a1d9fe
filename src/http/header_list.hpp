#pragma once
// Response header fields, kept as their HTTP/1.1 wire text ("Name: value\r\n" per field) in one string: a
// response head is framed by appending that text, with no string per field (the strings per field were a
// quarter of the allocations of a small range response; bench/results/W2-2026-12-01.md).
#include <cstddef>
#include <initializer_list>
#include <iterator>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace mediagate::http {

class header_list {
 public:
  using field = std::pair<std::string_view, std::string_view>;

  // The fields in order, as views into the list (valid until it changes).
  class iterator {
   public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = field;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = field;

    iterator() = default;
    field operator*() const;
    iterator& operator++();
    iterator operator++(int) {
      auto old = *this;
      ++*this;
      return old;
    }
    friend bool operator==(const iterator& a, const iterator& b) { return a.at_ == b.at_; }

   private:
    friend class header_list;
    iterator(std::string_view wire, std::size_t at) : wire_(wire), at_(at) {}
    std::string_view wire_;
    std::size_t at_ = 0;
  };

  header_list() = default;
  header_list(std::initializer_list<field> fields);

  // Appends a field. `name` is a token of ours; CR, LF and NUL in `value` become spaces, so that no value
  // can ever end the field or the head.
  void emplace_back(std::string_view name, std::string_view value);
  // Replaces the value of the first field named `name` (case-insensitively), or appends the field.
  void set(std::string_view name, std::string_view value);
  // The value of the first field named `name` (case-insensitively).
  std::optional<std::string_view> find(std::string_view name) const;

  void reserve(std::size_t bytes) { wire_.reserve(bytes); }
  bool empty() const { return wire_.empty(); }
  std::size_t size() const;  // the number of fields
  iterator begin() const { return {wire_, 0}; }
  iterator end() const { return {wire_, wire_.size()}; }
  // "Name: value\r\n" for every field.
  std::string_view wire() const { return wire_; }

 private:
  std::string wire_;
};

}  // namespace mediagate::http
