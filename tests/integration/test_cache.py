"""The slice cache (issue 6) against a real radosgw: S3 requests saved, coalescing, changed objects, damage.

Starts its own radosgw (scripts/radosgw.sh) in a temporary directory and one `mediagate serve --cache-dir`
per test, each with a fresh cache directory unless the test is about reusing one. S3 traffic is measured
with the server's own counters (/metrics): mediagate_s3_get_requests_total and
mediagate_s3_received_bytes_total, so "no S3 request" means the server sent none.

Run from tests/integration: MEDIAGATE_BIN=build/mediagate /usr/bin/python3 -m unittest -v test_cache
(CTest: integration_cache). Figures (S3 requests and bytes, cold and warm) are printed at the end.
"""

from __future__ import annotations

import os
import random
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

RADOSGW = harness.REPO / "scripts" / "radosgw.sh"
MIB = 1 << 20
SLICE = MIB
SEED = 20240606
BIG_KEY = "cache/big100.bin"
BIG_SIZE = 100_000_000  # not a multiple of the slice: the last slice is partial
SMALL_KEY = "cache/small3.bin"
SMALL_SIZE = 3 * MIB + 12345
HEADER_BYTES = 3584  # kHeaderBytes in src/cache/slice_file.hpp
TIMEOUT = 20.0  # per socket operation

S3_GETS = "mediagate_s3_get_requests_total"
S3_BYTES = "mediagate_s3_received_bytes_total"

FIGURES: list[str] = []


def figure(text: str) -> None:
    FIGURES.append(text)
    print(f"  figure: {text}", file=sys.stderr)


def radosgw(command: str, cluster: Path, timeout: float = 90) -> subprocess.CompletedProcess:
    return subprocess.run([str(RADOSGW), command, str(cluster)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, RGW_START_TIMEOUT="30"))


def start_radosgw(cluster: Path) -> dict[str, str]:
    """A fresh cluster; one retry, since a start occasionally fails on a busy machine."""
    for attempt in (1, 2):
        r = radosgw("start", cluster)
        if r.returncode == 0:
            break
        print(f"test_cache: radosgw start attempt {attempt} failed:\n{r.stdout}{r.stderr}", file=sys.stderr)
    else:
        raise RuntimeError(f"scripts/radosgw.sh start {cluster} failed twice:\n{r.stdout}{r.stderr}")
    env = harness._read_env_file(cluster / "env")
    wanted = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
    return {k: env[k] for k in wanted}


def slice_files(cache_dir: Path, index: Optional[int] = None) -> list[Path]:
    """Slice files in a cache directory (in its two-character subdirectories, not tmp/)."""
    out = []
    for sub in cache_dir.iterdir():
        if sub.is_dir() and sub.name != "tmp":
            out += [p for p in sub.iterdir() if p.is_file() and (index is None or p.name.endswith(f"-{index}"))]
    return sorted(out)


class SliceCacheTest(unittest.TestCase):
    maxDiff = 2000

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="mediagate-cache-it-"))
        cls.cluster = cls.tmp / "rgw"
        try:
            cls._set_up()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def _set_up(cls) -> None:
        t0 = time.monotonic()
        env = start_radosgw(cls.cluster)
        os.environ.update(env)  # s3util reads the environment
        import s3util

        cls.s3util = s3util
        cls.client = s3util.client_from_env()
        s3util.wait_until_ready(client=cls.client)
        cls.bucket = f"mediagate-cache-{uuid.uuid4().hex[:12]}"
        s3util.create_bucket(cls.bucket, client=cls.client)
        cls.big = random.Random(SEED).randbytes(BIG_SIZE)
        cls.small = random.Random(SEED + 1).randbytes(SMALL_SIZE)
        s3util.put_object(cls.bucket, BIG_KEY, cls.big, "video/mp4", client=cls.client)
        s3util.put_object(cls.bucket, SMALL_KEY, cls.small, "video/mp4", client=cls.client)
        # What harness.Server needs of a fixture set.
        cls.fx = types.SimpleNamespace(tmp=cls.tmp, storage_args=["--storage", f"s3://{cls.bucket}"],
                                       server_env=env)
        print(f"test_cache: radosgw and {BIG_SIZE + SMALL_SIZE} bytes of objects ready in "
              f"{time.monotonic() - t0:.1f} s", file=sys.stderr)

    @classmethod
    def tearDownClass(cls) -> None:
        cls._tear_down()
        if FIGURES:
            print("\ntest_cache figures:\n" + "\n".join(f"  {f}" for f in FIGURES), file=sys.stderr)

    @classmethod
    def _tear_down(cls) -> None:
        problems = []
        for s in list(harness._servers):  # each test stops its own: these are left over from a failed setup
            try:
                s.stop()
            except AssertionError as e:
                problems.append(str(e))
        radosgw("stop", cls.cluster, timeout=120)
        subprocess.run(["rm", "-rf", str(cls.tmp)], timeout=60)
        if problems:
            raise AssertionError("\n".join(problems))

    # -- helpers ------------------------------------------------------------------------------------------

    def start_server(self, *extra: str, cache_dir: Optional[Path] = None) -> tuple[harness.Server, Path]:
        if cache_dir is None:
            cache_dir = Path(tempfile.mkdtemp(prefix="slices-", dir=self.tmp))
        args = ["--cache-dir", str(cache_dir), "--cache-slice", "1MiB", "--access-log", "off", *extra]
        server = harness.Server(self.fx, args, name=self.id().rsplit(".", 1)[-1])
        self.addCleanup(self._check_and_stop, server)
        return server, cache_dir

    def _check_and_stop(self, server: harness.Server) -> None:
        try:
            if server.alive():  # else the test stopped it; a crash shows as a failed request
                problem = server.health_problem()
                if problem:
                    self.fail(f"{server.name}: {problem}; server output:\n{server.output()}")
        finally:
            server.stop()

    def settle(self, server: harness.Server, cache_dir: Path, timeout: float = 10.0) -> None:
        """Waits until no slice is being written (tmp/ empty) and no S3 bytes arrive: a response ends before the
        server has read the rest of its last slice into the cache, so counters read right away are early."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            writing = [p.name for p in (cache_dir / "tmp").iterdir()]
            received = self.metrics(server)[S3_BYTES]
            if not writing and received == last:
                return
            last = received
            time.sleep(0.05)
        self.fail(f"the cache was still writing {writing} after {timeout} s")

    def metrics(self, server: harness.Server) -> dict[str, float]:
        with rawhttp.Connection(server.port, timeout=TIMEOUT) as c:
            r = c.request("GET", "/metrics")
        self.assertEqual(r.status, 200, r.describe())
        _, samples = harness.parse_metrics(r.body.decode())
        out: dict[str, float] = {}
        for name, _labels, value in samples:
            out[name] = out.get(name, 0) + value
        for name in (S3_GETS, S3_BYTES, "mediagate_cache_hits_total", "mediagate_cache_corrupt_slices_total",
                     "mediagate_cache_write_errors_total", "mediagate_cache_stale_served_total"):
            self.assertIn(name, out, f"/metrics lacks {name}")
        return out

    @staticmethod
    def delta(after: dict[str, float], before: dict[str, float], name: str) -> int:
        return int(after.get(name, 0) - before.get(name, 0))

    def get(self, server: harness.Server, key: str, first: Optional[int] = None, last: Optional[int] = None,
            conn: Optional[rawhttp.Connection] = None, timeout: float = TIMEOUT) -> rawhttp.Response:
        headers = [] if first is None else [("Range", f"bytes={first}-{'' if last is None else last}")]
        target = harness.media_target(key)
        if conn is not None:
            return conn.request("GET", target, headers)
        with rawhttp.Connection(server.port, timeout=timeout) as c:
            return c.request("GET", target, headers)

    def assert_range(self, r: rawhttp.Response, data: bytes, first: int, last: int, note: str = "") -> None:
        self.assertEqual(r.status, 206, f"{note} bytes={first}-{last}:\n{r.describe()}")
        self.assertEqual(r.header("content-range"), f"bytes {first}-{last}/{len(data)}", note)
        self.assertEqual(len(r.body), last - first + 1, note)
        self.assertTrue(r.body == data[first:last + 1], f"{note} bytes {first}-{last} differ from the object")

    def assert_whole(self, r: rawhttp.Response, data: bytes, note: str = "") -> None:
        self.assertEqual(r.status, 200, f"{note}:\n{r.describe()}")
        self.assertEqual(len(r.body), len(data), note)
        self.assertTrue(r.body == data, f"{note}: body differs from the object")

    # -- (1) repeats --------------------------------------------------------------------------------------

    def test_1_a_repeated_range_makes_no_s3_request(self) -> None:
        server, cache_dir = self.start_server()
        first, last = 1_500_000, 2_600_000  # slices 1 and 2, both ends inside a slice
        m0 = self.metrics(server)
        self.assert_range(self.get(server, BIG_KEY, first, last), self.big, first, last, "cold")
        self.settle(server, cache_dir)
        m1 = self.metrics(server)
        cold_gets = self.delta(m1, m0, S3_GETS)
        self.assertEqual(cold_gets, 1, "one ranged GET for one run of two missing slices")
        self.assertEqual(self.delta(m1, m0, S3_BYTES), 2 * SLICE, "slices 1 and 2, whole")
        self.assert_range(self.get(server, BIG_KEY, first, last), self.big, first, last, "warm")
        m2 = self.metrics(server)
        self.assertEqual(self.delta(m2, m1, S3_GETS), 0, "the repeated range went to S3")
        self.assertEqual(self.delta(m2, m1, S3_BYTES), 0)
        self.assertGreaterEqual(self.delta(m2, m1, "mediagate_cache_hits_total"), 2)
        self.assertEqual(self.delta(m2, m1, "mediagate_cache_served_bytes_total"), last - first + 1)
        figure(f"repeat: cold {cold_gets} GET, {self.delta(m1, m0, S3_BYTES)} bytes from S3 for a "
               f"{last - first + 1}-byte range over 2 slices; warm 0 GET")

        # A range over slices 0-3 with 1 and 2 cached: two GETs, one per run of missing slices (0 and 3).
        self.assert_range(self.get(server, BIG_KEY, 1000, 3 * SLICE + 99), self.big, 1000, 3 * SLICE + 99, "holes")
        self.settle(server, cache_dir)
        m3 = self.metrics(server)
        self.assertEqual(self.delta(m3, m2, S3_GETS), 2, "slices 0 and 3 are two runs")
        self.assertEqual(self.delta(m3, m2, S3_BYTES), 2 * SLICE, "whole slices 0 and 3, nothing else")

        # The whole small object (200), then again; and its last, partial slice by a suffix range.
        self.assert_whole(self.get(server, SMALL_KEY), self.small, "whole cold")
        m4 = self.metrics(server)
        self.assertEqual(self.delta(m4, m3, S3_GETS), 1, "one GET for the whole object's four slices")
        self.assertEqual(self.delta(m4, m3, S3_BYTES), SMALL_SIZE)
        self.assert_whole(self.get(server, SMALL_KEY), self.small, "whole warm")
        r = self.get(server, SMALL_KEY, SMALL_SIZE - 100)
        self.assert_range(r, self.small, SMALL_SIZE - 100, SMALL_SIZE - 1, "tail")
        with rawhttp.Connection(server.port, timeout=TIMEOUT) as c:
            r = c.request("GET", harness.media_target(SMALL_KEY), [("Range", "bytes=-100")])
        self.assert_range(r, self.small, SMALL_SIZE - 100, SMALL_SIZE - 1, "suffix")
        self.assertEqual(self.delta(self.metrics(server), m4, S3_GETS), 0)

    # -- (2) coalescing -----------------------------------------------------------------------------------

    def test_2_concurrent_requests_for_a_cold_range_share_one_fetch(self) -> None:
        server, cache_dir = self.start_server()
        first, last = 10 * SLICE + 1000, 11 * SLICE + 5000  # slices 10 and 11
        n = 50
        barrier = threading.Barrier(n, timeout=TIMEOUT)
        results: list = [None] * n

        def client(i: int) -> None:
            try:
                with rawhttp.Connection(server.port, timeout=TIMEOUT) as c:
                    barrier.wait()
                    results[i] = c.request("GET", harness.media_target(BIG_KEY), [("Range", f"bytes={first}-{last}")])
            except BaseException as e:  # reported below, with every other client's outcome
                results[i] = e

        m0 = self.metrics(server)
        t0 = time.monotonic()
        threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT * 3)
        elapsed = time.monotonic() - t0
        self.settle(server, cache_dir)
        m1 = self.metrics(server)
        for i, r in enumerate(results):
            self.assertIsInstance(r, rawhttp.Response, f"client {i}: {r!r}")
            self.assert_range(r, self.big, first, last, f"client {i}")
        gets = self.delta(m1, m0, S3_GETS)
        figure(f"coalescing: {n} concurrent requests for one cold 2-slice range: {gets} S3 GET, "
               f"{self.delta(m1, m0, S3_BYTES)} bytes from S3, "
               f"{self.delta(m1, m0, 'mediagate_cache_coalesced_waits_total')} coalesced waits, "
               f"{self.delta(m1, m0, 'mediagate_cache_hits_total')} slice hits, {elapsed:.2f} s")
        self.assertLessEqual(gets, 2, "more than one S3 GET per slice")
        self.assertEqual(self.delta(m1, m0, S3_BYTES), 2 * SLICE, "each slice read from S3 once")

    # -- (3) Safari ---------------------------------------------------------------------------------------

    def test_3_safari_sequence_cold_then_warm(self) -> None:
        server, cache_dir = self.start_server()
        rnd = random.Random(SEED + 3)
        ranges = [(0, 1), (0, 65535)]
        for _ in range(10):
            start = rnd.randrange(0, BIG_SIZE - 65536)
            ranges.append((start, start + 65535))
        requested = sum(b - a + 1 for a, b in ranges)
        passes = []
        with rawhttp.Connection(server.port, timeout=TIMEOUT) as conn:  # Safari keeps its connection
            for label in ("cold", "warm"):
                m0 = self.metrics(server)
                t0 = time.monotonic()
                for a, b in ranges:
                    self.assert_range(self.get(server, BIG_KEY, a, b, conn=conn), self.big, a, b, f"{label} {a}-{b}")
                elapsed = time.monotonic() - t0
                self.settle(server, cache_dir)
                m1 = self.metrics(server)
                passes.append((label, self.delta(m1, m0, S3_GETS), self.delta(m1, m0, S3_BYTES), elapsed))
        for label, gets, received, elapsed in passes:
            figure(f"Safari on a 100 MB object ({len(ranges)} ranges, {requested} bytes asked), {label}: "
                   f"{gets} S3 GETs, {received} bytes from S3, {elapsed * 1000:.0f} ms")
        (_, cold_gets, cold_bytes, _), (_, warm_gets, warm_bytes, _) = passes
        slices = {i for a, b in ranges for i in range(a // SLICE, b // SLICE + 1)}
        self.assertLessEqual(cold_gets, len(slices), "more GETs than distinct slices")
        self.assertEqual(cold_bytes, sum(min(SLICE, BIG_SIZE - i * SLICE) for i in slices),
                         "cold: every touched slice once, whole")
        self.assertEqual(warm_gets, 0, "the warm pass went to S3")
        self.assertEqual(warm_bytes, 0)

    # -- (4) a replaced object ----------------------------------------------------------------------------

    def replaced_object(self) -> tuple[str, bytes, bytes, harness.Server]:
        """An object of four slices whose first two are cached, then replaced in S3 by one of the same size;
        the server's metadata TTL is 1 s. One event loop, so that every request sees the same S3 client (with
        several, which loop a connection lands on changes what each request sees)."""
        key = f"cache/replaced-{uuid.uuid4().hex[:8]}.bin"
        size = 3 * SLICE + 777
        old = random.Random(SEED + 40).randbytes(size)
        new = random.Random(SEED + 41).randbytes(size)
        self.s3util.put_object(self.bucket, key, old, "video/mp4", client=self.client)
        server, cache_dir = self.start_server("--cache-meta-ttl", "1", "--threads", "1")
        # Slices 0 and 1 of the old version cached, 2 and 3 not: the case where old and new could be mixed.
        self.assert_range(self.get(server, key, 0, 2 * SLICE - 1), old, 0, 2 * SLICE - 1, "old")
        self.settle(server, cache_dir)
        self.s3util.put_object(self.bucket, key, new, "video/mp4", client=self.client)
        return key, old, new, server

    def version_of(self, server: harness.Server, key: str, old: bytes, new: bytes, first: Optional[int] = None,
                   last: Optional[int] = None) -> str:
        """'old' or 'new' for a response that is all one version, '5xx' or 'cut' (closed mid-body) for an error;
        fails the test for a body that is neither version."""
        try:
            r = self.get(server, key, first, last)
        except rawhttp.ConnectionClosed:  # an error found after the header was sent closes the connection
            return "cut"
        if r.status >= 500:
            # A replacement is found by If-Match (S3's 412: errc::changed), which the server answers 503.
            self.assertEqual(r.status, 503, r.describe())
            return "5xx"
        lo, hi = (0, len(old) - 1) if first is None else (first, last)
        self.assertIn(r.status, (200, 206), r.describe())
        if r.body == old[lo:hi + 1]:
            return "old"
        if r.body == new[lo:hi + 1]:
            return "new"
        pages = [r.body[i:i + 4096] == old[lo + i:lo + i + 4096] for i in range(0, len(r.body), 4096)]
        self.fail(f"bytes {lo}-{hi} mix two versions: status {r.status}, ETag {r.header('etag')}, "
                  f"{len(r.body)} bytes, {sum(pages)} of {len(pages)} pages old, the rest not")

    def test_4a_a_replaced_object_is_served_new_after_the_meta_ttl(self) -> None:
        key, old, new, server = self.replaced_object()
        time.sleep(1.5)
        # The whole object first: its first two slices are cached in the old version.
        whole = self.version_of(server, key, old, new)
        cached = self.version_of(server, key, old, new, 0, 2 * SLICE - 1)
        self.assertEqual((whole, cached), ("new", "new"),
                         "1.5 s after the replacement with --cache-meta-ttl 1 (whole object, then its cached slices)")

    def test_4b_a_replaced_object_is_never_mixed(self) -> None:
        key, old, new, server = self.replaced_object()
        replaced = time.monotonic()
        outcomes: dict[str, int] = {}
        first_new = None
        while time.monotonic() - replaced < 8 and first_new is None:
            for first, last in ((None, None), (0, 2 * SLICE - 1), (SLICE + 10, 3 * SLICE + 5), (3 * SLICE, None)):
                if last is None and first is not None:
                    last = len(old) - 1
                v = self.version_of(server, key, old, new, first, last)
                outcomes[v] = outcomes.get(v, 0) + 1
                if v == "new" and first_new is None:
                    first_new = time.monotonic() - replaced
            time.sleep(0.05)
        self.assertIsNotNone(first_new, f"the new version never came in 8 s: {outcomes}")
        figure(f"replacement (--cache-meta-ttl 1), probing until the first new bytes ({first_new:.2f} s): {outcomes}")
        for first, last in ((None, None), (0, 2 * SLICE - 1), (SLICE + 10, 3 * SLICE + 5)):
            self.assertEqual(self.version_of(server, key, old, new, first, last), "new", f"{first}-{last} settled")

    # -- (5) a damaged slice ------------------------------------------------------------------------------

    def test_5_a_corrupted_slice_file_is_refetched(self) -> None:
        server, cache_dir = self.start_server()
        first, last = SLICE + 10, 2 * SLICE - 10  # inside slice 1
        self.assert_range(self.get(server, SMALL_KEY, first, last), self.small, first, last, "cold")
        self.settle(server, cache_dir)
        files = slice_files(cache_dir, 1)
        self.assertEqual(len(files), 1, f"slice 1 files: {files}")
        time.sleep(0.05)  # a different mtime than the one the cache saw at commit, whatever the granularity
        with open(files[0], "r+b") as f:
            f.seek(HEADER_BYTES + 300_000)
            data = f.read(16)
            f.seek(HEADER_BYTES + 300_000)
            f.write(bytes(b ^ 0xFF for b in data))
        m0 = self.metrics(server)
        self.assert_range(self.get(server, SMALL_KEY, first, last), self.small, first, last, "after damage")
        self.settle(server, cache_dir)
        m1 = self.metrics(server)
        self.assertGreaterEqual(self.delta(m1, m0, "mediagate_cache_corrupt_slices_total"), 1)
        self.assertEqual(self.delta(m1, m0, S3_GETS), 1, "the damaged slice is fetched again")
        self.assert_range(self.get(server, SMALL_KEY, first, last), self.small, first, last, "refetched")
        self.assertEqual(self.delta(self.metrics(server), m1, S3_GETS), 0, "the refetched slice is cached again")

    # -- (6) an unusable cache directory ------------------------------------------------------------------

    def test_6_an_unusable_cache_dir_passes_requests_through(self) -> None:
        server, cache_dir = self.start_server()
        warm = (5 * SLICE, 5 * SLICE + 65535)
        self.assert_range(self.get(server, BIG_KEY, *warm), self.big, *warm, "before")
        self.settle(server, cache_dir)
        # Root ignores permissions: make tmp/ a regular file so that no temporary slice file can be created.
        (cache_dir / "tmp").rmdir()
        (cache_dir / "tmp").write_bytes(b"not a directory")
        ranges = [(20 * SLICE + 7, 20 * SLICE + 65542), (30 * SLICE - 100, 31 * SLICE + 100),
                  (BIG_SIZE - 5000, BIG_SIZE - 1)]
        m0 = self.metrics(server)
        for attempt in (1, 2):
            for a, b in ranges:
                self.assert_range(self.get(server, BIG_KEY, a, b), self.big, a, b, f"pass {attempt}")
        self.assert_whole(self.get(server, SMALL_KEY), self.small, "whole object")
        m1 = self.metrics(server)
        self.assertGreater(self.delta(m1, m0, "mediagate_cache_write_errors_total"), 0)
        asked = 2 * sum(b - a + 1 for a, b in ranges) + SMALL_SIZE
        figure(f"unusable cache dir: {2 * len(ranges) + 1} requests, {asked} bytes asked: "
               f"{self.delta(m1, m0, S3_GETS)} S3 GETs, {self.delta(m1, m0, S3_BYTES)} bytes from S3, "
               f"{self.delta(m1, m0, 'mediagate_cache_write_errors_total')} write errors")
        # What was cached before still comes from the cache.
        self.assert_range(self.get(server, BIG_KEY, *warm), self.big, *warm, "cached before")
        self.assertEqual(self.delta(self.metrics(server), m1, S3_GETS), 0)

    # -- (7) stale-if-error -------------------------------------------------------------------------------

    def test_7_cached_objects_are_served_while_s3_is_down(self) -> None:
        server, cache_dir = self.start_server("--cache-meta-ttl", "1", "--s3-meta-ttl", "0")
        cached = (65536, 3 * SLICE)
        self.assert_range(self.get(server, SMALL_KEY, *cached), self.small, *cached, "warm")
        self.settle(server, cache_dir)
        m0 = self.metrics(server)
        r = radosgw("kill-rgw", self.cluster)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        try:
            time.sleep(1.5)  # past --cache-meta-ttl
            t0 = time.monotonic()
            r = self.get(server, SMALL_KEY, *cached)
            stale_ms = (time.monotonic() - t0) * 1000
            self.assert_range(r, self.small, *cached, "S3 down")
            m1 = self.metrics(server)
            self.assertGreater(self.delta(m1, m0, "mediagate_cache_stale_served_total"), 0)
            self.assertEqual(self.delta(m1, m0, S3_GETS), 0)
            # Bytes that are not cached cannot be served: an honest 5xx, soon.
            t0 = time.monotonic()
            r = self.get(server, BIG_KEY, 0, 99)
            fail_ms = (time.monotonic() - t0) * 1000
            self.assertEqual(r.status, 502, r.describe())  # radosgw refuses connections: upstream unavailable
            figure(f"S3 down: cached range 206 in {stale_ms:.0f} ms (stale-if-error), uncached object "
                   f"{r.status} in {fail_ms:.0f} ms")
        finally:
            r = radosgw("restart-rgw", self.cluster)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        # S3 is back: fresh metadata, and uncached bytes come again.
        self.assert_range(self.get(server, BIG_KEY, 0, 99), self.big, 0, 99, "S3 back")
        self.assert_range(self.get(server, SMALL_KEY, *cached), self.small, *cached, "S3 back, cached")

    # -- (8) restart --------------------------------------------------------------------------------------

    def test_8_the_cache_survives_a_restart_of_mediagate(self) -> None:
        ranges = [(0, 1), (0, 65535), (40 * SLICE - 10, 41 * SLICE + 10), (BIG_SIZE - 65536, BIG_SIZE - 1)]
        server, cache_dir = self.start_server()
        for a, b in ranges:
            self.assert_range(self.get(server, BIG_KEY, a, b), self.big, a, b, "first server")
        self.settle(server, cache_dir)
        stored = self.metrics(server)["mediagate_cache_stored_bytes"]
        self.assertGreater(stored, 0)
        server.stop()
        again, _ = self.start_server(cache_dir=cache_dir)
        m0 = self.metrics(again)
        self.assertEqual(m0["mediagate_cache_stored_bytes"], stored, "the index was not rebuilt from disk")
        for a, b in ranges:
            self.assert_range(self.get(again, BIG_KEY, a, b), self.big, a, b, "after restart")
        m1 = self.metrics(again)
        # The object's metadata is not on disk: the first request after the restart fetches it with one GET
        # (as it would a cold object's, issue 15), whose bytes are dropped when the slice is on disk already;
        # every range is then served from the cached slices.
        self.assertLessEqual(self.delta(m1, m0, S3_GETS), 1, "a warm range went to S3 after a restart")
        self.assertEqual(self.delta(m1, m0, "mediagate_cache_misses_total"), 0, "a cached slice fetched again")
        self.assertGreaterEqual(self.delta(m1, m0, "mediagate_cache_hits_total"), len(ranges))
        self.assertEqual(self.delta(m1, m0, "mediagate_cache_corrupt_slices_total"), 0)

    # -- (9) a stalled client -----------------------------------------------------------------------------

    def test_9_a_stalled_client_does_not_stall_others_on_the_same_slices(self) -> None:
        # A viewer pauses (stops reading) in the middle of a long range; another viewer asks for bytes further
        # on in that range. The second must not wait for the first to read on.
        server, _ = self.start_server()
        stalled = rawhttp.Connection(server.port, timeout=TIMEOUT, rcvbuf=4096)
        self.addCleanup(stalled.close)
        stalled.send_request("GET", harness.media_target(BIG_KEY), [("Range", f"bytes=0-{30 * SLICE - 1}")])
        head = stalled.read_head()
        self.assertEqual(head.status, 206, head.raw_head)
        time.sleep(1.0)  # the server fills the socket buffers and blocks
        first, last = 25 * SLICE, 25 * SLICE + 65535
        t0 = time.monotonic()
        try:
            r = self.get(server, BIG_KEY, first, last, timeout=8.0)
        except rawhttp.ServerHang as e:
            self.fail(f"a request for bytes {first}-{last} waited {time.monotonic() - t0:.1f} s for a slice that a "
                      f"stalled client's fetch had claimed: {e}")
        figure(f"stalled client: another request for a slice inside its range answered in "
               f"{(time.monotonic() - t0) * 1000:.0f} ms")
        self.assert_range(r, self.big, first, last, "beside a stalled client")


    # -- (10) a client that leaves mid-slice (issue 15) --------------------------------------------------------

    def test_10_a_slice_left_mid_fetch_is_read_to_its_end(self) -> None:
        """A player reads `bytes=N-` and leaves in the middle of a slice (it has what it wanted, or it seeks).
        That slice is read to its end into the cache, and nothing after it: S3 sends whole slices only, and the
        same viewer's next visit to those bytes makes no S3 request (before, the slice it left was dropped and
        fetched again on every visit)."""
        server, cache_dir = self.start_server("--threads", "1")
        first = 3 * SLICE + 1000
        taken = SLICE + SLICE // 2  # ends inside slice 4
        m0 = self.metrics(server)
        with rawhttp.Connection(server.port, timeout=TIMEOUT) as c:
            c.send_request("GET", harness.media_target(BIG_KEY), [("Range", f"bytes={first}-")])
            head = c.read_head()
            self.assertEqual(head.status, 206, head.raw_head)
            got = bytearray()
            while len(got) < taken:
                chunk = c.read_some()
                self.assertTrue(chunk, "the stream ended early")
                got += chunk
            c.close(reset=True)
        self.assertTrue(bytes(got[:taken]) == self.big[first:first + taken], "the stream's bytes differ")
        self.settle(server, cache_dir)
        m1 = self.metrics(server)
        received = self.delta(m1, m0, S3_BYTES)
        completed = self.delta(m1, m0, "mediagate_cache_slices_completed_after_leave_total")
        figure(f"a client left after {taken} bytes of bytes={first}-: {received} bytes from S3 "
               f"({received / SLICE:.2f} slices), {completed} slice read to its end after it left")
        self.assertEqual(self.delta(m1, m0, S3_GETS), 1)
        self.assertEqual(received % SLICE, 0, "S3 sent a part of a slice: one was dropped half-read")
        self.assertGreaterEqual(received, 2 * SLICE, "slices 3 and 4 at least")
        # One: the slice the client left in the middle of (none when the fetch stood exactly between two slices).
        self.assertLessEqual(completed, 1)
        last = first + taken - 1
        self.assert_range(self.get(server, BIG_KEY, first, last), self.big, first, last, "again")
        m2 = self.metrics(server)
        self.assertEqual(self.delta(m2, m1, S3_GETS), 0, "the same bytes again went to S3")

    # -- (11) the moov of a moov-at-end MP4 while the tail prefetch is still on its way (issue 15) --------------

    def test_11_the_index_request_joins_the_tail_prefetch_in_flight(self) -> None:
        """Chrome's cold start of a moov-at-end MP4: `bytes=0-`, then (having read the head) the index at the end.
        The first read asks S3 for the object's tail in parallel (--cache-tail-prefetch); when S3 answers the
        head first, the tail's slices are claimed for it at once (the head's answer gives the size), so the
        player's index request waits for the tail's bytes instead of asking S3 for the same slices again: the
        whole start costs no S3 request for the index. The shaped S3 answers suffix ranges (the tail) 1 s
        late, so the index request comes while the tail is in flight (and is answered within the 2 s a request
        waits for a slice another fetch claimed)."""
        from shaped_s3 import ShapedS3

        key = f"cache/moov-end-{uuid.uuid4().hex[:8]}.mp4"
        self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": BIG_KEY})
        rgw_port = int(self.fx.server_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        shaped = ShapedS3(self.tmp / f"shaped-{uuid.uuid4().hex[:6]}", upstream_port=rgw_port, delay_ms=5,
                          rate="200m", suffix_delay_ms=1000)
        shaped.start()
        self.addCleanup(shaped.stop)
        cache_dir = Path(tempfile.mkdtemp(prefix="slices-", dir=self.tmp))
        fx = types.SimpleNamespace(tmp=self.tmp, storage_args=self.fx.storage_args,
                                   server_env=dict(self.fx.server_env, AWS_ENDPOINT_URL=shaped.endpoint))
        server = harness.Server(fx, ["--cache-dir", str(cache_dir), "--cache-slice", "1MiB", "--access-log", "off"],
                                name="index-joins-tail")
        self.addCleanup(self._check_and_stop, server)
        index = BIG_SIZE - 100_000  # in the last slice, which the 2 MiB tail holds whole
        m0 = self.metrics(server)
        with rawhttp.Connection(server.port, timeout=TIMEOUT) as c:
            c.send_request("GET", harness.media_target(key), [("Range", "bytes=0-")])
            head = c.read_head()
            self.assertEqual(head.status, 206, head.raw_head)
            got = c.read_at_least(256 * 1024, "reading the head's bytes")
            self.assertTrue(got == self.big[:len(got)], "the head's bytes differ")
            asked = time.time()
            t0 = time.monotonic()
            r = self.get(server, key, index)
            took = time.monotonic() - t0
            c.close(reset=True)
        self.assert_range(r, self.big, index, BIG_SIZE - 1, "the index")
        self.settle(server, cache_dir)
        m1 = self.metrics(server)
        time.sleep(0.3)  # the shaped S3's log is flushed every 100 ms
        log = [x for x in shaped.requests() if x["uri"].endswith(key.rsplit("/", 1)[1])]
        tails = [x for x in log if x["range"].startswith("bytes=-")]
        figure(f"cold moov-at-end start (bytes=0-, then the index at {index}) with the tail answered 1 s late: "
               f"{self.delta(m1, m0, S3_GETS)} S3 GETs ({', '.join(x['range'] for x in log)}); the index request "
               f"took {took * 1000:.0f} ms")
        # The head: its first MiB alone (test_13), and the rest of its run when the server got half of it out
        # before the client left (its socket buffers hold that much): never a range that holds the index.
        heads = sorted(x["range"] for x in log if x not in tails)
        self.assertIn(heads, ([f"bytes=0-{MIB - 1}"], [f"bytes=0-{MIB - 1}", f"bytes={MIB}-{64 * MIB - 1}"]), log)
        self.assertEqual(self.delta(m1, m0, S3_GETS), len(log), f"S3 requests: {log}")
        self.assertEqual(len(tails), 1, log)
        self.assertGreater(tails[0]["end"], asked, "the tail had answered before the index was asked: no race")
        self.assertEqual(self.delta(m1, m0, "mediagate_cache_tail_prefetches_total"), 1)
        # Warm: the index and the head are cached.
        self.assert_range(self.get(server, key, index), self.big, index, BIG_SIZE - 1, "the index again")
        self.assertEqual(self.delta(self.metrics(server), m1, S3_GETS), 0, "the cached index went to S3")

    # -- (12) reading ahead of a client that drains cached slices (issue 15) ----------------------------------

    def stall_on_cached_run(self, server: harness.Server, cache_dir: Path) -> tuple[int, int]:
        """Caches slices 0-7, then asks bytes=0-(32 MiB - 1) and reads only 100 KiB of it for 1 s and until S3
        bytes stop coming (a 64 KiB receive buffer: the server stands at most its 4 MiB send buffer further on,
        within the cached slices): the S3 bytes and read-aheads meanwhile. Then reads the rest, which must be
        the object's."""
        last = 32 * SLICE - 1
        self.assert_range(self.get(server, BIG_KEY, 0, 8 * SLICE - 1), self.big, 0, 8 * SLICE - 1, "warming")
        self.settle(server, cache_dir)
        m0 = self.metrics(server)
        with rawhttp.Connection(server.port, timeout=TIMEOUT, rcvbuf=64 * 1024) as c:
            c.send_request("GET", harness.media_target(BIG_KEY), [("Range", f"bytes=0-{last}")])
            head = c.read_head()
            self.assertEqual(head.status, 206, head.raw_head)
            got = bytearray(c.read_at_least(100 * 1024, "reading the first cached bytes"))
            time.sleep(1.0)
            m1 = self.metrics(server)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # a busy machine: until what was read ahead is in
                time.sleep(0.3)
                m = self.metrics(server)
                if m[S3_BYTES] == m1[S3_BYTES]:
                    break
                m1 = m
            while len(got) < last + 1:
                chunk = c.read_some()
                self.assertTrue(chunk, f"the stream ended after {len(got)} bytes")
                got += chunk
        self.assertTrue(bytes(got) == self.big[:last + 1], "the stream's bytes differ from the object's")
        return self.delta(m1, m0, S3_BYTES), self.delta(m1, m0, "mediagate_cache_read_aheads_total")

    def test_12_missing_slices_are_read_ahead_of_a_client_draining_cached_ones(self) -> None:
        """A player reads `bytes=N-` where the cache holds the first slices and not those after (a warm seek
        whose cold visit left early). While it drains the cached slices, the missing ones among its next
        --cache-read-ahead bytes (8 MiB) are fetched already: it does not wait a whole S3 round trip where the
        cached run ends. Bounded: whole slices, within its range, at most 8 MiB ahead of where the server
        stands, each slice read from S3 once; a client that leaves stops it. Without read-ahead (0) nothing is
        fetched while the client holds within the cached slices."""
        server, cache_dir = self.start_server("--threads", "1")
        m_start = self.metrics(server)
        ahead, runs = self.stall_on_cached_run(server, cache_dir)
        figure(f"read-ahead: a client holding after 100 KiB of bytes=0-, slices 0-7 cached: {ahead / SLICE:.0f} "
               f"MiB fetched ahead in {runs} run(s) while it held")
        self.assertGreaterEqual(runs, 1)
        self.assertGreaterEqual(ahead, SLICE, "slice 8 (at least) fetched while the client held at slice 0")
        # The server stands at slice 4 at most (64 KiB + 4 MiB of socket buffers): slices 8-12 at most.
        self.assertLessEqual(ahead, 5 * SLICE, "more than 8 MiB ahead of the server's position")
        self.assertEqual(ahead % SLICE, 0, "whole slices only")
        self.settle(server, cache_dir)
        m1 = self.metrics(server)
        # Every slice of the range from S3 once: 0-7 warming, 8-31 read ahead or by the client itself.
        self.assertEqual(self.delta(m1, m_start, S3_BYTES), 32 * SLICE, "a slice was read from S3 twice")

        # A client that reads 24 MiB of cached slices (0-31) of bytes=0- and leaves: the server stood at slice
        # 28 at most, so at most slices 32-36 were read ahead of it, and nothing after it left.
        with rawhttp.Connection(server.port, timeout=TIMEOUT, rcvbuf=64 * 1024) as c:
            c.send_request("GET", harness.media_target(BIG_KEY), [("Range", "bytes=0-")])
            self.assertEqual(c.read_head().status, 206)
            c.read_at_least(24 * SLICE, "reading the cached slices")
            time.sleep(0.5)
            c.close(reset=True)
        self.settle(server, cache_dir)
        left = self.delta(self.metrics(server), m1, S3_BYTES)
        figure(f"read-ahead: a client that left after 24 MiB of bytes=0- (32 slices cached): {left / SLICE:.0f} MiB "
               f"from S3 for it")
        self.assertLessEqual(left, 5 * SLICE, "read on for a client that left")
        self.assertEqual(left % SLICE, 0, "whole slices only")

        off, runs = self.stall_on_cached_run(*self.start_server("--threads", "1", "--cache-read-ahead", "0"))
        self.assertEqual((off, runs), (0, 0), "with --cache-read-ahead 0 nothing should be read ahead")

    # -- (13) a player's cold start through the cache asks for its head alone (issue 15) ---------------------

    def test_13_a_players_cold_start_asks_for_its_head_alone(self) -> None:
        """radosgw reads a long range's whole first stripe (4 MiB) before it sends a byte of it, and a MiB in a few
        ms. A player's cold `bytes=0-` of an MP4 through the cache therefore asks for its first MiB alone
        (--s3-first-read), and for the rest of the run with If-Match once half of it is sent: exact bytes, every
        slice cached, one GET more than with --s3-first-read 0. A player that takes 64 KiB and leaves costs no GET
        for the rest, and slice 0 is still completed (from the head's GET alone)."""
        from shaped_s3 import ShapedS3

        rgw_port = int(self.fx.server_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        shaped = ShapedS3(self.tmp / f"shaped-{uuid.uuid4().hex[:6]}", upstream_port=rgw_port, delay_ms=1,
                          rate="1000m")
        shaped.start()
        self.addCleanup(shaped.stop)
        fx = types.SimpleNamespace(tmp=self.tmp, storage_args=self.fx.storage_args,
                                   server_env=dict(self.fx.server_env, AWS_ENDPOINT_URL=shaped.endpoint))
        size = 5 * MIB + 777
        data = random.Random(SEED + 13).randbytes(size)

        def cold(server: harness.Server, cache_dir: Path, read: Optional[int] = None) -> tuple[str, list, int]:
            """A new key's `bytes=0-` read whole (or `read` bytes, then reset): its key, the ranges asked of S3
            for it, and the GETs counted by the server."""
            key = f"cache/head-{uuid.uuid4().hex[:8]}.mp4"
            self.s3util.put_object(self.bucket, key, data, "video/mp4", client=self.client)
            m0 = self.metrics(server)
            if read is None:
                self.assert_range(self.get(server, key, 0), data, 0, size - 1, "cold bytes=0-")
            else:
                with rawhttp.Connection(server.port, timeout=TIMEOUT, rcvbuf=64 * 1024) as c:
                    c.send_request("GET", harness.media_target(key), [("Range", "bytes=0-")])
                    self.assertEqual(c.read_head().status, 206)
                    got = c.read_at_least(read, "reading the head")
                    self.assertTrue(got == data[:len(got)], "the head's bytes differ")
                    c.close(reset=True)
            self.settle(server, cache_dir)
            gets = self.delta(self.metrics(server), m0, S3_GETS)
            time.sleep(0.3)  # the shaped S3's log is flushed every 100 ms
            ranges = sorted(x["range"] for x in shaped.requests() if x["uri"].endswith(key.rsplit("/", 1)[1]))
            return key, ranges, gets

        cache_dir = Path(tempfile.mkdtemp(prefix="slices-", dir=self.tmp))
        server = harness.Server(fx, ["--cache-dir", str(cache_dir), "--cache-slice", "1MiB", "--access-log", "off"],
                                name="head-first")
        self.addCleanup(self._check_and_stop, server)
        key, ranges, gets = cold(server, cache_dir)
        figure(f"cold bytes=0- of a {size}-byte MP4 through the cache: {gets} S3 GETs ({', '.join(ranges)})")
        tails = [r for r in ranges if r.startswith("bytes=-")]
        self.assertEqual(len(tails), 1, ranges)  # --cache-tail-prefetch
        # The rest runs to the end, or to the tail's first whole slice (4) when the tail's answer came first and
        # claimed its slices.
        self.assertIn(sorted(set(ranges) - set(tails)), ([f"bytes=0-{MIB - 1}", f"bytes={MIB}-{size - 1}"],
                                                         [f"bytes=0-{MIB - 1}", f"bytes={MIB}-{4 * MIB - 1}"]),
                      "the head alone, then the rest")
        self.assertEqual(gets, 3, ranges)
        m0 = self.metrics(server)
        self.assert_range(self.get(server, key, 0), data, 0, size - 1, "warm bytes=0-")
        self.assertEqual(self.delta(self.metrics(server), m0, S3_GETS), 0, "a slice was not cached")

        # A player that takes 64 KiB and leaves: the head's GET and the tail's only; slice 0 cached from the head.
        key, ranges, gets = cold(server, cache_dir, read=64 * 1024)
        figure(f"cold bytes=0- through the cache, 64 KiB read then left: {gets} S3 GETs ({', '.join(ranges)})")
        self.assertEqual(sorted(r for r in ranges if not r.startswith("bytes=-")), [f"bytes=0-{MIB - 1}"], ranges)
        self.assertEqual(gets, 2, ranges)
        m0 = self.metrics(server)
        self.assert_range(self.get(server, key, 0, MIB - 1), data, 0, MIB - 1, "slice 0")
        self.assertEqual(self.delta(self.metrics(server), m0, S3_GETS), 0, "slice 0 was not completed")

        # --s3-first-read 0: the run in one GET.
        cache_dir = Path(tempfile.mkdtemp(prefix="slices-", dir=self.tmp))
        server = harness.Server(fx, ["--cache-dir", str(cache_dir), "--cache-slice", "1MiB", "--access-log", "off",
                                     "--s3-first-read", "0"], name="one-read")
        self.addCleanup(self._check_and_stop, server)
        _, ranges, gets = cold(server, cache_dir)
        self.assertEqual(sorted(r for r in ranges if not r.startswith("bytes=-")), [f"bytes=0-{64 * MIB - 1}"], ranges)
        self.assertEqual(gets, 2, ranges)

    # -- (14) a head that shows the index at the end defers its rest (issue 15) -----------------------------------

    def test_14_a_head_that_shows_the_index_at_the_end_defers_its_rest(self) -> None:
        """Through the cache as without it (test_s3_faults test_5g): a player's head whose first boxes show the index
        after the media has the rest of its run asked for only when the head runs out, since its player leaves
        within it. One that reads 2.5 MiB of a 4 MiB head (--s3-first-read 4MiB) and leaves costs the head's GET
        and the tail's for a moov-at-end file, and a GET for the rest too for a fast-start one; the slice it left
        in is still completed."""
        layouts = harness.mp4_layouts(random.Random(SEED + 14), 6 * MIB + 99, 100_000)
        server, cache_dir = self.start_server("--s3-first-read", "4MiB")
        left, moved = {}, {}  # GETs after each player left; and every S3 and cache counter that moved
        for name, body in layouts.items():
            key = f"cache/defer-{uuid.uuid4().hex[:8]}.mp4"
            self.s3util.put_object(self.bucket, key, body, "video/mp4", client=self.client)
            m0 = self.metrics(server)
            with rawhttp.Connection(server.port, timeout=TIMEOUT, rcvbuf=64 * 1024) as c:
                c.send_request("GET", harness.media_target(key), [("Range", "bytes=0-")])
                self.assertEqual(c.read_head().status, 206)
                got = c.read_at_least(5 * MIB // 2, "reading the head")
                self.assertTrue(got == body[:len(got)], f"{name}: the head's bytes differ")
                c.close(reset=True)
            self.settle(server, cache_dir)
            m1 = self.metrics(server)
            left[name] = self.delta(m1, m0, S3_GETS)
            moved[name] = {k: int(v - m0.get(k, 0)) for k, v in m1.items()
                           if ("s3" in k or "cache" in k) and int(v - m0.get(k, 0)) != 0}
            self.assert_range(self.get(server, key, 0, 2 * SLICE - 1), body, 0, 2 * SLICE - 1, name)
            self.assertEqual(self.delta(self.metrics(server), m1, S3_GETS), 0, f"{name}: slices 0-1 not cached")
        figure(f"a player that read 2.5 MiB of a 4 MiB head through the cache and left: S3 GETs {left}")
        self.assertEqual(left, {"moov at end": 2, "fast start": 3},
                         f"head and tail; and the rest for fast start (counters that moved: {moved})")

if __name__ == "__main__":
    unittest.main()
