#include "s3/answer_parser.hpp"

#include <algorithm>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/field.hpp>
#include <cstring>

namespace mediagate::s3 {
namespace bhttp = boost::beast::http;

namespace {

// The index of `f` in answer_parser::kept_fields, or -1.
int kept_index(bhttp::field f) {
  switch (f) {
    case bhttp::field::content_range:
      return 0;
    case bhttp::field::content_type:
      return 1;
    case bhttp::field::etag:
      return 2;
    case bhttp::field::last_modified:
      return 3;
    default:
      return -1;
  }
}

}  // namespace

answer_parser::answer_parser() { body_limit(boost::none); }

std::string_view answer_parser::field(std::string_view name) const {
  for (std::size_t i = 0; i < kept_fields.size(); ++i) {
    if (!boost::beast::iequals(name, kept_fields[i])) continue;
    const slot& s = slots_[i];
    return s.set ? std::string_view(text() + s.at, s.size) : std::string_view();
  }
  return {};
}

void answer_parser::on_request_impl(bhttp::verb, string_view, string_view, int, error_code& ec) {
  ec = bhttp::error::bad_method;  // never called: this parser reads responses
}

void answer_parser::on_response_impl(int code, string_view, int, error_code&) {
  status_ = static_cast<unsigned>(code);
}

void answer_parser::on_field_impl(bhttp::field f, string_view, string_view value, error_code&) {
  const int i = kept_index(f);
  if (i < 0 || slots_[static_cast<std::size_t>(i)].set) return;  // the first of a repeated field counts
  slot& s = slots_[static_cast<std::size_t>(i)];
  if (!spilled_in_use_ && used_ + value.size() > fixed_.size()) {
    spilled_.assign(fixed_.data(), used_);
    spilled_in_use_ = true;
  }
  if (!spilled_in_use_) {
    std::memcpy(fixed_.data() + used_, value.data(), value.size());
  } else {
    spilled_.append(value.data(), value.size());
  }
  s = {static_cast<std::uint32_t>(used_), static_cast<std::uint32_t>(value.size()), true};
  used_ += value.size();
}

std::size_t answer_parser::on_body_impl(string_view body, error_code& ec) {
  const std::size_t n = std::min(body.size(), body_data ? body_size : 0);
  if (n > 0) std::memcpy(body_data, body.data(), n);
  body_data += n;
  body_size -= n;
  if (n < body.size()) ec = bhttp::error::need_buffer;
  return n;
}

std::size_t answer_parser::on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) {
  return on_body_impl(body, ec);
}

}  // namespace mediagate::s3
