"""HTTP/2 attacks against a real socket (issue 13), as nginx and Envoy bound them since 2023: rapid reset
(CVE-2023-44487), CONTINUATION floods, SETTINGS and PING floods from a client that reads nothing, an HPACK bomb, and
zero-window stalls (of a stream, of a connection). Raw frames (hyperframe and hpack, which python3-h2 brings), no client-side checks.

Each case: the attacker's connection is closed or its streams bounded, the server's memory stays bounded (RSS), and
a normal client on another connection is served at once afterwards. Runs with --scheme h2 (ctest -R integration_h2).
"""

from __future__ import annotations

import socket
import ssl
import struct
import time
import unittest
from pathlib import Path
from typing import Optional

import hpack
from hyperframe.frame import (ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame,
                              WindowUpdateFrame)

import harness
import rawhttp
from harness import MediagateTestCase

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY = 0, 1, 3, 4, 6, 7
MIB = 1 << 20


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def memory_slack(pid: int) -> int:
    """How much RSS bounds are widened: an ASan build keeps freed memory in its quarantine (256 MB by default)."""
    return 8 if "libasan" in Path(f"/proc/{pid}/maps").read_text() else 1


class RawH2:
    """Frames written as bytes; the server's frames parsed from its bytes (type, flags, stream, payload)."""

    def __init__(self, port: int, window: Optional[int] = None, timeout: float = 10.0, rcvbuf: int = 0) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # a client that reads nothing fills fast
        sock.settimeout(timeout)
        sock.connect(("127.0.0.1", port))
        self.sock = rawhttp.TLS_CONTEXT.wrap_socket(sock, server_hostname="127.0.0.1")
        assert self.sock.selected_alpn_protocol() == "h2"
        self.encoder = hpack.Encoder()
        self.buf = bytearray()
        self.closed = False
        settings = SettingsFrame(0)
        if window is not None:
            settings.settings[SettingsFrame.INITIAL_WINDOW_SIZE] = window
        self.send(PREFACE + settings.serialize())

    def send(self, data: bytes) -> bool:
        """False when the server had already closed the connection."""
        try:
            self.sock.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, socket.timeout):
            return False

    def headers_block(self, path: str, extra=()) -> bytes:
        return self.encoder.encode([(":method", "GET"), (":scheme", "https"), (":authority", "127.0.0.1"),
                                    (":path", path), *extra])

    def get(self, sid: int, path: str, extra=()) -> bytes:
        f = HeadersFrame(sid)
        f.data = self.headers_block(path, extra)
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        return f.serialize()

    def frames(self, seconds: float) -> list[tuple[int, set, int, bytes]]:
        """The frames that arrive within `seconds` (or until the server closes)."""
        out = []
        deadline = time.monotonic() + seconds
        while not self.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                break
            except (ConnectionResetError, ssl.SSLError, OSError):
                data = b""
            if not data:
                self.closed = True
                break
            self.buf += data
            while len(self.buf) >= 9:
                length = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + length:
                    break
                ftype, flags = self.buf[3], self.buf[4]
                sid = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                out.append((ftype, flags, sid, bytes(self.buf[9:9 + length])))
                del self.buf[:9 + length]
        return out

    def until_closed(self, seconds: float) -> list:
        got = []
        deadline = time.monotonic() + seconds
        while not self.closed and time.monotonic() < deadline:
            got += self.frames(min(1.0, deadline - time.monotonic()))
        return got

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def goaway_code(frames) -> Optional[int]:
    for ftype, _, _, payload in frames:
        if ftype == GOAWAY:
            return struct.unpack(">I", payload[4:8])[0]
    return None


@unittest.skipUnless(harness.SCHEME == "h2", "run with --scheme h2 (a test certificate for every server)")
class H2Attacks(MediagateTestCase):
    server_args = ["--access-log", "off", "--send-timeout", "2"]

    def raw(self, **kwargs) -> RawH2:
        c = RawH2(self.port, **kwargs)
        self.addCleanup(c.close)
        return c

    def assert_others_served(self, what: str) -> None:
        with rawhttp.Connection(self.port, timeout=5.0) as c:
            r = c.request("GET", harness.media_target("random.bin"), [("Range", "bytes=0-99")])
        self.assertEqual((r.status, len(r.body)), (206, 100), f"a normal client after {what}")
        self.assertIsNone(self.server.health_problem())

    def test_rapid_reset(self):
        """CVE-2023-44487: streams opened and reset at once, far past the concurrency limit."""
        c = self.raw()
        before = rss(self.server.proc.pid)
        batch = bytearray()
        sent = 0
        for i in range(5000):
            sid = 1 + 2 * i
            batch += c.get(sid, harness.media_target("big.bin")) + RstStreamFrame(sid, error_code=8).serialize()
            if len(batch) > 64 * 1024:
                if not c.send(bytes(batch)):
                    break
                sent = i + 1
                batch.clear()
        frames = c.until_closed(10)
        self.assertTrue(c.closed, f"the connection survived {sent} rapid resets")
        self.assertIsNotNone(goaway_code(frames), "closed without GOAWAY")
        slack = memory_slack(self.server.proc.pid)
        self.assertLess(rss(self.server.proc.pid) - before, 64 * MIB * slack, "memory after the rapid resets")
        self.assert_others_served("a rapid reset")

    def test_continuation_flood(self):
        """HEADERS without END_HEADERS, then CONTINUATION frames without end (2024)."""
        c = self.raw()
        head = HeadersFrame(1)
        head.data = c.headers_block(harness.media_target("empty.bin"))
        c.send(head.serialize())
        flood = bytearray()
        for i in range(2000):
            cont = ContinuationFrame(1)
            cont.data = c.encoder.encode([(f"x-flood-{i}", "v")])
            flood += cont.serialize()
        c.send(bytes(flood))
        frames = c.until_closed(10)
        self.assertTrue(c.closed, "the connection survived a CONTINUATION flood")
        self.assertIsNotNone(goaway_code(frames), "closed without GOAWAY")
        self.assert_others_served("a CONTINUATION flood")

    def flood_without_reading(self, frame: bytes, what: str) -> None:
        """A client that sends `frame` over and over and never reads the acknowledgements."""
        c = self.raw(rcvbuf=4096)
        c.sock.settimeout(5)
        before = rss(self.server.proc.pid)
        chunk = frame * 4096
        total = 0
        started = time.monotonic()
        # Up to 9 MB of frames: their acknowledgements fill the socket buffers, then nghttp2's queue of 1000.
        while total < 1_000_000 and time.monotonic() - started < 20:
            if not c.send(chunk):
                break
            total += 4096
        frames = c.until_closed(10)
        self.assertTrue(c.closed, f"the connection survived {total} {what} frames")
        self.assertLess(total, 1_000_000, f"all {total} {what} frames were taken")
        slack = memory_slack(self.server.proc.pid)
        self.assertLess(rss(self.server.proc.pid) - before, 64 * MIB * slack, f"memory after the {what} flood")
        self.assert_others_served(f"a {what} flood")

    def test_settings_flood(self):
        self.flood_without_reading(SettingsFrame(0).serialize(), "SETTINGS")

    def test_ping_flood(self):
        self.flood_without_reading(PingFrame(0, opaque_data=b"12345678").serialize(), "PING")

    def test_hpack_bomb(self):
        """One 4000-byte field in the dynamic table, referenced 3000 times (12 MB decoded from 7 KB): 431."""
        c = self.raw()
        block = c.headers_block(harness.media_target("random.bin"), [("x-bomb", "a" * 4000)])
        block += bytes([0x80 | 62]) * 3000  # indexed field: the newest dynamic table entry
        f = HeadersFrame(1)
        f.data = block
        f.flags.add("END_HEADERS")
        f.flags.add("END_STREAM")
        before = rss(self.server.proc.pid)
        c.send(f.serialize())
        frames = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not c.closed:
            frames += c.frames(0.5)
            if any(t == HEADERS and sid == 1 for t, _, sid, _ in frames) or goaway_code(frames) is not None:
                break
        responses = [hpack.Decoder().decode(p) for t, _, sid, p in frames if t == HEADERS and sid == 1]
        self.assertTrue(responses or goaway_code(frames) is not None, f"no answer to the bomb: {frames}")
        if responses:
            self.assertEqual(dict(responses[0])[":status"], "431")
        slack = memory_slack(self.server.proc.pid)
        self.assertLess(rss(self.server.proc.pid) - before, 32 * MIB * slack, "memory after the HPACK bomb")
        self.assert_others_served("an HPACK bomb")

    def test_zero_window_stall(self):
        """Streams whose window never opens are reset after the send timeout (2 s here), and their reads stop."""
        c = self.raw(window=0)
        before = rss(self.server.proc.pid)
        started = time.monotonic()
        c.send(b"".join(c.get(1 + 2 * i, harness.media_target("big.bin")) for i in range(20)))
        resets = set()
        deadline = time.monotonic() + 15
        while len(resets) < 20 and time.monotonic() < deadline and not c.closed:
            for ftype, _, sid, payload in c.frames(0.5):
                self.assertNotEqual(ftype, DATA, "DATA sent into a zero window")
                if ftype == RST_STREAM:
                    resets.add(sid)
        self.assertEqual(len(resets), 20, f"streams reset after the send timeout: {sorted(resets)}")
        self.assertGreaterEqual(time.monotonic() - started, 1.5, "reset before the send timeout")
        slack = memory_slack(self.server.proc.pid)
        self.assertLess(rss(self.server.proc.pid) - before, 32 * MIB * slack, "memory of 20 stalled streams")
        # The window opens now: a new stream on the same connection is served.
        c.send(WindowUpdateFrame(0, window_increment=1 << 20).serialize())
        c.send(SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 65535}).serialize())
        c.send(c.get(41, harness.media_target("random.bin"), [("range", "bytes=0-9")]))
        got = [f for f in c.frames(3) if f[2] == 41]
        self.assertTrue(any(t == DATA for t, _, _, _ in got), f"no DATA once the window opened: {got}")
        self.assert_others_served("zero-window stalls")

    def test_zero_connection_window_closes_the_connection(self):
        """Streams may take 1 MiB each, but the connection's window never opens past its first 65,535 bytes: after
        the send timeout the connection gets GOAWAY (FLOW_CONTROL_ERROR) and is closed."""
        c = self.raw(window=1 << 20)
        started = time.monotonic()
        c.send(c.get(1, harness.media_target("big.bin")) + c.get(3, harness.media_target("big100.bin")))
        frames = c.until_closed(15)
        self.assertTrue(c.closed, "the connection stayed open with its window shut")
        self.assertGreaterEqual(time.monotonic() - started, 1.5, "closed before the send timeout")
        self.assertEqual(goaway_code(frames), 3, "GOAWAY with FLOW_CONTROL_ERROR")
        self.assertLessEqual(sum(len(p) for t, _, _, p in frames if t == DATA), 65_535)
        self.assert_others_served("a connection window that never opened")


if __name__ == "__main__":
    unittest.main()
