// Media types by extension, and which stored types say nothing about the content (DESIGN.md "Content-Type").
#include "http/content_type.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <string>
#include <string_view>

namespace mediagate::http {
namespace {

struct ext_case {
  const char* ext;
  const char* type;
};

// Every extension of the table, with the type a browser expects for it.
const ext_case kTable[] = {
    {"3g2", "video/3gpp2"},
    {"3gp", "video/3gpp"},
    {"aac", "audio/aac"},
    {"aif", "audio/aiff"},
    {"aiff", "audio/aiff"},
    {"apng", "image/apng"},
    {"avi", "video/x-msvideo"},
    {"avif", "image/avif"},
    {"bmp", "image/bmp"},
    {"caf", "audio/x-caf"},
    {"css", "text/css; charset=utf-8"},
    {"flac", "audio/flac"},
    {"gif", "image/gif"},
    {"heic", "image/heic"},
    {"heif", "image/heif"},
    {"htm", "text/html; charset=utf-8"},
    {"html", "text/html; charset=utf-8"},
    {"ico", "image/x-icon"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"js", "text/javascript; charset=utf-8"},
    {"json", "application/json"},
    {"jxl", "image/jxl"},
    {"m2ts", "video/mp2t"},
    {"m3u", "audio/x-mpegurl"},
    {"m3u8", "application/vnd.apple.mpegurl"},
    {"m4a", "audio/mp4"},
    {"m4s", "video/iso.segment"},
    {"m4v", "video/x-m4v"},
    {"mid", "audio/midi"},
    {"mka", "audio/x-matroska"},
    {"mkv", "video/x-matroska"},
    {"mov", "video/quicktime"},
    {"mp3", "audio/mpeg"},
    {"mp4", "video/mp4"},
    {"mpd", "application/dash+xml"},
    {"mpeg", "video/mpeg"},
    {"mpg", "video/mpeg"},
    {"oga", "audio/ogg"},
    {"ogg", "audio/ogg"},
    {"ogv", "video/ogg"},
    {"opus", "audio/ogg"},
    {"pdf", "application/pdf"},
    {"png", "image/png"},
    {"srt", "application/x-subrip"},
    {"svg", "image/svg+xml"},
    {"tif", "image/tiff"},
    {"tiff", "image/tiff"},
    {"ts", "video/mp2t"},
    {"txt", "text/plain; charset=utf-8"},
    {"vtt", "text/vtt; charset=utf-8"},
    {"wav", "audio/wav"},
    {"webm", "video/webm"},
    {"webp", "image/webp"},
};

void PrintTo(const ext_case& c, std::ostream* os) { *os << c.ext; }

class content_type_table : public ::testing::TestWithParam<ext_case> {};

std::string upper(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

TEST_P(content_type_table, every_spelling_of_the_extension) {
  const auto& c = GetParam();
  const std::string ext = c.ext;
  EXPECT_EQ(content_type_for_key("file." + ext), c.type);
  EXPECT_EQ(content_type_for_key("a/b/c/file." + ext), c.type);
  EXPECT_EQ(content_type_for_key("file." + upper(ext)), c.type);
  std::string mixed = ext;
  mixed[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(mixed[0])));
  EXPECT_EQ(content_type_for_key("dir.v2/My Movie (2024).final." + mixed), c.type);
  EXPECT_EQ(content_type_for_key("x." + ext + "x"), std::string_view())
      << "a longer extension is another one";
  EXPECT_EQ(content_type_for_key("file." + ext + ".part"), std::string_view());
  EXPECT_EQ(content_type_for_key("file." + ext + "/"), std::string_view()) << "a directory, not a file";
  EXPECT_EQ(content_type_for_key(ext), std::string_view()) << "a name without a dot has no extension";
}

INSTANTIATE_TEST_SUITE_P(table, content_type_table, ::testing::ValuesIn(kTable),
                         [](const auto& info) { return std::string(info.param.ext); });

TEST(content_type_for_key, common_media) {
  EXPECT_EQ(content_type_for_key("movies/clip.MP4"), "video/mp4");
  EXPECT_EQ(content_type_for_key("a/b.WebM"), "video/webm");
  EXPECT_EQ(content_type_for_key("song.Mp3"), "audio/mpeg");
  EXPECT_EQ(content_type_for_key("caf\xC3\xA9/\xE2\x9C\x93.mkv"), "video/x-matroska");
}

TEST(content_type_for_key, unknown_or_missing_extensions) {
  for (const char* key : {"",          "noext",        "dir/noext", "file.",         "dir/file.",
                          ".",         "..",           "a.b/noext", "dir.mp4/file",  "archive.tar.gz",
                          "file.exe",  "file.mp4x",    "file.xmp4", "file.m p4",     "file.mp4 ",
                          "file. mp4", "file.mp4\x01", "file.mp",   "file.abcdefgh", "file.\xC3\xA9",
                          "file.mp4;", "file.mp4?x=1"})
    EXPECT_EQ(content_type_for_key(key), std::string_view()) << "[" << key << "]";
}

TEST(content_type_for_key, a_nul_byte_is_not_the_end_of_the_extension) {
  using namespace std::string_view_literals;
  EXPECT_EQ(content_type_for_key("file.ts\0"sv), std::string_view());
  EXPECT_EQ(content_type_for_key("file.mp\0"sv), std::string_view());
  EXPECT_EQ(content_type_for_key("file.\0ts"sv), std::string_view());
  EXPECT_EQ(content_type_for_key("file.ts"sv), "video/mp2t");
}

TEST(content_type_for_key, last_extension_wins) {
  EXPECT_EQ(content_type_for_key("clip.webm.mp4"), "video/mp4");
  EXPECT_EQ(content_type_for_key("clip.mp4.webm"), "video/webm");
  EXPECT_EQ(content_type_for_key("a.png/b.jpg"), "image/jpeg");
}

TEST(is_generic_type, generic) {
  for (const char* type :
       {"", " ", "binary/octet-stream", "application/octet-stream", "Application/Octet-Stream",
        "BINARY/OCTET-STREAM", "application/octet-stream; charset=binary", " application/octet-stream ",
        "application/octet-stream;", "binary/octet-stream;x=y", "\tbinary/octet-stream\t", ";"})
    EXPECT_TRUE(is_generic_type(type)) << "[" << type << "]";
}

TEST(is_generic_type, specific) {
  for (const char* type : {"video/mp4", "video/webm", "audio/mpeg", "text/plain", "text/plain; charset=utf-8",
                           "application/json", "application/octet-streams", "application/octet",
                           "binary/octet-stream-x", "xapplication/octet-stream", "octet-stream",
                           "application/x-octet-stream", "image/png;type=application/octet-stream"})
    EXPECT_FALSE(is_generic_type(type)) << "[" << type << "]";
}

}  // namespace
}  // namespace mediagate::http
