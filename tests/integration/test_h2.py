"""HTTP/2 itself over real sockets (issue 13): what the rules suite over h2 (run_suite.py --scheme h2 test_http_rules)
cannot show. Many streams on one connection with one of them stalled by its window, RST_STREAM stopping the storage
read behind a stream (local directory and radosgw: mediagate's own byte counters), uploads within flow control,
431 for a header list too large, GOAWAY on SIGTERM with the stream in flight finishing, --h2c with prior knowledge
beside HTTP/1.1, and curl --http2 as a smoke check.

Runs with --scheme h2 (every server gets the test CA's certificate): ctest -R integration_h2.
"""

from __future__ import annotations

import hashlib
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path
from typing import Optional

import h2.config
import h2.errors
import h2.connection
import h2.events
import h2.settings

import harness
import rawhttp
import tlsutil
from harness import MediagateTestCase

MIB = 1 << 20
TOKEN = "h2-admin-token-0123456789"


class Stream:
    def __init__(self) -> None:
        self.status: Optional[int] = None
        self.headers: dict[bytes, bytes] = {}
        self.body = bytearray()
        self.frames: list[tuple[int, bool]] = []  # each DATA frame: its length, whether it ended the stream
        self.ended = False
        self.reset: Optional[int] = None


class Client:
    """A raw HTTP/2 client (python3-h2) whose flow control the test drives: `hold` streams get no WINDOW_UPDATE of
    their own (their data still opens the connection's window, so that they stall alone)."""

    def __init__(self, port: int, context: Optional[ssl.SSLContext], timeout: float = 10.0,
                 window: int = 65535) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if context is not None:
            self.sock = context.wrap_socket(self.sock, server_hostname="127.0.0.1")
            assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.conn.initiate_connection()
        self.streams: dict[int, Stream] = {}
        self.hold: set[int] = set()
        self.terminated: Optional[h2.events.ConnectionTerminated] = None
        self.closed = False
        self.flush()

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, method: str, path: str, headers=(), body: Optional[bytes] = None, end: bool = True) -> int:
        sid = self.conn.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", b"127.0.0.1"),
                  (b":path", path.encode())]
        fields += [(k.encode(), v.encode()) for k, v in headers]
        self.streams[sid] = Stream()
        self.conn.send_headers(sid, fields, end_stream=body is None and end)
        self.flush()
        if body is not None:
            self.send_body(sid, body, end=end)
        return sid

    def send_body(self, sid: int, body: bytes, end: bool = True) -> None:
        view = memoryview(body)
        while view:
            st = self.streams[sid]
            if st.reset is not None or st.ended:
                return
            window = min(self.conn.local_flow_control_window(sid), self.conn.max_outbound_frame_size)
            if window <= 0:
                if not self.receive():
                    raise AssertionError("the connection closed while the body was sent")
                continue
            n = min(window, len(view))
            self.conn.send_data(sid, bytes(view[:n]), end_stream=end and n == len(view))
            view = view[n:]
            self.flush()
        if end and not body:
            self.conn.end_stream(sid)
            self.flush()

    def receive(self, timeout: Optional[float] = None) -> bool:
        """Reads once and handles the events; False when the server closed the connection."""
        if timeout is not None:
            self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 20)
        except (ConnectionResetError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return False
        for e in self.conn.receive_data(data):
            st = self.streams.get(getattr(e, "stream_id", 0) or 0)
            if isinstance(e, h2.events.ResponseReceived):
                st.headers = dict(e.headers)
                st.status = int(st.headers[b":status"])
            elif isinstance(e, h2.events.DataReceived):
                st.body += e.data
                st.frames.append((len(e.data), e.stream_ended is not None))
                if e.stream_id in self.hold:
                    self.conn.increment_flow_control_window(e.flow_controlled_length)  # the connection's only
                else:
                    self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                st.ended = True
            elif isinstance(e, h2.events.StreamReset):
                if st is not None:
                    st.reset = e.error_code
            elif isinstance(e, h2.events.ConnectionTerminated):
                self.terminated = e
        self.flush()
        return True

    def wait(self, done, timeout: float = 10.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                raise rawhttp.ServerHang(f"timed out waiting for {what}")
            try:
                if not self.receive(timeout=left):
                    if done():
                        return
                    raise rawhttp.ConnectionClosed(f"connection closed while waiting for {what}")
            except socket.timeout:
                pass

    def get(self, path: str, headers=(), timeout: float = 10.0) -> Stream:
        sid = self.request("GET", path, headers)
        self.wait(lambda: self.streams[sid].ended or self.streams[sid].reset is not None, timeout, f"GET {path}")
        return self.streams[sid]

    def reset(self, sid: int) -> None:
        self.conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
        self.flush()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def random_bin() -> bytes:
    return random.Random(harness.RANDOM_SEED).randbytes(MIB)  # as harness.py makes random.bin


metric_values = harness.unlabelled_metrics


@unittest.skipUnless(harness.SCHEME == "h2", "run with --scheme h2 (a test certificate for every server)")
class H2Streams(MediagateTestCase):
    server_args = ["--access-log", "off"]

    def client(self, **kwargs) -> Client:
        c = Client(self.port, rawhttp.TLS_CONTEXT, **kwargs)
        self.addCleanup(c.close)
        return c

    def test_curl_http2(self):
        data = random_bin()
        cmd = ["curl", "--http2", "-sS", "--cacert", str(self.fx.ca.cert), "-o", "-", "-w", "\n%{http_version}",
               "-H", "Range: bytes=100-199", f"https://127.0.0.1:{self.port}{harness.media_target('random.bin')}"]
        out = subprocess.run(cmd, capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        body, _, version = out.stdout.rpartition(b"\n")
        self.assertEqual(version, b"2", "curl did not speak HTTP/2")
        self.assertEqual(len(body), 100)
        r = self.get("random.bin", [("Range", "bytes=100-199")])
        self.assertEqual(body, r.body)
        self.assertEqual(body, data[100:200])

    def test_many_streams_with_one_stalled(self):
        c = self.client()
        whole = random_bin()
        stalled = c.request("GET", harness.media_target("big.bin"))
        c.hold.add(stalled)
        others = {}
        for i in range(40):
            first = (i * 24_567) % (len(whole) - 70_000)
            others[c.request("GET", harness.media_target("random.bin"),
                             [("range", f"bytes={first}-{first + 65_535}")])] = first
        c.wait(lambda: all(c.streams[s].ended for s in others), 20, "40 ranges beside a stalled stream")
        for sid, first in others.items():
            st = c.streams[sid]
            self.assertEqual(st.status, 206)
            self.assertEqual(bytes(st.body), whole[first:first + 65_536], f"stream {sid}")
        got = len(c.streams[stalled].body)
        self.assertLessEqual(got, 65_535, "the stalled stream got more than its window")
        self.assertFalse(c.streams[stalled].ended)
        # Its window opens: it goes on (the first 4 MiB, then it is reset).
        c.hold.discard(stalled)
        c.conn.acknowledge_received_data(got, stalled)
        c.flush()
        c.wait(lambda: len(c.streams[stalled].body) >= 4 * MIB, 20, "the stalled stream resuming")
        self.assertEqual(bytes(c.streams[stalled].body[:MIB]), harness.pattern_bytes(0, MIB))
        c.reset(stalled)
        self.assertEqual(c.get(harness.media_target("random.bin"), [("range", "bytes=0-9")]).body, whole[:10])

    def test_reset_stops_the_storage_read(self):
        """RST_STREAM mid-body: the server stops reading the object at once (S3: bytes received from radosgw)."""
        c = self.client()
        before = metric_values(self.port)
        sid = c.request("GET", harness.media_target("big.bin"))
        c.wait(lambda: len(c.streams[sid].body) >= 32 * 1024, 10, "the first bytes of big.bin")
        c.reset(sid)
        # The stream's end is recorded once its coroutine stopped (a request, the bytes it sent).
        deadline = time.monotonic() + 10
        while True:
            after = metric_values(self.port)
            if after["mediagate_h2_stream_resets_total"] > before["mediagate_h2_stream_resets_total"] and \
                    after["mediagate_http_response_bytes_total"] > before["mediagate_http_response_bytes_total"]:
                break
            self.assertLess(time.monotonic(), deadline, f"the reset stream never ended: {after}")
            time.sleep(0.05)
        sent = after["mediagate_http_response_bytes_total"] - before["mediagate_http_response_bytes_total"]
        print(f"h2: a stream reset after {len(c.streams[sid].body)} bytes had {sent:.0f} bytes handed to it",
              file=sys.stderr)
        self.assertLess(sent, 2 * MIB, "bytes handed to the reset stream")
        if self.fx.mode == "s3":
            time.sleep(0.5)
            settled = metric_values(self.port)
            fetched = settled["mediagate_s3_received_bytes_total"] - before["mediagate_s3_received_bytes_total"]
            print(f"h2: {fetched:.0f} bytes read from S3 for that stream (object: {harness.BIG_SIZE})", file=sys.stderr)
            self.assertLess(fetched, 16 * MIB, f"S3 bytes read for a stream reset after 32 KiB of {harness.BIG_SIZE}")
            time.sleep(0.5)
            self.assertEqual(metric_values(self.port)["mediagate_s3_received_bytes_total"],
                             settled["mediagate_s3_received_bytes_total"], "the S3 read went on after the reset")
        # The connection serves on.
        r = c.get(harness.media_target("random.bin"), [("range", "bytes=0-99")])
        self.assertEqual((r.status, len(r.body)), (206, 100))

    def test_the_last_data_frame_ends_the_stream(self):
        """END_STREAM comes on the body's last DATA frame, not on an empty DATA frame after it."""
        c = self.client()
        whole = random_bin()
        for headers in ([("range", "bytes=0-65535")], [("range", "bytes=100-199")], [("range", "bytes=0-9,20-29")],
                        []):
            with self.subTest(headers=headers):
                sid = c.request("GET", harness.media_target("random.bin"), headers)
                c.wait(lambda: c.streams[sid].ended, 10, f"GET random.bin {headers}")
                st = c.streams[sid]
                self.assertIn(st.status, (200, 206))
                if headers and "," not in headers[0][1]:
                    first, last = (int(x) for x in headers[0][1][len("bytes="):].split("-"))
                    self.assertEqual(bytes(st.body), whole[first:last + 1])
                self.assertTrue(st.frames and st.frames[-1][1], st.frames)
                self.assertNotIn(0, [n for n, _ in st.frames], f"an empty DATA frame: {st.frames}")

    def test_header_list_too_large_is_431(self):
        c = self.client()
        r = c.get(harness.media_target("random.bin"), [(f"x-filler-{i}", "v" * 900) for i in range(20)])
        self.assertEqual(r.status, 431)
        self.assertEqual(c.get(harness.media_target("empty.bin")).status, 200, "the connection serves on")

    def test_no_connection_specific_fields(self):
        c = self.client()
        r = c.get(harness.media_target("random.bin"), [("range", "bytes=0-0")])
        self.assertEqual(r.status, 206)
        for name in (b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"):
            self.assertNotIn(name, r.headers)  # (python3-h2 would also refuse them as a protocol error)
        self.assertEqual(r.headers[b"server"], b"mediagate")
        rawhttp.parse_http_date(r.headers[b"date"].decode())

    def test_metrics_count_connections_and_streams(self):
        before = metric_values(self.port)
        c = self.client()
        for _ in range(3):
            self.assertEqual(c.get(harness.media_target("empty.bin")).status, 200)
        after = metric_values(self.port)
        self.assertGreaterEqual(after["mediagate_h2_connections_total"] - before["mediagate_h2_connections_total"], 1)
        self.assertGreaterEqual(after["mediagate_h2_streams_total"] - before["mediagate_h2_streams_total"], 3)


@unittest.skipUnless(harness.SCHEME == "h2", "run with --scheme h2 (a test certificate for every server)")
class H2Uploads(unittest.TestCase):
    """PUT /api/media over h2: a body larger than every window, one without Content-Length, one over the limit."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.fx = harness.fixtures()
        catalog = harness.new_catalog(cls.fx.tmp, "h2-uploads")
        cls.server = harness.Server(cls.fx, ["--catalog", catalog, "--access-log", "off", "--admin-token", TOKEN,
                                             "--max-upload-bytes", "4MiB"], name="H2Uploads")

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def client(self) -> Client:
        c = Client(self.server.port, rawhttp.TLS_CONTEXT)
        self.addCleanup(c.close)
        return c

    def put(self, c: Client, key: str, body: bytes, length: bool = True) -> Stream:
        headers = [("authorization", f"Bearer {TOKEN}"), ("content-type", "application/octet-stream")]
        if length:
            headers.append(("content-length", str(len(body))))
        sid = c.request("PUT", f"/api/media/{key}", headers, body=body)
        c.wait(lambda: c.streams[sid].ended or c.streams[sid].reset is not None, 30, f"PUT {key}")
        return c.streams[sid]

    def test_upload_then_read_back(self):
        c = self.client()
        body = hashlib.sha256(b"h2").digest() * (3 * MIB // 32)
        for key, length in (("h2-up.bin", True), ("h2-nolength.bin", False)):
            r = self.put(c, key, body, length)
            self.assertIn(r.status, (200, 201), bytes(r.body))
            got = c.get(harness.media_target(key), timeout=30)
            self.assertEqual(got.status, 200)
            self.assertEqual(bytes(got.body), body, f"{key}: the bytes read back differ")

    def test_too_large_is_413_and_the_connection_serves_on(self):
        c = self.client()
        body = b"x" * (5 * MIB)
        r = self.put(c, "h2-big.bin", body)
        self.assertEqual(r.status, 413, bytes(r.body))
        self.assertEqual(c.get(harness.media_target("empty.bin")).status, 200, "the connection serves on")
        r = self.put(c, "h2-small.bin", b"small")
        self.assertIn(r.status, (200, 201), bytes(r.body))


@unittest.skipUnless(harness.SCHEME == "h2", "run with --scheme h2 (a test certificate for every server)")
class H2Lifecycle(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.fx = harness.fixtures()

    def start(self, args: list[str], name: str) -> harness.Server:
        server = harness.Server(self.fx, ["--access-log", "off", *args], name=name)
        self.addCleanup(server.stop, check=False)
        return server

    def test_goaway_on_sigterm_lets_the_stream_finish(self):
        """curl reads 8 MiB at 2 MiB/s over h2; SIGTERM comes a second in: the stream ends complete (python3-h2
        drops a connection's streams on GOAWAY, curl keeps the ones in flight as RFC 9113 §6.8 says)."""
        server = self.start(["--drain-timeout", "20"], "H2Drain")
        size = 8 * MIB
        cmd = ["curl", "--http2", "-sS", "--cacert", str(self.fx.ca.cert), "--limit-rate", "2M", "-o", "-",
               "-w", "\n%{http_version} %{http_code}", "-H", f"Range: bytes=0-{size - 1}",
               f"https://127.0.0.1:{server.port}{harness.media_target('big100.bin')}"]
        curl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1.0)
        server.proc.send_signal(signal.SIGTERM)
        out, err = curl.communicate(timeout=30)
        self.assertEqual(curl.returncode, 0, err)
        body, _, tail = out.rpartition(b"\n")
        self.assertEqual(tail, b"2 206")
        self.assertEqual(len(body), size)
        self.assertTrue(body == harness.pattern_bytes(0, size), "the bytes of the drained stream differ")
        self.assertEqual(server.proc.wait(timeout=20), 0)
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()

    def test_certificate_reload_keeps_an_open_h2_stream(self):
        """SIGHUP with a new pair while an h2 stream is open: new connections get the new certificate, the open
        stream goes on to its last byte on the old one."""
        files = Path(tempfile.mkdtemp(prefix="h2-reload-", dir=self.fx.tmp))
        first, second = self.fx.ca.issue("h2-reload-1"), self.fx.ca.issue("h2-reload-2")
        cert, key = files / "cert.pem", files / "key.pem"
        shutil.copyfile(first.cert, cert)
        shutil.copyfile(first.key, key)
        server = self.start(["--tls-cert", str(cert), "--tls-key", str(key), "--tls-reload-interval", "0"], "H2Reload")
        c = Client(server.port, rawhttp.TLS_CONTEXT)
        self.addCleanup(c.close)
        self.assertEqual(tlsutil.peer_serial(c.sock), first.serial)
        size = 8 * MIB
        sid = c.request("GET", harness.media_target("big.bin"), [("range", f"bytes=0-{size - 1}")])
        c.hold.add(sid)
        c.wait(lambda: len(c.streams[sid].body) > 0, 10, "the first bytes")
        shutil.copyfile(second.cert, cert)
        shutil.copyfile(second.key, key)
        mark = server.line_count()
        server.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(server.wait_for_line(r"TLS certificate .* loaded \(SIGHUP\)", 5, mark), server.output())
        fresh = Client(server.port, rawhttp.TLS_CONTEXT)
        self.addCleanup(fresh.close)
        self.assertEqual(tlsutil.peer_serial(fresh.sock), second.serial)
        self.assertEqual(fresh.get(harness.media_target("empty.bin")).status, 200)
        c.hold.discard(sid)
        c.conn.acknowledge_received_data(len(c.streams[sid].body), sid)
        c.flush()
        c.wait(lambda: c.streams[sid].ended or c.streams[sid].reset is not None, 30, "the open stream")
        self.assertIsNone(c.streams[sid].reset)
        self.assertTrue(bytes(c.streams[sid].body) == harness.pattern_bytes(0, size), "the open stream's bytes")

    def test_h2c_prior_knowledge_beside_http11(self):
        pair = self.fx.ca.issue("h2c")
        server = self.start(["--tls-cert", str(pair.cert), "--tls-key", str(pair.key), "--listen-tls", "127.0.0.1:0",
                             "--h2c"], "H2c")
        c = Client(server.port, None)  # plain TCP, the preface first
        self.addCleanup(c.close)
        r = c.get(harness.media_target("random.bin"), [("range", "bytes=10-19")])
        self.assertEqual((r.status, len(r.body)), (206, 10))
        with rawhttp.Connection(server.port, tls=False) as h1:
            r1 = h1.request("GET", harness.media_target("random.bin"), [("Range", "bytes=10-19")])
        self.assertEqual((r1.status, r1.body), (206, bytes(r.body)))
        self.assertEqual(r1.version, "HTTP/1.1")


if __name__ == "__main__":
    unittest.main()
