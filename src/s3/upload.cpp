#include "s3/upload.hpp"

#include <pugixml.hpp>
#include <sstream>

#include "s3/s3_client.hpp"
#include "s3/s3_error.hpp"

namespace mediagate::s3 {
namespace net = boost::asio;

namespace {

// Fills `buf` from `source` until it is full or the body ends.
net::awaitable<result<std::size_t>> fill(body_source& source, std::string& buf, std::size_t want) {
  buf.resize(want);
  std::size_t got = 0;
  while (got < want) {
    auto n = co_await source(std::span<char>(buf.data() + got, want - got));
    if (!n) co_return n.err();
    if (*n == 0) break;
    got += *n;
  }
  buf.resize(got);
  co_return got;
}

net::awaitable<result<std::unique_ptr<response>>> expect_ok(client& c, request_spec spec,
                                                            const std::string& key) {
  auto r = co_await c.send(std::move(spec));
  if (!r) co_return r.err();
  if ((*r)->status() / 100 != 2) {
    auto body = co_await (*r)->read_all(64 * 1024);
    co_return to_storage_error(parse_s3_error((*r)->status(), body ? *body : std::string()),
                               c.settings().bucket, key);
  }
  co_return r;
}

// Aborts a multipart upload unless it was completed (STYLE.md rule 9, as a coroutine step: destructors
// cannot co_await).
net::awaitable<void> abort_upload(client& c, const std::string& key, const std::string& upload_id) {
  request_spec spec;
  spec.method = "DELETE";
  spec.key = key;
  spec.query = {{"uploadId", upload_id}};
  auto r = co_await c.send(spec);
  if (r) co_await (*r)->read_all(64 * 1024);
}

}  // namespace

net::awaitable<result<upload_result>> upload_object(client& c, std::string key, std::string content_type,
                                                    body_source source, std::size_t part_bytes) {
  std::string part;
  auto first = co_await fill(source, part, part_bytes);
  if (!first) co_return first.err();
  std::string next;
  // No co_await inside a conditional expression: GCC 12 destroys its temporaries twice.
  std::size_t second_bytes = 0;
  if (*first == part_bytes) {
    auto second = co_await fill(source, next, part_bytes);
    if (!second) co_return second.err();
    second_bytes = *second;
  }

  if (second_bytes == 0) {  // the whole body fits one request
    request_spec spec;
    spec.method = "PUT";
    spec.key = key;
    spec.body = std::move(part);
    spec.idempotent = true;
    if (!content_type.empty()) spec.headers.emplace_back("content-type", content_type);
    const auto size = spec.body.size();
    auto r = co_await expect_ok(c, std::move(spec), key);
    if (!r) co_return r.err();
    co_await (*r)->read_all(64 * 1024);
    co_return upload_result{(*r)->header("etag"), size};
  }

  request_spec create;
  create.method = "POST";
  create.key = key;
  create.query = {{"uploads", ""}};
  if (!content_type.empty()) create.headers.emplace_back("content-type", content_type);
  auto created = co_await expect_ok(c, create, key);
  if (!created) co_return created.err();
  auto created_body = co_await (*created)->read_all(64 * 1024);
  pugi::xml_document doc;
  if (!created_body || !doc.load_buffer(created_body->data(), created_body->size()))
    co_return error{errc::upstream_unavailable, "storage did not start the multipart upload"};
  const std::string upload_id = doc.child("InitiateMultipartUploadResult").child_value("UploadId");
  if (upload_id.empty()) co_return error{errc::upstream_unavailable, "storage sent no UploadId"};

  std::vector<std::string> etags;
  std::uint64_t total = 0;
  std::optional<error> failure;
  while (!part.empty()) {
    request_spec put;
    put.method = "PUT";
    put.key = key;
    put.query = {{"partNumber", std::to_string(etags.size() + 1)}, {"uploadId", upload_id}};
    total += part.size();
    put.body = std::move(part);
    auto r = co_await expect_ok(c, std::move(put), key);
    if (!r) {
      failure = r.err();
      break;
    }
    co_await (*r)->read_all(64 * 1024);
    etags.push_back((*r)->header("etag"));
    part = std::move(next);
    next.clear();
    if (!part.empty()) {
      auto more = co_await fill(source, next, part_bytes);
      if (!more) {
        failure = more.err();
        break;
      }
    }
  }
  if (!failure) {
    std::ostringstream xml;
    xml << "<CompleteMultipartUpload>";
    for (std::size_t i = 0; i < etags.size(); ++i)
      xml << "<Part><PartNumber>" << i + 1 << "</PartNumber><ETag>" << etags[i] << "</ETag></Part>";
    xml << "</CompleteMultipartUpload>";
    request_spec complete;
    complete.method = "POST";
    complete.key = key;
    complete.query = {{"uploadId", upload_id}};
    complete.body = xml.str();
    auto r = co_await expect_ok(c, complete, key);
    if (r) {
      auto body = co_await (*r)->read_all(64 * 1024);
      pugi::xml_document result_doc;
      // S3 may answer 200 with an <Error> document when completion fails late.
      if (body && result_doc.load_buffer(body->data(), body->size()) && result_doc.child("Error"))
        failure = to_storage_error(parse_s3_error(500, *body), c.settings().bucket, key);
      else
        co_return upload_result{result_doc.child("CompleteMultipartUploadResult").child_value("ETag"), total};
    } else {
      failure = r.err();
    }
  }
  co_await abort_upload(c, key, upload_id);
  co_return *failure;
}

net::awaitable<result<bool>> delete_object(client& c, std::string key) {
  request_spec spec;
  spec.method = "DELETE";
  spec.key = key;
  auto r = co_await expect_ok(c, spec, key);
  if (!r) co_return r.err();
  co_await (*r)->read_all(64 * 1024);
  co_return true;
}

}  // namespace mediagate::s3
