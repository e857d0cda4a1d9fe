// The router's own paths in process: health, readiness, metrics (who may read them), unknown paths and
// methods.
#include <gtest/gtest.h>

#include <string>

#include "harness.hpp"

namespace mediagate::testing_support {
namespace {

TEST(router, healthz) {
  service_harness h;
  auto r = h.get("/healthz");
  expect_text(r, 200, "ok\n");
  EXPECT_EQ(header(r, "Cache-Control"), "no-store");
  test_request head("HEAD", "/healthz");
  EXPECT_EQ(h.handle(head).status, 200u);
}

TEST(router, readyz_answers_503_while_draining) {
  service_harness h;
  auto ready = h.get("/readyz");
  expect_text(ready, 200, "ready\n");
  EXPECT_EQ(header(ready, "Cache-Control"), "no-store");
  h.draining = true;
  auto draining = h.get("/readyz");
  expect_text(draining, 503, "draining\n");
  EXPECT_EQ(header(draining, "Cache-Control"), "no-store");
  // Health stays 200: the process is alive, only leaving the pool.
  EXPECT_EQ(h.get("/healthz").status, 200u);
}

TEST(router, readyz_without_a_draining_flag_is_ready) {
  service_harness h;
  h.svc.draining = nullptr;
  expect_text(h.get("/readyz"), 200, "ready\n");
}

class metrics_access : public ::testing::Test {
 protected:
  void SetUp() override {
    h.sources.push_back([] { return std::string("extra_source_total 7\n"); });
  }
  response from(const std::string& peer, std::vector<std::pair<std::string, std::string>> headers = {}) {
    test_request req("GET", "/metrics", std::move(headers));
    req.peer = peer;
    return h.handle(req);
  }
  void expect_metrics(const response& r) {
    EXPECT_EQ(r.status, 200u);
    EXPECT_EQ(header(r, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_EQ(header(r, "Cache-Control"), "no-store");
    EXPECT_EQ(header(r, "Content-Length"), std::to_string(r.body.size()));
    EXPECT_TRUE(r.body.ends_with("extra_source_total 7\n")) << r.body;
    EXPECT_NE(r.body.find("mediagate_"), std::string::npos) << r.body;
  }
  service_harness h;
};

TEST_F(metrics_access, loopback_clients_only_without_token) {
  expect_metrics(from("127.0.0.1:5000"));
  expect_metrics(from("127.8.9.10:5000"));
  expect_metrics(from("::1:5000"));
  expect_metrics(from("::ffff:127.0.0.1:5000"));
  expect_text(from("10.0.0.1:5000"), 404, "not found\n");
  expect_text(from("192.168.1.127:5000"), 404, "not found\n");
  expect_text(from("::ffff:10.0.0.1:5000"), 404, "not found\n");
  expect_text(from("1127.0.0.1:5000"), 404, "not found\n");
}

TEST_F(metrics_access, token_replaces_the_loopback_rule) {
  h.config.metrics_token = "s3cret";
  expect_text(from("127.0.0.1:5000"), 404, "not found\n");  // loopback alone is no longer enough
  expect_metrics(from("10.0.0.1:5000", {{"Authorization", "Bearer s3cret"}}));
  expect_metrics(from("10.0.0.1:5000", {{"Authorization", "bearer s3cret"}}));
  expect_text(from("10.0.0.1:5000", {{"Authorization", "Bearer s3cre"}}), 404, "not found\n");
  expect_text(from("10.0.0.1:5000", {{"Authorization", "Bearer s3cretX"}}), 404, "not found\n");
  expect_text(from("10.0.0.1:5000", {{"Authorization", "Basic s3cret"}}), 404, "not found\n");
  expect_text(from("10.0.0.1:5000", {{"Authorization", "s3cret"}}), 404, "not found\n");
}

TEST(router, unknown_paths_are_404) {
  service_harness h;
  for (const char* target : {"/", "/nothing", "/healthz/", "/metricsx", "/api/media", "/v/abc", "/media"})
    expect_text(h.get(target), 404, "not found\n");
  EXPECT_EQ(h.store.counters().stats, 0);
}

TEST(router, target_that_is_not_a_path_is_400) {
  service_harness h;
  for (const char* target : {"*", "media/x", ""})
    expect_text(h.get(target), 400, "bad request: the target must be an absolute path\n");
}

TEST(router, absolute_form_target_is_reduced_to_its_path) {
  service_harness h;
  expect_text(h.get("http://example.test:8080/healthz"), 200, "ok\n");
}

TEST(router, write_methods_on_fixed_paths_are_405) {
  service_harness h;
  for (const char* m : {"POST", "PUT", "DELETE", "PATCH", "BREW"}) {
    test_request req(m, "/healthz");
    auto r = h.handle(req);
    expect_text(r, 405, "method not allowed\n");
    EXPECT_EQ(header(r, "Allow"), "GET, HEAD");
    EXPECT_FALSE(r.close);
  }
  // OPTIONS is answered everywhere (CORS preflights): 204 with what the path allows.
  test_request options("OPTIONS", "/healthz");
  auto o = h.handle(options);
  EXPECT_EQ(o.status, 204u);
  EXPECT_EQ(header(o, "Allow"), "GET, HEAD, OPTIONS");
  test_request chunked("POST", "/metrics");
  chunked.chunked = true;
  auto r = h.handle(chunked);
  EXPECT_EQ(r.status, 405u);
  EXPECT_TRUE(r.close);
  EXPECT_EQ(chunked.body.reads, 0);  // the body is never read
}

TEST(router, method_names_are_case_sensitive) {
  service_harness h;
  test_request req("get", "/healthz");
  EXPECT_EQ(h.handle(req).status, 405u);
}

}  // namespace
}  // namespace mediagate::testing_support
