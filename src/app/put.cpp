// `mediagate put`: one local file uploaded to S3 (multipart for large files).
#include <cstdio>
#include <fstream>
#include <memory>
#include <span>

#include "app/commands.hpp"
#include "app/run_sync.hpp"
#include "app/storage_setup.hpp"
#include "common/body_source.hpp"
#include "http/content_type.hpp"
#include "s3/upload.hpp"

namespace mediagate::app {
namespace {

namespace net = boost::asio;

// Uploads the whole of `in` as `key`.
storage::result<s3::upload_result> upload(const s3_setup& setup, const std::string& key,
                                          const std::string& content_type,
                                          std::shared_ptr<std::ifstream> in) {
  return run_sync<storage::result<s3::upload_result>>([&](net::io_context& io) {
    auto client = make_client(io, setup);
    body_source source = [in](std::span<char> buf) -> net::awaitable<storage::result<std::size_t>> {
      in->read(buf.data(), static_cast<std::streamsize>(buf.size()));
      if (in->bad()) co_return storage::error{storage::errc::io_error, "reading the file failed"};
      co_return static_cast<std::size_t>(in->gcount());
    };
    return [](std::shared_ptr<s3::client> c, std::string k, std::string t,
              body_source src) -> net::awaitable<storage::result<s3::upload_result>> {
      co_return co_await s3::upload_object(*c, k, t, src);
    }(client, key, content_type, source);
  });
}

}  // namespace

int run_put(const put_options& o) {
  auto resolved = resolve_s3(o.s3, o.destination);
  if (auto* message = std::get_if<std::string>(&resolved)) {
    std::fprintf(stderr, "mediagate: %s\n", message->c_str());
    return 2;
  }
  auto setup = std::get<s3_setup>(resolved);
  if (setup.where.prefix.size() <= 1) {
    std::fprintf(stderr, "mediagate: the destination must name a key: s3://BUCKET/KEY\n");
    return 2;
  }
  const auto key = setup.where.prefix.substr(0, setup.where.prefix.size() - 1);
  const auto content_type =
      o.content_type.empty() ? std::string(http::content_type_for_key(key)) : o.content_type;
  auto in = std::make_shared<std::ifstream>(o.file, std::ios::binary);
  if (!*in) {
    std::fprintf(stderr, "mediagate: cannot read %s\n", o.file.c_str());
    return 1;
  }
  auto uploaded = upload(setup, key, content_type, in);
  if (!uploaded) {
    std::fprintf(stderr, "mediagate: upload of %s failed: %s\n", o.file.c_str(),
                 uploaded.err().message.c_str());
    return 1;
  }
  std::printf("uploaded %s to s3://%s/%s (%llu bytes, ETag %s)\n", o.file.c_str(), setup.where.bucket.c_str(),
              key.c_str(), static_cast<unsigned long long>(uploaded->size), uploaded->etag.c_str());
  return 0;
}

}  // namespace mediagate::app
