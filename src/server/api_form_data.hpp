#pragma once
// A streaming parser of multipart/form-data bodies (RFC 7578, framing of RFC 2046 §5.1.1): fed the body
// in chunks of any size, it reports each part's header and its bytes as they come, holding back only the
// few bytes that could be the start of a delimiter split across two chunks. Memory stays bounded by the
// chunk size plus the part-header limit, whatever the size of the files.
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>

namespace mediagate::server {

// The boundary parameter of a multipart/form-data Content-Type; nullopt when absent or invalid.
std::optional<std::string> form_data_boundary(std::string_view content_type);

struct form_part_header {
  std::string name;                     // the form field's name
  std::optional<std::string> filename;  // present for file fields
  std::string content_type;             // "" when the part has none
};

struct form_event {
  enum kind_t { part_begin, data, part_end } kind;
  form_part_header header;  // part_begin
  std::string bytes;        // data
};

class form_data_parser {
 public:
  explicit form_data_parser(std::string boundary, std::size_t max_header_bytes = 16 * 1024);

  // Consumes `input` and queues the events it completes. False on malformed input (see error()).
  bool feed(std::string_view input);
  // True once the closing delimiter was seen: anything after it (the epilogue) is ignored.
  bool done() const { return state_ == state::done; }
  const std::string& error() const { return error_; }

  bool has_event() const { return !events_.empty(); }
  form_event pop_event();

 private:
  enum class state { preamble, after_delimiter, headers, body, done, failed };
  bool fail(std::string message);
  bool parse_headers(std::string_view block);

  std::string delimiter_;  // CRLF "--" boundary
  std::size_t max_header_bytes_;
  std::string pending_;  // bytes not yet consumed
  state state_ = state::preamble;
  std::string error_;
  std::deque<form_event> events_;
};

}  // namespace mediagate::server
