"""The request sequences real browsers send to a <video> element (DESIGN.md "Browsers"), each on one
keep-alive connection, as the browsers do."""

import struct
import unittest
import uuid

from harness import MediagateTestCase

SAFARI = {
    "User-Agent": "AppleCoreMedia/1.0.0.21A329 (Macintosh; U; Intel Mac OS X 14_0; en_us)",
    "Accept": "*/*",
    "Accept-Language": "en-US,en;q=0.9",
    "Accept-Encoding": "identity",
    "Connection": "keep-alive",
}
CHROME = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 "
                  "Safari/537.36",
    "Accept": "*/*",
    "Accept-Encoding": "identity;q=1, *;q=0",
    "Accept-Language": "en-US,en;q=0.9",
    "Connection": "keep-alive",
    "Sec-Fetch-Dest": "video",
    "Sec-Fetch-Mode": "no-cors",
    "Sec-Fetch-Site": "same-origin",
}
FIREFOX = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
    "Accept": "video/webm,video/ogg,video/*;q=0.9,application/ogg;q=0.7,audio/*;q=0.6,*/*;q=0.5",
    "Accept-Language": "en-US,en;q=0.5",
    "Accept-Encoding": "identity",
    "Connection": "keep-alive",
    "Sec-Fetch-Dest": "video",
}


def top_level_boxes(data: bytes) -> dict[str, int]:
    """Offsets of the top-level ISO BMFF boxes (ftyp, moov, mdat, ...) of an MP4."""
    boxes, pos = {}, 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8:pos + 16])[0]
        elif size == 0:
            size = len(data) - pos
        boxes.setdefault(kind.decode("latin-1"), pos)
        pos += size
    return boxes


class BrowserSequences(MediagateTestCase):
    def with_range(self, base, value, **extra):
        return {**base, "Range": value, **extra}

    def assert_kept_alive(self, r):
        self.assertNotIn("close", (r.header("connection") or "").lower(), r.describe())

    def test_safari(self):
        for key in ("clip.mp4", "clip-nofaststart.mp4"):
            with self.subTest(key=key):
                size = self.fx.size(key)
                headers = dict(SAFARI, **{"X-Playback-Session-Id": str(uuid.uuid4()).upper()})
                conn = self.connect()
                # The probe: anything but this exact 206 stops playback.
                r = self.get(key, self.with_range(headers, "bytes=0-1"), conn=conn)
                self.assertEqual(r.status, 206, f"Safari's bytes=0-1 probe must get 206:\n{r.describe()}")
                self.assertEqual(r.header("content-range"), f"bytes 0-1/{size}")
                self.assertEqual(r.header("content-length"), "2")
                self.assert_range(r, key, 0, 1)
                self.assert_kept_alive(r)
                moov = top_level_boxes(self.fx.content(key))["moov"]
                for first, last in ((0, size - 1), (moov, min(moov + 65535, size - 1)), (size // 2, size // 2 + 65535),
                                    (size - 1000, size - 1), (4096, 8191), (size - 1, size - 1)):
                    r = self.get(key, self.with_range(headers, f"bytes={first}-{last}"), conn=conn)
                    self.assert_range(r, key, first, last)
                    self.assert_kept_alive(r)

    def test_chrome(self):
        for key in ("clip.mp4", "clip-nofaststart.mp4", "clip.webm"):
            with self.subTest(key=key):
                size = self.fx.size(key)
                conn = self.connect()
                r = self.get(key, self.with_range(CHROME, "bytes=0-"), conn=conn)
                # Chrome disables seeking unless bytes=0- gets a 206.
                self.assertEqual(r.status, 206, f"Chrome's bytes=0- must get 206:\n{r.describe()}")
                self.assert_range(r, key, 0, size - 1)
                self.assert_kept_alive(r)
                etag = r.header("etag")
                seeks = [size // 3, size // 2, size - 5000, 100]
                if key.endswith(".mp4"):
                    seeks.insert(0, top_level_boxes(self.fx.content(key))["moov"])
                for first in seeks:
                    r = self.get(key, self.with_range(CHROME, f"bytes={first}-"), conn=conn)
                    self.assert_range(r, key, first, size - 1)
                    self.assert_kept_alive(r)
                # Revalidation of what the media cache holds.
                for first in (0, size // 4):
                    r = self.get(key, self.with_range(CHROME, f"bytes={first}-", **{"If-Range": etag}), conn=conn)
                    self.assert_range(r, key, first, size - 1)
                    self.assertEqual(r.header("etag"), etag)

    def test_firefox(self):
        for key in ("clip.webm", "clip.mp4"):
            with self.subTest(key=key):
                size = self.fx.size(key)
                conn = self.connect()
                r = self.get(key, self.with_range(FIREFOX, "bytes=0-"), conn=conn)
                self.assert_range(r, key, 0, size - 1)
                for first in (size // 2, size - 100000, 12345, size - 1):
                    r = self.get(key, self.with_range(FIREFOX, f"bytes={first}-"), conn=conn)
                    self.assert_range(r, key, first, size - 1)
                    self.assert_kept_alive(r)

    def test_moov_box_is_where_the_file_says(self):
        # Sanity check of the fixtures the sequences above rely on.
        fast = top_level_boxes(self.fx.content("clip.mp4"))
        slow = top_level_boxes(self.fx.content("clip-nofaststart.mp4"))
        self.assertLess(fast["moov"], fast["mdat"])
        self.assertGreater(slow["moov"], slow["mdat"])


if __name__ == "__main__":
    unittest.main()
