"""Issue 11 ("safe on the open internet") over real sockets against the real binary, with local or S3 storage
(MEDIAGATE_TEST_STORAGE, see harness.py): descriptor exhaustion, SIGTERM drain, SIGHUP log reopening, HTTP
framing and validator details, access-log escaping and byte accounting, active content served as a sandboxed
download, hidden files, /api/info and /metrics exposure, concurrent uploads, directory/long-name PUTs and the
JSON number format.

Each class has its own storage (a directory, or a bucket of the suite's radosgw) and catalog, as in test_api.
No assertion depends on speed beyond generous bounds.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import resource
import signal
import socket
import threading
import time
import unittest
import urllib.parse
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import harness
import rawhttp
import test_api as api  # helpers only (Storage, Client, start_server, multipart); its test classes stay there

TOKEN = "hardening-token-" + uuid.uuid4().hex[:8]
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (/proc/PID/stat fields 14 and 15)."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()  # after "pid (comm) ": field 3 is fields[0]
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def pattern_data(size: int) -> bytes:
    return harness.pattern_bytes(0, size)


class HardeningCase(unittest.TestCase):
    """A fresh storage and a server per class (server_args); helpers for raw requests and the access log."""

    server_args: list[str] = []
    rlimit_nofile = None  # (soft, hard) for the server process
    access_log = False  # True: --access-log FILE (self.log_path), else off
    files: dict[str, bytes] = {}

    @classmethod
    def setUpClass(cls) -> None:
        cls.storage = api.Storage(cls.__name__)
        for key, data in cls.files.items():
            cls.storage.put(key, data)
        cls.server = None
        cls.start()

    @classmethod
    def start(cls, extra=()) -> None:
        args = ["--admin-token", TOKEN, *cls.server_args, *extra]
        if cls.access_log:
            cls.log_path = cls.storage.tmp / f"access-{uuid.uuid4().hex[:6]}.log"
            args += ["--access-log", str(cls.log_path)]
        preexec = None
        if cls.rlimit_nofile:
            limit = cls.rlimit_nofile
            preexec = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, limit)  # noqa: E731
        catalog = cls.storage.tmp / f"catalog-{uuid.uuid4().hex[:6]}.db"
        fx = type("fx", (), dict(tmp=cls.storage.tmp, storage_args=cls.storage.args, server_env=cls.storage.env))
        # --access-log comes last so that it wins over harness defaults (none) and test_api's "off".
        cls.server = harness.Server(fx, ["--catalog", f"sqlite:{catalog}", *args], name=cls.__name__,
                                    preexec=preexec)
        cls.port = cls.server.port
        cls.api = api.Client(cls.port)

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            if cls.server is not None and cls.server.alive():
                problem = cls.server.health_problem()
                if problem:
                    raise AssertionError(f"at the end of {cls.__name__}: {problem}:\n{cls.server.output()}")
        finally:
            try:
                if cls.server is not None:
                    cls.server.stop()  # exit status 0 and no sanitizer report
            finally:
                cls.storage.cleanup()

    def run(self, result=None):
        return harness.run_reporting_server_output(self, result, super().run, lambda: (
            f"\nlast server output:\n{self.server.output(25) if self.server else '(none)'}"))

    def connect(self, **kwargs) -> rawhttp.Connection:
        conn = rawhttp.Connection(self.port, **kwargs)
        self.addCleanup(conn.close)
        return conn

    def access_lines(self, path=None) -> list[str]:
        path = path or self.log_path
        return path.read_text(errors="replace").splitlines() if path.exists() else []

    def wait_access_line(self, needle: str, timeout: float = 10.0, path=None) -> str:
        deadline = time.monotonic() + timeout
        while True:
            for line in self.access_lines(path):
                if needle in line:
                    return line
            if time.monotonic() > deadline:
                self.fail(f"no access-log line with {needle!r} within {timeout}s:\n" +
                          "\n".join(self.access_lines(path)[-10:]))
            time.sleep(0.05)

    def metric(self, name: str, headers=()) -> float:
        with rawhttp.Connection(self.port) as c:
            r = c.request("GET", "/metrics", headers)
        self.assertEqual(r.status, 200, r.describe())
        _, samples = harness.parse_metrics(r.body.decode())
        return sum(v for n, labels, v in samples if n == name)

    def put(self, key: str, data: bytes, headers=None):
        return self.api.json("PUT", "/api/media/" + urllib.parse.quote(key), body=data, token=TOKEN,
                             headers=headers)


# -- denial of service ------------------------------------------------------------------------------------

class DescriptorExhaustion(HardeningCase):
    """With 256 descriptors, 400 idle connections (no request) neither spin the CPU, nor flood the log, nor
    lock out a new client: the cap fits the descriptor budget and never-used connections go first."""

    rlimit_nofile = (256, 256)
    files = {"small.bin": b"x" * 1000}

    def test_idle_connections_do_not_spin_or_lock_out(self):
        cap_line = self.server.wait_for_line(r"connection cap \d+", 5)
        self.assertIsNotNone(cap_line, f"the start-up log does not state the connection cap:\n{self.server.output()}")
        cap = int(re.search(r"connection cap (\d+)", cap_line).group(1))
        self.assertLess(cap, 256, cap_line)
        lines_before = self.server.line_count()
        socks = []
        try:
            for _ in range(400):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                socks.append(s)
            cpu_start = cpu_seconds(self.server.proc.pid)
            time.sleep(5)
            cpu_used = cpu_seconds(self.server.proc.pid) - cpu_start
            self.assertLess(cpu_used, 1.0, f"the server used {cpu_used:.2f} s of CPU in 5 s with idle connections")
            with self.server._cond:
                new_lines = [line for _, line in self.server.lines[lines_before:]]
            accept_failed = [line for line in new_lines if "accept failed" in line]
            self.assertLessEqual(len(accept_failed), 8, "accept failures not rate-limited:\n" +
                                 "\n".join(accept_failed[:20]))
            self.assertLess(len(new_lines), 100, "the log grows with idle connections:\n" + "\n".join(new_lines[:20]))
            # A new client is served: idle never-used connections are closed to make room.
            started = time.monotonic()
            with rawhttp.Connection(self.port, timeout=2.0) as c:
                r = c.request("GET", "/healthz")
            self.assertEqual(r.status, 200, r.describe())
            self.assertLess(time.monotonic() - started, 2.0)
            with rawhttp.Connection(self.port, timeout=5.0) as c:
                r = c.request("GET", "/media/small.bin")
            self.assertEqual((r.status, r.body), (200, b"x" * 1000))
        finally:
            for s in socks:
                s.close()


class ConnectionCap503(HardeningCase):
    """At the cap with every connection busy (none left that never sent a request), a new client gets a 503
    whose Content-Length is exactly its body."""

    server_args = ["--max-connections", "2"]

    def busy_connection(self) -> rawhttp.Connection:
        """A connection that has sent a request (so it cannot be evicted). The harness's own start-up check may
        still count for a moment after it closed: a 503 then is retried, for 5 s at most."""
        deadline = time.monotonic() + 5
        while True:
            c = self.connect()
            status = c.request("GET", "/healthz").status
            if status == 200:
                return c
            c.close()
            self.assertEqual(status, 503)
            self.assertLess(time.monotonic(), deadline, "no slot freed within 5 s")
            time.sleep(0.1)

    def test_503_is_framed_exactly(self):
        held = [self.busy_connection() for _ in range(2)]
        c = rawhttp.Connection(self.port)
        self.addCleanup(c.close)
        closed, data = c.wait_for_close(10)
        self.assertTrue(closed, f"the refused connection stayed open; got {data[:300]!r}")
        head, sep, body = data.partition(b"\r\n\r\n")
        self.assertTrue(sep, f"no complete response: {data!r}")
        self.assertTrue(head.startswith(b"HTTP/1.1 503 "), data)
        length = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
        self.assertIsNotNone(length, data)
        self.assertEqual(int(length.group(1)), len(body), f"Content-Length differs from the body: {data!r}")
        for c in held:  # the held connections still work
            self.assertEqual(c.request("GET", "/healthz").status, 200)


# -- restarts ---------------------------------------------------------------------------------------------

class SigtermDrain(HardeningCase):
    """SIGTERM: new connections are refused at once, an in-flight stream to a slow reader finishes with every
    byte right, and the process exits 0 within --drain-timeout."""

    SIZE = 24 * MIB
    files = {"big.bin": b""}  # replaced in setUpClass (pattern file)

    @classmethod
    def setUpClass(cls) -> None:
        cls.files = {"big.bin": pattern_data(cls.SIZE)}
        super().setUpClass()

    def restart(self, drain_timeout: str) -> None:
        if self.server.alive():
            self.server.stop()
        type(self).start(["--drain-timeout", drain_timeout])

    def refused_within(self, signalled: float, seconds: float) -> bool:
        """True once a new connection is refused, trying until `seconds` after `signalled`."""
        while time.monotonic() - signalled < seconds:
            try:
                with rawhttp.Connection(self.port, timeout=2) as probe:
                    probe.request("GET", "/readyz")
                time.sleep(0.05)
            except (ConnectionRefusedError, ConnectionResetError, rawhttp.ConnectionClosed, rawhttp.ServerHang):
                return True
        return False

    def reap(self) -> None:
        """The server exited on the test's own SIGTERM: collect it (the harness would call that exiting by
        itself) and check its output for sanitizer reports."""
        self.server.stop(check=False)
        self.assertEqual(harness.sanitizer_reports(line for _, line in self.server.lines), [])

    def test_in_flight_stream_completes(self):
        self.restart("30")
        ready = self.api.request("GET", "/readyz")
        self.assertEqual(ready[0], 200)
        c = self.connect(rcvbuf=64 * 1024, timeout=30)
        c.send_request("GET", "/media/big.bin")
        head = c.read_head()
        self.assertEqual(head.status, 200, head.describe())
        check = harness.PatternCheck()
        check(c.read_exact(MIB))
        self.server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # New connections are refused once accepting stopped.
        self.assertTrue(self.refused_within(signalled, 5), "new connections are still served 5 s after SIGTERM")
        # The slow reader goes on and gets every byte.
        received = MIB
        while received < self.SIZE:
            data = c.read_some("reading the rest of the stream after SIGTERM")
            if not data:
                break
            check(data)
            received += len(data)
            time.sleep(0.002)  # a slow reader
        self.assertEqual(received, self.SIZE, "the in-flight stream was cut by SIGTERM")
        self.assertIsNone(check.problem())
        self.server.proc.wait(timeout=30)
        self.assertEqual(self.server.proc.returncode, 0, self.server.output())
        self.assertLess(time.monotonic() - signalled, 30)
        self.reap()

    def test_drain_delay_reports_not_ready_while_still_serving(self):
        """--drain-delay: /readyz turns 503 at once for new connections too (a load balancer's health check
        opens a new one), media is still served during the delay, then accepting stops."""
        if self.server.alive():
            self.server.stop()
        delay = 3.0  # room for the checks below on a busy machine, which must run within it
        type(self).start(["--drain-timeout", "10", "--drain-delay", str(delay)])
        self.assertEqual(self.api.request("GET", "/readyz")[0], 200)
        self.server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        time.sleep(0.2)
        with rawhttp.Connection(self.port, timeout=5) as probe:  # a new connection, within the delay
            ready = probe.request("GET", "/readyz")
            self.assertEqual(ready.status, 503, ready.describe())
            media = probe.request("GET", "/media/big.bin", headers=[("Range", "bytes=0-1023")])
            self.assertEqual(media.status, 206, media.describe())
            self.assertEqual(media.body, pattern_data(1024))
        self.assertLess(time.monotonic() - signalled, delay, "the checks above took longer than the delay")
        self.assertTrue(self.refused_within(signalled, delay + 4.5),
                        f"new connections are still served {delay + 4.5} s after SIGTERM with a {delay} s delay")
        self.assertGreaterEqual(time.monotonic() - signalled, delay - 0.1, "accepting stopped before the delay ended")
        self.server.proc.wait(timeout=15)
        self.assertEqual(self.server.proc.returncode, 0, self.server.output())
        self.reap()

    def test_stalled_client_is_cut_at_drain_timeout(self):
        self.restart("1")
        c = self.connect(rcvbuf=16 * 1024, timeout=30)
        c.send_request("GET", "/media/big.bin")
        self.assertEqual(c.read_head().status, 200)  # then read nothing: the server's send stalls
        time.sleep(0.3)
        self.server.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        self.server.proc.wait(timeout=15)
        self.assertEqual(self.server.proc.returncode, 0, self.server.output())
        self.assertLess(time.monotonic() - signalled, 10, "the stalled client held the process")
        self.reap()
        # The client sees the connection end before the whole body.
        total = 0
        while True:
            data = c.read_some("reading a cut stream")
            if not data:
                break
            total += len(data)
        self.assertLess(total, self.SIZE)


class SighupReopensAccessLog(HardeningCase):
    """logrotate: rename the access log, SIGHUP, and the next request goes to a new file of the old name;
    connections opened before stay usable."""

    access_log = True
    files = {"a.bin": b"a" * 100}

    def test_rename_then_sighup(self):
        self.assertEqual(self.api.request("GET", "/media/a.bin?before")[0], 200)
        self.wait_access_line("/media/a.bin?before")
        kept = self.connect()
        self.assertEqual(kept.request("GET", "/media/a.bin?kept1").status, 200)
        self.wait_access_line("?kept1")
        rotated = self.log_path.with_name(self.log_path.name + ".1")
        os.rename(self.log_path, rotated)
        mark = self.server.line_count()
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.server.wait_for_line(r"SIGHUP", 5, start=mark), self.server.output())
        r = kept.request("GET", "/media/a.bin?after")  # the old connection was not dropped
        self.assertEqual(r.status, 200, r.describe())
        line = self.wait_access_line("?after", path=self.log_path)
        self.assertIn(" 200 ", line)
        self.assertFalse(any("?after" in x for x in self.access_lines(rotated)), "written to the rotated file")
        self.assertTrue(any("?before" in x for x in self.access_lines(rotated)))
        self.assertTrue(self.server.alive())


# -- HTTP details -----------------------------------------------------------------------------------------

class HttpDetails(HardeningCase):
    access_log = True
    files = {"clip.bin": pattern_data(100_000)}

    def test_transfer_encoding_not_ending_in_chunked(self):
        for te in ("identity", "xchunked", "chunked, identity", ""):
            with self.subTest(te=te):
                c = self.connect()
                smuggled = b"GET /healthz?smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
                c.send(b"POST /media/clip.bin HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: " + te.encode() +
                       b"\r\n\r\n" + smuggled)
                r = c.read_response("POST")
                self.assertEqual(r.status, 400, r.describe())
                closed, rest = c.wait_for_close(5)
                self.assertTrue(closed, "the connection stays open after a bad Transfer-Encoding")
                self.assertNotIn(b"HTTP/1.1", rest, f"the bytes after the head were answered: {rest!r}")

    def test_duplicate_if_range_vetoes(self):
        etag = self.api.request("HEAD", "/media/clip.bin")[1]["etag"]
        r = self.connect().request("GET", "/media/clip.bin", [("Range", "bytes=0-99"), ("If-Range", '"stale"'),
                                                               ("If-Range", '"stale"')])
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(len(r.body), 100_000)
        r = self.connect().request("GET", "/media/clip.bin", [("Range", "bytes=0-99"), ("If-Range", etag),
                                                               ("If-Range", '"stale"')])
        self.assertEqual(r.status, 200, r.describe())
        r = self.connect().request("GET", "/media/clip.bin", [("Range", "bytes=0-99"), ("If-Range", etag)])
        self.assertEqual(r.status, 206, r.describe())  # the control: one matching line

    def test_duplicate_if_unmodified_since(self):
        past, future = rawhttp.http_date(631152000), rawhttp.http_date(4102444800)  # 1990, 2100
        for order in ((past, future), (future, past)):
            r = self.connect().request("GET", "/media/clip.bin", [("If-Unmodified-Since", order[0]),
                                                                   ("If-Unmodified-Since", order[1])])
            self.assertEqual(r.status, 412, f"{order}:\n{r.describe()}")
        r = self.connect().request("GET", "/media/clip.bin", [("If-Unmodified-Since", future)])
        self.assertEqual(r.status, 200, r.describe())

    def test_no_100_continue_for_http_1_0(self):
        key = f"expect-{uuid.uuid4().hex[:6]}.bin"
        c = self.connect()
        c.send(f"PUT /api/media/{key} HTTP/1.0\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n".encode())
        closed, early = c.wait_for_close(1.0)
        self.assertFalse(closed, f"closed before the body: {early!r}")
        self.assertEqual(early, b"", "an interim response went to an HTTP/1.0 client")
        c.send(b"hello")
        r = c.read_response("PUT")
        self.assertEqual(r.status, 201, r.describe())
        self.assertNotIn(b" 100 ", r.raw_head)
        self.assertEqual(self.storage.read(key), b"hello")
        # Control: HTTP/1.1 does get the interim 100.
        c = self.connect()
        c.send(f"PUT /api/media/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Expect: 100-continue\r\nContent-Length: 5\r\n\r\n".encode())
        self.assertTrue(c.read_head().status == 100)

    def test_malformed_chunked_upload(self):
        key = f"badchunk-{uuid.uuid4().hex[:6]}.bin"
        c = self.connect()
        c.send(f"PUT /api/media/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
               "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\nxx\r\n0\r\n\r\n".encode())
        r = c.read_response("PUT")
        self.assertEqual(r.status, 400, r.describe())
        self.assertEqual(r.media_type(), "application/json", r.describe())
        self.assertTrue(json.loads(r.body).get("error"), r.describe())
        closed, _ = c.wait_for_close(5)
        self.assertTrue(closed)
        self.assertNotIn(key, self.storage.keys())

    def test_access_log_fields_are_escaped(self):
        marker = uuid.uuid4().hex[:8]
        forged = f'bytes=0-1" 200 999999 "{marker}'
        r = self.connect().request("GET", f"/media/clip.bin?q=%22{marker}", [("Range", forged)])
        self.assertIn(r.status, (200, 206, 416), r.describe())
        line = self.wait_access_line(marker)
        m = re.search(r'range="((?:[^"\\]|\\.)*)" (\d{3}) (\d+) ', line)
        self.assertIsNotNone(m, line)
        self.assertEqual(int(m.group(2)), r.status, f"the Range value forged the status field: {line}")
        self.assertEqual(m.group(1).replace('\\"', '"'), forged, line)
        self.assertEqual(line.count('"') - line.count('\\"'), 4, f"unescaped quotes in {line}")


class ByteAccounting(HardeningCase):
    """A client that disconnects after about 1 MB of a 10 MB file: the access log and
    mediagate_http_response_bytes_total count what left, not 0."""

    access_log = True
    SIZE = 10 * MIB

    @classmethod
    def setUpClass(cls) -> None:
        cls.files = {"ten.bin": pattern_data(cls.SIZE)}
        super().setUpClass()

    def test_aborted_response_counts_bytes_sent(self):
        before = self.metric("mediagate_http_response_bytes_total")
        marker = uuid.uuid4().hex[:8]
        c = rawhttp.Connection(self.port, rcvbuf=32 * 1024)
        c.send_request("GET", f"/media/ten.bin?{marker}")
        head = c.read_head()
        self.assertEqual(head.status, 200)
        received = len(c.buf)
        c.buf.clear()
        while received < MIB:
            data = c.read_some()
            self.assertTrue(data)
            received += len(data)
            time.sleep(0.005)  # a rate-limited reader
        c.close(reset=True)
        line = self.wait_access_line(marker, timeout=30)
        logged = int(re.search(r'" (\d{3}) (\d+) ', line).group(2))
        self.assertGreaterEqual(logged, received, f"logged fewer bytes than the client received ({received}): {line}")
        self.assertLessEqual(logged, self.SIZE, line)
        after = self.metric("mediagate_http_response_bytes_total")
        counted = after - before
        self.assertGreaterEqual(counted, received, f"metric counted {counted}, client received {received}")
        self.assertLessEqual(counted, self.SIZE + 100_000)  # the /metrics answer itself is not in `before`


# -- exposure ---------------------------------------------------------------------------------------------

ACTIVE = {"x.js": b"alert(1)", "x.mjs": b"export default 1", "x.css": b"body{}", "x.wasm": b"\0asm\1\0\0\0",
          "x.html": b"<script>alert(1)</script>", "x.svg": b'<svg xmlns="http://www.w3.org/2000/svg"/>'}


class Exposure(HardeningCase):
    server_args = ["--metrics-token", "metrics-secret"]

    @classmethod
    def setUpClass(cls) -> None:
        cache = harness.build_cache()
        cls.files = {".env": b"SECRET=1", ".posters/x.jpg": (cache / "image.jpg").read_bytes(),
                     "dir/.hidden": b"hidden", "dir/visible.bin": b"visible",
                     "clip.mp4": (cache / "clip.mp4").read_bytes(), "image.jpg": (cache / "image.jpg").read_bytes()}
        super().setUpClass()

    def test_active_types_are_sandboxed_downloads(self):
        for name, data in ACTIVE.items():
            key = f"up-{uuid.uuid4().hex[:6]}-{name}"
            status, item = self.put(key, data)
            self.assertEqual(status, 201, item)
            r = self.connect().request("GET", harness.media_target(key))
            self.assertEqual((r.status, r.body), (200, data), r.describe())
            self.assertTrue((r.header("content-disposition") or "").startswith("attachment"), r.describe())
            self.assertIn("sandbox", r.header("content-security-policy") or "", r.describe())
        if self.storage.mode == "s3":  # a stored type, in capitals, on a key without a telling extension
            self.storage.client.put_object(Bucket=self.storage.bucket, Key="page.bin", Body=b"<b>x</b>",
                                           ContentType="TEXT/HTML")
            r = self.connect().request("GET", "/media/page.bin")
            self.assertEqual(r.status, 200, r.describe())
            self.assertTrue((r.header("content-disposition") or "").startswith("attachment"), r.describe())
            self.assertIn("sandbox", r.header("content-security-policy") or "", r.describe())
        audio_key = f"up-{uuid.uuid4().hex[:6]}.mp3"
        self.assertEqual(self.put(audio_key, b"ID3" + b"\0" * 100)[0], 201)
        for key in ("clip.mp4", "image.jpg", audio_key):
            r = self.connect().request("GET", harness.media_target(key))
            self.assertEqual(r.status, 200, r.describe())
            self.assertIsNone(r.header("content-disposition"), r.describe())
            self.assertIsNone(r.header("content-security-policy"), r.describe())

    def test_hidden_files_are_not_served(self):
        for key in (".env", ".posters/x.jpg", "dir/.hidden"):
            r = self.connect().request("GET", harness.media_target(key))
            self.assertEqual(r.status, 404, f"{key}:\n{r.describe()}")
        self.assertEqual(self.connect().request("GET", "/media/dir/visible.bin").status, 200)

    def test_api_info_names_no_server_path(self):
        status, headers, body = self.api.request("GET", "/api/info")
        self.assertEqual(status, 200)
        text = body.decode()
        where = str(self.storage.root) if self.storage.mode == "local" else self.storage.bucket
        self.assertNotIn(where, text)
        self.assertNotIn(str(self.storage.tmp), text)
        self.assertNotRegex(text, r'"/(tmp|home|var|srv|work)/', text)

    def test_metrics_need_the_token(self):
        for headers in ((), [("Authorization", "Bearer wrong")], [("Authorization", "Basic metrics-secret")]):
            r = self.connect().request("GET", "/metrics", headers)
            self.assertEqual(r.status, 404, f"{headers}:\n{r.describe()}")
        r = self.connect().request("GET", "/metrics", [("Authorization", "Bearer metrics-secret")])
        self.assertEqual(r.status, 200, r.describe())
        self.assertIn(b"mediagate_http_response_bytes_total", r.body)


# -- uploads ----------------------------------------------------------------------------------------------

class ConcurrentUploads(HardeningCase):
    server_args = ["--max-upload-bytes", "64MiB"]

    def test_parallel_form_uploads_of_one_name(self):
        name = f"same-{uuid.uuid4().hex[:6]}.bin"
        contents = [os.urandom(200_000 + i) for i in range(8)]

        def upload(data):
            body, ctype = api.multipart({}, name, data)
            return self.api.json("POST", "/api/media", body=body, token=TOKEN, headers={"Content-Type": ctype})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(upload, contents))
        for status, item in answers:
            self.assertEqual(status, 201, item)
        keys = [item["key"] for _, item in answers]
        self.assertEqual(len(set(keys)), 8, f"keys given twice: {keys}")
        self.assertEqual(len({item["id"] for _, item in answers}), 8, answers)
        for (_, item), data in zip(answers, contents):
            self.assertEqual(item["size"], len(data))
            self.assertEqual(self.storage.read(item["key"]), data, f"{item['key']} lost its content")

    def test_parallel_puts_to_one_key_leave_a_matching_row(self):
        for round_ in range(4):
            key = f"race-{round_}-{uuid.uuid4().hex[:6]}.bin"
            contents = [bytes([i]) * (300_000 + 1000 * i) for i in range(8)]
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda d: self.put(key, d), contents))
            statuses = sorted(s for s, _ in answers)
            self.assertEqual(statuses, [200] * 7 + [201], answers)
            ids = {item["id"] for _, item in answers}
            self.assertEqual(len(ids), 1, answers)
            status, item = self.api.json("GET", f"/api/media/{ids.pop()}")
            self.assertEqual(status, 200, item)
            status, headers, body = self.api.request("GET", "/media/" + key)
            self.assertEqual(status, 200)
            self.assertIn(body, contents, "the stored object is not one of the uploads entirely")
            self.assertEqual(item["etag"], headers["etag"], f"round {round_}: the row describes another version")
            self.assertEqual(item["size"], len(body))

    def test_put_onto_directory_and_long_names(self):
        self.assertEqual(self.put("folder/inside.bin", b"x")[0], 201)
        long_part = "n" * 300
        if self.storage.mode == "local":
            status, body = self.put("folder", b"data")
            self.assertEqual(status, 409, body)
            self.assertIn("directory", body["error"])
            status, body = self.put("folder/inside.bin/below.bin", b"data")
            self.assertEqual(status, 409, body)
            for key in (long_part + ".bin", f"{long_part}/x.bin", f"folder/{long_part}.bin"):
                status, body = self.put(key, b"data")
                self.assertEqual(status, 400, f"{key[:20]}...: {body}")
                self.assertIn("255", body["error"])
                r = self.connect().request("GET", harness.media_target(key))
                self.assertTrue(400 <= r.status < 500, r.describe())
            self.assertNotIn(long_part, os.listdir(self.storage.root), "a refused key left a directory behind")
            r = self.connect().request("GET", "/media/folder")
            self.assertEqual(r.status, 404, r.describe())
        else:  # S3 has no directories, and keys may be 1024 bytes long
            self.assertIn(self.put("folder", b"data")[0], (200, 201))
            self.assertEqual(self.put(long_part + ".bin", b"data")[0], 201)
        self.assertEqual(self.storage.read("folder/inside.bin"), b"x")

    def test_json_numbers_are_plain(self):
        data = (harness.build_cache() / "clip.mp4").read_bytes()
        status, item = self.put(f"dur-{uuid.uuid4().hex[:6]}.mp4", data)
        self.assertEqual(status, 201, item)
        deadline = time.monotonic() + 60
        while True:
            status, headers, raw = self.api.request("GET", f"/api/media/{item['id']}")
            got = json.loads(raw)
            if got["probed"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertTrue(got["probed"], got)
        self.assertRegex(raw.decode(), r'"duration":\d+\.\d{1,3}[,}]', raw)
        self.assertNotRegex(raw.decode(), r':-?\d+(\.\d+)?[eE]', raw)
        self.assertAlmostEqual(got["duration"], 10.0, delta=0.2)
        status, headers, listing = self.api.request("GET", "/api/media?per_page=200")
        self.assertNotRegex(listing.decode(), r'"duration":-?\d+(\.\d+)?[eE]', listing)


if __name__ == "__main__":
    unittest.main()
