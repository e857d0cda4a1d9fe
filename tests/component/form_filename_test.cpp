// A file name with a Windows path, as browsers send it (backslashes not escaped), keeps its backslashes
// through the parser, so that the upload is stored under its last component.
#include <gtest/gtest.h>

#include "server/api_form_data.hpp"

namespace mediagate::server {
namespace {

TEST(form_filename, backslashes_of_an_unescaped_windows_path_survive_the_parser) {
  form_data_parser p("B");
  ASSERT_TRUE(p.feed(
      "--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"C:\\videos\\clip.mp4\"\r\n\r\nx"
      "\r\n--B--\r\n"));
  ASSERT_TRUE(p.has_event());
  const auto e = p.pop_event();
  ASSERT_EQ(e.kind, form_event::part_begin);
  ASSERT_TRUE(e.header.filename.has_value());
  EXPECT_EQ(*e.header.filename, "C:\\videos\\clip.mp4");
}

TEST(form_filename, escaped_quotes_and_backslashes_are_undone) {
  form_data_parser p("B");
  ASSERT_TRUE(
      p.feed("--B\r\nContent-Disposition: form-data; name=\"a\\\\\"; filename=\"say "
             "\\\"hi\\\".mp4\"\r\n\r\nx\r\n--B--\r\n"));
  const auto e = p.pop_event();
  EXPECT_EQ(e.header.name, "a\\");
  ASSERT_TRUE(e.header.filename.has_value());
  EXPECT_EQ(*e.header.filename, "say \"hi\".mp4");
}

}  // namespace
}  // namespace mediagate::server
