"""HTTPS at the edge (issue 13) over real sockets: protocol versions and ciphers, session resumption, bad
handshakes (plain HTTP, a truncated ClientHello, TLS 1.0/1.1 clients, a silent client), certificate reload
(SIGHUP and file change) with a stream open across it, refused bad pairs, and --redirect-http.

The suite makes its own test CA (tlsutil.py); the HTTP rules themselves run over TLS in integration_https."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
import unittest

import harness
import rawhttp
import tlsutil
from harness import MIB, PatternCheck, Server, fixtures, media_target, parse_metrics


def client_hello() -> bytes:
    """The first flight of a real TLS client: a complete ClientHello record."""
    ctx = ssl.create_default_context()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class TlsCase(unittest.TestCase):
    """One HTTPS server per class on --listen, with its own CA and certificate files it may replace."""

    extra_args: list[str] = []

    @classmethod
    def setUpClass(cls) -> None:
        cls.fx = fixtures()
        cls.ca = tlsutil.TestCA(cls.fx.tmp / f"ca-{cls.__name__}")
        cls.pair = cls.ca.issue("first")
        cls.cert = cls.ca.dir / "live.pem"
        cls.key = cls.ca.dir / "live.key"
        shutil.copyfile(cls.pair.cert, cls.cert)
        shutil.copyfile(cls.pair.key, cls.key)
        cls.client = cls.ca.client_context()
        cls.server = Server(cls.fx, ["--tls-cert", str(cls.cert), "--tls-key", str(cls.key), "--header-timeout",
                                     "1", *cls.extra_args], name=cls.__name__, client_tls=cls.client)
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls) -> None:
        problem = cls.server.health_problem()
        cls.server.stop(check=False)
        problems = ([problem] if problem else []) + cls.server.end_problems()
        if problems:
            raise AssertionError(f"{cls.__name__}: {'; '.join(problems)}; output:\n{cls.server.output()}")

    def run(self, result=None):
        return harness.run_reporting_server_output(self, result, super().run, lambda: (
            f"\nlast server output ({self.server.name}):\n{self.server.output(15)}"))

    def connect(self, tls=None, **kwargs) -> rawhttp.Connection:
        conn = rawhttp.Connection(self.port, tls=self.client if tls is None else tls, **kwargs)
        self.addCleanup(conn.close)
        return conn

    def tls_socket(self, ctx: ssl.SSLContext, **kwargs) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        sock = ctx.wrap_socket(raw, server_hostname="127.0.0.1", **kwargs)
        self.addCleanup(sock.close)
        return sock

    def handshakes(self) -> dict[str, float]:
        r = self.connect().request("GET", "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        _, samples = parse_metrics(r.body.decode())
        return {labels["result"]: value for name, labels, value in samples
                if name == "mediagate_tls_handshakes_total"}

    def assert_serves(self) -> None:
        r = self.connect().request("GET", media_target("random.bin"), [("Range", "bytes=10-19")])
        self.assertEqual(r.status, 206, r.describe())
        self.assertEqual(r.body, self.fx.content("random.bin")[10:20])


class Handshakes(TlsCase):
    def test_tls13_and_tls12_with_modern_ciphers(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version):
                ctx = self.ca.client_context(minimum_version=version, maximum_version=version)
                sock = self.tls_socket(ctx)
                self.assertEqual(sock.version(), version.name.replace("_", "."))
                cipher = sock.cipher()[0]
                if version == ssl.TLSVersion.TLSv1_2:
                    self.assertTrue(cipher.startswith("ECDHE-") and ("GCM" in cipher or "CHACHA20" in cipher),
                                    cipher)

    def test_tls13_suite_is_the_servers_first_unless_the_client_wants_chacha20(self):
        # Python's client lists OpenSSL's default TLS 1.3 suites, AES-256-GCM first: the server's order picks
        # AES-128-GCM (what browsers list first); a client that puts ChaCha20 first gets ChaCha20.
        ctx = self.ca.client_context(minimum_version=ssl.TLSVersion.TLSv1_3)
        self.assertEqual(self.tls_socket(ctx).cipher()[0], "TLS_AES_128_GCM_SHA256")
        for offered, expected in (("TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256",
                                   "TLS_CHACHA20_POLY1305_SHA256"),
                                  ("TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_256_GCM_SHA384")):
            with self.subTest(offered=offered):
                out = subprocess.run(["openssl", "s_client", "-connect", f"127.0.0.1:{self.port}", "-tls1_3",
                                      "-ciphersuites", offered, "-CAfile", str(self.ca.cert), "-brief"],
                                     input=b"", capture_output=True, timeout=20)
                text = (out.stdout + out.stderr).decode(errors="replace")
                self.assertIn(f"Ciphersuite: {expected}", text)

    def test_tls12_without_forward_secrecy_is_refused(self):
        ctx = self.ca.client_context(maximum_version=ssl.TLSVersion.TLSv1_2)
        ctx.set_ciphers("AES128-GCM-SHA256:AES256-SHA:AES128-SHA")
        with self.assertRaises(ssl.SSLError):
            self.tls_socket(ctx)
        self.assert_serves()

    def test_tls10_and_tls11_clients_are_refused_cleanly(self):
        before = self.handshakes().get("failed", 0)
        for version in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
            with self.subTest(version=version):
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                ctx.set_ciphers("ALL:@SECLEVEL=0")
                ctx.minimum_version = ssl.TLSVersion.TLSv1
                ctx.maximum_version = version
                with self.assertRaises(ssl.SSLError):
                    self.tls_socket(ctx)
        self.assert_serves()
        self.assertGreaterEqual(self.handshakes().get("failed", 0), before + 2)

    def test_plain_http_to_the_tls_port_is_closed(self):
        before = self.handshakes().get("failed", 0)
        conn = self.connect(tls=False)
        conn.send(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        closed, data = conn.wait_for_close(5.0)
        self.assertTrue(closed, "the server kept a plain HTTP client on the TLS port open")
        self.assertNotIn(b"HTTP/1.1 200", data)
        self.assert_serves()
        self.assertGreaterEqual(self.handshakes().get("failed", 0), before + 1)

    def test_truncated_client_hello_then_close(self):
        hello = client_hello()
        self.assertGreater(len(hello), 100)
        conn = self.connect(tls=False)
        conn.send(hello[:60])
        conn.close()
        conn = self.connect(tls=False)
        conn.send(hello[:5] + b"\x00" * 40)  # a record header, then garbage as the handshake message
        closed, _ = conn.wait_for_close(5.0)
        self.assertTrue(closed)
        self.assert_serves()

    def test_a_client_that_stops_mid_handshake_is_dropped_at_the_deadline(self):
        before = self.handshakes().get("timeout", 0)
        conn = self.connect(tls=False)
        conn.send(client_hello()[:60])
        started = time.monotonic()
        closed, _ = conn.wait_for_close(5.0)
        self.assertTrue(closed, "a stalled handshake was kept open past --header-timeout (1 s)")
        self.assertLess(time.monotonic() - started, 4.0)
        self.assertGreaterEqual(self.handshakes().get("timeout", 0), before + 1)
        self.assert_serves()

    def test_session_resumption_by_ticket(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version):
                ctx = self.ca.client_context(minimum_version=version, maximum_version=version)
                first = self.tls_socket(ctx)
                first.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                first.recv(4096)  # TLS 1.3 tickets arrive after the handshake
                session = first.session
                self.assertIsNotNone(session)
                self.assertTrue(session.has_ticket, "no session ticket was issued")
                second = self.tls_socket(ctx, session=session)
                self.assertTrue(second.session_reused, "the ticket did not resume the session")

    def test_alpn_offers_http11(self):
        ctx = self.ca.client_context()
        ctx.set_alpn_protocols(["http/1.1"])
        self.assertEqual(self.tls_socket(ctx).selected_alpn_protocol(), "http/1.1")
        ctx = self.ca.client_context()
        ctx.set_alpn_protocols(["spdy/3"])  # nothing in common: the handshake goes on without ALPN
        self.assertIsNone(self.tls_socket(ctx).selected_alpn_protocol())


class Reload(TlsCase):
    extra_args = ["--tls-reload-interval", "0.2"]

    def serial(self) -> str:
        return tlsutil.peer_serial(self.tls_socket(self.client))

    def replace(self, cert, key) -> None:
        """Replaces the live files atomically (rename), as certbot and friends do."""
        for src, dst in ((cert, self.cert), (key, self.key)):
            tmp = dst.with_suffix(".new")
            shutil.copyfile(src, tmp)
            os.replace(tmp, dst)

    def test_reload_keeps_open_streams_and_refuses_bad_pairs(self):
        self.assertEqual(self.serial(), self.pair.serial)
        # A 32 MiB response in flight across every reload below, read slowly at first.
        length = 32 * MIB
        stream = self.connect(rcvbuf=64 * 1024)
        stream.send_request("GET", media_target("big.bin"), [("Range", f"bytes=0-{length - 1}")])
        head = stream.read_head()
        self.assertEqual(head.status, 206, head.describe())
        check = PatternCheck(0)
        check(stream.read_exact(MIB, "the first MiB"))
        ticket_ctx = self.ca.client_context(maximum_version=ssl.TLSVersion.TLSv1_3)
        before = self.tls_socket(ticket_ctx)
        before.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        before.recv(4096)
        session = before.session

        # SIGHUP with a new pair: new connections get it at once.
        second = self.ca.issue("second")
        self.replace(second.cert, second.key)
        mark = self.server.line_count()
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.server.wait_for_line(r"TLS certificate .* loaded \(SIGHUP\)", 5, mark),
                             self.server.output())
        self.assertEqual(self.serial(), second.serial)
        resumed = self.tls_socket(ticket_ctx, session=session)
        self.assertTrue(resumed.session_reused, "a ticket issued before the reload no longer resumes")

        # A key that does not match the certificate: refused, logged, the second pair keeps serving.
        third = self.ca.issue("third")
        self.replace(third.cert, second.key)
        mark = self.server.line_count()
        self.server.proc.send_signal(signal.SIGHUP)
        self.assertIsNotNone(self.server.wait_for_line(r"TLS certificate reload refused \(SIGHUP\).*(mismatch|does not match)",
                                                       5, mark), self.server.output())
        self.assertEqual(self.serial(), second.serial)
        # A file that is not PEM at all, noticed by the change poll: refused the same way.
        mark = self.server.line_count()
        self.cert.write_text("not a certificate\n")
        self.assertIsNotNone(self.server.wait_for_line(r"TLS certificate reload refused \(the files changed\)", 5,
                                                       mark), self.server.output())
        self.assertEqual(self.serial(), second.serial)

        # The fixed pair is picked up by the poll, without a signal.
        mark = self.server.line_count()
        self.replace(third.cert, third.key)
        self.assertIsNotNone(self.server.wait_for_line(r"TLS certificate .* loaded \(the files changed\)", 5, mark),
                             self.server.output())
        self.assertEqual(self.serial(), third.serial)

        # The stream that was open all along finishes with every byte right.
        while check.pos < length:
            data = stream.read_some("the rest of the stream")
            self.assertTrue(data, f"the stream ended after {check.pos} of {length} bytes")
            check(data)
        self.assertIsNone(check.problem())
        self.assertEqual(check.pos, length)


class Redirect(unittest.TestCase):
    """--listen plain beside --listen-tls, with --redirect-http."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.fx = fixtures()
        cls.ca = tlsutil.TestCA(cls.fx.tmp / "ca-redirect")
        pair = cls.ca.issue()
        cls.client = cls.ca.client_context()
        cls.server = Server(cls.fx, ["--tls-cert", str(pair.cert), "--tls-key", str(pair.key), "--listen-tls",
                                     "127.0.0.1:0", "--redirect-http"], name="Redirect", client_tls=cls.client)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def test_plain_requests_are_redirected_to_https(self):
        tls_port = self.server.tls_port
        with rawhttp.Connection(self.server.port, tls=False) as c:
            r = c.request("GET", "/media/a%20b.mp4?x=1", [("Host", "127.0.0.1:1234")], host=False)
            self.assertEqual(r.status, 308, r.describe())
            self.assertEqual(r.header("location"), f"https://127.0.0.1:{tls_port}/media/a%20b.mp4?x=1")
            r = c.request("HEAD", "/", [("Host", "localhost")], host=False)
            self.assertEqual(r.header("location"), f"https://localhost:{tls_port}/")
            r = c.request("GET", "/", [("Host", "evil/x")], host=False)
            self.assertEqual(r.status, 400, r.describe())
            self.assertIsNone(r.header("location"))
        with rawhttp.Connection(tls_port, tls=self.client) as c:
            r = c.request("GET", media_target("random.bin"), [("Range", "bytes=0-9")])
            self.assertEqual(r.status, 206, r.describe())
            self.assertEqual(r.body, self.fx.content("random.bin")[:10])


if __name__ == "__main__":
    unittest.main()
