#include "s3/s3_error.hpp"

#include <pugixml.hpp>

namespace mediagate::s3 {

s3_error parse_s3_error(unsigned http_status, std::string_view body) {
  s3_error e;
  e.http_status = http_status;
  pugi::xml_document doc;
  if (!body.empty() && doc.load_buffer(body.data(), body.size())) {
    auto root = doc.child("Error");
    e.code = root.child_value("Code");
    e.message = root.child_value("Message");
    e.request_id = root.child_value("RequestId");
  }
  if (e.code.empty()) {
    // HEAD answers carry no body: name the condition from the status.
    switch (http_status) {
      case 404:
        e.code = "NotFound";
        break;
      case 403:
        e.code = "Forbidden";
        break;
      case 412:
        e.code = "PreconditionFailed";
        break;
      case 503:
        e.code = "ServiceUnavailable";
        break;
      default:
        e.code = "HTTP" + std::to_string(http_status);
    }
  }
  return e;
}

bool is_retryable(const s3_error& e) {
  return e.http_status == 500 || e.http_status == 502 || e.http_status == 503 || e.http_status == 504 ||
         e.code == "SlowDown" || e.code == "InternalError" || e.code == "RequestTimeout";
}

error to_storage_error(const s3_error& e, std::string_view bucket, std::string_view key, bool anonymous) {
  const std::string where = "s3://" + std::string(bucket) + "/" + std::string(key);
  const std::string detail = " (S3 " + std::to_string(e.http_status) + " " + e.code +
                             (e.message.empty() ? "" : ": " + e.message) +
                             (e.request_id.empty() ? "" : ", request id " + e.request_id) + ")";
  if (e.code == "NoSuchKey" || (e.http_status == 404 && e.code == "NotFound"))
    return {errc::not_found, "no such object"};
  if (e.code == "NoSuchBucket")
    return {errc::not_found, "no such object: the bucket does not exist" + detail};
  if (e.http_status == 412 || e.code == "PreconditionFailed")
    return {errc::changed, "the object changed in storage while it was being read" + detail};
  if (e.code == "SignatureDoesNotMatch" || e.code == "InvalidAccessKeyId")
    return {errc::upstream_rejected,
            "storage rejected our credentials for " + where +
                ": check the access key and secret (AWS_ACCESS_KEY_ID, AWS_PROFILE)" + detail};
  if (e.code == "RequestTimeTooSkewed")
    return {errc::upstream_rejected,
            "storage rejected the request time: this machine's clock is off" + detail};
  if (e.http_status == 403 && anonymous)
    return {errc::upstream_rejected,
            "storage denied anonymous access to " + where +
                ": the bucket policy must let everyone read it (s3:GetObject), and without "
                "s3:ListBucket a missing key is denied too" +
                detail};
  if (e.http_status == 403)
    return {errc::upstream_rejected,
            "storage denied access to " + where + ": check the credentials' permissions" + detail};
  if (e.http_status == 504 || e.code == "RequestTimeout")
    return {errc::upstream_timeout, "storage timed out on " + where + detail};
  return {errc::upstream_unavailable, "storage failed on " + where + detail};
}

}  // namespace mediagate::s3
