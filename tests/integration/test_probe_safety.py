"""Probing is safe on untrusted media (issue 11): ffprobe and ffmpeg read nothing but the item itself, and a
probe that hangs neither stalls the others nor outlives its deadline or the server.

Request forgery: one stored file for each playlist-like or referring format FFmpeg understands, each pointing
at a listener on 127.0.0.1 (TCP, and UDP on the same port for RTP) that must see nothing at all; each item
ends "not probed" with the reason in the API, while real media beside them is probed as before.

Deadlines: no real input can make the whitelisted ffprobe wait (nothing it may open can hang), so these
tests pass --ffprobe a stand-in script that waits, with a grandchild, for keys containing "hang" and runs
the real ffprobe for everything else.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import struct
import threading
import time
import unittest
from pathlib import Path

import harness
from test_api import TOKEN, Client, Storage, start_server

REAL_FFPROBE = "/usr/bin/ffprobe"


class Listener:
    """A TCP accept loop and a UDP socket on one loopback port; counts whatever reaches them."""

    def __init__(self) -> None:
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(16)
        self.port = self.tcp.getsockname()[1]
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        self.seen: list[str] = []
        self._stop = False
        self._threads = [threading.Thread(target=self._accept, daemon=True),
                         threading.Thread(target=self._receive, daemon=True)]
        for t in self._threads:
            t.start()

    def _accept(self) -> None:
        self.tcp.settimeout(0.2)
        while not self._stop:
            try:
                conn, _ = self.tcp.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn.settimeout(1)
            try:
                first = conn.recv(200)
            except OSError:
                first = b""
            self.seen.append(f"tcp: {first!r}")
            conn.close()

    def _receive(self) -> None:
        self.udp.settimeout(0.2)
        while not self._stop:
            try:
                data, peer = self.udp.recvfrom(2048)
            except socket.timeout:
                continue
            except OSError:
                return
            self.seen.append(f"udp from {peer}: {data[:40]!r}")

    def close(self) -> None:
        self._stop = True
        for t in self._threads:
            t.join(timeout=2)
        self.tcp.close()
        self.udp.close()


def _box(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", 8 + len(payload)) + kind + payload


def mp4_with_dref(mp4: bytes, url: str) -> bytes:
    """The MP4 with every track's data reference replaced by a `url ` entry naming `url` (not self-contained).
    The input has `mdat` before `moov`, so no chunk offset moves when `moov` grows."""
    containers = {b"moov", b"trak", b"mdia", b"minf", b"dinf"}

    def rewrite(data: bytes) -> bytes:
        out, i = b"", 0
        while i + 8 <= len(data):
            size, kind = struct.unpack(">I4s", data[i:i + 8])
            payload = data[i + 8:i + size]
            if kind in containers:
                out += _box(kind, rewrite(payload))
            elif kind == b"dref":
                entry = _box(b"url ", b"\x00\x00\x00\x00" + url.encode() + b"\x00")  # flags 0: data elsewhere
                out += _box(b"dref", b"\x00\x00\x00\x00" + struct.pack(">I", 1) + entry)
            else:
                out += data[i:i + size]
            i += size
        return out

    result = rewrite(mp4)
    assert result.count(url.encode()) >= 1, "no dref box found"
    return result


def referring_files(port: int) -> dict[str, bytes]:
    """Key -> content: every kind of file with which FFmpeg would open another URL, under names the library
    catalogues (so each is probed), pointing at the listener."""
    base = f"http://127.0.0.1:{port}"
    hls = (f"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
           f"#EXTINF:10.0,\n{base}/segment0.ts\n#EXT-X-ENDLIST\n").encode()
    master = (f"#EXTM3U\n#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"s\",NAME=\"en\",URI=\"{base}/subs.m3u8\"\n"
              f"#EXT-X-STREAM-INF:BANDWIDTH=100000,SUBTITLES=\"s\"\n{base}/variant.m3u8\n").encode()
    dash = (f"<?xml version=\"1.0\"?>\n<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" "
            f"mediaPresentationDuration=\"PT10S\" minBufferTime=\"PT1S\" "
            f"profiles=\"urn:mpeg:dash:profile:isoff-on-demand:2011\">\n<BaseURL>{base}/dash/</BaseURL>\n"
            f"<Period><AdaptationSet mimeType=\"video/mp4\"><Representation id=\"1\" bandwidth=\"100000\" "
            f"codecs=\"avc1.42c01e\" width=\"64\" height=\"48\"><BaseURL>{base}/dash/video.mp4</BaseURL>"
            f"</Representation></AdaptationSet></Period>\n</MPD>\n").encode()
    sdp = (f"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=probe\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
           f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n").encode()
    files = {
        "hls-as.mp4": hls,                        # the reported case: a playlist uploaded under a video name
        "playlist.m3u": hls,                      # scanned as .m3u (audio/x-mpegurl)
        "hls-master.mkv": master,                 # variants and subtitle renditions
        "hls-in.ts": hls,
        "hls-as.jpg": hls,                        # images are read with their own demuxer (jpeg_pipe)
        "hls-rtsp.mp3": (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                         f"rtsp://127.0.0.1:{port}/stream\n#EXT-X-ENDLIST\n").encode(),
        "hls-indirect.ogg": (f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n"
                             f"subfile,,start,0,end,0,,:{base}/sub\n#EXTINF:10,\n"
                             f"concat:{base}/a|{base}/b\n#EXT-X-ENDLIST\n").encode(),
        "dash.mp4": dash,
        "ffconcat.webm": f"ffconcat version 1.0\nfile {base}/part1.mp4\nfile '{base}/part2.mp4'\n".encode(),
        "session.mp4": sdp,                       # SDP: RTP over UDP to the listener's port
        "plain-list.m3u": f"#EXTM3U\n#EXTINF:-1,remote\n{base}/remote.mp4\n".encode(),
        "dref.mp4": mp4_with_dref((harness.build_cache() / "clip-nofaststart.mp4").read_bytes(),
                                  f"{base}/dref-target.mp4"),
    }
    return files


# Real media with a reference in it, which must be read without following the reference.
READ_FROM_ITSELF = {"dref.mp4"}


def wait_settled(api: Client, count: int, timeout: float = 90.0) -> dict[str, dict]:
    """Items by key once `count` items are each probed or failed with a reason."""
    deadline = time.monotonic() + timeout
    while True:
        items = api.items()
        if len(items) >= count and all(i["probed"] or i["probe_error"] for i in items):
            return {i["key"]: i for i in items}
        if time.monotonic() > deadline:
            raise AssertionError(f"items not settled within {timeout}s: {items}")
        time.sleep(0.2)


class ProbeReadsOnlyTheItem(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.listener = Listener()
        cls.storage = Storage(cls.__name__)
        cls.files = referring_files(cls.listener.port)
        for key, data in cls.files.items():
            cls.storage.put(key, data)
        cls.real = (harness.build_cache() / "clip.webm").read_bytes()
        cls.storage.put("real.webm", cls.real)
        cls.server = start_server(cls.storage, ["--scan-on-start", "--admin-token", TOKEN], cls.__name__)
        cls.api = Client(cls.server.port)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.listener.close()
        cls.storage.cleanup()

    def run(self, result=None):
        return harness.run_reporting_server_output(self, result, super().run, lambda: (
            f"\nlast server output:\n{self.server.output(40)}"))

    def test_no_referring_file_reaches_the_network(self):
        # One more, uploaded rather than scanned: the path of the report.
        status, _, body = self.api.request("PUT", "/api/media/uploads/internal.mp4", body=self.files["hls-as.mp4"],
                                           token=TOKEN)
        self.assertIn(status, (200, 201), body)
        items = wait_settled(self.api, len(self.files) + 2)
        time.sleep(1.0)  # anything already on its way arrives
        self.assertEqual(self.listener.seen, [], "probing reached the listener")
        for key in [*self.files, "uploads/internal.mp4"]:
            if key in READ_FROM_ITSELF:
                continue
            with self.subTest(key=key):
                item = items[key]
                self.assertFalse(item["probed"], item)
                self.assertIsInstance(item["probe_error"], str, item)
                self.assertTrue(item["probe_error"], item)
                self.assertIsNone(item["poster"], item)
                self.assertIsNone(item["duration"], item)
        # Formats that FFmpeg recognises are refused by name of format, before anything is opened.
        for key in ("hls-as.mp4", "playlist.m3u", "dash.mp4", "ffconcat.webm", "session.mp4", "uploads/internal.mp4"):
            self.assertIn("not a media format the library accepts", items[key]["probe_error"], key)
        # An MP4 whose data reference names a URL is read from its own bytes (references stay off).
        for key in READ_FROM_ITSELF:
            self.assertTrue(items[key]["probed"], items[key])
            self.assertAlmostEqual(items[key]["duration"], 10.0, delta=0.2)
        # Real media beside them is probed as before, poster included.
        real = items["real.webm"]
        self.assertTrue(real["probed"], real)
        self.assertIsNone(real["probe_error"], real)
        self.assertAlmostEqual(real["duration"], 10.0, delta=0.2)
        self.assertIsNotNone(real["poster"], real)
        status, _, poster = self.api.request("GET", real["poster"])
        self.assertEqual(status, 200)
        self.assertTrue(poster.startswith(b"\xff\xd8"), "poster is not a JPEG")

    def test_a_replaced_object_is_probed_again_and_loses_its_reason(self):
        status, _, body = self.api.request("PUT", "/api/media/replaced.webm", body=self.files["hls-as.mp4"],
                                           token=TOKEN)
        self.assertIn(status, (200, 201), body)
        deadline = time.monotonic() + 60
        while not (item := self._by_key("replaced.webm"))["probe_error"]:
            self.assertLess(time.monotonic(), deadline, item)
            time.sleep(0.2)
        status, _, body = self.api.request("PUT", "/api/media/replaced.webm", body=self.real, token=TOKEN)
        self.assertIn(status, (200, 201), body)
        deadline = time.monotonic() + 60
        while not (item := self._by_key("replaced.webm"))["probed"]:
            self.assertLess(time.monotonic(), deadline, item)
            time.sleep(0.2)
        self.assertIsNone(item["probe_error"], item)
        self.assertAlmostEqual(item["duration"], 10.0, delta=0.2)

    def _by_key(self, key: str) -> dict:
        return next(i for i in self.api.items() if i["key"] == key)


def write_hanging_ffprobe(directory: Path) -> Path:
    """A stand-in for ffprobe: for a URL containing "hang" it starts `sleep 1000` (its pid in
    <directory>/<name>.pid), and waits for it; otherwise it runs the real ffprobe."""
    script = directory / "hanging-ffprobe"
    script.write_text(f"""#!/bin/sh
for arg in "$@"; do input="$arg"; done
case "$input" in
  *hang*)
    name=$(basename "$input")
    sleep 1000 &
    echo $! > "{directory}/$name.pid.tmp" && mv "{directory}/$name.pid.tmp" "{directory}/$name.pid"
    wait
    ;;
esac
exec {REAL_FFPROBE} "$@"
""")
    script.chmod(0o755)
    return script


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)


class HangingProbe(unittest.TestCase):
    def start(self, *args: str):
        self.storage = Storage(self.id().rsplit(".", 1)[-1])
        self.addCleanup(self.storage.cleanup)
        self.pids = self.storage.tmp / "pids"
        self.pids.mkdir()
        fake = write_hanging_ffprobe(self.pids)
        self.server = start_server(self.storage, ["--admin-token", TOKEN, "--ffprobe", str(fake), *args],
                                   self.id())
        self.addCleanup(self.server.stop)
        self.api = Client(self.server.port)
        self.real = (harness.build_cache() / "clip.webm").read_bytes()

    def put(self, key: str) -> None:
        status, _, body = self.api.request("PUT", "/api/media/" + key, body=self.real, token=TOKEN)
        self.assertIn(status, (200, 201), body)

    def sleeper(self, name: str) -> int:
        path = self.pids / f"{name}.pid"
        return int(wait_for(lambda: path.exists() and path.read_text().strip(), 30, f"{name} started"))

    def run(self, result=None):
        return harness.run_reporting_server_output(self, result, super().run, lambda: (
            f"\nlast server output:\n{self.server.output(40)}" if hasattr(self, "server") else ""))

    def test_others_are_probed_while_one_hangs_and_sigterm_kills_it(self):
        self.start("--probe-timeout", "60", "--probe-workers", "2")
        self.put("hang.webm")
        sleeper = self.sleeper("hang.webm")
        started = time.monotonic()
        for n in range(4):
            self.put(f"other-{n}.webm")
        items = wait_for(lambda: (lambda got: got if all(got[f"other-{n}.webm"]["probed"] for n in range(4)) else None)(
            {i["key"]: i for i in self.api.items()}), 40, "the other items probed")
        self.assertLess(time.monotonic() - started, 40)
        hung = items["hang.webm"]
        self.assertFalse(hung["probed"], hung)
        self.assertIsNone(hung["probe_error"], hung)  # still pending, not yet failed
        self.assertTrue(running(sleeper), "the hanging probe should still run (deadline 60 s)")

        # Shutdown kills the probe's whole group at once, and the process exits cleanly.
        t0 = time.monotonic()
        self.server.stop()  # SIGTERM, then the harness's end checks (exit status, sanitizer reports)
        self.assertLess(time.monotonic() - t0, 10, "SIGTERM waited for the probe")
        self.assertEqual(self.server.proc.returncode, 0, self.server.output())
        wait_for(lambda: not running(sleeper), 5, "the probe's grandchild killed at shutdown")
        # Stopped by the shutdown, the probe says nothing about the file: it is not recorded as failed.
        catalog = next(self.storage.tmp.glob("catalog-*.db"))
        with sqlite3.connect(catalog) as db:
            row = db.execute("SELECT probed_etag, probe_error FROM items WHERE key = 'hang.webm'").fetchone()
        self.assertEqual(row, (None, None))

    def test_the_deadline_kills_the_probe_and_says_so(self):
        self.start("--probe-timeout", "2", "--probe-workers", "1")
        self.put("hang-deadline.webm")
        sleeper = self.sleeper("hang-deadline.webm")
        item = wait_for(lambda: next((i for i in self.api.items()
                                      if i["key"] == "hang-deadline.webm" and i["probe_error"]), None), 30,
                        "the hanging item failed")
        self.assertFalse(item["probed"], item)
        self.assertIn("did not finish within 2 s", item["probe_error"])
        wait_for(lambda: not running(sleeper), 5, "the probe's grandchild killed at the deadline")
        # The single worker is free again.
        self.put("after.webm")
        wait_for(lambda: any(i["key"] == "after.webm" and i["probed"] for i in self.api.items()), 30,
                 "the next item probed")


if __name__ == "__main__":
    unittest.main()
