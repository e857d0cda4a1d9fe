"""S3 over HTTPS with virtual-hosted addressing (issue 15), run by CTest's integration_s3_tls beside
test_http_rules: the harness (MEDIAGATE_TEST_S3_TLS=1) starts radosgw with a test CA's certificate for
*.s3.test only and `rgw dns name = s3.test`; every server reaches https://BUCKET.s3.test:PORT through
--s3-connect-to 127.0.0.1:PORT, trusting the CA through AWS_CA_BUNDLE.

Here: TLS sessions are resumed across new connections to the store (and not when turned off), pooled connections
are reused, and a store whose certificate is not trusted, or names another host, is refused at start-up with a
reason that says so."""

from __future__ import annotations

import os
import subprocess
import unittest

import harness
import rawhttp
import tlsutil

STARTUP_LIMIT = 20.0
KEY = "clip.mp4"


metrics = harness.unlabelled_metrics


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(f"mediagate_s3_{name}_total", 0) - before.get(f"mediagate_s3_{name}_total", 0)


class S3OverTls(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        if harness.STORAGE_MODE != "s3" or not harness.S3_TLS:
            raise unittest.SkipTest("run through run_suite.py --storage s3 --s3-tls (CTest integration_s3_tls)")
        cls.fx = harness.fixtures()
        cls.expected = cls.fx.content(KEY)

    def start(self, *args: str) -> harness.Server:
        server = harness.Server(self.fx, ["--threads", "1", "--access-log", "off", *args], name=self.id())
        self.addCleanup(server.stop)
        return server

    def ranges(self, server: harness.Server, count: int) -> tuple[dict[str, float], dict[str, float]]:
        """`count` small ranged GETs on one client connection, each checked byte for byte; metrics around them."""
        before = metrics(server.port)
        with rawhttp.Connection(server.port, timeout=15.0) as c:
            for i in range(count):
                first = 1000 * i
                r = c.request("GET", harness.media_target(KEY), {"Range": f"bytes={first}-{first + 99}"})
                self.assertEqual(r.status, 206, r.describe())
                self.assertEqual(r.body, self.expected[first:first + 100])
        return before, metrics(server.port)

    def test_sessions_resumed_on_new_connections(self) -> None:
        server = self.start("--s3-idle-connections", "0")  # every S3 request on a new connection
        before, after = self.ranges(server, 6)
        opened, handshakes = delta(after, before, "connections_opened"), delta(after, before, "tls_handshakes")
        self.assertGreaterEqual(opened, 6, "without idle connections every request dials anew")
        self.assertEqual(handshakes, opened)
        # The loop's first connection may need a full handshake; every later one offers the session it got.
        self.assertGreaterEqual(delta(after, before, "tls_resumed"), handshakes - 1, after)

    def test_no_resumption_when_turned_off(self) -> None:
        server = self.start("--s3-idle-connections", "0", "--s3-no-tls-resume")
        before, after = self.ranges(server, 4)
        self.assertGreaterEqual(delta(after, before, "tls_handshakes"), 4)
        self.assertEqual(delta(after, before, "tls_resumed"), 0, after)

    def test_pooled_connection_reused(self) -> None:
        server = self.start()
        before, after = self.ranges(server, 6)
        self.assertGreaterEqual(delta(after, before, "get_requests"), 6)
        self.assertLessEqual(delta(after, before, "connections_opened"), 1, after)

    # -- refused at start-up

    def serve_fails(self, args, env_overrides: dict[str, str], what: str) -> str:
        env = {**os.environ, **self.fx.server_env, **env_overrides}
        storage_args = list(self.fx.storage_args)
        if "--s3-addressing" in args:  # the option may be given once
            i = storage_args.index("--s3-addressing")
            del storage_args[i:i + 2]
        cmd = [str(harness.binary()), "serve", "--listen", "127.0.0.1:0", "--access-log", "off", *storage_args,
               *args]
        try:
            r = subprocess.run(cmd, cwd=self.fx.tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=STARTUP_LIMIT, preexec_fn=harness._die_with_parent)
        except subprocess.TimeoutExpired as e:
            self.fail(f"{what}: serve still running after {STARTUP_LIMIT}s; stderr: {e.stderr!r}")
        harness.assert_clean_exit(self, r)
        self.assertNotEqual(r.returncode, 0, f"{what}: serve must fail; stderr: {r.stderr}")
        self.assertNotIn("listening on", r.stdout, f"{what}: serve claimed to listen")
        return r.stderr

    def test_untrusted_certificate_refused_at_startup(self) -> None:
        other = tlsutil.TestCA(self.fx.tmp / "other-ca", name="some other CA")
        err = self.serve_fails([], {"AWS_CA_BUNDLE": str(other.cert)}, "a CA that did not sign the store's cert")
        self.assertIn("is not trusted", err)
        self.assertIn("unable to get local issuer certificate", err)
        self.assertIn("--s3-ca-file", err)

    def test_certificate_for_another_name_refused_at_startup(self) -> None:
        # Path style addresses s3.test itself, which the store's certificate (*.s3.test) does not name.
        err = self.serve_fails(["--s3-addressing", "path"], {}, "path style to a name the certificate lacks")
        self.assertIn("is not trusted", err)
        self.assertIn("hostname mismatch", err)

    def test_missing_ca_file_refused(self) -> None:
        missing = str(self.fx.tmp / "no-such-ca.pem")
        err = self.serve_fails([], {"AWS_CA_BUNDLE": missing}, "a CA file that does not exist")
        self.assertIn(f"no such file: {missing}", err)


if __name__ == "__main__":
    unittest.main()
