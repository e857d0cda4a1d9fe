#pragma once
// A fresh directory under the test temp dir, removed with everything in it at the end of the test.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>
#include <string>

namespace mediagate::testing_support {

class temp_dir {
 public:
  explicit temp_dir(const char* prefix = "mediagate-test") {
    std::string pattern =
        (std::filesystem::path(testing::TempDir()) / (std::string(prefix) + "-XXXXXX")).string();
    if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = pattern;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace mediagate::testing_support
