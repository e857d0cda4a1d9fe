// The library's JSON API and uploads in process: a real SQLite catalog in a temporary directory, a fake
// storage, and request bodies scripted chunk by chunk (with the errors a connection reports).
#include "server/api.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <memory>
#include <string>

#include "catalog/catalog.hpp"
#include "harness.hpp"
#include "temp_dir.hpp"

namespace mediagate::testing_support {
namespace {

namespace json = boost::json;

constexpr const char* kToken = "admin-token-1";

class api : public ::testing::Test {
 protected:
  void SetUp() override {
    auto n = std::make_shared<std::atomic<int>>(0);
    library.items = std::make_shared<catalog::catalog>(
        (dir.path() / "catalog.db").string(), [n] { return "item" + std::to_string(n->fetch_add(1)); },
        [] { return std::int64_t{1'700'000'000}; });
    library.admin_token = kToken;
    library.max_upload_bytes = 100;
    h.svc.api = &library;
  }

  static std::pair<std::string, std::string> auth(const std::string& token = kToken) {
    return {"Authorization", "Bearer " + token};
  }

  // A catalogued object, as a scan would have added it.
  catalog::media_item add(const std::string& key, const std::string& bytes) {
    h.store.put(key, bytes, "video/mp4");
    return library.items->upsert({key, "video/mp4", bytes.size(), h.store.find(key)->etag});
  }

  // An upload request whose body arrives in the given chunks, then ends as `ending` says.
  response upload(const std::string& method, const std::string& target, std::vector<std::string> chunks,
                  std::optional<errc> ending = std::nullopt,
                  std::vector<std::pair<std::string, std::string>> headers = {{"Authorization",
                                                                               std::string("Bearer ") +
                                                                                   kToken}},
                  bool chunked = false) {
    test_request req(method, target, std::move(headers));
    std::uint64_t total = 0;
    for (const auto& c : chunks) total += c.size();
    if (chunked)
      req.chunked = true;
    else
      req.content_length = total;
    req.body.chunks = std::move(chunks);
    req.body.ending = ending;
    auto r = h.handle(req);
    last_body_reads = req.body.reads;
    return r;
  }

  temp_dir dir{"component-api"};
  service_harness h;
  server::api_services library;
  int last_body_reads = 0;
};

json::object json_body(const response& r) {
  EXPECT_EQ(header(r, "Content-Type"), "application/json");
  EXPECT_EQ(header(r, "Cache-Control"), "no-store");
  EXPECT_EQ(header(r, "Content-Length"), std::to_string(r.body.size()));
  EXPECT_TRUE(r.body.ends_with("\n"));
  boost::system::error_code ec;
  auto v = json::parse(r.body, ec);
  EXPECT_FALSE(ec) << r.body;
  if (ec || !v.is_object()) return {};
  return v.as_object();
}

void expect_json_error(const response& r, unsigned status, const std::string& message) {
  EXPECT_EQ(r.status, status) << r.body;
  auto o = json_body(r);
  ASSERT_TRUE(o.contains("error")) << r.body;
  EXPECT_EQ(o["error"].as_string(), message);
  EXPECT_EQ(o.size(), 1u);
}

TEST_F(api, empty_listing) {
  auto r = h.get("/api/media");
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "{\"items\":[],\"page\":1,\"per_page\":50,\"total\":0,\"pages\":0}\n");
  json_body(r);
}

TEST_F(api, listing_pages_and_filters) {
  add("a.mp4", "aaaa");
  add("b.mp4", "bbbbbb");
  add("c.mp4", "cc");
  auto o = json_body(h.get("/api/media?per_page=2&page=2"));
  EXPECT_EQ(o["total"].as_int64(), 3);
  EXPECT_EQ(o["pages"].as_int64(), 2);
  EXPECT_EQ(o["items"].as_array().size(), 1u);
  auto q = json_body(h.get("/api/media?q=b"));
  ASSERT_EQ(q["items"].as_array().size(), 1u);
  EXPECT_EQ(q["items"].as_array()[0].as_object().at("key").as_string(), "b.mp4");
  EXPECT_EQ(q["items"].as_array()[0].as_object().at("size").as_int64(), 6);
}

struct bad_query {
  const char* query;
  const char* message;
};

class api_bad_list : public api, public ::testing::WithParamInterface<bad_query> {};

TEST_P(api_bad_list, is_400_json) {
  auto r = h.get(std::string("/api/media?") + GetParam().query);
  expect_json_error(r, 400, GetParam().message);
}

INSTANTIATE_TEST_SUITE_P(
    queries, api_bad_list,
    ::testing::Values(bad_query{"page=0", "page must be a whole number from 1"},
                      bad_query{"page=-1", "page must be a whole number from 1"},
                      bad_query{"page=x", "page must be a whole number from 1"},
                      bad_query{"page=", "page must be a whole number from 1"},
                      bad_query{"page=1000001", "page must be a whole number from 1"},
                      bad_query{"page=99999999999999999999999", "page must be a whole number from 1"},
                      bad_query{"per_page=0", "per_page must be a whole number from 1 to 200"},
                      bad_query{"per_page=201", "per_page must be a whole number from 1 to 200"},
                      bad_query{"per_page=1.5", "per_page must be a whole number from 1 to 200"},
                      bad_query{"type=document", "type must be video, audio or image"},
                      bad_query{"type=VIDEO", "type must be video, audio or image"}));

TEST_F(api, too_long_title_filter_is_400) {
  expect_json_error(h.get("/api/media?q=" + std::string(301, 'x')), 400, "q is too long");
  EXPECT_EQ(h.get("/api/media?q=" + std::string(300, 'x')).status, 200u);
}

TEST_F(api, get_item) {
  auto item = add("movie.mp4", "0123456789");
  auto r = h.get("/api/media/" + item.id);
  EXPECT_EQ(r.status, 200u);
  auto o = json_body(r);
  EXPECT_EQ(o["id"].as_string(), item.id);
  EXPECT_EQ(o["key"].as_string(), "movie.mp4");
  EXPECT_EQ(o["media_url"].as_string(), "/media/movie.mp4");
  EXPECT_EQ(o["kind"].as_string(), "video");
}

TEST_F(api, unknown_item_is_404) {
  expect_json_error(h.get("/api/media/nosuch1"), 404, "no item with id nosuch1");
  expect_json_error(h.get("/api/media/not-an-id"), 404, "no item with id not-an-id");
  expect_json_error(h.get("/api/media/" + std::string(33, 'a')), 404,
                    "no item with id " + std::string(33, 'a'));
}

TEST_F(api, unknown_api_endpoint_is_json_404) {
  auto r = h.get("/api/nothing");
  expect_json_error(r, 404, "no such API endpoint");
}

TEST_F(api, info) {
  auto o = json_body(h.get("/api/info"));
  EXPECT_EQ(o["uploads"].as_bool(), true);
  EXPECT_EQ(o["max_upload_bytes"].as_int64(), 100);
  EXPECT_EQ(o["storage"].as_string(), "local");
}

TEST_F(api, writes_without_token_configured_are_403) {
  auto item = add("movie.mp4", "0123456789");
  library.admin_token.clear();
  const std::string message =
      "writes are disabled: start the server with --admin-token or MEDIAGATE_ADMIN_TOKEN to allow them";
  test_request patch("PATCH", "/api/media/" + item.id, {auth()});
  expect_json_error(h.handle(patch), 403, message);
  test_request del("DELETE", "/api/media/" + item.id, {auth()});
  expect_json_error(h.handle(del), 403, message);
  EXPECT_TRUE(library.items->get(item.id).has_value());
  EXPECT_EQ(h.store.counters().removes, 0);
}

TEST_F(api, writes_without_or_with_a_wrong_token_are_401) {
  auto item = add("movie.mp4", "0123456789");
  for (const char* m : {"PATCH", "DELETE"}) {
    test_request none(m, "/api/media/" + item.id);
    auto r = h.handle(none);
    expect_json_error(r, 401, "this needs the admin token: Authorization: Bearer TOKEN");
    EXPECT_EQ(header(r, "WWW-Authenticate"), "Bearer realm=\"mediagate\"");
    test_request wrong(m, "/api/media/" + item.id, {auth("admin-token-2")});
    expect_json_error(h.handle(wrong), 401, "the admin token is wrong");
    test_request prefix(m, "/api/media/" + item.id, {auth("admin-token-")});
    expect_json_error(h.handle(prefix), 401, "the admin token is wrong");
    test_request basic(m, "/api/media/" + item.id, {{"Authorization", std::string("Basic ") + kToken}});
    expect_json_error(h.handle(basic), 401, "this needs the admin token: Authorization: Bearer TOKEN");
  }
  EXPECT_EQ(library.items->get(item.id)->title, "movie");
  EXPECT_EQ(h.store.counters().removes, 0);
}

TEST_F(api, patch_renames) {
  auto item = add("movie.mp4", "0123456789");
  auto r = upload("PATCH", "/api/media/" + item.id, {"{\"title\": ", " \"New name\"}"});
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(json_body(r)["title"].as_string(), "New name");
  EXPECT_EQ(library.items->get(item.id)->title, "New name");
}

TEST_F(api, patch_with_bad_bodies_is_400) {
  auto item = add("movie.mp4", "0123456789");
  expect_json_error(upload("PATCH", "/api/media/" + item.id, {"not json"}), 400,
                    "the body must be a JSON object");
  expect_json_error(upload("PATCH", "/api/media/" + item.id, {"{\"key\": \"x\"}"}), 400,
                    "unknown field 'key': title and visibility can change");
  expect_json_error(upload("PATCH", "/api/media/" + item.id, {"{\"title\": 5}"}), 400,
                    "title must be a string");
  expect_json_error(upload("PATCH", "/api/media/" + item.id, {"{\"title\": \"  \"}"}), 400,
                    "title must have 1 to 300 bytes");
  expect_json_error(
      upload("PATCH", "/api/media/" + item.id, {"{\"title\": \"" + std::string(301, 't') + "\"}"}), 400,
      "title must have 1 to 300 bytes");
  expect_json_error(upload("PATCH", "/api/media/" + item.id, {"{\"title\": \"x\""}, errc::client_gone), 400,
                    "the request body did not arrive: injected body failure");
  EXPECT_EQ(library.items->get(item.id)->title, "movie");
}

TEST_F(api, patch_of_unknown_item_is_404) {
  expect_json_error(upload("PATCH", "/api/media/nosuch", {"{\"title\": \"x\"}"}), 404,
                    "no item with id nosuch");
}

TEST_F(api, delete_removes_object_and_row) {
  auto item = add("movie.mp4", "0123456789");
  test_request del("DELETE", "/api/media/" + item.id, {auth()});
  auto r = h.handle(del);
  EXPECT_EQ(r.status, 200u);
  EXPECT_EQ(r.body, "{\"deleted\":\"" + item.id + "\"}\n");
  EXPECT_EQ(h.store.find("movie.mp4"), nullptr);
  EXPECT_FALSE(library.items->get(item.id).has_value());
}

TEST_F(api, delete_removes_the_poster_too_and_view_serves_it) {
  auto item = add("movie.mp4", "0123456789");
  h.store.put(".posters/movie.jpg", "JPEGDATA", "image/jpeg");
  catalog::probe_facts facts;
  facts.poster_key = ".posters/movie.jpg";
  ASSERT_TRUE(library.items->set_probe(item.id, item.etag, facts));
  auto poster = h.get("/v/" + item.id + "/poster");
  EXPECT_EQ(poster.status, 200u);
  EXPECT_EQ(header(poster, "Content-Type"), "image/jpeg");
  EXPECT_EQ(body_of(poster).bytes, "JPEGDATA");
  EXPECT_EQ(h.get("/media/.posters/movie.jpg").status, 404u);  // only through its item
  test_request del("DELETE", "/api/media/" + item.id, {auth()});
  EXPECT_EQ(h.handle(del).status, 200u);
  EXPECT_EQ(h.store.find(".posters/movie.jpg"), nullptr);
  EXPECT_EQ(h.store.find("movie.mp4"), nullptr);
}

TEST_F(api, delete_refused_by_storage_keeps_the_row) {
  auto item = add("movie.mp4", "0123456789");
  h.store.fail(storage_op::remove, "movie.mp4", errc::upstream_unavailable);
  test_request del("DELETE", "/api/media/" + item.id, {auth()});
  expect_json_error(h.handle(del), 502,
                    "storage refused to delete the object: injected failure for movie.mp4");
  EXPECT_TRUE(library.items->get(item.id).has_value());
  EXPECT_NE(h.store.find("movie.mp4"), nullptr);
}

TEST_F(api, delete_of_an_object_already_gone_removes_the_row) {
  auto item = add("movie.mp4", "0123456789");
  h.store.fail(storage_op::remove, "movie.mp4", errc::not_found);
  test_request del("DELETE", "/api/media/" + item.id, {auth()});
  EXPECT_EQ(h.handle(del).status, 200u);
  EXPECT_FALSE(library.items->get(item.id).has_value());
}

TEST_F(api, other_methods_are_405_with_allow) {
  test_request del("DELETE", "/api/media");
  auto r = h.handle(del);
  expect_json_error(r, 405, "method not allowed");
  EXPECT_EQ(header(r, "Allow"), "GET, HEAD, POST");
  test_request post("POST", "/api/media/abc");
  auto item = h.handle(post);
  EXPECT_EQ(item.status, 405u);
  EXPECT_EQ(header(item, "Allow"), "GET, HEAD, PUT, PATCH, DELETE");
}

TEST_F(api, view_streams_the_item) {
  auto item = add("movie.mp4", "0123456789");
  auto r = h.get("/v/" + item.id, {{"Range", "bytes=2-4"}});
  EXPECT_EQ(r.status, 206u);
  EXPECT_EQ(header(r, "Content-Range"), "bytes 2-4/10");
  EXPECT_EQ(body_of(r).bytes, "234");
  EXPECT_EQ(h.get("/v/nosuch").status, 404u);
  EXPECT_EQ(h.get("/v/" + item.id + "/poster").body, "this item has no poster\n");
}

// -- PUT /api/media/<key> -----------------------------------------------------------------------------

TEST_F(api, put_upload_streams_to_storage_and_catalogues) {
  auto r = upload("PUT", "/api/media/dir/new.mp4", {"0123456789", "abcdefghij", "XYZ"});
  EXPECT_EQ(r.status, 201u) << r.body;
  EXPECT_TRUE(r.close);
  auto o = json_body(r);
  EXPECT_EQ(o["key"].as_string(), "dir/new.mp4");
  EXPECT_EQ(o["size"].as_int64(), 23);
  EXPECT_EQ(o["content_type"].as_string(), "video/mp4");
  EXPECT_EQ(header(r, "Location"), "/api/media/" + std::string(o["id"].as_string()));
  ASSERT_NE(h.store.find("dir/new.mp4"), nullptr);
  EXPECT_EQ(h.store.find("dir/new.mp4")->bytes, "0123456789abcdefghijXYZ");
  EXPECT_EQ(h.store.find("dir/new.mp4")->content_type, "video/mp4");
  auto row = library.items->get_by_key("dir/new.mp4");
  ASSERT_TRUE(row.has_value());
  EXPECT_EQ(row->size, 23u);
  EXPECT_EQ(row->etag, h.store.find("dir/new.mp4")->etag);
}

TEST_F(api, put_over_an_existing_key_is_200) {
  add("movie.mp4", "old");
  auto r = upload("PUT", "/api/media/movie.mp4", {"new bytes"});
  EXPECT_EQ(r.status, 200u) << r.body;
  EXPECT_EQ(h.store.find("movie.mp4")->bytes, "new bytes");
  EXPECT_EQ(library.items->get_by_key("movie.mp4")->size, 9u);
}

TEST_F(api, put_without_token_reads_no_body) {
  auto r = upload("PUT", "/api/media/new.mp4", {"0123456789"}, std::nullopt, {});
  expect_json_error(r, 401, "this needs the admin token: Authorization: Bearer TOKEN");
  EXPECT_EQ(last_body_reads, 0);
  EXPECT_EQ(h.store.counters().writes, 0);
}

TEST_F(api, put_to_hidden_or_bad_key_is_400) {
  for (const char* target :
       {"/api/media/.hidden.mp4", "/api/media/dir/.x", "/api/media/a%zz", "/api/media/a/../b"}) {
    auto r = upload("PUT", target, {"x"});
    expect_json_error(r, 400,
                      "the key is not a valid storage key (no '.', '..', hidden or empty path components)");
  }
  EXPECT_EQ(h.store.counters().writes, 0);
}

TEST_F(api, put_without_length_is_411) {
  test_request req("PUT", "/api/media/new.mp4", {auth()});
  expect_json_error(h.handle(req), 411, "an upload needs Content-Length or chunked transfer coding");
  EXPECT_EQ(h.store.counters().writes, 0);
}

TEST_F(api, put_with_declared_length_over_the_limit_is_413_before_reading) {
  auto r = upload("PUT", "/api/media/new.mp4", {std::string(101, 'x')});
  expect_json_error(r, 413, "the upload is larger than the limit of 100 bytes (--max-upload-bytes)");
  EXPECT_TRUE(r.close);
  EXPECT_EQ(last_body_reads, 0);
  EXPECT_EQ(h.store.size(), 0u);
}

TEST_F(api, put_exactly_at_the_limit_is_stored) {
  auto r = upload("PUT", "/api/media/new.mp4", {std::string(60, 'x'), std::string(40, 'y')}, std::nullopt,
                  {auth()}, true);
  EXPECT_EQ(r.status, 201u) << r.body;
  EXPECT_EQ(h.store.find("new.mp4")->bytes.size(), 100u);
}

TEST_F(api, put_chunked_body_over_the_limit_is_413_and_nothing_stored) {
  auto r = upload("PUT", "/api/media/new.mp4", {std::string(60, 'x'), std::string(41, 'y')}, std::nullopt,
                  {auth()}, true);
  expect_json_error(r, 413, "the upload is larger than the limit of 100 bytes (--max-upload-bytes)");
  EXPECT_TRUE(r.close);
  EXPECT_EQ(h.store.size(), 0u);
  EXPECT_FALSE(library.items->get_by_key("new.mp4").has_value());
}

struct body_failure {
  errc code;
  unsigned status;
  const char* message;
};

class api_put_body_failure : public api, public ::testing::WithParamInterface<body_failure> {};

TEST_P(api_put_body_failure, leaves_nothing) {
  auto r = upload("PUT", "/api/media/new.mp4", {"0123456789", "abc"}, GetParam().code);
  expect_json_error(r, GetParam().status, GetParam().message);
  EXPECT_TRUE(r.close);
  EXPECT_EQ(h.store.size(), 0u);
  EXPECT_FALSE(library.items->get_by_key("new.mp4").has_value());
  EXPECT_EQ(json_body(h.get("/api/media"))["total"].as_int64(), 0);
}

INSTANTIATE_TEST_SUITE_P(errors, api_put_body_failure,
                         ::testing::Values(body_failure{errc::too_large, 413,
                                                        "the upload is larger than the limit of 100 bytes "
                                                        "(--max-upload-bytes)"},
                                           body_failure{errc::client_gone, 400, "injected body failure"},
                                           body_failure{errc::bad_body, 400, "injected body failure"}));

TEST_F(api, put_refused_by_storage_is_502) {
  h.store.fail(storage_op::write, "new.mp4", errc::upstream_unavailable);
  auto r = upload("PUT", "/api/media/new.mp4", {"0123456789"});
  expect_json_error(r, 502, "storing the upload failed: injected failure for new.mp4");
  EXPECT_FALSE(library.items->get_by_key("new.mp4").has_value());
}

// -- POST /api/media (multipart/form-data) ------------------------------------------------------------

std::string form(const std::string& boundary, const std::string& file_name, const std::string& file_bytes,
                 const std::string& title = "") {
  std::string s;
  if (!title.empty())
    s += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\n" + title + "\r\n";
  s += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"file\"; filename=\"" + file_name +
       "\"\r\nContent-Type: video/mp4\r\n\r\n" + file_bytes + "\r\n--" + boundary + "--\r\n";
  return s;
}

// The body in pieces of `n` bytes, so that the parser sees delimiters split across reads.
std::vector<std::string> pieces(const std::string& s, std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < s.size(); i += n) out.push_back(s.substr(i, n));
  return out;
}

const std::pair<std::string, std::string> kFormType{"Content-Type",
                                                    "multipart/form-data; boundary=XbOuNdArY"};

TEST_F(api, form_upload_stores_the_file_with_its_title) {
  const auto body = form("XbOuNdArY", "videos/My Clip.mp4", "file-bytes-0123456789", "  Holiday  ");
  int round = 0;
  for (std::size_t n : {1u, 5u, 4096u}) {
    auto r = upload("POST", "/api/media", pieces(body, n), std::nullopt, {auth(), kFormType});
    EXPECT_EQ(r.status, 201u) << r.body;
    auto o = json_body(r);
    // The same file name again gets a fresh key: nothing is overwritten.
    const std::string key = ++round == 1 ? "My Clip.mp4" : "My Clip-" + std::to_string(round) + ".mp4";
    EXPECT_EQ(o["key"].as_string(), key) << "pieces of " << n;
    EXPECT_EQ(o["title"].as_string(), "Holiday");
    ASSERT_NE(h.store.find(key), nullptr);
    EXPECT_EQ(h.store.find(key)->bytes, "file-bytes-0123456789");
    EXPECT_EQ(h.store.find(key)->content_type, "video/mp4");
  }
  EXPECT_EQ(h.store.size(), 3u);
}

TEST_F(api, form_upload_without_file_is_400) {
  const std::string body =
      "--XbOuNdArY\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nx\r\n--XbOuNdArY--\r\n";
  auto r = upload("POST", "/api/media", {body}, std::nullopt, {auth(), kFormType});
  expect_json_error(r, 400, "the form has no file field");
  EXPECT_EQ(h.store.counters().writes, 0);
}

TEST_F(api, form_upload_cut_short_leaves_nothing) {
  const auto body = form("XbOuNdArY", "clip.mp4", std::string(50, 'z'));
  auto cut = pieces(body.substr(0, body.size() - 20), 7);
  for (auto ending : {errc::client_gone, errc::bad_body}) {
    auto r = upload("POST", "/api/media", cut, ending, {auth(), kFormType});
    expect_json_error(r, 400, "injected body failure");
    EXPECT_TRUE(r.close);
  }
  // A body that just ends before the closing delimiter is malformed.
  auto r = upload("POST", "/api/media", cut, std::nullopt, {auth(), kFormType});
  expect_json_error(r, 400, "the form ended before its closing boundary");
  EXPECT_EQ(h.store.size(), 0u);
  EXPECT_EQ(json_body(h.get("/api/media"))["total"].as_int64(), 0);
}

TEST_F(api, form_upload_with_file_over_the_limit_is_413) {
  const auto body = form("XbOuNdArY", "clip.mp4", std::string(101, 'z'));
  auto r = upload("POST", "/api/media", pieces(body, 30), std::nullopt, {auth(), kFormType});
  expect_json_error(r, 413, "the upload is larger than the limit of 100 bytes (--max-upload-bytes)");
  EXPECT_EQ(h.store.size(), 0u);
}

TEST_F(api, form_upload_needs_a_form) {
  auto r = upload("POST", "/api/media", {"x"}, std::nullopt, {auth(), {"Content-Type", "video/mp4"}});
  expect_json_error(r, 400,
                    "POST /api/media takes multipart/form-data with a file field (or PUT /api/media/<key>)");
  EXPECT_TRUE(r.close);
  EXPECT_EQ(last_body_reads, 0);
}

TEST_F(api, form_upload_without_token_is_401) {
  const auto body = form("XbOuNdArY", "clip.mp4", "abc");
  auto r = upload("POST", "/api/media", {body}, std::nullopt, {kFormType});
  EXPECT_EQ(r.status, 401u);
  EXPECT_EQ(last_body_reads, 0);
  EXPECT_EQ(h.store.size(), 0u);
}

}  // namespace
}  // namespace mediagate::testing_support
