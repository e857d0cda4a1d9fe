#include "http/response_head.hpp"

#include <charconv>

namespace mediagate::http {

std::string_view reason_phrase(unsigned status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 422:
      return "Unprocessable Content";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

std::string serialize_head(unsigned status, const header_list& headers, std::string_view date, bool close) {
  const auto reason = reason_phrase(status);
  char code[10];
  const auto code_end = std::to_chars(code, code + sizeof code, status).ptr;
  std::string s;
  s.reserve(64 + reason.size() + date.size() + headers.wire().size());
  s.append("HTTP/1.1 ").append(code, code_end).append(" ").append(reason).append("\r\n");
  s.append("Server: mediagate\r\n");
  if (!date.empty()) s.append("Date: ").append(date).append("\r\n");
  s.append(headers.wire());
  if (close) s.append("Connection: close\r\n");
  s.append("\r\n");
  return s;
}

}  // namespace mediagate::http
