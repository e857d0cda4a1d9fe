"""Where the slice cache may live, with the real binary (issue 11, "Lost or exposed files").

`--cache-dir` equal to the media directory once made start-up delete every file in media/tmp/. Now a cache
directory that is, contains or lies inside the media directory, or that holds files the cache did not
write, is refused with a message saying why, and nothing is deleted. Leftover upload temporaries of the
local storage (a crash mid-upload) are removed at start-up: only ours, proven by name and an hour without
writes.

Needs no S3 and no media fixtures. Run from tests/integration:
MEDIAGATE_BIN=build/mediagate /usr/bin/python3 -m unittest -v test_cache_dir   (CTest: integration_cache_dir)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import types
import unittest
from pathlib import Path

import harness
import rawhttp

HOUR = 3600


class CacheDirTest(unittest.TestCase):
    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="mediagate-cache-dir-it-"))
        self.addCleanup(shutil.rmtree, self.tmp, ignore_errors=True)
        self.media = self.tmp / "media"
        (self.media / "tmp").mkdir(parents=True)
        self.user_file = self.media / "tmp" / "draft.txt"
        self.user_file.write_text("the user's own file")
        (self.media / "clip.bin").write_bytes(os.urandom(4096))
        self.catalog = self.tmp / "db" / "mediagate.db"
        self.catalog.parent.mkdir()

    def args(self, cache_dir: Path | str) -> list[str]:
        return ["--storage", str(self.media), "--catalog", f"sqlite:{self.catalog}", "--cache-dir", str(cache_dir),
                "--access-log", "off"]

    def refused(self, cache_dir: Path | str, why: str) -> str:
        """Runs serve, which must exit at once with a message containing `why`; returns its output."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        r = subprocess.run([str(harness.binary()), "serve", "--listen", "127.0.0.1:0", *self.args(cache_dir)],
                           cwd=self.tmp, env=env, capture_output=True, text=True, timeout=30)
        out = r.stdout + r.stderr
        self.assertNotEqual(r.returncode, 0, f"serve started with --cache-dir {cache_dir}:\n{out}")
        self.assertIn(why, out)
        self.assertNotIn("listening on", out)
        return out

    def start(self, cache_dir: Path) -> harness.Server:
        fx = types.SimpleNamespace(tmp=self.tmp, storage_args=self.args(cache_dir),
                                   server_env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
        server = harness.Server(fx, name=self.id().rsplit(".", 1)[-1], inherit_env=False)
        self.addCleanup(server.stop)
        return server

    def assert_user_files_intact(self) -> None:
        self.assertEqual(self.user_file.read_text(), "the user's own file")
        self.assertEqual(sorted(p.name for p in (self.media / "tmp").iterdir()), ["draft.txt"])
        self.assertFalse((self.media / ".mediagate-cache").exists(), "the media directory was marked as a cache")

    def test_cache_dir_equal_to_the_media_directory_is_refused(self) -> None:
        for spelling in (self.media, f"{self.media}/", self.media / "tmp" / ".."):
            with self.subTest(cache_dir=str(spelling)):
                out = self.refused(spelling, "is the media directory")
                self.assertIn("outside the media directory", out)
                self.assert_user_files_intact()

    def test_a_symbolic_link_to_the_media_directory_is_refused(self) -> None:
        link = self.tmp / "cache-link"
        link.symlink_to(self.media)
        self.refused(link, "is the media directory")
        self.assert_user_files_intact()

    def test_cache_dir_inside_or_around_the_media_directory_is_refused(self) -> None:
        self.refused(self.media / ".cache", "lies inside the media directory")
        self.assertFalse((self.media / ".cache").exists(), "the refused directory was created")
        self.refused(self.tmp, "contains the media directory")
        self.assert_user_files_intact()

    def test_hls_index_dir_inside_the_media_directory_is_refused(self) -> None:
        """--hls-index-dir keeps moov copies that must not be served or scanned as media: the same rule."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        separate = self.tmp / "cache"
        for index_dir, why in ((self.media / "idx", "lies inside the media directory"),
                               (self.media, "is the media directory")):
            r = subprocess.run([str(harness.binary()), "serve", "--listen", "127.0.0.1:0", *self.args(separate),
                                "--hls-index-dir", str(index_dir)],
                               cwd=self.tmp, env=env, capture_output=True, text=True, timeout=30)
            out = r.stdout + r.stderr
            self.assertNotEqual(r.returncode, 0, out)
            self.assertIn(f"--hls-index-dir {index_dir} {why}", out)
            self.assertNotIn("listening on", out)
        self.assertFalse((self.media / "idx").exists())
        self.assert_user_files_intact()

    def test_cache_dir_equal_to_the_catalogs_directory_is_refused(self) -> None:
        self.refused(self.catalog.parent, "is the directory of the catalog")

    def test_a_directory_of_other_files_is_refused_and_kept(self) -> None:
        other = self.tmp / "other"
        (other / "tmp").mkdir(parents=True)
        (other / "tmp" / "notes.txt").write_text("keep")
        (other / "photo.jpg").write_bytes(b"\xff\xd8 keep")
        self.refused(other, "is not empty and is not a mediagate cache")
        self.assertEqual((other / "tmp" / "notes.txt").read_text(), "keep")
        self.assertEqual(sorted(p.name for p in other.iterdir()), ["photo.jpg", "tmp"])

    def test_a_separate_cache_dir_starts_and_stale_upload_temporaries_are_removed(self) -> None:
        shows = self.media / "shows"
        shows.mkdir()
        stale = shows / ".ep1.mp4.upload-00000000deadbeef"
        recent = self.media / ".ep2.mp4.upload-00000000cafef00d"
        lookalike = self.media / "tmp" / ".draft.upload-notes"
        for p in (stale, recent, lookalike):
            p.write_bytes(b"partial upload")
        old = time.time() - 2 * HOUR
        os.utime(stale, (old, old))
        os.utime(lookalike, (old, old))
        cache = self.tmp / "cache"
        server = self.start(cache)
        self.assertFalse(stale.exists(), "an upload temporary idle for two hours survived start-up")
        self.assertTrue(recent.exists(), "a recent upload temporary (perhaps in progress) was removed")
        self.assertTrue(lookalike.exists())
        self.assertEqual(self.user_file.read_text(), "the user's own file")
        self.assertTrue((cache / ".mediagate-cache").is_file())
        self.assertTrue((cache / "tmp").is_dir())
        with rawhttp.Connection(server.port, timeout=10) as c:
            r = c.request("GET", "/media/clip.bin")
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.body, (self.media / "clip.bin").read_bytes())
        server.stop()
        # Restarting on the same cache directory works, and still deletes nothing of the user's.
        again = self.start(cache)
        self.assertIsNone(again.health_problem())
        self.assertEqual(self.user_file.read_text(), "the user's own file")
        self.assertTrue(lookalike.exists())


if __name__ == "__main__":
    unittest.main()
