#pragma once
// The parser of the store's answers: Beast's HTTP/1.1 parser (basic_parser<false> reads the status line, the
// fields' syntax, Content-Length, chunked framing and keep-alive), keeping only the fields the S3 code reads,
// copied into storage inside the parser. Beast's parser<> builds a basic_fields for every answer (a tree with
// a node per field, about ten in a GetObject answer, and a search by name for each read) that nothing here
// needs; this one keeps four values in a fixed array (callgrind, a GetObject answer of nginx: the parse went
// from ~8.0k to ~5.7k instructions).
#include <array>
#include <boost/beast/http/basic_parser.hpp>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace mediagate::s3 {

class answer_parser final : public boost::beast::http::basic_parser<false> {
 public:
  // The fields kept, by lowercase name; any other reads as absent.
  static constexpr std::array<std::string_view, 4> kept_fields = {"content-range", "content-type", "etag",
                                                                  "last-modified"};

  answer_parser();  // no body limit: bodies are read in pieces into the caller's buffers

  unsigned status() const { return status_; }
  // A kept field's value as received (the first when repeated); "" when absent or not kept. Any case.
  std::string_view field(std::string_view name) const;

  // Where the next put() writes body bytes (a chunked or close-delimited body): advanced as bytes land, as
  // buffer_body's value is. put() stops with error::need_buffer when it is full.
  char* body_data = nullptr;
  std::size_t body_size = 0;

 private:
  using error_code = boost::beast::error_code;
  using string_view = boost::beast::string_view;
  void on_request_impl(boost::beast::http::verb, string_view, string_view, int, error_code&) override;
  void on_response_impl(int code, string_view reason, int version, error_code& ec) override;
  void on_field_impl(boost::beast::http::field f, string_view name, string_view value,
                     error_code& ec) override;
  void on_header_impl(error_code&) override {}
  void on_body_init_impl(const boost::optional<std::uint64_t>&, error_code&) override {}
  std::size_t on_body_impl(string_view body, error_code& ec) override;
  void on_chunk_header_impl(std::uint64_t, string_view, error_code&) override {}
  std::size_t on_chunk_body_impl(std::uint64_t, string_view body, error_code& ec) override;
  void on_finish_impl(error_code&) override {}

  const char* text() const { return spilled_in_use_ ? spilled_.data() : fixed_.data(); }

  struct slot {
    std::uint32_t at = 0, size = 0;
    bool set = false;
  };
  unsigned status_ = 0;
  std::array<slot, kept_fields.size()> slots_{};
  // The kept values, one after another: in fixed_ while they fit (a GetObject answer's take about 150 bytes),
  // else all of them in spilled_.
  std::array<char, 256> fixed_;
  std::size_t used_ = 0;
  std::string spilled_;
  bool spilled_in_use_ = false;
};

}  // namespace mediagate::s3
