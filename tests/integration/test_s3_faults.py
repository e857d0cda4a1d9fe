"""Fault and accounting tests of the S3 backend against a real Ceph radosgw and a misbehaving stand-in store.

Run as its own CTest test (integration_s3_faults):
    MEDIAGATE_BIN=build/mediagate /usr/bin/python3 -m unittest -v test_s3_faults     (in tests/integration)

It starts its own one-host radosgw (scripts/radosgw.sh) in a temporary directory, and its own mediagate servers
on free ports. It is skipped when collected by `unittest discover` (integration_local / integration_s3), since
it manages its own cluster and would only run twice more there.

Figures worth reading (bytes fetched from S3, RSS per stream, the behaviour observed after a replacement) are
printed to stderr as lines starting with "s3-faults:".
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
import uuid
from pathlib import Path
from typing import Optional

import harness
import rawhttp
from fake_upstream import FakeUpstream

MIB = 1 << 20
SEED = 20240607
BIG_SIZE = 100 * MIB  # the byte-counting object; its first 64 MiB are also the kill-test object
KILL_SIZE = 64 * MIB
PUT_SIZE = 20 * MIB
STARTUP_LIMIT = 10.0  # seconds a misconfigured `serve` may take to give up


def load_tests(loader, standard_tests, pattern):
    # `unittest discover` (the integration_local / integration_s3 suites) passes a pattern; running this module
    # by name passes None. This file starts its own radosgw and has its own CTest entry: don't run it twice more.
    if pattern is not None and not os.environ.get("MEDIAGATE_S3_FAULTS_IN_DISCOVERY"):
        class S3FaultsNotInDiscovery(unittest.TestCase):
            @unittest.skip("test_s3_faults runs as its own test (ctest -R integration_s3_faults)")
            def test_skipped(self) -> None:
                pass
        return loader.loadTestsFromTestCase(S3FaultsNotInDiscovery)
    return standard_tests


def note(text: str) -> None:
    print(f"s3-faults: {text}", file=sys.stderr, flush=True)


def mib(n: float) -> str:
    return f"{n / MIB:.2f} MiB"


# -- helpers ---------------------------------------------------------------------------------------------

def free_closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


metrics = harness.unlabelled_metrics


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def target(key: str) -> str:
    return harness.media_target(key)


class Fetched:
    """What a client got for one request, however it ended."""

    def __init__(self) -> None:
        self.resp: Optional[rawhttp.Response] = None  # None: the connection closed before a response head
        self.body = bytearray()
        self.complete = False  # the whole Content-Length arrived
        self.error = ""  # why it ended early

    @property
    def status(self) -> Optional[int]:
        return self.resp.status if self.resp else None

    def header(self, name: str) -> Optional[str]:
        return self.resp.header(name) if self.resp else None

    def describe(self) -> str:
        if self.resp is None:
            return f"no response ({self.error})"
        state = "complete" if self.complete else f"incomplete: {self.error}"
        return f"{self.resp.raw_head.decode('latin-1')}[{len(self.body)} body bytes, {state}] {bytes(self.body[:80])!r}"


def fetch(port: int, method: str, path: str, headers=(), timeout: float = 15.0,
          conn: Optional[rawhttp.Connection] = None) -> Fetched:
    """One request that tolerates a connection closed at any point (rawhttp's read_response raises instead)."""
    f = Fetched()
    own = conn is None
    if own:
        conn = rawhttp.Connection(port, timeout=timeout)
    try:
        conn.send_request(method, path, headers)
        try:
            f.resp = conn.read_head(f"reading the answer to {method} {path}")
        except rawhttp.ConnectionClosed as e:
            f.error = str(e)
            return f
        if method == "HEAD" or f.resp.status in (204, 304):
            f.complete = True
            return f
        length = f.resp.header("content-length")
        if length is None or f.resp.has("transfer-encoding"):
            raise AssertionError(f"media answers need an exact Content-Length:\n{f.describe()}")
        left = int(length)
        while left > 0:
            data = conn.read_some(f"reading the body of {method} {path}")
            if not data:
                f.error = f"connection closed after {len(f.body)} of {length} bytes"
                return f
            take = data[:left]
            f.body += take
            if len(data) > left:
                conn.buf[:0] = data[left:]
            left -= len(take)
        f.complete = True
        return f
    finally:
        if own:
            conn.close()


def wait_until(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def settle(port: int, timeout: float = 10.0, quiet: float = 0.5) -> dict[str, float]:
    """Waits until no client connection but ours is open and S3 bytes stop arriving; returns the metrics."""
    deadline = time.monotonic() + timeout
    last = metrics(port)
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = metrics(port)
        if now["mediagate_s3_received_bytes_total"] != last["mediagate_s3_received_bytes_total"] or \
                now["mediagate_active_connections"] > 1:
            stable_since = time.monotonic()
        last = now
        if time.monotonic() - stable_since >= quiet:
            return last
    raise AssertionError(f"the server kept reading from S3 or kept client connections open for {timeout}s: {last}")


class Radosgw:
    """A one-host Ceph cluster of scripts/radosgw.sh under `root`."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "radosgw"
        self.root = root
        self.env: dict[str, str] = {}
        self.client = None

    def run(self, command: str, timeout: float = 120) -> None:
        log = self.root / f"radosgw-{command}.log"
        with open(log, "ab") as out:
            r = subprocess.run([str(harness.REPO / "scripts" / "radosgw.sh"), command, str(self.dir)],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/radosgw.sh {command} failed:\n{log.read_text(errors='replace')[-3000:]}")

    def start(self) -> None:
        self.run("start", timeout=180)
        env = harness._read_env_file(self.dir / "env")
        self.env = {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                         "AWS_REGION")}
        import s3util
        self.s3util = s3util
        self.client = s3util.client_from_env(endpoint_url=self.env["AWS_ENDPOINT_URL"],
                                             access_key=self.env["AWS_ACCESS_KEY_ID"],
                                             secret_key=self.env["AWS_SECRET_ACCESS_KEY"],
                                             region=self.env["AWS_REGION"])
        s3util.wait_until_ready(client=self.client)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
        try:
            self.run("stop", timeout=120)
        except Exception as e:  # best effort: also called after failures
            print(f"s3-faults: stopping radosgw: {e}", file=sys.stderr)

    def put(self, bucket: str, key: str, data: bytes, content_type: Optional[str] = None) -> str:
        return self.s3util.put_object(bucket, key, data, content_type, client=self.client)


def server_fixture(tmp: Path, storage: str, env: dict[str, str]):
    """What harness.Server needs of a Fixtures object."""
    return types.SimpleNamespace(tmp=tmp, storage_args=["--storage", storage], server_env=dict(env))


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """The environment for a CLI run: ours without AWS settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env["HOME"] = env.get("HOME", "/nonexistent")
    env.update(extra)
    return env


# -- against a real radosgw ------------------------------------------------------------------------------

class RadosgwFaults(unittest.TestCase):
    maxDiff = 2000

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="mediagate-s3-faults-"))
        cls.rgw = Radosgw(cls.tmp)
        cls.servers: list[harness.Server] = []
        try:
            cls.rgw.start()
            cls.bucket = f"mg-faults-{uuid.uuid4().hex[:10]}"
            cls.rgw.s3util.create_bucket(cls.bucket, client=cls.rgw.client)
            cls.big = random.Random(SEED).randbytes(BIG_SIZE)
            cls.rgw.put(cls.bucket, "kill.bin", cls.big[:KILL_SIZE])
            cls.server = cls.start_server([], "main")
            cls.port = cls.server.port
        except BaseException:
            cls._cleanup()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        problems = []
        try:
            if getattr(cls, "server", None) is not None:
                problem = cls.server.health_problem()
                if problem:
                    problems.append(problem + "\n" + cls.server.output(30))
        finally:
            problems += cls._cleanup()
        if problems:
            raise AssertionError("at the end of RadosgwFaults: " + "\n".join(problems))

    @classmethod
    def _cleanup(cls) -> list[str]:
        """Stops every server (each checked for its exit status and sanitizer reports) and radosgw; returns
        what was wrong with how the servers ended."""
        problems = []
        for s in list(cls.servers):
            try:
                s.stop()
            except AssertionError as e:
                problems.append(str(e))
        cls.servers.clear()
        cls.rgw.stop()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        return problems

    @classmethod
    def start_server(cls, args, name: str, storage: Optional[str] = None) -> harness.Server:
        fx = server_fixture(cls.tmp, storage or f"s3://{cls.bucket}", cls.rgw.env)
        s = harness.Server(fx, ["--access-log", "off", *args], name=name)
        cls.servers.append(s)
        return s

    def stop_server(self, s: harness.Server) -> None:
        s.stop()
        if s in self.servers:
            self.servers.remove(s)

    def cli(self, args, env_overrides=None, timeout: float = 60.0) -> subprocess.CompletedProcess:
        env = clean_env(dict(self.rgw.env, **(env_overrides or {})))
        r = subprocess.run([str(harness.binary()), *args], cwd=self.tmp, env=env, stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=timeout, preexec_fn=harness._die_with_parent)
        harness.assert_clean_exit(self, r)
        return r

    def cold_player_start(self, port: int, prefix: str, body: bytes,
                          read: int) -> tuple[str, rawhttp.Connection, bytes, dict[str, float]]:
        """A new key under `prefix` holding `body`, then a player's `bytes=0-` of it on a connection with a 64 KiB
        receive buffer and its first `read` bytes read and checked: the key, the open connection, those bytes,
        and the server's metrics from before the request."""
        key = f"{prefix}/{uuid.uuid4().hex[:8]}.mp4"
        self.rgw.put(self.bucket, key, body, "video/mp4")
        m0 = settle(port)
        c = rawhttp.Connection(port, timeout=20.0, rcvbuf=64 * 1024)
        c.send_request("GET", target(key), [("Range", "bytes=0-")])
        self.assertEqual(c.read_head().status, 206)
        got = c.read_at_least(read, "the head's bytes")
        self.assertTrue(got == body[:len(got)], "the head's bytes differ")
        return key, c, got, m0

    def assert_exact(self, f: Fetched, status: int, expected: bytes, first: Optional[int] = None,
                     size: Optional[int] = None) -> None:
        self.assertEqual(f.status, status, f.describe())
        self.assertTrue(f.complete, f.describe())
        self.assertEqual(int(f.header("content-length")), len(expected), f.describe())
        if status == 206:
            self.assertEqual(f.header("content-range"), f"bytes {first}-{first + len(expected) - 1}/{size}",
                             f.describe())
        self.assertTrue(bytes(f.body) == expected, f"wrong bytes:\n{f.describe()}")

    # -- 1. start-up checks ------------------------------------------------------------------------------

    def serve_fails(self, args, env_overrides, what: str, code: int = 1) -> str:
        """Runs a misconfigured `serve`; it must exit with `code` (1: storage refused; 2: a bad option) within
        STARTUP_LIMIT. Returns its stderr."""
        env = clean_env(dict(self.rgw.env, **env_overrides))
        cmd = [str(harness.binary()), "serve", "--listen", "127.0.0.1:0", "--access-log", "off", *args]
        t0 = time.monotonic()
        try:
            r = subprocess.run(cmd, cwd=self.tmp, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                               text=True, timeout=STARTUP_LIMIT, preexec_fn=harness._die_with_parent)
        except subprocess.TimeoutExpired as e:
            self.fail(f"{what}: `serve` still running after {STARTUP_LIMIT}s; stdout: {e.stdout!r} "
                      f"stderr: {e.stderr!r}")
        elapsed = time.monotonic() - t0
        harness.assert_clean_exit(self, r)
        self.assertEqual(r.returncode, code, f"{what}: serve must exit {code}; stderr: {r.stderr}")
        self.assertNotIn("listening on", r.stdout, f"{what}: serve claimed to listen")
        note(f"serve with {what}: exit {r.returncode} after {elapsed:.2f}s: {r.stderr.strip().splitlines()[-1:]}")
        return r.stderr

    def ls_fails(self, args, env_overrides, what: str) -> str:
        t0 = time.monotonic()
        r = self.cli(["ls", *args], env_overrides, timeout=STARTUP_LIMIT)
        self.assertNotEqual(r.returncode, 0, f"{what}: ls exited 0; stdout {r.stdout!r}")
        self.assertLess(time.monotonic() - t0, STARTUP_LIMIT)
        self.assertTrue(r.stderr.strip(), f"{what}: ls failed without a message")
        return r.stderr

    def test_1_startup_faults(self) -> None:
        storage = f"s3://{self.bucket}"
        key_id = self.rgw.env["AWS_ACCESS_KEY_ID"]
        # Wrong secret: from the environment, and from both options.
        for args, env, what in [
            ([], {"AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789"}, "a wrong secret in AWS_SECRET_ACCESS_KEY"),
            (["--s3-access-key", key_id, "--s3-secret-key", "wrong-secret-0123456789"], {},
             "a wrong --s3-secret-key"),
            ([], {"AWS_ACCESS_KEY_ID": "NOSUCHACCESSKEY"}, "an unknown access key id"),
        ]:
            with self.subTest(what):
                err = self.serve_fails(["--storage", storage, *args], env, what)
                self.assertRegex(err.lower(), r"credential", f"{what}: the message should name the credentials")
                err = self.ls_fails([storage, *args], env, what)
                self.assertRegex(err.lower(), r"credential", f"ls, {what}")
        # A missing bucket: the message names it.
        missing = f"mg-missing-{uuid.uuid4().hex[:8]}"
        with self.subTest("missing bucket"):
            err = self.serve_fails(["--storage", f"s3://{missing}"], {}, "a missing bucket")
            self.assertIn(missing, err)
            self.assertRegex(err.lower(), r"does not exist|no such bucket|nosuchbucket")
            err = self.ls_fails([f"s3://{missing}"], {}, "a missing bucket")
            self.assertIn(missing, err)
        # An endpoint where nothing listens.
        port = free_closed_port()
        with self.subTest("unreachable endpoint"):
            for args, env in [([], {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}),
                              (["--s3-endpoint", f"http://127.0.0.1:{port}"], {})]:
                err = self.serve_fails(["--storage", storage, *args], env, "an unreachable endpoint")
                self.assertIn(f"127.0.0.1:{port}", err, "the message should name the endpoint")
                self.assertRegex(err.lower(), r"unreachable|connect|refused")
                self.ls_fails([storage, *args], env, "an unreachable endpoint")
        # put fails too, and says why.
        with self.subTest("put faults"):
            src = self.tmp / "small.bin"
            src.write_bytes(b"x" * 1000)
            r = self.cli(["put", str(src), f"s3://{missing}/x.bin"], timeout=STARTUP_LIMIT)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            r = self.cli(["put", str(src), f"s3://{self.bucket}/x.bin"],
                         {"AWS_SECRET_ACCESS_KEY": "wrong-secret-0123456789"}, timeout=STARTUP_LIMIT)
            self.assertNotEqual(r.returncode, 0, r.stderr)
            self.assertRegex(r.stderr.lower(), "credential")
        # A first read (--s3-first-read) that is not 0 or a size from 64 KiB to 64 MiB.
        for bad in ("10", "1GiB", "lots"):
            with self.subTest(f"--s3-first-read {bad}"):
                err = self.serve_fails(["--storage", storage, "--s3-first-read", bad], {}, "a bad first read", 2)
                self.assertIn("--s3-first-read", err)
                self.assertIn(bad, err)

    # -- 2. radosgw killed mid-stream, then restarted ---------------------------------------------------------

    def test_2_rgw_killed_mid_stream(self) -> None:
        data = self.big[:KILL_SIZE]
        before = metrics(self.port)
        conn = rawhttp.Connection(self.port, timeout=20.0, rcvbuf=64 * 1024)
        self.addCleanup(conn.close)
        conn.send_request("GET", target("kill.bin"))
        head = conn.read_head()
        self.assertEqual(head.status, 200, head.raw_head)
        length = int(head.header("content-length"))
        self.assertEqual(length, KILL_SIZE)
        got = bytearray()
        # A slow client: about 10 MB/s, until 4 MiB have arrived.
        while len(got) < 4 * MIB:
            chunk = conn.read_some("reading the body before the kill")
            self.assertTrue(chunk, f"closed after {len(got)} bytes before radosgw was killed")
            got += chunk
            time.sleep(0.005)
        self.assertTrue(got == data[:len(got)], "wrong bytes before the kill")
        at_kill = len(got)
        killed = time.monotonic()
        try:
            self.rgw.run("kill-rgw", timeout=60)
            # Drain whatever comes: the server must end the response early (close), never finish it.
            closed = False
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and len(got) <= length:
                try:
                    chunk = conn.read_some("reading the body after the kill")
                except rawhttp.ServerHang as e:
                    self.fail(f"the server neither sent more nor closed for 20 s after radosgw died ({len(got)} "
                              f"bytes so far): {e}\n{self.server.output(20)}")
                if not chunk:
                    closed = True
                    break
                got += chunk
            closed_after = time.monotonic() - killed
            self.assertTrue(closed, f"no close within 40 s of the kill ({len(got)} of {length} bytes)")
            self.assertLess(len(got), length, "a complete body arrived although radosgw was killed")
            if got != data[:len(got)]:
                self.fail(f"the {len(got)} bytes received differ from the object's prefix (first difference at "
                          f"{next(i for i in range(len(got)) if got[i] != data[i])})")
            note(f"kill-rgw mid-stream: client had {mib(at_kill)} at the kill, got {mib(len(got))} of "
                 f"{mib(length)} in all, connection closed {closed_after:.2f}s after the kill")
            conn.close()

            # The server lives on: /healthz, and an S3-backed request fails cleanly while radosgw is down.
            self.assertIsNone(self.server.health_problem())
            t0 = time.monotonic()
            f = fetch(self.port, "GET", target("kill.bin"), [("Range", "bytes=0-99")], timeout=30)
            # Connection refused: upstream_unavailable, 502 (src/s3/s3_client.cpp io_error_of; router.cpp).
            self.assertEqual(f.status, 502, f"request while radosgw is down:\n{f.describe()}")
            note(f"while radosgw is down: GET bytes=0-99 -> {f.status} in {time.monotonic() - t0:.2f}s")
            f = fetch(self.port, "GET", target("never-uploaded.bin"), timeout=30)
            self.assertEqual(f.status, 502, f.describe())  # unreachable is not "no such key": never a 404
        finally:
            self.rgw.run("restart-rgw", timeout=120)
            self.rgw.s3util.wait_until_ready(client=self.rgw.client)

        mid = metrics(self.port)
        # The pool recovers: its idle connections died with radosgw; new requests must still succeed.
        for first, last in [(0, 99), (123457, 1123456), (KILL_SIZE - 10, KILL_SIZE - 1)]:
            f = fetch(self.port, "GET", target("kill.bin"), [("Range", f"bytes={first}-{last}")])
            self.assert_exact(f, 206, data[first:last + 1], first, KILL_SIZE)
        digest = hashlib.sha256()
        with rawhttp.Connection(self.port, timeout=20.0) as c:
            r = c.request("GET", target("kill.bin"), sink=digest.update)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body_length, KILL_SIZE)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(data).hexdigest(), "full GET after restart: wrong bytes")
        after = metrics(self.port)
        self.assertIsNone(self.server.health_problem())
        keys = ["mediagate_s3_resumes_total", "mediagate_s3_retries_total", "mediagate_s3_errors_total",
                "mediagate_s3_connections_opened_total"]
        note("kill/restart counters (during outage | after restart): " +
             ", ".join(f"{k.removeprefix('mediagate_s3_')}={mid[k] - before[k]:.0f}|{after[k] - mid[k]:.0f}"
                       for k in keys))

    # -- 3. an object replaced between two range requests ------------------------------------------------

    def test_3_replaced_object_short_ttl(self) -> None:
        s = self.start_server(["--s3-meta-ttl", "1", "--threads", "1"], "ttl1")
        try:
            key = "replace-short.bin"
            v1 = random.Random(SEED + 1).randbytes(MIB)
            v2 = random.Random(SEED + 2).randbytes(MIB)  # same size: only the ETag tells them apart
            self.rgw.put(self.bucket, key, v1)
            f1 = fetch(s.port, "GET", target(key), [("Range", "bytes=0-99")])
            self.assert_exact(f1, 206, v1[:100], 0, MIB)
            etag1 = f1.header("etag")
            self.rgw.put(self.bucket, key, v2)
            time.sleep(1.5)  # past --s3-meta-ttl
            f2 = fetch(s.port, "GET", target(key), [("Range", "bytes=100-199")])
            self.assert_exact(f2, 206, v2[100:200], 100, MIB)
            etag2 = f2.header("etag")
            self.assertNotEqual(etag1, etag2, "the replaced object must have a new ETag")
            # A browser resuming with If-Range and the old ETag gets the whole new object.
            f3 = fetch(s.port, "GET", target(key), [("Range", "bytes=200-299"), ("If-Range", etag1)])
            self.assert_exact(f3, 200, v2)
            self.assertEqual(f3.header("etag"), etag2)
            f4 = fetch(s.port, "GET", target(key), [("Range", "bytes=200-299"), ("If-Range", etag2)])
            self.assert_exact(f4, 206, v2[200:300], 200, MIB)
            self.assertIsNone(s.health_problem())
        finally:
            self.stop_server(s)

    def test_3_replaced_object_long_ttl(self) -> None:
        s = self.start_server(["--s3-meta-ttl", "60", "--threads", "1"], "ttl60")
        try:
            key = "replace-long.bin"
            v1 = random.Random(SEED + 3).randbytes(MIB)
            v2 = random.Random(SEED + 4).randbytes(MIB + 4321)  # another size too
            etag1_s3 = self.rgw.put(self.bucket, key, v1)
            f1 = fetch(s.port, "GET", target(key), [("Range", "bytes=0-99")])
            self.assert_exact(f1, 206, v1[:100], 0, MIB)
            etag1 = f1.header("etag")
            self.assertEqual(etag1.strip('"'), etag1_s3)
            etag2_s3 = self.rgw.put(self.bucket, key, v2)
            observed = []
            for attempt in range(3):
                f = fetch(s.port, "GET", target(key), [("Range", "bytes=100-199")])
                self.check_one_version(f, {etag1: v1, f'"{etag2_s3}"': v2}, 100, 199)
                observed.append(f"{f.status} {f.header('etag')}" if f.status else "closed")
                if f.status == 206 and f.header("etag") == f'"{etag2_s3}"':
                    break
            note(f"--s3-meta-ttl 60, object replaced after a read: next GETs -> {observed}")
            # Whatever the first answer, the server must not go on failing for the whole TTL: a failed If-Match
            # drops the cached metadata, and the next request sees the new version.
            self.assertEqual(observed[-1], f'206 "{etag2_s3}"',
                             f"the server did not pick up the new version: {observed}")
            # A whole-object GET is consistent too.
            f = fetch(s.port, "GET", target(key))
            self.check_one_version(f, {etag1: v1, f'"{etag2_s3}"': v2}, None, None)
            # Replaced again, then a whole-object GET with the old metadata still cached: the failed If-Match
            # sends the server back to the store for the new version within this same request.
            v3 = random.Random(SEED + 5).randbytes(MIB + 99)
            etag3_s3 = self.rgw.put(self.bucket, key, v3)
            f = fetch(s.port, "GET", target(key))
            self.assertEqual((f.status, f.header("etag")), (200, f'"{etag3_s3}"'), f.describe())
            self.assertTrue(f.complete and bytes(f.body) == v3, f.describe())
            self.assertIsNone(s.health_problem())
        finally:
            self.stop_server(s)

    def check_one_version(self, f: Fetched, versions: dict[str, bytes], first, last) -> None:
        """A clean failure (5xx, or closed without a complete body) or bytes wholly of the version its ETag names."""
        if f.status is None or f.status >= 500:
            return
        self.assertIn(f.status, (200, 206), f.describe())
        etag = f.header("etag")
        self.assertIn(etag, versions, f"an ETag of neither version:\n{f.describe()}")
        data = versions[etag]
        if f.status == 206:
            expected = data[first:last + 1]
            self.assertEqual(f.header("content-range"), f"bytes {first}-{last}/{len(data)}",
                             f"Content-Range of another version than the ETag:\n{f.describe()}")
        else:
            expected = data
        self.assertEqual(int(f.header("content-length")), len(expected), f.describe())
        self.assertTrue(bytes(f.body) == expected[:len(f.body)], f"bytes of another version:\n{f.describe()}")
        if not f.complete:
            return  # closed early, but what came was right
        self.assertEqual(len(f.body), len(expected))

    # -- 5. bytes read from S3, and memory per stream --------------------------------------------------------

    def test_5_byte_counting_and_memory(self) -> None:
        # .mp4: `put` stores video/mp4, so no extra read is needed to sniff the type (see test_6 for that case)
        key = "big100.mp4"
        src = self.tmp / "big100.mp4"
        src.write_bytes(self.big)
        r = self.cli(["put", str(src), f"s3://{self.bucket}/{key}"], timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        src.unlink()
        data = self.big
        port = self.port

        # Safari: a 2-byte probe, then closed ranges, on one keep-alive connection.
        m0 = settle(port)
        with rawhttp.Connection(port, timeout=20.0) as c:
            for first, last in [(0, 1), (0, 65535), (1048576, 1114111)]:
                f = fetch(port, "GET", target(key), [("Range", f"bytes={first}-{last}")], conn=c)
                self.assert_exact(f, 206, data[first:last + 1], first, BIG_SIZE)
        m1 = settle(port)
        safari = m1["mediagate_s3_received_bytes_total"] - m0["mediagate_s3_received_bytes_total"]
        gets = m1["mediagate_s3_get_requests_total"] - m0["mediagate_s3_get_requests_total"]
        heads = m1["mediagate_s3_head_requests_total"] - m0["mediagate_s3_head_requests_total"]
        note(f"Safari sequence (0-1, 0-65535, 1048576-1114111) on {mib(BIG_SIZE)}: {safari:.0f} bytes from S3 "
             f"in {gets:.0f} GETs and {heads:.0f} HEADs")
        self.assertEqual(safari, 2 + 65536 + 65536, "bytes read from S3 for the Safari sequence")

        # Chrome: bytes=0- and a seek to bytes=50000000-, each read for 1 MiB, then abandoned.
        chrome = []
        for first in (0, 50000000):
            before = settle(port)
            c = rawhttp.Connection(port, timeout=20.0)
            try:
                c.send_request("GET", target(key), [("Range", f"bytes={first}-")])
                head = c.read_head()
                self.assertEqual(head.status, 206, head.raw_head)
                self.assertEqual(head.header("content-range"), f"bytes {first}-{BIG_SIZE - 1}/{BIG_SIZE}")
                got = bytearray()
                while len(got) < MIB:
                    chunk = c.read_some()
                    self.assertTrue(chunk, "closed early")
                    got += chunk
                got = got[:MIB]
                self.assertTrue(got == data[first:first + MIB], f"wrong bytes at {first}")
            finally:
                c.close()
            after = settle(port)
            fetched = after["mediagate_s3_received_bytes_total"] - before["mediagate_s3_received_bytes_total"]
            chrome.append(fetched)
            note(f"Chrome bytes={first}-, read 1 MiB then closed: {fetched:.0f} bytes ({mib(fetched)}) from S3")
        for fetched in chrome:
            self.assertLess(fetched, 8 * MIB, "the server went on reading from S3 after the client left")

        # Memory: 50 concurrent readers of the big object that stop reading after their first bytes.
        pid = self.server.proc.pid
        base = settle(port)
        rss0 = rss_bytes(pid)
        readers = []
        try:
            for _ in range(50):
                c = rawhttp.Connection(port, timeout=20.0, rcvbuf=64 * 1024)
                readers.append(c)
                c.send_request("GET", target(key))
            for c in readers:
                head = c.read_head()
                self.assertEqual(head.status, 200, head.raw_head)
                first = c.read_some()
                self.assertTrue(first and bytes(first) == data[:len(first)])
            # Backpressure: S3 bytes stop growing once every stream's buffers are full.
            def steady():
                a = metrics(port)["mediagate_s3_received_bytes_total"]
                time.sleep(0.5)
                b = metrics(port)["mediagate_s3_received_bytes_total"]
                return b if a == b else None
            stalled = wait_until(steady, 20.0, 0.0)
            self.assertIsNotNone(stalled, "S3 bytes kept arriving although no client read")
            rss1 = rss_bytes(pid)
            during = metrics(port)
            per_stream_s3 = (during["mediagate_s3_received_bytes_total"] - base["mediagate_s3_received_bytes_total"]) / 50
            per_stream_rss = (rss1 - rss0) / 50
            note(f"50 stalled readers: RSS {mib(rss0)} before, {mib(rss1)} during; growth "
                 f"{per_stream_rss / 1024:.0f} KiB per stream; S3 bytes read ahead per stream {mib(per_stream_s3)}; "
                 f"active connections {during['mediagate_active_connections']:.0f}")
            self.assertLess(per_stream_s3, 8 * MIB, "a stalled stream read far ahead from S3")
            self.assertLess(per_stream_rss, 4 * MIB, "memory per stream")
        finally:
            for c in readers:
                c.close(reset=True)
        done = settle(port, timeout=15)
        note(f"after the 50 readers left: RSS {mib(rss_bytes(pid))}; active connections "
             f"{done['mediagate_active_connections']:.0f}")
        self.assertIsNone(self.server.health_problem())

    # -- 5b. round trips to S3 per cold request (issue 15) ----------------------------------------------

    def test_5b_s3_requests_per_cold_request(self) -> None:
        """A cold GET costs one S3 request: the metadata comes with the ranged GET (Content-Range gives the
        size), whose body is the planned range when it is what the plan asks for, with exact bytes both to
        the client and from S3. Other plans drop that read and ask again, never sending an unplanned byte."""
        size = 3 * MIB + 12345
        data = random.Random(SEED + 515).randbytes(size)
        cache_dir = self.tmp / "cache-5b"
        cached = self.start_server(["--cache-dir", str(cache_dir), "--cache-slice", "1MiB"], "cache-5b")
        counter = iter(range(1000))

        def cold_key() -> str:
            key = f"cold/{uuid.uuid4().hex[:8]}-{next(counter)}.mp4"
            self.rgw.put(self.bucket, key, data, "video/mp4")
            return key

        def measure(port: int, key: str, headers, method: str = "GET") -> tuple[Fetched, dict[str, float]]:
            before = settle(port)
            f = fetch(port, method, target(key), headers)
            after = settle(port)
            names = ("requests", "get_requests", "head_requests", "received_bytes")
            return f, {n: after[f"mediagate_s3_{n}_total"] - before[f"mediagate_s3_{n}_total"] for n in names}

        def check(port, key, headers, status, first, last, requests, received, what, method="GET"):
            f, d = measure(port, key, headers, method)
            note(f"{what}: {d['requests']:.0f} S3 requests ({d['get_requests']:.0f} GET, "
                 f"{d['head_requests']:.0f} HEAD), {d['received_bytes']:.0f} bytes from S3")
            expected = data[first:last + 1] if method == "GET" and status in (200, 206) else b""
            compare_body = method == "HEAD" or status in (200, 206, 304)
            self.assertEqual(f.status, status, f"{what}: {f.describe()}")
            self.assertTrue(f.complete, f"{what}: {f.describe()}")
            if status == 206:
                self.assertEqual(f.header("content-range"), f"bytes {first}-{last}/{size}", what)
            if compare_body:
                self.assertTrue(bytes(f.body) == expected, f"{what}: wrong bytes:\n{f.describe()}")
            self.assertEqual(d["requests"], requests, f"{what}: S3 requests {d}")
            if received is not None:
                self.assertEqual(d["received_bytes"], received, f"{what}: bytes from S3 {d}")
            return f

        port = self.port
        n = size - 1
        # Cold: one GET, exactly the planned bytes from S3.
        check(port, cold_key(), [("Range", "bytes=0-1")], 206, 0, 1, 1, 2, "cold bytes=0-1 (Safari's probe)")
        check(port, cold_key(), [("Range", f"bytes={MIB}-")], 206, MIB, n, 1, size - MIB, "cold bytes=1MiB-")
        check(port, cold_key(), [("Range", "bytes=100-199")], 206, 100, 199, 1, 100, "cold bytes=100-199")
        check(port, cold_key(), [("Range", f"bytes=100-{size + 5}")], 206, 100, n, 1, size - 100,
              "cold bytes=100-(past the end)")
        key = cold_key()
        check(port, key, [], 200, 0, n, 1, size, "cold GET without Range")
        # Warm metadata: one GET too.
        check(port, key, [("Range", "bytes=5-9")], 206, 5, 9, 1, 5, "metadata cached, bytes=5-9")
        # Plans that need something else: the metadata (and, for a body, a second GET of the planned bytes).
        check(port, cold_key(), [("Range", "bytes=-100")], 206, size - 100, n, 2, 100, "cold suffix bytes=-100")
        # (S3's 416 gives no size: a HEAD follows; the bytes from S3 are its short error document.)
        check(port, cold_key(), [("Range", f"bytes={size + 10}-")], 416, 0, -1, 2, None, "cold bytes past the end")
        check(port, cold_key(), [("If-None-Match", "*")], 304, 0, -1, 1, 0, "cold If-None-Match: *")
        # Two ranges (multipart bodies are checked by test_http_rules; here the count and the bytes from S3):
        f, d = measure(port, cold_key(), [("Range", "bytes=0-1,10-19")])
        self.assertEqual((f.status, d["requests"], d["received_bytes"]), (206, 3, 12), f"two ranges: {d}")
        # If-Range that does not match: the plan is the whole object; the read of bytes=N- is dropped unused
        # (its connection closed, so S3 bytes are bounded) and the client gets exactly the whole object.
        f = check(port, cold_key(), [("Range", f"bytes={MIB}-"), ("If-Range", '"another"')], 200, 0, n, 2,
                  None, "cold If-Range mismatch")
        self.assertEqual(f.header("content-range"), None)
        # HEAD: the metadata only.
        check(port, cold_key(), [], 200, 0, -1, 1, 0, "cold HEAD", method="HEAD")

        # Through the slice cache: one GET of whole slices for a cold object, the client's bytes exact. An MP4 read
        # from its start also gets its last 2 MiB asked for in parallel (--cache-tail-prefetch): here slices 2 and 3
        # are kept, and the part of slice 1 before them is read and dropped.
        cport = cached.port
        check(cport, cold_key(), [("Range", "bytes=0-1")], 206, 0, 1, 2, 3 * MIB, "cache, cold bytes=0-1")
        key = cold_key()
        check(cport, key, [("Range", f"bytes={MIB + 10}-")], 206, MIB + 10, n, 1, size - MIB,
              "cache, cold bytes=1MiB+10-")
        check(cport, key, [("Range", f"bytes={MIB + 10}-")], 206, MIB + 10, n, 0, 0, "cache, warm bytes=1MiB+10-")
        check(cport, key, [("Range", "bytes=0-1")], 206, 0, 1, 1, MIB, "cache, metadata warm, slice 0 cold")

        # An MP4 whose index (moov) follows the media: its tail is asked for together with its head, so the
        # player's next request (for the moov) costs no S3 request. Once the head shows the index after the media,
        # the index prefetch finds the tail's slices (cached, or still being fetched: it waits for them). A
        # fast-start MP4 gets the tail too (its size is not known before the answers), and no index prefetch.
        for layout, body in harness.mp4_layouts(random.Random(SEED + 516), 2 * MIB + 777, 100_000).items():
            key = f"cold/{uuid.uuid4().hex[:8]}.mp4"
            self.rgw.put(self.bucket, key, body, "video/mp4")
            index = body.index(b"moov") - 4
            m0 = settle(cport)
            f = fetch(cport, "GET", target(key), [("Range", "bytes=0-1")])
            self.assertEqual((f.status, bytes(f.body)), (206, body[:2]), f.describe())
            m1 = settle(cport)
            started = m1["mediagate_cache_index_prefetches_total"] - m0["mediagate_cache_index_prefetches_total"]
            tails = m1["mediagate_cache_tail_prefetches_total"] - m0["mediagate_cache_tail_prefetches_total"]
            requests = m1["mediagate_s3_requests_total"] - m0["mediagate_s3_requests_total"]
            f = fetch(cport, "GET", target(key), [("Range", f"bytes={index}-")])
            m2 = settle(cport)
            self.assertEqual((f.status, f.header("content-range")), (206, f"bytes {index}-{len(body) - 1}/{len(body)}"))
            self.assertTrue(bytes(f.body) == body[index:], f"{layout}: wrong bytes for the index")
            later = m2["mediagate_s3_requests_total"] - m1["mediagate_s3_requests_total"]
            note(f"cache, {layout}: bytes=0-1 -> {requests:.0f} S3 requests ({tails:.0f} tail, {started:.0f} index "
                 f"prefetch); then the moov (bytes={index}-) -> {later:.0f} S3 requests")
            # (fast start: the moov is in slice 0, which the first request cached, and the range runs on into the
            # slices of the tail)
            self.assertEqual((tails, requests, later), (1, 2, 0), layout)
            self.assertLessEqual(started, 1 if layout == "moov at end" else 0, layout)
        self.assertIsNone(cached.health_problem())
        self.assertIsNone(self.server.health_problem())

    def test_5c_moov_at_end_cold_start_without_cache(self) -> None:
        """Without a slice cache, a player's first request of an MP4 (`bytes=0-`) also gets the object's last MiB
        asked for in parallel, into memory, and the first MiB it reads kept (read to that point after the client
        left): Chrome's next requests, the index (moov) at the end and then the media from where it stopped
        reading the head, are answered from memory (joining the tail while it is on its way) instead of costing
        an S3 round trip each; a resume past the kept MiB continues with one GET of exactly the rest. Exact bytes
        throughout. Requests outside the tail, Safari's probe and other keys are unchanged."""
        body = harness.mp4_layouts(random.Random(SEED + 517), 3 * MIB + 999, 90_000)["moov at end"]
        size = len(body)
        index = body.index(b"moov") - 4
        # Kept bytes serve a request only for the version its metadata names, which is cached for --s3-meta-ttl:
        # longer than this test's steps (each waits for S3 to settle). Four event loops: a browser's requests
        # come on several connections, which land on any loop (each caches metadata for itself); the kept bytes
        # serve them all.
        server = self.start_server(["--s3-meta-ttl", "60", "--threads", "4"], "ends")
        self.addCleanup(self.stop_server, server)
        port = server.port
        names = ("requests", "get_requests", "received_bytes")

        def cold_key(ext: str = "mp4") -> str:
            key = f"cold/{uuid.uuid4().hex[:8]}.{ext}"
            self.rgw.put(self.bucket, key, body, "video/mp4")
            return key

        def diff(a: dict, b: dict) -> dict:
            return {n: a[f"mediagate_s3_{n}_total"] - b[f"mediagate_s3_{n}_total"] for n in names}

        def start(key: str) -> dict[str, dict]:
            """Chrome's cold start: bytes=0- (64 KiB read), the index, the head left, then two resumes at 64 KiB
            (within the first MiB; to the end); the S3 requests and bytes of each."""
            out = {}
            m0 = settle(port)
            with rawhttp.Connection(port, timeout=20.0) as c:
                c.send_request("GET", target(key), [("Range", "bytes=0-")])
                head = c.read_head()
                self.assertEqual(head.status, 206, head.raw_head)
                got = c.read_at_least(64 * 1024, "reading the head's bytes")
                self.assertTrue(got == body[:len(got)], "the head's bytes differ")
                m1 = metrics(port)
                f = fetch(port, "GET", target(key), [("Range", f"bytes={index}-")])
                self.assert_exact(f, 206, body[index:], index, size)
                out["moov"] = diff(metrics(port), m1)
                c.close(reset=True)
            m2 = settle(port)
            out["start"] = diff(m2, m0)
            f = fetch(port, "GET", target(key), [("Range", f"bytes=65536-{2 * 65536 - 1}")])
            self.assert_exact(f, 206, body[65536:2 * 65536], 65536, size)
            m3 = settle(port)
            out["resume in"] = diff(m3, m2)
            f = fetch(port, "GET", target(key), [("Range", "bytes=65536-")])
            self.assert_exact(f, 206, body[65536:], 65536, size)
            out["resume"] = diff(settle(port), m3)
            return out

        for _ in range(2):  # (the connections land on other loops each time)
            mp4 = start(cold_key())
            self.assertEqual(mp4["moov"]["requests"], 0, f"the index came from S3 again: {mp4}")
            self.assertEqual(mp4["resume in"]["requests"], 0, f"the kept head: {mp4}")
        mp4_key = cold_key()
        mp4 = start(mp4_key)
        # (The head is asked for alone, its rest only once half of it is sent: a player that took 64 KiB of it
        # and left costs no GET for the rest, test_5e.)
        # The tail holds the last MiB only: a request that starts before it goes to S3 (exact bytes, one GET).
        m0 = settle(port)
        first = size - MIB - 10
        f = fetch(port, "GET", target(mp4_key), [("Range", f"bytes={first}-")])
        self.assert_exact(f, 206, body[first:], first, size)
        self.assertEqual(diff(settle(port), m0)["requests"], 1)
        note("no cache, cold moov-at-end start: " + "; ".join(
            f"{k} {v['requests']:.0f} S3 requests, {v['received_bytes']:.0f} bytes" for k, v in mp4.items()))
        self.assertEqual((mp4["start"]["requests"], mp4["start"]["get_requests"]), (2, 2), f"head and tail: {mp4}")
        self.assertEqual(mp4["moov"]["requests"], 0, f"the index came from S3 again: {mp4}")
        self.assertLessEqual(mp4["start"]["received_bytes"], 3 * MIB, f"{mp4}")
        self.assertEqual(mp4["resume in"]["requests"], 0, f"the kept head: {mp4}")
        self.assertEqual((mp4["resume"]["requests"], mp4["resume"]["received_bytes"]), (1, size - MIB),
                         f"the rest after the kept MiB: {mp4}")
        # Not an MP4 by its name: nothing kept.
        other = start(cold_key("bin"))
        self.assertEqual((other["start"]["requests"], other["moov"]["requests"], other["resume in"]["requests"],
                          other["resume"]["requests"]), (2, 1, 1, 1), f"{other}")
        # Safari's probe (bytes=0-1) keeps nothing: its next request goes to S3.
        key = cold_key()
        m0 = settle(port)
        f = fetch(port, "GET", target(key), [("Range", "bytes=0-1")])
        self.assertEqual((f.status, bytes(f.body)), (206, body[:2]))
        f = fetch(port, "GET", target(key), [("Range", "bytes=10-20")])
        self.assert_exact(f, 206, body[10:21], 10, size)
        self.assertEqual(diff(settle(port), m0), {"requests": 2, "get_requests": 2, "received_bytes": 2 + 11})
        self.assertIsNone(server.health_problem())

    def test_5e_player_head_alone(self) -> None:
        """A player's cold `bytes=0-` of an MP4 asks S3 for its first MiB alone (--s3-first-read; radosgw reads a
        whole 4 MiB stripe before the first byte of a longer range) and for the rest once half of it is read:
        one exact response across the join, one GET more than without it and no byte more; an object no longer
        than the head costs no GET for a rest; `--s3-first-read 0` asks for the range in one GET."""
        rnd = random.Random(SEED + 520)
        server = self.start_server(["--s3-meta-ttl", "60", "--threads", "2"], "first-read")
        self.addCleanup(self.stop_server, server)
        single = self.start_server(["--s3-meta-ttl", "60", "--threads", "2", "--s3-first-read", "0"], "first-read-0")
        self.addCleanup(self.stop_server, single)

        def start(port: int, body: bytes) -> dict[str, float]:
            key = f"first/{uuid.uuid4().hex[:8]}.mp4"
            self.rgw.put(self.bucket, key, body, "video/mp4")
            m0 = settle(port)
            f = fetch(port, "GET", target(key), [("Range", "bytes=0-")])
            self.assert_exact(f, 206, body, 0, len(body))
            m1 = settle(port)
            return {n: m1[f"mediagate_s3_{n}_total"] - m0[f"mediagate_s3_{n}_total"]
                    for n in ("get_requests", "received_bytes")}

        for size in (3 * MIB + 777, MIB + 1, 5 * MIB, MIB, 1000):
            body = rnd.randbytes(size)
            head_alone, one = start(server.port, body), start(single.port, body)
            note(f"player start of {size} bytes, head alone: {head_alone}; one GET: {one}")
            tail = min(size, MIB)
            self.assertEqual(one, {"get_requests": 2, "received_bytes": size + tail}, f"{size}: one GET and the tail")
            self.assertEqual(head_alone, {"get_requests": 3 if size > MIB else 2, "received_bytes": size + tail},
                             f"{size}: the head, its rest and the tail")
        self.assertIsNone(server.health_problem())
        self.assertIsNone(single.health_problem())

    def test_5g_a_head_that_shows_the_index_at_the_end_defers_its_rest(self) -> None:
        """A player's head whose first boxes show the index after the media (moov at the end) has its rest asked
        for only when the head runs out, not once half of it is sent: its player reads the index at the end and
        leaves within the head. A player that reads 2.5 MiB of a 4 MiB head (--s3-first-read 4MiB) and leaves
        costs the head's GET and the tail's for a moov-at-end file, and a GET for the rest too for a fast-start
        one. Read to its end, a moov-at-end file's response is exact across the join (the rest asked then)."""
        layouts = harness.mp4_layouts(random.Random(SEED + 522), 6 * MIB + 99, 100_000)
        server = self.start_server(["--s3-meta-ttl", "60", "--s3-first-read", "4MiB"], "defer-rest")
        self.addCleanup(self.stop_server, server)
        port = server.port

        def gets_of_a_start(body: bytes, read: int) -> float:
            _, c, _, m0 = self.cold_player_start(port, "defer", body, read)
            c.close(reset=True)
            return settle(port)["mediagate_s3_get_requests_total"] - m0["mediagate_s3_get_requests_total"]

        left = {name: gets_of_a_start(body, 5 * MIB // 2) for name, body in layouts.items()}
        note(f"a player that read 2.5 MiB of a 4 MiB head and left: S3 GETs {left}")
        self.assertEqual(left, {"moov at end": 2, "fast start": 3}, "head and tail; and the rest for fast start")
        body = layouts["moov at end"]
        key = f"defer/{uuid.uuid4().hex[:8]}.mp4"
        self.rgw.put(self.bucket, key, body, "video/mp4")
        m0 = settle(port)
        f = fetch(port, "GET", target(key), [("Range", "bytes=0-")])
        self.assert_exact(f, 206, body, 0, len(body))
        self.assertEqual(settle(port)["mediagate_s3_get_requests_total"] - m0["mediagate_s3_get_requests_total"], 3)
        self.assertIsNone(server.health_problem())

    def test_5f_request_within_a_head_still_being_read(self) -> None:
        """A request for bytes of a cold start's head while that head is still being read (its player's
        connection open; or just reset, before the server noticed): what the head has is sent from memory,
        then its bytes as they come, and once they stop coming (its player paused) the rest comes from S3 on
        one GET. Exact bytes either way; the paused player's own response is unharmed."""
        body = random.Random(SEED + 521).randbytes(3 * MIB + 4321)
        size = len(body)
        server = self.start_server(["--s3-meta-ttl", "60", "--threads", "2"], "follow")
        self.addCleanup(self.stop_server, server)
        port = server.port
        for leave in (False, True):
            with self.subTest("player leaves" if leave else "player pauses"):
                key, a, head, m0 = self.cold_player_start(port, "follow", body, 64 * 1024)
                with a:
                    got = bytearray(head)
                    if leave:
                        a.close(reset=True)
                    f = fetch(port, "GET", target(key), [("Range", "bytes=65536-")])
                    self.assert_exact(f, 206, body[65536:], 65536, size)
                    if not leave:
                        while len(got) < size:  # the paused player resumes: its whole response, exact
                            got += a.read_some("the rest of the first response")
                        self.assertTrue(bytes(got) == body, "the first response's bytes differ")
                gets = diff_gets = settle(port)["mediagate_s3_get_requests_total"] - m0["mediagate_s3_get_requests_total"]
                note(f"a request within a head still being read ({'left' if leave else 'paused'}): {gets:.0f} GETs")
                # head, tail, the second request's rest; the paused player's own rest of its head
                self.assertLessEqual(diff_gets, 3 if leave else 4)
        self.assertIsNone(server.health_problem())

    def test_5d_kept_ends_of_a_replaced_object(self) -> None:
        """The first and last MiB kept from a cold start (test_5c) are of one version: once a read finds the object
        replaced in S3 (a failed If-Match), they are dropped with the cached metadata, and the request is planned
        again with the new version (not with the kept version's metadata, which would fail the same way)."""
        s = self.start_server(["--s3-meta-ttl", "60", "--threads", "1"], "ends-replaced")
        try:
            key = f"replace/{uuid.uuid4().hex[:8]}.mp4"
            v1 = random.Random(SEED + 518).randbytes(3 * MIB)
            v2 = random.Random(SEED + 519).randbytes(3 * MIB + 4321)
            self.rgw.put(self.bucket, key, v1, "video/mp4")
            with rawhttp.Connection(s.port, timeout=20.0) as c:
                c.send_request("GET", target(key), [("Range", "bytes=0-")])
                self.assertEqual(c.read_head().status, 206)
                got = bytearray()
                while len(got) < 64 * 1024:
                    chunk = c.read_some()
                    self.assertTrue(chunk, "closed early")
                    got += chunk
                c.close(reset=True)
            settle(s.port)
            etag2 = f'"{self.rgw.put(self.bucket, key, v2, "video/mp4")}"'
            # Outside the kept bytes: the cached metadata's version is gone from S3 (If-Match fails): planned
            # again, with the new version's.
            f = fetch(s.port, "GET", target(key), [("Range", "bytes=2000000-2000099")])
            self.assert_exact(f, 206, v2[2000000:2000100], 2000000, len(v2))
            self.assertEqual(f.header("etag"), etag2)
            # Inside the kept head and tail: the new version, from S3.
            for first, last in ((100, 199), (len(v2) - 100, len(v2) - 1)):
                f = fetch(s.port, "GET", target(key), [("Range", f"bytes={first}-{last}")])
                self.assert_exact(f, 206, v2[first:last + 1], first, len(v2))
                self.assertEqual(f.header("etag"), etag2)
            self.assertIsNone(s.health_problem())
        finally:
            self.stop_server(s)

    # -- 6. awkward keys, the empty object, content types ---------------------------------------------------

    def test_6_keys_empty_object_and_types(self) -> None:
        keys = ["with space.bin", "vidéo ñ 字.bin", "a+b=c.bin", "a b=c.bin", "a%2Bb.bin", "q&a#1;x,y (1)~.bin",
                "sub dir/é/x=1+2.bin"]
        contents = {}
        for i, key in enumerate(keys):
            contents[key] = key.encode() + b"|" + random.Random(SEED + 100 + i).randbytes(5000)
            self.rgw.put(self.bucket, key, contents[key])
        for key in keys:
            with self.subTest(key=key):
                data = contents[key]
                f = fetch(self.port, "GET", target(key))
                self.assert_exact(f, 200, data)
                f = fetch(self.port, "GET", target(key), [("Range", "bytes=3-9")])
                self.assert_exact(f, 206, data[3:10], 3, len(data))
                f = fetch(self.port, "HEAD", target(key))
                self.assertEqual(f.status, 200)
                self.assertEqual(f.header("content-length"), str(len(data)))
        # The listing shows the keys as stored.
        r = self.cli(["ls", f"s3://{self.bucket}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        for key in keys:
            self.assertRegex(r.stdout, rf"(?m)^\s*{len(contents[key])}\s+{re.escape(key)}$", f"ls lacks {key!r}")

        # The empty object: any range is a 200 with an empty body (S3 itself answers 416).
        self.rgw.put(self.bucket, "empty.bin", b"")
        for rng in [None, "bytes=0-", "bytes=0-0", "bytes=0-1", "bytes=-1", "bytes=5-10", "bytes=0-1,3-4"]:
            with self.subTest(empty=rng):
                f = fetch(self.port, "GET", target("empty.bin"), [("Range", rng)] if rng else [])
                self.assertEqual(f.status, 200, f.describe())
                self.assertTrue(f.complete)
                self.assertEqual(f.header("content-length"), "0", f.describe())
                self.assertIsNone(f.header("content-range"), f.describe())
                self.assertEqual(bytes(f.body), b"")
        f = fetch(self.port, "HEAD", target("empty.bin"))
        self.assertEqual((f.status, f.header("content-length")), (200, "0"), f.describe())

        # Content types: none stored + .mp4 -> by extension; video/webm stored, no extension -> the stored type;
        # S3's generic types don't count.
        body = random.Random(SEED + 200).randbytes(4096)  # no magic: sniffing can't guess
        self.rgw.client.put_object(Bucket=self.bucket, Key="typeless.mp4", Body=body)
        stored = self.rgw.client.head_object(Bucket=self.bucket, Key="typeless.mp4").get("ContentType")
        self.rgw.put(self.bucket, "webm-without-extension", body, "video/webm")
        self.rgw.put(self.bucket, "generic.webm", body, "binary/octet-stream")
        self.rgw.put(self.bucket, "generic2.mp4", body, "application/octet-stream")
        for key, want in [("typeless.mp4", "video/mp4"), ("webm-without-extension", "video/webm"),
                          ("generic.webm", "video/webm"), ("generic2.mp4", "video/mp4")]:
            with self.subTest(type_of=key):
                for method in ("GET", "HEAD"):
                    f = fetch(self.port, method, target(key), [("Range", "bytes=0-9")] if method == "GET" else [])
                    self.assertIn(f.status, (200, 206), f.describe())
                    self.assertEqual(rawhttp.media_type_params(f.header("content-type") or "")[0], want,
                                     f"{method} {key} (radosgw reports {stored!r} for an object stored without a "
                                     f"type):\n{f.describe()}")

    # -- 7. put, ls, and reading it back ------------------------------------------------------------------

    def test_7_put_ls_and_read_back(self) -> None:
        data = self.big[-PUT_SIZE:]
        src = self.tmp / "twenty.mp4"
        src.write_bytes(data)
        key = "uploads/twenty mb.mp4"
        t0 = time.monotonic()
        r = self.cli(["put", str(src), f"s3://{self.bucket}/{key}"], timeout=120)
        self.assertEqual(r.returncode, 0, f"put failed: {r.stderr}")
        note(f"put {mib(PUT_SIZE)} in {time.monotonic() - t0:.2f}s; stdout {r.stdout.strip()!r}")
        r = self.cli(["ls", f"s3://{self.bucket}/uploads/"])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, rf"(?m)^\s*{PUT_SIZE}\s+twenty mb\.mp4$", f"ls output:\n{r.stdout}")
        head = self.rgw.client.head_object(Bucket=self.bucket, Key=key)
        self.assertEqual(head["ContentLength"], PUT_SIZE)
        note(f"put stored ETag {head['ETag']} (multipart when it ends in -N), Content-Type {head.get('ContentType')!r}")
        f = fetch(self.port, "HEAD", target(key))
        self.assertEqual(f.status, 200, f.describe())
        self.assertEqual(f.header("content-length"), str(PUT_SIZE))
        self.assertEqual(f.header("etag"), head["ETag"])
        self.assertEqual(rawhttp.media_type_params(f.header("content-type"))[0], "video/mp4")
        digest = hashlib.sha256()
        with rawhttp.Connection(self.port, timeout=20.0) as c:
            resp = c.request("GET", target(key), sink=digest.update)
        self.assertEqual((resp.status, resp.body_length), (200, PUT_SIZE))
        self.assertEqual(digest.hexdigest(), hashlib.sha256(data).hexdigest(), "GET after put: wrong bytes")
        f = fetch(self.port, "GET", target(key), [("Range", f"bytes={PUT_SIZE - 5 * MIB - 7}-")])
        self.assert_exact(f, 206, data[PUT_SIZE - 5 * MIB - 7:], PUT_SIZE - 5 * MIB - 7, PUT_SIZE)

    # -- 8. one client's download over several S3 connections (issue 15) ----------------------------------

    def shaped_download_server(self, name: str, key: str, data: bytes, args: list[str], rate: str = "20m",
                               total_rate: float | None = None) -> harness.Server:
        """Stores `data` as `key`, starts an S3 shaped to 5 ms and (by default) 20 MB/s per connection in front
        of radosgw, and a server reading through it with `args`."""
        from shaped_s3 import ShapedS3

        self.rgw.put(self.bucket, key, data, "video/mp4")
        rgw_port = int(self.rgw.env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        shaped = ShapedS3(self.tmp / f"shaped-{name}", upstream_port=rgw_port, delay_ms=5, rate=rate,
                          total_rate=total_rate)
        shaped.start()
        self.addCleanup(shaped.stop)
        env = dict(self.rgw.env, AWS_ENDPOINT_URL=shaped.endpoint)
        fx = types.SimpleNamespace(tmp=self.tmp, storage_args=["--storage", f"s3://{self.bucket}"], server_env=env)
        server = harness.Server(fx, ["--access-log", "off", *args], name=name)
        self.servers.append(server)
        return server

    def test_8c_download_from_a_fast_store_stays_on_one_connection(self) -> None:
        """Parts are for a distant store's per-connection cap: when one connection delivers more than
        --s3-download-slower-than (here 1 MB/s against the shaped 20 MB/s), a store that makes the client wait is
        busy, not far, and the download stays on that one connection (on loopback radosgw, parts made downloads
        20-35% slower)."""
        size = 16 * MIB
        key = "download-fast.mp4"
        data = harness.pattern_bytes(1, size)
        server = self.shaped_download_server("download-fast", key, data, [
            "--threads", "1", "--s3-download-parts", "4", "--s3-download-part-size", "2MiB",
            "--s3-download-after", "2MiB", "--s3-download-slower-than", "1MB"])
        before = settle(server.port)
        with rawhttp.Connection(server.port, timeout=30.0) as c:
            r = c.request("GET", target(key), [])
        after = settle(server.port)
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue(bytes(r.body) == data, "the download's bytes differ from the object's")
        self.assertEqual(after["mediagate_s3_get_requests_total"] - before["mediagate_s3_get_requests_total"], 1,
                         "a connection faster than --s3-download-slower-than should not be joined by parts")

    def test_8d_parts_that_do_not_pay_are_stopped(self) -> None:
        """A store whose bandwidth all connections share (one 20 MiB/s link, no cap per connection): the client
        waits on S3 and the connection is slower than --s3-download-slower-than, so parts start, but they do not
        raise the rate. After two rounds of parts that did not pay, the download goes back to one connection
        for the rest: a handful of GETs, not one per part; exact bytes; exactly the object's bytes from S3."""
        size = 56 * MIB
        key = "download-shared.mp4"
        data = harness.pattern_bytes(2, size)
        # 8 MiB on one connection first: its rate is what the parts must beat, measured long enough not to be
        # thrown by a busy machine.
        server = self.shaped_download_server("download-shared", key, data, [
            "--threads", "1", "--s3-download-parts", "4", "--s3-download-part-size", "2MiB",
            "--s3-download-after", "8MiB"], rate="0", total_rate=20 * MIB)
        before = settle(server.port)
        t0 = time.monotonic()
        with rawhttp.Connection(server.port, timeout=30.0) as c:
            r = c.request("GET", target(key), [])
        took = time.monotonic() - t0
        after = settle(server.port)
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue(bytes(r.body) == data, "the download's bytes differ from the object's")
        delta = {k: after[k] - before[k] for k in (
            "mediagate_s3_get_requests_total", "mediagate_s3_received_bytes_total",
            "mediagate_s3_downloads_in_parts_total", "mediagate_s3_download_parts_stopped_total")}
        gets = delta["mediagate_s3_get_requests_total"]
        note(f"download of {mib(size)} through one shared 20 MiB/s link: {size / took / 1e6:.1f} MB/s, {gets:.0f} GETs")
        self.assertEqual(delta["mediagate_s3_downloads_in_parts_total"], 1, "the one connection was store-bound")
        self.assertEqual(delta["mediagate_s3_download_parts_stopped_total"], 1,
                         "parts over a shared link do not raise the rate: they should be stopped")
        # The lead, the first round (3 parts beside the lead's last), at most 3 more started as the first round
        # was handed on, the second round (4 parts), the rest on one connection: at most 12 GETs. Parts to the
        # end would make it 24.
        self.assertLessEqual(gets, 12, "the download went on in parts after they were judged useless")
        self.assertEqual(delta["mediagate_s3_received_bytes_total"], size, "bytes read from S3 for one download")

    def test_8_download_in_parts(self) -> None:
        """A GET without Range, drained faster than one (shaped: 20 MB/s) S3 connection delivers, is read as
        parallel ranged GETs of 2 MiB parts, handed on in order: exact bytes of a counter-pattern object, exactly
        the object's bytes read from S3. A viewer's `bytes=0-` stays on one connection. A client that leaves
        stops the reads; an object replaced mid-download cuts the connection and never mixes versions."""
        size = 40 * MIB
        key = "download.mp4"  # a stored type: no extra read to sniff one
        data = harness.pattern_bytes(0, size)
        # 8 MiB on one connection first, as in test_8d: the shaped S3 sends a response's first 2 MiB unpaced
        # (shaped_s3.py), so a lead measured over less looks faster than its cap and the parts beside it unpaid.
        server = self.shaped_download_server("download", key, data, [
            "--threads", "1", "--s3-download-parts", "4", "--s3-download-part-size", "2MiB",
            "--s3-download-after", "8MiB"])
        port = server.port

        def read(headers, stop_after=None, pause_at=None, on_pause=None) -> tuple[rawhttp.Response, bytearray]:
            c = rawhttp.Connection(port, timeout=30.0)
            try:
                c.send_request("GET", target(key), headers)
                head = c.read_head()
                got = bytearray()
                want = int(head.header("content-length"))
                while len(got) < want:
                    if pause_at is not None and len(got) >= pause_at:
                        on_pause()
                        pause_at = None
                    chunk = c.read_some()
                    if not chunk:
                        break
                    got += chunk
                    if stop_after is not None and len(got) >= stop_after:
                        break
                return head, got
            finally:
                c.close(reset=stop_after is not None)

        # The download: parts, exact bytes, exactly the object's bytes from S3.
        before = settle(port)
        t0 = time.monotonic()
        head, got = read([])
        took = time.monotonic() - t0
        after = settle(port)
        self.assertEqual(head.status, 200, head.raw_head)
        self.assertEqual(len(got), size)
        self.assertTrue(got == data, "the download's bytes differ from the object's")
        gets = after["mediagate_s3_get_requests_total"] - before["mediagate_s3_get_requests_total"]
        received = after["mediagate_s3_received_bytes_total"] - before["mediagate_s3_received_bytes_total"]
        note(f"download of {mib(size)} through a 20 MB/s-per-connection S3: {size / took / 1e6:.1f} MB/s, "
             f"{gets:.0f} GETs, {mib(received)} from S3")
        self.assertGreaterEqual(gets, 10, "the download should have been read in 2 MiB parts")
        self.assertEqual(received, size, "bytes read from S3 for one download")
        in_parts = "mediagate_s3_downloads_in_parts_total"
        self.assertEqual(after[in_parts] - before[in_parts], 1)
        self.assertEqual(after["mediagate_s3_download_parts_stopped_total"], 0,
                         "parts over connections capped one by one raise the rate: they should not be stopped")

        # A viewer: bytes=0- read to the end just as fast stays on one connection.
        before = settle(port)
        head, got = read([("Range", "bytes=0-")])
        after = settle(port)
        self.assertEqual(head.status, 206, head.raw_head)
        self.assertTrue(got == data, "the viewer's bytes differ from the object's")
        self.assertEqual(after["mediagate_s3_get_requests_total"] - before["mediagate_s3_get_requests_total"], 1,
                         "a media element's stream must use one S3 connection")

        # A client that leaves after 14 MiB, in parts: the parts stop (at most parts x part size ahead, plus socket
        # buffers).
        before = settle(port)
        read([], stop_after=14 * MIB)
        after = settle(port)
        received = after["mediagate_s3_received_bytes_total"] - before["mediagate_s3_received_bytes_total"]
        note(f"download left after 14 MiB: {mib(received)} read from S3")
        self.assertLess(received, 28 * MIB, "the server went on reading parts after the client left")

        # Replaced mid-download: parts read before are the old version; later ones fail their If-Match and the
        # connection is cut. Every byte received is the old version's.
        replacement = bytes(b ^ 0xFF for b in data[:MIB]) * (size // MIB)

        def replace() -> None:
            time.sleep(1.0)  # the parts in flight finish; the client reads nothing meanwhile
            self.rgw.put(self.bucket, key, replacement, "video/mp4")

        before = settle(port)
        head, got = read([], pause_at=12 * MIB, on_pause=replace)
        after = settle(port)
        self.assertEqual(head.status, 200, head.raw_head)
        self.assertTrue(got == data[:len(got)], "bytes of two versions were mixed")
        gets = after["mediagate_s3_get_requests_total"] - before["mediagate_s3_get_requests_total"]
        if len(got) == size:
            # Whole and old (checked above): every part was read before the replacement landed, which the
            # read-ahead (parts in flight plus the sockets' buffers) can reach on a slow machine.
            note(f"object replaced after 12 MiB of a download: all of it read before ({gets:.0f} GETs), all old")
        else:
            note(f"object replaced after 12 MiB of a download: cut after {mib(len(got))}, all of the old version")
        self.assertIsNone(server.health_problem())


    # -- 9. the process-wide memory limit of download parts (issue 15) ---------------------------------------

    def test_9_download_memory_limit(self) -> None:
        """Downloads drained faster than one (shaped: 20 MB/s) S3 connection delivers, at once: their parts hold
        at most --s3-download-memory together (2 MiB: two 1 MiB parts, where each download alone would start
        three). A part that does not fit is read on its download's own connection instead: exact bytes, exactly
        the objects' bytes from S3, and the memory goes back to 0. A limit below one part is refused."""
        with self.subTest("a limit below one part"):
            r = subprocess.run([str(harness.binary()), "serve", "--listen", "127.0.0.1:0", "--storage",
                                f"s3://{self.bucket}", "--s3-download-part-size", "1MiB", "--s3-download-memory",
                                "512KiB"], cwd=self.tmp, env=clean_env(dict(self.rgw.env)), stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=STARTUP_LIMIT)
            self.assertEqual(r.returncode, 2, f"a bad option exits 2; stderr: {r.stderr}")
            self.assertIn("--s3-download-memory wants a size of at least one part", r.stderr)

        size, clients = 12 * MIB, 4
        key = "budget.mp4"
        data = harness.pattern_bytes(7, size)
        server = self.shaped_download_server("budget", key, data, [
            "--threads", "2", "--s3-download-parts", "4", "--s3-download-part-size", "1MiB",
            "--s3-download-after", "1MiB", "--s3-download-memory", "2MiB"])
        port = server.port
        self.assertEqual(metrics(port)["mediagate_s3_download_memory_limit_bytes"], 2 * MIB)

        results: list = [None] * clients

        def download(i: int) -> None:
            c = rawhttp.Connection(port, timeout=60.0)
            try:
                c.send_request("GET", target(key), [])
                head = c.read_head()
                got = bytearray()
                while len(got) < int(head.header("content-length")):
                    chunk = c.read_some()
                    if not chunk:
                        break
                    got += chunk
                results[i] = (head.status, bytes(got))
            finally:
                c.close()

        before = settle(port)
        threads = [threading.Thread(target=download, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        after = settle(port)
        for i, r in enumerate(results):
            self.assertIsNotNone(r, f"download {i} did not end")
            self.assertEqual(r[0], 200)
            self.assertTrue(r[1] == data, f"download {i}: the bytes differ from the object's")
        delta = {k: after[k] - before[k] for k in ("mediagate_s3_get_requests_total",
                                                    "mediagate_s3_received_bytes_total",
                                                    "mediagate_s3_download_parts_over_budget_total")}
        note(f"{clients} downloads of {mib(size)} under a 2 MiB part memory limit: "
             f"{delta['mediagate_s3_get_requests_total']:.0f} GETs, "
             f"{delta['mediagate_s3_download_parts_over_budget_total']:.0f} parts over the limit, peak "
             f"{mib(after['mediagate_s3_download_memory_peak_bytes'])}")
        self.assertEqual(delta["mediagate_s3_received_bytes_total"], clients * size, "bytes read from S3")
        self.assertGreater(delta["mediagate_s3_get_requests_total"], clients, "the downloads should use parts")
        self.assertGreaterEqual(after["mediagate_s3_download_memory_peak_bytes"], MIB, "no part held memory")
        self.assertLessEqual(after["mediagate_s3_download_memory_peak_bytes"], 2 * MIB,
                             "download parts held more memory than --s3-download-memory")
        self.assertGreater(delta["mediagate_s3_download_parts_over_budget_total"], 0,
                           "each download wants three parts, the limit holds two")
        self.assertEqual(after["mediagate_s3_download_memory_bytes"], 0, "part memory not given back")
        self.assertIsNone(server.health_problem())


# -- 4. a store that ignores or misanswers ranges --------------------------------------------------------------

class MisbehavingStore(unittest.TestCase):
    """mediagate in front of fake_upstream.FakeUpstream: never forwards bytes other than the planned ones."""

    SIZE = 300_000

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="mediagate-s3-fake-"))
        cls.data = random.Random(SEED + 300).randbytes(cls.SIZE)

    @classmethod
    def tearDownClass(cls) -> None:
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def start(self, mode: str, script=(), on_drop=None, extra=(), after_get=None):
        upstream = FakeUpstream("fakebucket", {"obj.mp4": (self.data, "video/mp4"), "empty.bin": (b"", None),
                                               "other.mp4": (self.data[::-1], "video/mp4")},
                                mode=mode, script=script, on_drop=on_drop, after_get=after_get)
        self.addCleanup(upstream.stop)
        fx = server_fixture(self.tmp, "s3://fakebucket", {})
        server = harness.Server(fx, ["--access-log", "off", "--s3-endpoint", upstream.endpoint,
                                     "--s3-access-key", "fake", "--s3-secret-key", "fake", "--s3-region",
                                     "us-east-1", "--s3-addressing", "path", "--threads", "1", *extra],
                                name=f"fake-{mode}")
        self.addCleanup(server.stop)
        return upstream, server

    def test_honest_store(self) -> None:
        upstream, server = self.start("honest")
        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=10-19")])
        self.assertEqual((f.status, f.header("content-range")), (206, f"bytes 10-19/{self.SIZE}"), f.describe())
        self.assertEqual(bytes(f.body), self.data[10:20])
        self.assertEqual([r.headers.get("range") for r in upstream.gets("obj.mp4")], ["bytes=10-19"])

    def test_reads_of_one_object_share_a_signature(self) -> None:
        """A read's Range and If-Match go unsigned, so the reads of one object within one second carry one
        signature, with another object's reads between them; the other object's differs. (That the client
        makes it once is read_signatures' unit tests' business: the wire cannot tell a signature reused from
        one made again. radosgw, which checks every signature, serves every range of the S3 suites this way.)"""
        upstream, server = self.start("honest")
        ranges = [(10, 19), (1000, 70999), (0, 1), (299_990, 299_999)]
        for attempt in range(3):  # a second's boundary may fall between the reads: their dates then differ
            del upstream.requests[:]
            for first, last in ranges:
                f = fetch(server.port, "GET", target("obj.mp4"), [("Range", f"bytes={first}-{last}")])
                self.assertEqual((f.status, bytes(f.body)), (206, self.data[first:last + 1]), f.describe())
                other = fetch(server.port, "GET", target("other.mp4"), [("Range", f"bytes={first}-{last}")])
                self.assertEqual(other.status, 206, other.describe())  # a read of another object between
            gets = upstream.gets("obj.mp4")
            if len({r.headers["x-amz-date"] for r in upstream.requests}) == 1:
                break
        self.assertEqual(len(gets), len(ranges), [r.headers.get("range") for r in gets])
        self.assertEqual(len({r.headers["x-amz-date"] for r in upstream.requests}), 1,
                         "three tries all crossed a second")
        for r in gets:
            self.assertIn("SignedHeaders=host;x-amz-content-sha256;x-amz-date,", r.headers["authorization"])
            self.assertTrue(r.headers.get("range", "").startswith("bytes="), r.headers)
        self.assertTrue(any("if-match" in r.headers for r in gets), "reads after the first pin the ETag")
        self.assertEqual(len({r.headers["authorization"] for r in gets}), 1)
        self.assertEqual(sorted(r.headers["range"] for r in gets),
                         sorted(f"bytes={first}-{last}" for first, last in ranges))
        signed_other = {r.headers["authorization"] for r in upstream.gets("other.mp4")}
        self.assertEqual(len(signed_other), 1)
        self.assertNotIn(gets[0].headers["authorization"], signed_other)

    def test_store_answering_in_pieces(self) -> None:
        """Answers whose head (longer than one read) and body come in many segments, milliseconds apart, on
        pooled connections: the same bytes as from an honest store, one GET per range, nothing retried."""
        upstream, server = self.start("trickle")
        before = metrics(server.port)
        cases = [("bytes=10-19", 10, 19), ("bytes=1000-70999", 1000, 70999), ("bytes=0-1", 0, 1),
                 ("bytes=-5", self.SIZE - 5, self.SIZE - 1), ("bytes=10-19", 10, 19)]
        for rng, first, last in cases:
            with self.subTest(rng):
                f = fetch(server.port, "GET", target("obj.mp4"), [("Range", rng)])
                self.assertEqual((f.status, f.header("content-range")), (206, f"bytes {first}-{last}/{self.SIZE}"),
                                 f.describe())
                self.assertEqual(bytes(f.body), self.data[first:last + 1])
        whole = fetch(server.port, "GET", target("obj.mp4"))
        self.assertEqual((whole.status, bytes(whole.body)), (200, self.data))
        missing = fetch(server.port, "GET", target("missing.mp4"))
        self.assertEqual(missing.status, 404, missing.describe())
        after = metrics(server.port)
        self.assertEqual(after["mediagate_s3_retries_total"] - before["mediagate_s3_retries_total"], 0)
        self.assertEqual(after["mediagate_s3_errors_total"] - before["mediagate_s3_errors_total"], 0)
        self.assertLessEqual(after["mediagate_s3_connections_opened_total"], 3,
                             "answers read in pieces should leave their connections reusable")
        self.assertIsNone(server.health_problem())

    def test_store_sending_each_body_after_its_head(self) -> None:
        """Every body in one piece 20 ms after its head: a listing read to its end (read_all) once took its
        end for a closed connection ("storage ... is unreachable (reading the body: End of file)"), because
        the look for bytes made before the wait was remembered for the read after it."""
        upstream, server = self.start("late-body")
        for _ in range(3):
            r = subprocess.run([str(harness.binary()), "ls", "s3://fakebucket", "--s3-endpoint", upstream.endpoint,
                                "--s3-access-key", "fake", "--s3-secret-key", "fake", "--s3-region", "us-east-1",
                                "--s3-addressing", "path"], capture_output=True, text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn("obj.mp4", r.stdout)
        for rng, first, last in (("bytes=10-19", 10, 19), ("bytes=1000-70999", 1000, 70999)):
            f = fetch(server.port, "GET", target("obj.mp4"), [("Range", rng)])
            self.assertEqual((f.status, bytes(f.body)), (206, self.data[first:last + 1]), f.describe())
        missing = fetch(server.port, "GET", target("missing.mp4"))
        self.assertEqual(missing.status, 404, missing.describe())
        self.assertIsNone(server.health_problem())

    def test_store_ignoring_range(self) -> None:
        upstream, server = self.start("ignore-range")
        cases = [("bytes=10-19", 10, 19), ("bytes=0-1", 0, 1), ("bytes=-5", self.SIZE - 5, self.SIZE - 1),
                 ("bytes=250000-", 250000, self.SIZE - 1), ("bytes=0-", 0, self.SIZE - 1)]
        for rng, first, last in cases:
            with self.subTest(rng):
                f = fetch(server.port, "GET", target("obj.mp4"), [("Range", rng)])
                self.assertEqual(f.status, 206, f.describe())
                self.assertTrue(f.complete, f.describe())
                self.assertEqual(f.header("content-range"), f"bytes {first}-{last}/{self.SIZE}")
                self.assertTrue(bytes(f.body) == self.data[first:last + 1], f"wrong bytes:\n{f.describe()}")
        # Several ranges: each part cut out of its own whole-object answer.
        with rawhttp.Connection(server.port, timeout=15) as c:
            r = c.request("GET", target("obj.mp4"), [("Range", "bytes=0-1,100-199")])
        self.assertEqual(r.status, 206, r.describe())
        parts = rawhttp.parse_byteranges(r.header("content-type"), r.body)
        self.assertEqual([(p.first, p.last, p.data) for p in parts],
                         [(0, 1, self.data[0:2]), (100, 199, self.data[100:200])])
        self.assertIn("bytes=10-19", [r.headers.get("range") for r in upstream.gets("obj.mp4")],
                      "mediagate should ask for the planned range even if the store ignores it")
        # The empty object: no range to ask S3 for, 200 and an empty body.
        f = fetch(server.port, "GET", target("empty.bin"), [("Range", "bytes=0-1")])
        self.assertEqual((f.status, f.header("content-length"), bytes(f.body)), (200, "0", b""), f.describe())
        self.assertIsNone(server.health_problem())

    def assert_no_wrong_bytes(self, f: Fetched, first: int, last: int) -> str:
        """5xx, or closed before a response, or (if a 206 came) only right bytes. Returns what happened."""
        if f.status is None:
            return "closed without a response"
        if f.status >= 500:
            return f"{f.status}"
        self.assertEqual(f.status, 206, f.describe())
        self.assertEqual(f.header("content-range"), f"bytes {first}-{last}/{self.SIZE}", f.describe())
        self.assertTrue(bytes(f.body) == self.data[first:first + len(f.body)], f"wrong bytes:\n{f.describe()}")
        return f"206 with {len(f.body)} right bytes, {'complete' if f.complete else 'then closed'}"

    def test_store_answering_another_range(self) -> None:
        upstream, server = self.start("wrong-range")
        outcomes = []
        for rng, first, last in [("bytes=10-19", 10, 19), ("bytes=0-", 0, self.SIZE - 1),
                                 ("bytes=1000-200000", 1000, 200000)]:
            with self.subTest(rng):
                f = fetch(server.port, "GET", target("obj.mp4"), [("Range", rng)])
                outcomes.append(f"{rng} -> {self.assert_no_wrong_bytes(f, first, last)}")
        note(f"store answering another range: {outcomes}")
        self.assertIsNone(server.health_problem())

    def test_connection_dropped_mid_body_is_resumed(self) -> None:
        upstream, server = self.start("honest", script=["drop", "drop"])  # the first resume is dropped too
        before = metrics(server.port)
        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=1000-200999")])
        self.assertEqual((f.status, f.header("content-range")), (206, f"bytes 1000-200999/{self.SIZE}"), f.describe())
        self.assertTrue(f.complete, f"a dropped store connection must be resumed:\n{f.describe()}")
        self.assertTrue(bytes(f.body) == self.data[1000:201000], "wrong bytes after a resume")
        gets = upstream.gets("obj.mp4")
        etag = FakeUpstream.etag(self.data)
        self.assertEqual([(g.headers.get("range"), g.headers.get("if-match")) for g in gets],
                         [("bytes=1000-200999", None), ("bytes=101000-200999", etag), ("bytes=151000-200999", etag)],
                         "the first GET brings the metadata (no HEAD before it: it names the version); each resume "
                         "must start at the next byte and carry If-Match")
        # A whole-object GET (200) is resumed too.
        upstream.script.append("drop")
        f = fetch(server.port, "GET", target("obj.mp4"))
        self.assertEqual(f.status, 200, f.describe())
        self.assertTrue(f.complete and bytes(f.body) == self.data, f.describe())
        after = metrics(server.port)
        self.assertEqual(after["mediagate_s3_resumes_total"] - before["mediagate_s3_resumes_total"], 3)
        self.assertIsNone(server.health_problem())

    def test_bodies_spliced_to_plain_clients(self) -> None:
        """Bodies from a plain-HTTP store go to plain HTTP/1.1 clients through a pipe (splice), never through
        memory but for the few bytes that came with the answer's head; the same bytes either way, also when the
        store's connection breaks mid-body, and none spliced with --s3-no-splice."""
        size = self.SIZE
        cases = [("bytes=10-19", 10, 19), ("bytes=1000-70999", 1000, 70999), ("bytes=0-", 0, size - 1),
                 ("bytes=-70000", size - 70000, size - 1)]
        for extra, spliced in (((), True), (("--s3-no-splice",), False)):
            with self.subTest(extra=extra):
                upstream, server = self.start("honest", script=["drop"], extra=extra)
                before = metrics(server.port)
                # A keep-alive connection: the pipe is made once and reused, and the head of each response
                # must precede its spliced body.
                with rawhttp.Connection(server.port, timeout=20.0) as c:
                    for rng, first, last in cases + [("bytes=1000-200999", 1000, 200999)] * 2:
                        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", rng)], conn=c)
                        self.assertEqual((f.status, f.header("content-range")),
                                         (206, f"bytes {first}-{last}/{size}"), f.describe())
                        self.assertEqual(int(f.header("content-length")), last - first + 1)
                        self.assertTrue(f.complete and bytes(f.body) == self.data[first:last + 1],
                                        f"wrong bytes for {rng}")
                    whole = fetch(server.port, "GET", target("obj.mp4"), conn=c)
                    self.assertTrue(whole.status == 200 and bytes(whole.body) == self.data, whole.describe())
                    multi = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=0-9,100000-170000")],
                                  conn=c)
                    self.assertEqual(multi.status, 206, multi.describe())
                    parts = rawhttp.parse_byteranges(multi.header("content-type"), multi.body)
                    self.assertEqual([p.data for p in parts], [self.data[0:10], self.data[100000:170001]])
                after = metrics(server.port)
                moved = after["mediagate_s3_spliced_bytes_total"] - before["mediagate_s3_spliced_bytes_total"]
                received = after["mediagate_s3_received_bytes_total"] - before["mediagate_s3_received_bytes_total"]
                note(f"{' '.join(extra) or 'splice on'}: {moved:.0f} of {received:.0f} body bytes from the store "
                     f"spliced")
                self.assertEqual(after["mediagate_s3_resumes_total"] - before["mediagate_s3_resumes_total"], 1,
                                 "the dropped connection is resumed")
                if spliced:
                    self.assertGreater(moved, received * 0.8, "bodies should go through the pipe")
                else:
                    self.assertEqual(moved, 0)
                self.assertIsNone(server.health_problem())

    def test_object_replaced_before_a_resume(self) -> None:
        replacement = random.Random(SEED + 301).randbytes(self.SIZE)  # same size: only the ETag differs

        def replace(up: FakeUpstream) -> None:
            up.objects["obj.mp4"] = (replacement, "video/mp4")

        upstream, server = self.start("honest", script=["drop"], on_drop=replace)
        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=1000-200999")])
        self.assertEqual(f.status, 206, f.describe())
        self.assertFalse(f.complete, f"the object changed mid-read: the response must be cut short:\n{f.describe()}")
        self.assertTrue(bytes(f.body) == self.data[1000:1000 + len(f.body)], "bytes of the new version spliced in")
        cut_at = len(f.body)
        gets = upstream.gets("obj.mp4")
        self.assertEqual(len(gets), 2, [(g.headers.get("range"), g.status) for g in gets])
        self.assertEqual((gets[1].headers.get("if-match"), gets[1].status), (FakeUpstream.etag(self.data), 412))
        # Later requests: a clean failure or the new version whole, never a mix.
        observed = []
        for _ in range(3):
            f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=10-19")])
            observed.append(f.status)
            if f.status == 206:
                self.assertEqual(f.header("etag"), FakeUpstream.etag(replacement), f.describe())
                self.assertEqual(bytes(f.body), replacement[10:20])
                break
            self.assertIn(f.status, (502, 503, 504, None), f.describe())
        note(f"object replaced before a resume: client got {cut_at} of 200000 bytes then a close; next GETs -> {observed}")
        self.assertEqual(observed[-1], 206, "the new version is never served")
        self.assertIsNone(server.health_problem())

    def test_player_head_then_its_rest(self) -> None:
        """A player's cold `bytes=0-` of an MP4 asks the store for its first --s3-first-read bytes alone, and for
        the rest (with If-Match on the head's ETag) once half the head is sent: one exact response. (A player
        that leaves before that costs no GET for the rest: test_5c.) An object replaced between the head and
        the rest fails the rest's If-Match: the response is cut after the head's right bytes, never spliced
        with the new version's, and the next request gets the new version."""
        head = 64 * 1024
        upstream, server = self.start("honest", extra=["--s3-first-read", "64KiB"])
        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=0-")])
        self.assertEqual((f.status, f.header("content-range")), (206, f"bytes 0-{self.SIZE - 1}/{self.SIZE}"),
                         f.describe())
        self.assertTrue(f.complete and bytes(f.body) == self.data, f.describe())
        gets = {g.headers.get("range"): g for g in upstream.gets("obj.mp4")}
        self.assertEqual(sorted(gets), sorted([f"bytes=0-{head - 1}", f"bytes={head}-{self.SIZE - 1}",
                                               "bytes=-1048576"]), list(gets))
        self.assertEqual(gets[f"bytes={head}-{self.SIZE - 1}"].headers.get("if-match"), FakeUpstream.etag(self.data))

        replacement = random.Random(SEED + 302).randbytes(self.SIZE + 5000)

        def replace_after_head(up: FakeUpstream, rng) -> None:
            if rng == f"bytes=0-{head - 1}":
                up.objects["obj.mp4"] = (replacement, "video/mp4")

        upstream, server = self.start("honest", extra=["--s3-first-read", "64KiB"], after_get=replace_after_head)
        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=0-")])
        self.assertEqual(f.status, 206, f.describe())
        self.assertFalse(f.complete, f"the object changed mid-read: the response must be cut short:\n{f.describe()}")
        self.assertTrue(bytes(f.body) == self.data[:len(f.body)], "bytes of the new version spliced in")
        rest = [g for g in upstream.gets("obj.mp4") if g.headers.get("range") == f"bytes={head}-{self.SIZE - 1}"]
        self.assertEqual([(g.headers.get("if-match"), g.status) for g in rest], [(FakeUpstream.etag(self.data), 412)])
        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=10-19")])
        self.assertEqual((f.status, bytes(f.body)), (206, replacement[10:20]), f.describe())
        self.assertIsNone(server.health_problem())

    def test_slowdown_is_retried(self) -> None:
        upstream, server = self.start("honest", script=["slowdown", "slowdown"])
        before = metrics(server.port)
        f = fetch(server.port, "GET", target("obj.mp4"), [("Range", "bytes=10-19")])
        self.assertEqual((f.status, bytes(f.body)), (206, self.data[10:20]), f.describe())
        self.assertEqual([g.status for g in upstream.gets("obj.mp4")], [503, 503, 206])
        after = metrics(server.port)
        self.assertEqual(after["mediagate_s3_retries_total"] - before["mediagate_s3_retries_total"], 2)

    def test_store_sending_a_short_object(self) -> None:
        upstream, server = self.start("short-200")
        outcomes = []
        for rng, first, last in [("bytes=10-19", 10, 19), ("bytes=200000-200099", 200000, 200099)]:
            with self.subTest(rng):
                f = fetch(server.port, "GET", target("obj.mp4"), [("Range", rng)])
                outcomes.append(f"{rng} -> {self.assert_no_wrong_bytes(f, first, last)}")
        note(f"store answering 200 with half the object: {outcomes}")
        self.assertIsNone(server.health_problem())


if __name__ == "__main__":
    unittest.main()
