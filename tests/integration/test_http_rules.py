"""RFC 9110 range and conditional request rules over real sockets (DESIGN.md "HTTP rules")."""

import unittest

import harness
import rawhttp
from harness import MediagateTestCase

DAY = 86400
R = "random.bin"  # 1 MiB of seeded pseudo-random bytes


class FullResponses(MediagateTestCase):
    def test_get_every_fixture(self):
        for key in self.fx.files:
            with self.subTest(key=key):
                self.assert_full(self.get(key), key)

    def test_content_types(self):
        expected = {
            "clip.mp4": "video/mp4",
            "clip-nofaststart.mp4": "video/mp4",
            "clip.webm": "video/webm",
            "image.jpg": "image/jpeg",
            "image.png": "image/png",
            "png-no-extension": "image/png",  # no extension: sniffed from the first bytes
            "sub/dir/x.jpg": "image/jpeg",
        }
        for key, media_type in expected.items():
            with self.subTest(key=key):
                r = self.get(key, method="HEAD")
                self.assertEqual(r.status, 200, r.describe())
                self.assertEqual(r.media_type(), media_type, r.describe())

    def test_validators_are_stable_and_distinct(self):
        a1, lm1 = self.validators("clip.mp4")
        a2, lm2 = self.validators("clip.mp4")
        b, _ = self.validators("clip.webm")
        self.assertEqual((a1, lm1), (a2, lm2), "ETag and Last-Modified must not change between requests")
        self.assertNotEqual(a1, b, "different files must have different ETags")

    def test_last_modified_is_the_storage_mtime(self):
        _, last_modified = self.validators("clip.mp4")
        if harness.STORAGE_MODE == "local":
            expected = harness.FIXED_MTIME  # every local fixture has it
        else:  # S3 sets LastModified at upload: the server must pass on the store's own date
            expected = self.fx.s3.client.head_object(Bucket=self.fx.s3.bucket, Key="clip.mp4")["LastModified"]
            expected = int(expected.timestamp())
        self.assertEqual(last_modified, rawhttp.http_date(expected))

    def test_head_has_the_headers_of_get_and_no_body(self):
        conn = self.connect()
        for key in ("clip.mp4", "image.png", "empty.bin", R):
            with self.subTest(key=key):
                head = self.get(key, method="HEAD", conn=conn)
                self.assert_full(head, key, method="HEAD")
                get = self.get(key, conn=conn)  # would read HEAD's stray body as a broken status line
                self.assert_full(get, key)
                for name in ("content-length", "content-type", "etag", "last-modified", "accept-ranges",
                             "cache-control"):
                    self.assertEqual(head.header(name), get.header(name), name)

    def test_head_ignores_range(self):
        # RFC 9110 §14.2: Range is only for GET.
        r = self.get(R, {"Range": "bytes=0-9"}, method="HEAD")
        self.assert_full(r, R, method="HEAD")

    def test_media_is_never_compressed(self):
        r = self.get("image.png", {"Accept-Encoding": "gzip, deflate, br"})
        self.assert_full(r, "image.png")

    def test_default_cache_control(self):
        r = self.get("clip.mp4", method="HEAD")
        self.assertTrue(r.header("cache-control"), r.describe())


class SingleRanges(MediagateTestCase):
    SIZE = 1 << 20

    def test_closed(self):
        for first, last in ((0, 0), (0, 99), (1000, 1999), (self.SIZE - 1, self.SIZE - 1), (0, self.SIZE - 1)):
            with self.subTest(range=(first, last)):
                self.assert_range(self.get(R, {"Range": f"bytes={first}-{last}"}), R, first, last)

    def test_open(self):
        for first in (0, 1000, self.SIZE - 1):
            with self.subTest(first=first):
                self.assert_range(self.get(R, {"Range": f"bytes={first}-"}), R, first, self.SIZE - 1)

    def test_suffix(self):
        for n in (1, 500, self.SIZE):
            with self.subTest(n=n):
                self.assert_range(self.get(R, {"Range": f"bytes=-{n}"}), R, self.SIZE - n, self.SIZE - 1)

    def test_suffix_longer_than_the_file_is_the_whole_file(self):
        r = self.get(R, {"Range": f"bytes=-{self.SIZE * 3}"})
        self.assert_range(r, R, 0, self.SIZE - 1)

    def test_end_past_the_size_is_clamped(self):
        r = self.get(R, {"Range": f"bytes={self.SIZE - 100}-{self.SIZE * 2}"})
        self.assert_range(r, R, self.SIZE - 100, self.SIZE - 1)

    def test_whitespace_and_empty_elements(self):
        # RFC 9110 §5.6.1: list elements may be empty and surrounded by OWS.
        for value in ("bytes= 10-19", "bytes=10-19 ,", "bytes=,10-19", "bytes= , 10-19 , ,"):
            with self.subTest(value=value):
                self.assert_range(self.get(R, {"Range": value}), R, 10, 19)
        self.assert_multipart(self.get(R, {"Range": "bytes= 0-1 , 5-6"}), R, [(0, 1), (5, 6)])

    def test_unsatisfiable(self):
        for value in (f"bytes={self.SIZE}-", f"bytes={self.SIZE}-{self.SIZE + 10}", "bytes=2000000-2000010",
                      "bytes=-0", f"bytes={self.SIZE}-,{self.SIZE + 5}-{self.SIZE + 9}"):
            with self.subTest(value=value):
                self.assert_unsatisfiable(self.get(R, {"Range": value}), R)

    def test_unsatisfiable_ranges_beside_a_satisfiable_one_are_dropped(self):
        # RFC 9110 §14.1.1; byte_range_test.cpp "past_end_with_good".
        self.assert_range(self.get(R, {"Range": f"bytes=0-9,{self.SIZE}-"}), R, 0, 9)

    def test_malformed_is_ignored(self):
        # The answers byte_range_test.cpp pins (kMalformed, kUnitsAndWhitespace): a syntactically invalid
        # ranges-specifier, an unknown unit, or a number that does not fit in 64 bits makes the server ignore the
        # header and send the whole representation (RFC 9110 §14.2), never 416, never a wrapped-around range.
        values = ["bytes=99999999999999999999999-", "bytes=0-99999999999999999999999",
                  "bytes=-99999999999999999999999", "bytes=18446744073709551615-18446744073709551616",
                  "bytes=18446744073709551616-", "bytes=18446744073709551617-18446744073709551618",
                  "bytes=0-1,18446744073709551616-18446744073709551617", "items=0-1", "bytes=5-2", "bytes=abc",
                  "bytes=", "bytes=-", "bytes=1-2-3", "bytes=0x10-20", "bytes=+1-2", "bytes=--1", "bytes=1.5-2",
                  "bytes 0-1", "=0-1", "bytes=0-1;x", "BYTES=0-1junk", "bytes=\t", "bytes=0-1,abc",
                  "bytes=0-1,9-8", "bytes=0-1 5-6", "bytes=,,"]
        for value in values:
            with self.subTest(value=value):
                self.assert_full(self.get(R, {"Range": value}), R)

    def test_numbers_at_the_64_bit_limit(self):
        # The largest value that fits is a number like any other (byte_range_test.cpp "end_is_u64_max",
        # "suffix_u64_max", "start_u64_max").
        top = (1 << 64) - 1
        self.assert_range(self.get(R, {"Range": f"bytes=5-{top}"}), R, 5, self.SIZE - 1)
        self.assert_range(self.get(R, {"Range": f"bytes=-{top}"}), R, 0, self.SIZE - 1)
        self.assert_unsatisfiable(self.get(R, {"Range": f"bytes={top}-"}), R)
        self.assert_unsatisfiable(self.get(R, {"Range": f"bytes={top}-{top}"}), R)

    def test_unit_is_case_insensitive(self):
        # RFC 9110 §14.1: range units are compared case-insensitively.
        r = self.get(R, {"Range": "Bytes=0-9"})
        self.assert_range(r, R, 0, 9)

    def test_empty_file_with_any_range_is_200_empty(self):
        for value in ("bytes=0-", "bytes=0-0", "bytes=-1", "bytes=-0", "bytes=5-10", "bytes=0-1,3-4"):
            with self.subTest(value=value):
                r = self.get("empty.bin", {"Range": value})
                self.assert_full(r, "empty.bin")
                self.assertEqual(r.body, b"")

    def test_range_on_media(self):
        size = self.fx.size("clip.mp4")
        self.assert_range(self.get("clip.mp4", {"Range": "bytes=100-"}), "clip.mp4", 100, size - 1)


class MultipleRanges(MediagateTestCase):
    SIZE = 1 << 20

    def test_two_ranges(self):
        r = self.get(R, {"Range": "bytes=0-99,200-299"})
        self.assert_multipart(r, R, [(0, 99), (200, 299)])

    def test_closed_open_and_suffix(self):
        r = self.get(R, {"Range": f"bytes=0-9, 500-599, {self.SIZE - 5}-, -10"})
        # The last two overlap: the whole request must be answered with 200.
        self.assert_full(r, R)
        r = self.get(R, {"Range": "bytes=0-9, 500-599, -10"})
        self.assert_multipart(r, R, [(0, 9), (500, 599), (self.SIZE - 10, self.SIZE - 1)])

    def test_order_as_requested(self):
        r = self.get(R, {"Range": "bytes=5000-5009,0-9"})
        self.assert_multipart(r, R, [(5000, 5009), (0, 9)])

    def test_clamped_part(self):
        r = self.get(R, {"Range": f"bytes=0-0,{self.SIZE - 3}-{self.SIZE + 100}"})
        self.assert_multipart(r, R, [(0, 0), (self.SIZE - 3, self.SIZE - 1)])

    def test_media_type_of_parts(self):
        size = self.fx.size("clip.webm")
        r = self.get("clip.webm", {"Range": f"bytes=0-1,{size - 2}-"})
        self.assert_multipart(r, "clip.webm", [(0, 1), (size - 2, size - 1)])

    def test_no_amplification(self):
        # DESIGN.md: overlapping ranges, ranges summing past the size, or too many → 200 with the whole file.
        values = ["bytes=0-99,50-149", "bytes=0-,0-", "bytes=0-0,0-0", f"bytes=-600000,0-600000",
                  "bytes=100-199,0-", "bytes=" + ",".join(f"{i * 2}-{i * 2}" for i in range(17))]
        for value in values:
            with self.subTest(value=value[:60]):
                self.assert_full(self.get(R, {"Range": value}), R)

    def test_sixteen_ranges_are_allowed(self):
        ranges = [(i * 10, i * 10 + 4) for i in range(16)]
        r = self.get(R, {"Range": "bytes=" + ",".join(f"{a}-{b}" for a, b in ranges)})
        self.assert_multipart(r, R, ranges)

    def test_multipart_then_next_request_on_the_same_connection(self):
        conn = self.connect()
        r = self.get(R, {"Range": "bytes=0-9,20-29"}, conn=conn)
        self.assert_multipart(r, R, [(0, 9), (20, 29)])
        self.assert_range(self.get(R, {"Range": "bytes=30-39"}, conn=conn), R, 30, 39)


class MaxRangesOption(MediagateTestCase):
    server_args = ["--max-ranges", "3"]

    def test_limit(self):
        self.assert_multipart(self.get(R, {"Range": "bytes=0-0,10-10,20-20"}), R, [(0, 0), (10, 10), (20, 20)])
        self.assert_full(self.get(R, {"Range": "bytes=0-0,10-10,20-20,30-30"}), R)


class Preconditions(MediagateTestCase):
    """RFC 9110 §13.2.2 order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range."""

    def setUp(self):
        self.etag, self.last_modified = self.validators(R)
        self.lm = rawhttp.parse_http_date(self.last_modified)

    def status(self, headers, method="GET", key=R):
        return self.get(key, headers, method=method)

    def assert_412(self, headers, method="GET"):
        r = self.status(headers, method)
        self.assertEqual(r.status, 412, f"{headers}:\n{r.describe()}")
        self.assert_framing(r, method)

    def assert_304(self, r, key=R):
        self.assertEqual(r.status, 304, r.describe())
        self.assert_media_headers(r, key)
        self.assertEqual(r.header("etag"), self.etag)
        self.assertEqual(r.header("last-modified"), self.last_modified)
        self.assertIsNone(r.header("content-range"), r.describe())
        length = r.header("content-length")
        if length is not None:  # RFC 9110 §8.6: only the length a 200 would have had
            self.assertEqual(length, str(self.fx.size(key)), r.describe())

    def test_if_match(self):
        for value in (self.etag, "*", f'"nope", {self.etag}', f'"a","b" , {self.etag}'):
            with self.subTest(value=value):
                self.assert_full(self.status({"If-Match": value}), R)
        for value in ('"nope"', "W/" + self.etag, '"nope", "other"'):
            with self.subTest(value=value):
                self.assert_412({"If-Match": value})
        self.assert_412({"If-Match": '"nope"'}, method="HEAD")

    def test_if_match_with_range(self):
        self.assert_range(self.status({"If-Match": self.etag, "Range": "bytes=0-9"}), R, 0, 9)
        self.assert_412({"If-Match": '"nope"', "Range": "bytes=0-9"})

    def test_if_unmodified_since(self):
        self.assert_full(self.status({"If-Unmodified-Since": self.last_modified}), R)
        self.assert_full(self.status({"If-Unmodified-Since": rawhttp.http_date(self.lm + DAY)}), R)
        self.assert_412({"If-Unmodified-Since": rawhttp.http_date(self.lm - DAY)})
        self.assert_412({"If-Unmodified-Since": rawhttp.http_date(self.lm - 1)})
        self.assert_412({"If-Unmodified-Since": rawhttp.http_date(self.lm - DAY), "Range": "bytes=0-9"})
        # An invalid date is ignored (RFC 9110 §13.1.4).
        self.assert_full(self.status({"If-Unmodified-Since": "not a date"}), R)

    def test_if_unmodified_since_is_ignored_with_if_match(self):
        r = self.status({"If-Match": self.etag, "If-Unmodified-Since": rawhttp.http_date(self.lm - DAY)})
        self.assert_full(r, R)
        self.assert_412({"If-Match": '"nope"', "If-Unmodified-Since": rawhttp.http_date(self.lm + DAY)})

    def test_if_none_match(self):
        for value in (self.etag, "W/" + self.etag, "*", f'"a", {self.etag}', f'"a",W/{self.etag}'):
            for method in ("GET", "HEAD"):
                with self.subTest(value=value, method=method):
                    self.assert_304(self.status({"If-None-Match": value}, method))
        for value in ('"nope"', '"a", "b"'):
            with self.subTest(value=value):
                self.assert_full(self.status({"If-None-Match": value}), R)

    def test_304_has_no_body(self):
        conn = self.connect()
        self.assert_304(self.get(R, {"If-None-Match": self.etag}, conn=conn))
        # Any stray body bytes would be read as the next status line.
        self.assert_range(self.get(R, {"Range": "bytes=0-3"}, conn=conn), R, 0, 3)

    def test_304_keeps_cache_headers(self):
        full = self.status({})
        r = self.status({"If-None-Match": self.etag})
        self.assert_304(r)
        self.assertEqual(r.header("cache-control"), full.header("cache-control"))
        self.assertEqual(r.header("vary"), full.header("vary"))

    def test_if_modified_since(self):
        for date in (self.last_modified, rawhttp.http_date(self.lm + DAY)):
            for method in ("GET", "HEAD"):
                with self.subTest(date=date, method=method):
                    self.assert_304(self.status({"If-Modified-Since": date}, method))
        self.assert_full(self.status({"If-Modified-Since": rawhttp.http_date(self.lm - DAY)}), R)
        self.assert_full(self.status({"If-Modified-Since": rawhttp.http_date(self.lm - 1)}), R)
        self.assert_full(self.status({"If-Modified-Since": "yesterday"}), R)

    def test_if_modified_since_is_ignored_with_if_none_match(self):
        r = self.status({"If-None-Match": '"nope"', "If-Modified-Since": self.last_modified})
        self.assert_full(r, R)
        r = self.status({"If-None-Match": self.etag, "If-Modified-Since": rawhttp.http_date(self.lm - DAY)})
        self.assert_304(r)

    def test_if_match_is_evaluated_before_if_none_match(self):
        self.assert_412({"If-Match": '"nope"', "If-None-Match": self.etag})
        self.assert_304(self.status({"If-Match": self.etag, "If-None-Match": self.etag}))

    def test_range_with_matching_if_none_match_is_304(self):
        self.assert_304(self.status({"Range": "bytes=0-9", "If-None-Match": self.etag}))
        self.assert_304(self.status({"Range": "bytes=0-9", "If-Modified-Since": self.last_modified}))

    def test_if_range_etag(self):
        self.assert_range(self.status({"Range": "bytes=0-9", "If-Range": self.etag}), R, 0, 9)
        self.assert_full(self.status({"Range": "bytes=0-9", "If-Range": '"nope"'}), R)
        self.assert_full(self.status({"Range": "bytes=0-9", "If-Range": "W/" + self.etag}), R)

    def test_if_range_date(self):
        self.assert_range(self.status({"Range": "bytes=0-9", "If-Range": self.last_modified}), R, 0, 9)
        self.assert_full(self.status({"Range": "bytes=0-9", "If-Range": rawhttp.http_date(self.lm - DAY)}), R)
        self.assert_full(self.status({"Range": "bytes=0-9", "If-Range": rawhttp.http_date(self.lm + DAY)}), R)

    def test_if_range_mismatch_with_multiple_ranges(self):
        self.assert_full(self.status({"Range": "bytes=0-9,20-29", "If-Range": '"nope"'}), R)
        self.assert_multipart(self.status({"Range": "bytes=0-9,20-29", "If-Range": self.etag}), R,
                              [(0, 9), (20, 29)])

    def test_if_range_without_range_is_ignored(self):
        self.assert_full(self.status({"If-Range": '"nope"'}), R)

    def test_if_range_mismatch_beats_unsatisfiable_range(self):
        # If-Range fails → the Range header is ignored entirely, even an unsatisfiable one.
        self.assert_full(self.status({"Range": "bytes=2000000-", "If-Range": '"nope"'}), R)


class CacheControlOption(MediagateTestCase):
    server_args = ["--cache-control", "public, max-age=60"]

    def test_configured_value_on_every_status(self):
        etag, _ = self.validators(R)
        for headers in ({}, {"Range": "bytes=0-9"}, {"If-None-Match": etag}):
            with self.subTest(headers=headers):
                r = self.get(R, headers)
                self.assertIn(r.status, (200, 206, 304), r.describe())
                self.assertEqual(r.header("cache-control"), "public, max-age=60", r.describe())
        r = self.get(R, method="HEAD")
        self.assertEqual(r.header("cache-control"), "public, max-age=60", r.describe())


if __name__ == "__main__":
    unittest.main()
