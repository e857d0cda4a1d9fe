"""Keys, methods, endpoints, connection handling and hostile clients, over real sockets."""

import random
import re
import socket
import ssl
import threading
import time
import unittest
import urllib.parse
import uuid

import harness
import rawhttp
from harness import MediagateTestCase, media_target, parse_metrics

REFUSED = (400, 404)  # issue 2: a key that escapes the root is refused with 400 or 404
TOO_LARGE = (400, 413, 431)
PASSWD_MARKER = b"root:x:0:0"


class PathSafety(MediagateTestCase):
    def traversal_targets(self):
        secret_dir = urllib.parse.quote(self.fx.secret_dir_name)
        tmp = urllib.parse.quote(str(self.fx.tmp))
        return [
            "/media/../secret.txt", "/media/..%2fsecret.txt", "/media/..%2Fsecret.txt", "/media/%2e%2e/secret.txt",
            "/media/%2E%2E/secret.txt", "/media/%2e%2e%2fsecret.txt", "/media/%2E%2E%2Fsecret.txt",
            "/media/.%2e/secret.txt", "/media/%2e./secret.txt", "/media/sub/../../secret.txt",
            "/media/sub/dir/../../../secret.txt", "/media/sub/%2e%2e/%2e%2e/secret.txt",
            "/media/sub%2F..%2F..%2Fsecret.txt", "/media/./../secret.txt", "/media/..\\secret.txt",
            "/media/%2e%2e%5csecret.txt", "/media/%252e%252e/secret.txt", "/media/....//secret.txt",
            f"/media/../{secret_dir}/secret.txt", f"/media/%2e%2e/{secret_dir}/secret.txt",
            f"/media/%2e%2e%2f{secret_dir}%2fsecret.txt", f"/media/sub/../../{secret_dir}/secret.txt",
            "/media//etc/passwd", "/media/%2fetc/passwd", "/media/%2Fetc%2Fpasswd", "/media/../../../../etc/passwd",
            "/media/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", f"/media/{tmp}/secret.txt",
            f"/media//{tmp}/secret.txt", f"/media/%2F{tmp[1:]}/secret.txt", f"/media/{tmp}/{secret_dir}/secret.txt",
            "/media/link-to-secret.txt", "/media/outside/secret.txt", "/media/outside%2Fsecret.txt",
            "/media/outside/../link-to-secret.txt", "/media/secret.txt%00.jpg", "/media/%00",
            "/media/clip.mp4%00", "/media/clip.mp4%00.jpg", "/media/..%00/secret.txt", "/media/%c0%ae%c0%ae/secret.txt",
            "/../secret.txt", "/media/..", "/media/.", "/media/%2e%2e", "/media/%2e",
        ]

    def assert_no_leak(self, r, target):
        body = r.body + r.raw_head
        self.assertNotIn(harness.SECRET_MARKER, body, f"{target} leaked the secret:\n{r.describe()}")
        self.assertNotIn(PASSWD_MARKER, body, f"{target} leaked /etc/passwd:\n{r.describe()}")

    def test_traversal_is_refused(self):
        for target in self.traversal_targets():
            for method, headers in (("GET", {}), ("GET", {"Range": "bytes=0-"}), ("HEAD", {})):
                with self.subTest(target=target, method=method, headers=headers):
                    r = self.request(method, target, headers)
                    self.assert_no_leak(r, target)
                    self.assertIn(r.status, REFUSED, f"{method} {target}:\n{r.describe()}")

    def test_encoded_slash_is_refused_or_the_same_file(self):
        r = self.request("GET", "/media/sub%2Fdir/x.jpg")
        self.assert_no_leak(r, "sub%2Fdir")
        if r.status == 200:
            self.assert_full(r, "sub/dir/x.jpg")
        else:
            self.assertIn(r.status, REFUSED, r.describe())

    def test_symlink_to_outside_is_refused(self):
        for target in ("/media/link-to-secret.txt", "/media/outside/secret.txt"):
            with self.subTest(target=target):
                r = self.request("GET", target)
                self.assertIn(r.status, REFUSED, r.describe())
                self.assert_no_leak(r, target)

    def test_directories_are_not_served(self):
        for target in ("/media/", "/media/sub", "/media/sub/", "/media/sub/dir", "/media/sub/dir/", "/media"):
            with self.subTest(target=target):
                r = self.request("GET", target)
                self.assertIn(r.status, REFUSED, r.describe())


class Keys(MediagateTestCase):
    def test_percent_encoded_names(self):
        for key in ("vidéo ñ.webm", "my clip.webm", "a+b=c.mp4", "a b=c.mp4", "sub/dir/x.jpg", "png-no-extension"):
            with self.subTest(key=key):
                self.assert_full(self.get(key), key)

    def test_lower_case_percent_encoding(self):
        r = self.request("GET", "/media/vid%c3%a9o%20%c3%b1.webm")
        self.assert_full(r, "vidéo ñ.webm")

    def test_plus_is_a_plus_in_paths(self):
        # Only HTML forms turn '+' into a space; in a path it is a literal '+' (RFC 3986 §3.3).
        self.assert_full(self.request("GET", "/media/a+b=c.mp4"), "a+b=c.mp4")
        self.assert_full(self.request("GET", "/media/a%2Bb%3Dc.mp4"), "a+b=c.mp4")
        self.assert_full(self.request("GET", "/media/a%20b=c.mp4"), "a b=c.mp4")

    def test_ranges_on_encoded_names(self):
        key = "vidéo ñ.webm"
        self.assert_range(self.get(key, {"Range": "bytes=0-1"}), key, 0, 1)

    def test_query_is_not_part_of_the_key(self):
        r = self.request("GET", "/media/image.png?v=123&x=%2e%2e")
        self.assert_full(r, "image.png")

    def test_absolute_form_target(self):
        # RFC 9112 §3.2.2: a server MUST accept the absolute-form.
        r = self.request("GET", f"http://127.0.0.1:{self.port}/media/image.png")
        self.assert_full(r, "image.png")

    def test_unknown_key(self):
        for target in ("/media/no-such-file.mp4", "/media/sub/dir/nope.jpg", "/media/clip.mp4/extra",
                       "/media/CLIP.MP4", "/media/no%20such"):
            with self.subTest(target=target):
                r = self.request("GET", target)
                self.assertEqual(r.status, 404, r.describe())
                self.assert_framing(r)

    def test_unknown_route(self):
        r = self.request("GET", "/no-such-route-" + uuid.uuid4().hex)
        self.assertEqual(r.status, 404, r.describe())


class MethodsAndEndpoints(MediagateTestCase):
    def test_other_methods_are_405(self):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                r = self.request(method, media_target("clip.mp4"), {"Content-Length": "0"})
                self.assertEqual(r.status, 405, r.describe())
                allow = {m.strip().upper() for m in (r.header("allow") or "").split(",")}
                self.assertTrue({"GET", "HEAD"} <= allow, f"Allow must list GET and HEAD:\n{r.describe()}")

    def test_405_with_a_body_keeps_the_connection_usable_or_closes_it(self):
        conn = self.connect()
        r = conn.request("POST", media_target("clip.mp4"), body=b"x" * 1000)
        self.assertEqual(r.status, 405, r.describe())
        # (Over TLS a Python client sees the close of a connection without close_notify about 0.2 s late.)
        if not conn.is_closed_by_peer(1.0 if harness.SCHEME == "https" else 0.2):
            # The request body must have been read (or the connection closed), never parsed as a request.
            self.assert_full(self.get("image.png", conn=conn), "image.png")

    def test_healthz(self):
        r = self.request("GET", "/healthz")
        self.assertEqual(r.status, 200, r.describe())
        self.assert_framing(r)

    def metrics(self):
        r = self.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        self.assert_framing(r)
        self.assertEqual(r.media_type(), "text/plain", r.describe())
        text = r.body.decode("utf-8")
        types, samples = parse_metrics(text)
        return types, samples, text

    @staticmethod
    def total(samples, family, pred=lambda labels: True, suffix=""):
        return sum(v for name, labels, v in samples
                   if name in (family + suffix, family + "_total" + suffix) and pred(labels))

    def families(self, types, kind, *words):
        return [f for f, t in types.items() if t == kind and f.startswith("mediagate_") and any(w in f for w in words)]

    def test_metrics_format(self):
        types, samples, text = self.metrics()
        self.assertTrue(types, f"no '# TYPE' lines:\n{text[:2000]}")
        names = {name for name, _, _ in samples}
        self.assertTrue(any(n.startswith("mediagate_") for n in names), f"no mediagate_ metrics:\n{text[:2000]}")
        self.assertTrue(self.families(types, "counter", "request"), f"no request counter:\n{text[:2000]}")
        self.assertTrue(self.families(types, "counter", "byte"), f"no bytes-sent counter:\n{text[:2000]}")
        self.assertTrue(self.families(types, "gauge", "connection"), f"no active connections gauge:\n{text[:2000]}")
        hists = self.families(types, "histogram", "duration", "seconds", "latency")
        self.assertTrue(hists, f"no request duration histogram:\n{text[:2000]}")
        h = hists[0]
        buckets = [labels.get("le") for name, labels, _ in samples if name == h + "_bucket"]
        self.assertIn("+Inf", buckets, f"{h} has no +Inf bucket")
        self.assertIn(h + "_sum", names)
        self.assertIn(h + "_count", names)

    def test_request_and_byte_counters_increase(self):
        types, before, text = self.metrics()
        counters = self.families(types, "counter", "request")
        self.assertTrue(counters, f"no request counter:\n{text[:2000]}")
        by_200 = lambda labels: "200" in labels.values()
        by_404 = lambda labels: "404" in labels.values()
        for _ in range(3):
            self.assert_full(self.get("image.png"), "image.png")
        self.assertEqual(self.request("GET", "/media/nope-" + uuid.uuid4().hex).status, 404)
        size = self.fx.size("image.png")
        byte_counters = self.families(types, "counter", "byte")

        def grown(after):
            return (any(self.total(after, c, by_200) >= self.total(before, c, by_200) + 3 for c in counters),
                    any(self.total(after, c, by_404) >= self.total(before, c, by_404) + 1 for c in counters),
                    any(self.total(after, c) >= self.total(before, c) + 3 * size for c in byte_counters))

        # A request is counted once its last byte is written: the client may read the response, and ask for
        # /metrics on a connection another event loop serves, a moment before that. Wait a little for it.
        deadline = time.monotonic() + 5
        while True:
            _, after, text = self.metrics()
            got_200, got_404, got_bytes = grown(after)
            if (got_200 and got_404 and got_bytes) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.assertTrue(got_200, f"no request counter with a status 200 label grew by 3:\n{text[:3000]}")
        self.assertTrue(got_404, f"no request counter with a status 404 label grew:\n{text[:3000]}")
        self.assertTrue(got_bytes, f"bytes sent did not grow by 3 x {size}:\n{text[:3000]}")


class ConnectionHandling(MediagateTestCase):
    def test_fifty_requests_on_one_connection(self):
        conn = self.connect()
        etag, _ = self.validators("random.bin")
        for i in range(50):
            kind = i % 5
            if kind == 0:
                self.assert_full(self.get("image.png", conn=conn), "image.png")
            elif kind == 1:
                self.assert_range(self.get("random.bin", {"Range": f"bytes={i * 100}-{i * 100 + 99}"}, conn=conn),
                                  "random.bin", i * 100, i * 100 + 99)
            elif kind == 2:
                self.assert_full(self.get("clip.mp4", method="HEAD", conn=conn), "clip.mp4", method="HEAD")
            elif kind == 3:
                r = conn.request("GET", "/media/nope-" + str(i))
                self.assertEqual(r.status, 404, r.describe())
            else:
                r = self.get("random.bin", {"If-None-Match": etag}, conn=conn)
                self.assertEqual(r.status, 304, r.describe())
        self.assertFalse(conn.is_closed_by_peer(0.1), "connection closed after 50 requests")

    def test_short_and_long_ranges_alternate_on_one_connection(self):
        # Short ranges are streamed through a buffer sized to hold them, long ones through the configured
        # buffer: every switch between the two on one connection must keep the bytes exact.
        conn = self.connect()
        size = self.fx.size("random.bin")
        spans = [(0, 1), (1000, 1000 + 65535), (200_000, size - 1), (5, 5 + 131071), (7, 7 + 131072),
                 (300_000, 300_000 + 99_999), (12_345, size - 1), (size - 65536, size - 1)]
        for first, last in spans:
            self.assert_range(self.get("random.bin", {"Range": f"bytes={first}-{last}"}, conn=conn),
                              "random.bin", first, last)
        self.assertFalse(conn.is_closed_by_peer(0.1), "connection closed after the ranges")

    def test_pipelining(self):
        conn = self.connect()
        reqs = [("GET", "random.bin", {"Range": "bytes=0-9"}), ("HEAD", "clip.mp4", {}),
                ("GET", "nope-pipelined", {}), ("GET", "random.bin", {"Range": "bytes=10-19"}),
                ("GET", "image.jpg", {})]
        conn.send(b"".join(rawhttp.build_request(m, media_target(k), h, port=self.port) for m, k, h in reqs))
        responses = [conn.read_response(m, what=f"pipelined {m} {k}") for m, k, _ in reqs]
        self.assert_range(responses[0], "random.bin", 0, 9)
        self.assert_full(responses[1], "clip.mp4", method="HEAD")
        self.assertEqual(responses[2].status, 404, responses[2].describe())
        self.assert_range(responses[3], "random.bin", 10, 19)
        self.assert_full(responses[4], "image.jpg")

    def test_pipelined_large_bodies(self):
        conn = self.connect()
        size = self.fx.size("clip.mp4")
        conn.send(b"".join(rawhttp.build_request("GET", media_target("clip.mp4"), {"Range": f"bytes={n}-"},
                                                 port=self.port) for n in (0, 1000, size - 10)))
        for n in (0, 1000, size - 10):
            self.assert_range(conn.read_response("GET"), "clip.mp4", n, size - 1)

    def test_http10_gets_a_response_and_the_connection_closes(self):
        conn = self.connect()
        conn.send(b"GET /media/image.png HTTP/1.0\r\n\r\n")
        r = conn.read_response("GET")
        self.assertIn(r.version, ("HTTP/1.0", "HTTP/1.1"))
        self.assert_full(r, "image.png")
        closed, extra = conn.wait_for_close(5)
        self.assertTrue(closed, "the server kept an HTTP/1.0 connection open without keep-alive")
        self.assertEqual(extra, b"")

    def test_connection_close(self):
        conn = self.connect()
        r = conn.request("GET", media_target("image.png"), {"Connection": "close"})
        self.assert_full(r, "image.png")
        closed, extra = conn.wait_for_close(5)
        self.assertTrue(closed, "the server did not close after Connection: close")
        self.assertEqual(extra, b"")


class BadRequests(MediagateTestCase):
    def assert_rejected(self, data: bytes, statuses=(400,), note=""):
        conn = self.connect()
        try:
            conn.send(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it may stop reading early; the response must still be there
        r = conn.read_response("GET", what=note or repr(data[:60]))
        self.assertIn(r.status, statuses, f"{note or data[:80]!r}:\n{r.describe()}")
        self.assertTrue(self.server.alive(), "the server died")
        return r

    def test_malformed_request_lines(self):
        for line in (b"GARBAGE", b"GET", b"GET /media/clip.mp4 HTTP/1.1 extra", b"G\x00T /media/clip.mp4 HTTP/1.1",
                     b"GET /media/clip.mp4 HTTX/1.1", b"GET media/clip.mp4 HTTP/1.1", b"/media/clip.mp4 HTTP/1.1",
                     b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"):
            with self.subTest(line=line):
                self.assert_rejected(line + b"\r\nHost: x\r\n\r\n")

    def test_unsupported_version(self):
        for version in (b"HTTP/9.9", b"HTTP/2.0", b"HTTP/1.x"):
            with self.subTest(version=version):
                self.assert_rejected(b"GET /media/clip.mp4 " + version + b"\r\nHost: x\r\n\r\n", (400, 505))

    def test_bad_header_lines(self):
        for header in (b"NoColon", b"Bad Name: x", b"Host : x", b": empty-name", b"Content-Length: abc",
                       b"Content-Length: -1", b"Content-Length: 1, 2"):
            with self.subTest(header=header):
                self.assert_rejected(b"GET /media/image.png HTTP/1.1\r\nHost: x\r\n" + header + b"\r\n\r\n")
        # RFC 9110 §5.5: NUL in a field value is rejected or replaced with SP.
        self.assert_rejected(b"GET /media/image.png HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n", (200, 400))

    def test_host_is_required_once(self):
        # RFC 9112 §3.2: 400 for an HTTP/1.1 request without Host or with more than one.
        self.assert_rejected(b"GET /media/image.png HTTP/1.1\r\n\r\n", note="no Host")
        self.assert_rejected(b"GET /media/image.png HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", note="two Hosts")

    def test_garbage_bytes(self):
        rng = random.Random(7)
        for i in range(5):
            data = rng.randbytes(2048) + b"\r\n\r\n"
            with self.subTest(i=i):
                self.assert_rejected(data)

    def test_header_too_large(self):
        self.assert_rejected(b"GET /media/image.png HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100_000 + b"\r\n\r\n",
                             TOO_LARGE, note="100 KB header")
        self.assert_rejected(b"GET /media/" + b"a" * 100_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
                             TOO_LARGE + (414,), note="100 KB target")

    def test_too_many_header_fields(self):
        fields = b"".join(b"X-%d: 1\r\n" % i for i in range(500))
        self.assert_rejected(b"GET /media/image.png HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n", TOO_LARGE,
                             note="500 header fields")

    def test_browser_sized_headers_are_fine(self):
        headers = [("Cookie", "session=" + "c" * 3000), ("User-Agent", "Mozilla/5.0 " + "x" * 200)]
        headers += [(f"X-Extra-{i}", "v" * 20) for i in range(30)]
        self.assert_full(self.get("image.png", headers), "image.png")

    def test_server_survives_and_serves_after_bad_requests(self):
        self.test_garbage_bytes()
        self.assert_full(self.get("image.png"), "image.png")


class Timeouts(MediagateTestCase):
    server_args = ["--header-timeout", "2", "--idle-timeout", "2"]
    LIMIT = 2.0
    SLACK = 2.5

    def assert_408_or_closed(self, data: bytes, what: str):
        if data:
            self.assertTrue(data.startswith(b"HTTP/1.1 408") or data.startswith(b"HTTP/1.0 408"),
                            f"{what}: expected 408 or a silent close, got {data[:300]!r}")

    def test_slowloris(self):
        conn = self.connect()
        start = time.monotonic()
        conn.send(b"GET /media/clip.mp4 HTTP/1.1\r\nHost: x\r\n")
        received = b""
        closed = False
        while time.monotonic() - start < self.LIMIT + self.SLACK + 2:
            try:
                conn.send(b"X")  # dripping bytes must not extend the header deadline
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            closed, data = conn.wait_for_close(0.5)
            received += data
            if closed:
                break
        elapsed = time.monotonic() - start
        self.assertTrue(closed, f"connection still open {elapsed:.1f}s after a header started dripping "
                                f"(--header-timeout 2)")
        self.assertLess(elapsed, self.LIMIT + self.SLACK, "closed, but too late")
        self.assert_408_or_closed(received, "slowloris")

    def test_silent_connection(self):
        conn = self.connect()
        start = time.monotonic()
        closed, data = conn.wait_for_close(self.LIMIT + self.SLACK)
        self.assertTrue(closed, f"a connection that sent nothing is still open after {self.LIMIT + self.SLACK}s")
        self.assertGreater(time.monotonic() - start, 1.0, "closed before any deadline could have passed")
        self.assert_408_or_closed(data, "silent connection")

    def test_idle_keep_alive_connection_is_closed(self):
        conn = self.connect()
        self.assert_full(self.get("image.png", conn=conn), "image.png")
        start = time.monotonic()
        closed, data = conn.wait_for_close(self.LIMIT + self.SLACK)
        elapsed = time.monotonic() - start
        self.assertTrue(closed, f"an idle keep-alive connection is still open after {elapsed:.1f}s "
                                "(--idle-timeout 2)")
        self.assertGreater(elapsed, 1.0, "closed before the idle deadline could have passed")
        self.assert_408_or_closed(data, "idle connection")

    def test_requests_inside_the_deadlines_work(self):
        conn = self.connect()
        for _ in range(3):
            time.sleep(1.0)  # shorter than the idle deadline: the connection stays
            self.assert_full(self.get("image.png", conn=conn), "image.png")
        # A header sent in pieces, completed within the deadline.
        conn.send(b"GET /media/image.png HTTP/1.1\r\n")
        time.sleep(0.5)
        conn.send(b"Host: x\r\n")
        time.sleep(0.5)
        conn.send(b"\r\n")
        self.assert_full(conn.read_response("GET"), "image.png")

    def test_a_long_download_is_not_cut_by_the_deadlines(self):
        # Reading a body slowly for longer than both deadlines is not idleness.
        conn = self.connect(rcvbuf=65536)
        conn.send_request("GET", media_target("big100.bin"), {"Range": "bytes=0-2999999"})
        head = conn.read_head()
        self.assertEqual(head.status, 206, head.describe())
        check = harness.PatternCheck(0)
        check(conn.buf)
        got = len(conn.buf)
        conn.buf.clear()
        start = time.monotonic()
        while got < 3_000_000:
            time.sleep(0.05)
            chunk = conn.sock.recv(32768)
            if not chunk:
                self.fail(f"connection closed after {got} of 3000000 bytes, "
                          f"{time.monotonic() - start:.1f}s into a slow download")
            check(chunk)
            got += len(chunk)
            if time.monotonic() - start > 20:
                break
        self.assertIsNone(check.problem())
        self.assertGreater(time.monotonic() - start, self.LIMIT + 1, "the download was not slow: test is void")


class ConnectionCap(MediagateTestCase):
    server_args = ["--max-connections", "5"]

    def test_sixth_connection(self):
        # The start-up check's connection counts until its event loop reads the close; with one acceptor per
        # loop another loop may accept the five below before that happens.
        time.sleep(0.3)
        conns = [rawhttp.Connection(self.port) for _ in range(5)]
        try:
            for c in conns:
                self.assert_full(self.get("image.png", conn=c), "image.png")
            try:
                sixth = rawhttp.Connection(self.port, timeout=3)
            except (ssl.SSLError, ConnectionResetError):
                # Over TLS a refused connection is closed before the handshake: no 503 can be said.
                self.assertEqual(harness.SCHEME, "https", "the 6th plain connection failed to connect")
                sixth = None
            if sixth is not None:
                try:
                    try:
                        sixth.send_request("GET", media_target("image.png"))
                    except (BrokenPipeError, ConnectionResetError):
                        pass
                    closed, data = sixth.wait_for_close(3)
                    if data:
                        self.assertRegex(data[:20], rb"^HTTP/1\.[01] 503 ",
                                         f"the 6th connection must get 503 or be closed: {data[:300]!r}")
                    else:
                        self.assertTrue(closed, "the 6th connection got neither 503 nor a close within 3 s")
                finally:
                    sixth.close()
            for c in conns:
                self.assert_full(self.get("image.png", conn=c), "image.png")
        finally:
            for c in conns:
                c.close()
        # Slots are freed: a new connection succeeds soon.
        deadline = time.monotonic() + 5
        while True:
            try:
                with rawhttp.Connection(self.port, timeout=3) as c:
                    r = self.get("image.png", conn=c)
                if r.status == 200:
                    self.assert_full(r, "image.png")
                    break
                last = r.describe()
            except AssertionError as e:
                last = str(e)
            if time.monotonic() > deadline:
                self.fail(f"no new connection served 5 s after the others closed: {last}")
            time.sleep(0.1)


class Streaming(MediagateTestCase):
    def active_connections(self) -> float:
        with rawhttp.Connection(self.port) as c:
            r = c.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        types, samples = parse_metrics(r.body.decode())
        gauges = [f for f, t in types.items() if t == "gauge" and "connection" in f and "max" not in f]
        gauges.sort(key=lambda f: "active" not in f)
        self.assertTrue(gauges, "no active connections gauge in /metrics")
        return sum(v for name, _, v in samples if name == gauges[0])

    def wait_for_gauge(self, expected: float, timeout: float = 10.0) -> None:
        # At most: a baseline taken just after another test may still count a connection being closed.
        deadline = time.monotonic() + timeout
        while True:
            value = self.active_connections()
            if value <= expected:
                return
            if time.monotonic() > deadline:
                self.fail(f"active connections gauge is {value}, expected it back at {expected}")
            time.sleep(0.1)

    def abort_download(self, key: str, headers=(), reset: bool = True, first: int = 0) -> None:
        """Reads the head and the first 64 KiB (checked: they start at file offset `first`), then drops."""
        conn = rawhttp.Connection(self.port, rcvbuf=65536)
        conn.send_request("GET", media_target(key), headers)
        head = conn.read_head()
        self.assertEqual(head.status, 206 if first else 200, head.describe())
        check = harness.PatternCheck(first)
        check(conn.buf)
        got = len(conn.buf)
        conn.buf.clear()
        while got < 65536:
            chunk = conn.read_some()
            self.assertTrue(chunk, "connection closed early")
            check(chunk)
            got += len(chunk)
        conn.close(reset=reset)
        self.assertIsNone(check.problem())

    def download_checked(self, key: str) -> int:
        """GET of a whole large file, every byte compared with the pattern as it arrives."""
        check = harness.PatternCheck(0)
        with rawhttp.Connection(self.port, timeout=15) as c:
            r = c.request("GET", media_target(key), sink=check)
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.header("content-length"), str(harness.LARGE[key]))
        self.assertEqual(r.body_length, harness.LARGE[key])
        self.assertIsNone(check.problem())
        return r.body_length

    def test_client_disconnects_mid_stream(self):
        baseline = self.active_connections()
        for reset in (True, False):
            for first in (0, 1003):
                headers = {"Range": f"bytes={first}-"} if first else {}
                with self.subTest(reset=reset, headers=headers):
                    self.abort_download("big.bin", headers, reset=reset, first=first)
                    self.wait_for_gauge(baseline)
                    self.assertIsNone(self.server.health_problem())
        self.assertEqual(self.download_checked("big100.bin"), 100 * harness.MIB)
        self.wait_for_gauge(baseline)

    def test_many_aborted_downloads(self):
        baseline = self.active_connections()
        for _ in range(20):
            self.abort_download("big.bin", reset=True)
        self.wait_for_gauge(baseline)
        self.assert_full(self.get("image.png"), "image.png")

    def test_stalled_reader_does_not_block_others(self):
        baseline = self.active_connections()
        stalled = rawhttp.Connection(self.port, rcvbuf=4096)
        try:
            stalled.send_request("GET", media_target("big.bin"))
            start = time.monotonic()
            served = 0
            while time.monotonic() - start < 3.0:
                t0 = time.monotonic()
                with rawhttp.Connection(self.port, timeout=2) as c:
                    self.assert_full(self.get("image.png", conn=c), "image.png")
                    self.assert_range(self.get("random.bin", {"Range": "bytes=-100"}, conn=c), "random.bin",
                                      (1 << 20) - 100, (1 << 20) - 1)
                self.assertLess(time.monotonic() - t0, 2.0, "a request took more than 2 s beside a stalled reader")
                served += 1
            self.assertGreater(served, 5)
            # The stalled client then reads: it still gets the start of the file.
            head = stalled.read_head()
            self.assertEqual(head.status, 200, head.describe())
        finally:
            stalled.close(reset=True)
        self.wait_for_gauge(baseline)

    def test_concurrent_downloads(self):
        results, errors = [], []

        def worker(key):
            try:
                results.append(self.download_checked(key))
            except BaseException as e:  # reported below, in the test's thread
                errors.append(e)

        threads = [threading.Thread(target=worker, args=("big100.bin",)) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertFalse(errors, errors)
        self.assertEqual(results, [100 * harness.MIB] * 3)


class AccessLog(MediagateTestCase):
    def test_one_line_per_request_with_method_target_status_range(self):
        start = self.server.line_count()
        r = self.get("random.bin", {"Range": "bytes=12345-12399"})
        self.assert_range(r, "random.bin", 12345, 12399)
        line = self.server.wait_for_line(
            lambda l: "GET" in l and "/media/random.bin" in l and "206" in l and "12345-12399" in l, 5, start)
        self.assertIsNotNone(line, f"no access log line with GET, the target, 206 and the Range:\n"
                                   f"{self.server.output(20)}")

    def test_error_statuses_are_logged(self):
        start = self.server.line_count()
        name = "missing-" + uuid.uuid4().hex
        self.assertEqual(self.request("GET", "/media/" + name).status, 404)
        line = self.server.wait_for_line(lambda l: name in l and "404" in l, 5, start)
        self.assertIsNotNone(line, f"no access log line for the 404:\n{self.server.output(20)}")
        start = self.server.line_count()
        self.assertEqual(self.get("random.bin", {"Range": "bytes=9999999-"}).status, 416)
        line = self.server.wait_for_line(lambda l: "416" in l and "random.bin" in l, 5, start)
        self.assertIsNotNone(line, f"no access log line for the 416:\n{self.server.output(20)}")

    def test_head_is_logged(self):
        start = self.server.line_count()
        self.assertEqual(self.get("image.jpg", method="HEAD").status, 200)
        line = self.server.wait_for_line(lambda l: "HEAD" in l and "/media/image.jpg" in l and "200" in l, 5, start)
        self.assertIsNotNone(line, f"no access log line for the HEAD:\n{self.server.output(20)}")


if __name__ == "__main__":
    unittest.main()
