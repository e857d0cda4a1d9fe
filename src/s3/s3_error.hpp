#pragma once
// S3 error responses (<Error><Code>…</Code><Message>…</Message>…</Error>) and their mapping to the errors the
// HTTP side turns into client statuses.
#include <string>
#include <string_view>

#include "common/body_source.hpp"
#include "common/result.hpp"

namespace mediagate::s3 {

struct s3_error {
  unsigned http_status = 0;
  std::string code;  // "NoSuchKey", "AccessDenied", ... (empty when the body had none, e.g. HEAD)
  std::string message;
  std::string request_id;
};

// Parses the XML error body; fields stay empty when absent or when the body is not XML.
s3_error parse_s3_error(unsigned http_status, std::string_view body);

// Whether the request may succeed if sent again after a pause (SlowDown, 500, 503, ...).
bool is_retryable(const s3_error& e);

// A storage error with a message a user can act on; `anonymous`: the request was unsigned (--s3-anonymous).
error to_storage_error(const s3_error& e, std::string_view bucket, std::string_view key,
                       bool anonymous = false);

}  // namespace mediagate::s3
