#pragma once
// Serialising a status line and header fields (HTTP/1.1, RFC 9112 §4).
#include <string>
#include <string_view>

#include "http/response_plan.hpp"

namespace mediagate::http {

std::string_view reason_phrase(unsigned status);

// "HTTP/1.1 206 Partial Content\r\nName: value\r\n...\r\n" with the given fields, a Date, Server and,
// when the connection will close, "Connection: close". Field values must not contain CR or LF.
std::string serialize_head(unsigned status, const header_list& headers, std::string_view date, bool close);

}  // namespace mediagate::http
