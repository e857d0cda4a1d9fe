"""Several mediagate nodes behind HAProxy (issue 16, part B), with deploy/haproxy.cfg itself.

Starts its own radosgw (scripts/radosgw.sh), three `mediagate serve` nodes over one bucket (each with its own
slice cache) and HAProxy 2.6 in the foreground (`haproxy -f deploy/haproxy.cfg -db`, addresses in its
environment); every test builds a fresh set of nodes and HAProxy, since some kill a node. It checks:
  - affinity: one object's requests, whatever their query string, reach one node (HAProxy's X-Mediagate-Node
    and the nodes' own access logs agree); different objects spread over the nodes;
  - the same ETag, Last-Modified and bytes from every node, for S3 storage and for nodes over one directory;
  - kill -9 of the node serving a stream: the client resumes through HAProxy with Range + If-Range and gets
    exactly the missing bytes (206, exact Content-Range), and the reassembled body is the object;
  - SIGTERM of a node during a stream: HAProxy's /readyz check takes it out, no new request fails or reaches
    it, and its in-flight stream finishes whole.

Run from tests/integration: /usr/bin/python3 run_suite.py --bin ../../build/mediagate test_cluster
(CTest: integration_cluster).
"""

from __future__ import annotations

import csv
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import types
import unittest
import urllib.parse
import uuid
from pathlib import Path
from typing import Optional

import harness
import rawhttp
from test_cache import start_radosgw, radosgw

HAPROXY_CFG = harness.REPO / "deploy" / "haproxy.cfg"
MIB = 1 << 20
BIG_KEY = "cluster/big.bin"
BIG_SIZE = 96 * MIB  # counter pattern (harness.pattern_bytes): far more than the socket and proxy buffers hold
CLIP_KEY = "cluster/clip.mp4"
TIMEOUT = 20.0
NODE_HEADER = "x-mediagate-node"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def media(key: str, query: str = "") -> str:
    return harness.media_target(key) + query


class HAProxy:
    """`haproxy -f deploy/haproxy.cfg -db` with the nodes' addresses in its environment."""

    def __init__(self, tmp: Path, nodes: list[str], cfg: Path = HAPROXY_CFG) -> None:
        self.port, self.stats_port = free_port(), free_port()
        env = dict(os.environ, MEDIAGATE_FRONTEND=f"127.0.0.1:{self.port}",
                   MEDIAGATE_STATS=f"127.0.0.1:{self.stats_port}")
        for i in range(3):
            # Fewer than three nodes: the others point at a closed port, fail their checks and get nothing.
            env[f"MEDIAGATE_NODE{i + 1}"] = nodes[i] if i < len(nodes) else f"127.0.0.1:{free_port()}"
        self.log = tmp / f"haproxy-{self.port}.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(["haproxy", "-f", str(cfg), "-db"], env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         preexec_fn=harness._die_with_parent)
        self.wait_for(lambda states: all(states.get(f"node{i + 1}") == "UP" for i in range(len(nodes))),
                      "every node UP")

    def states(self) -> dict[str, str]:
        """node name -> HAProxy's status of it (UP, DOWN, ...), from the stats page's CSV."""
        with rawhttp.Connection(self.stats_port, timeout=5) as c:
            r = c.request("GET", "/stats;csv")
        text = r.body.decode().lstrip("# ")
        return {row["svname"]: row["status"].split(" ")[0] for row in csv.DictReader(io.StringIO(text))
                if row["pxname"] == "mediagate" and row["svname"].startswith("node")}

    def wait_for(self, ok, what: str, timeout: float = 20.0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"haproxy exited with {self.proc.returncode}:\n{self.output()}")
            try:
                states = self.states()
                if ok(states):
                    return states
            except (OSError, AssertionError):
                pass
            time.sleep(0.1)
        raise AssertionError(f"haproxy: not {what} within {timeout} s: {states}\n{self.output()}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class ClusterTest(unittest.TestCase):
    maxDiff = 3000

    @classmethod
    def setUpClass(cls) -> None:
        cls.tmp = Path(tempfile.mkdtemp(prefix="mediagate-cluster-it-"))
        cls.cluster_dir = cls.tmp / "rgw"
        try:
            cls.env = start_radosgw(cls.cluster_dir)
            os.environ.update(cls.env)  # s3util reads the environment
            import s3util

            client = s3util.client_from_env()
            s3util.wait_until_ready(client=client)
            cls.bucket = f"mediagate-cluster-{uuid.uuid4().hex[:12]}"
            s3util.create_bucket(cls.bucket, client=client)
            cls.clip = (harness.build_cache() / "clip.mp4").read_bytes()
            # The same objects in S3 and in a local directory (nodes over one directory share it).
            cls.root = cls.tmp / "media"
            (cls.root / "cluster").mkdir(parents=True)
            (cls.root / CLIP_KEY).write_bytes(cls.clip)
            harness.write_pattern_file(cls.root / BIG_KEY, BIG_SIZE)
            s3util.put_object(cls.bucket, CLIP_KEY, cls.clip, "video/mp4", client=client)
            with open(cls.root / BIG_KEY, "rb") as body:
                client.put_object(Bucket=cls.bucket, Key=BIG_KEY, Body=body)
        except BaseException:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls) -> None:
        if (cls.cluster_dir / "env").exists():
            try:
                radosgw("stop", cls.cluster_dir)
            except Exception as e:  # the cluster is thrown away with the directory
                print(f"test_cluster: radosgw stop: {e}")
        shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- the nodes and HAProxy

    def start_nodes(self, n: int = 3, storage: str = "s3") -> list[harness.Server]:
        """n nodes over the bucket (each with its own slice cache) or over the local directory."""
        if storage == "s3":
            fx = types.SimpleNamespace(tmp=self.tmp, storage_args=["--storage", f"s3://{self.bucket}"],
                                       server_env=self.env)
        else:
            fx = types.SimpleNamespace(tmp=self.tmp, storage_args=["--storage", str(self.root)], server_env={})
        nodes = []
        for i in range(n):
            args = ["--access-log", "-", "--drain-timeout", "30"]
            if storage == "s3":
                args += ["--cache-dir", tempfile.mkdtemp(prefix="cache-", dir=self.tmp), "--cache-size", "1GiB"]
            node = harness.Server(fx, args, name=f"node{i + 1}")
            self.addCleanup(node.stop, check=False)
            nodes.append(node)
        return nodes

    def start_cluster(self, n: int = 3) -> tuple[list[harness.Server], HAProxy]:
        nodes = self.start_nodes(n)
        proxy = HAProxy(self.tmp, [f"127.0.0.1:{node.port}" for node in nodes])
        self.addCleanup(proxy.stop)
        return nodes, proxy

    def assert_clean_stops(self, nodes: list[harness.Server], skip=()) -> None:
        for node in nodes:
            if node not in skip:
                node.stop(check=True)

    @staticmethod
    def node_of(r: rawhttp.Response) -> str:
        name = r.header(NODE_HEADER)
        assert name, f"HAProxy named no node:\n{r.describe()}"
        return name

    @staticmethod
    def access_lines(node: harness.Server, path: str) -> int:
        """How many GETs of this path (with any query; signatures are logged redacted) this node logged."""
        pattern = re.compile(r'"GET ' + re.escape(path) + r'[ ?"]')
        return sum(1 for stream, line in node.lines if stream == "stdout" and pattern.search(line))

    # -- (a) affinity

    def test_one_object_one_node_whatever_the_query(self) -> None:
        nodes, proxy = self.start_cluster()
        queries = ["", "?a=1", "?exp=1999999999&kid=k1&sig=abc", "?exp=1999999999&kid=k1&sig=def", "?t=42"]
        served = {}
        for q in queries:
            with rawhttp.Connection(proxy.port, timeout=TIMEOUT) as c:
                r = c.request("GET", media(CLIP_KEY, q), [("Range", "bytes=0-99")])
            self.assertEqual(r.status, 206, r.describe())
            self.assertEqual(r.body, self.clip[:100])
            served[q] = self.node_of(r)
        self.assertEqual(len(set(served.values())), 1, f"one object reached several nodes: {served}")
        chosen = int(next(iter(served.values()))[len("node"):]) - 1
        # The nodes' own access logs say the same: every request on the chosen node, none elsewhere.
        time.sleep(0.2)  # the access log line is written after the response
        for i, node in enumerate(nodes):
            seen = self.access_lines(node, media(CLIP_KEY))
            self.assertEqual(seen, len(queries) if i == chosen else 0,
                             f"node{i + 1} logged {seen} of the requests (HAProxy chose node{chosen + 1})")

        # Different objects spread over the nodes (absent keys are routed like any other: 404s).
        spread = {}
        for i in range(30):
            key = f"spread/object-{i}.mp4"
            with rawhttp.Connection(proxy.port, timeout=TIMEOUT) as c:
                r1 = c.request("HEAD", media(key))
                r2 = c.request("HEAD", media(key, "?exp=1&sig=x"))
            self.assertEqual((r1.status, r2.status), (404, 404), r1.describe())
            self.assertEqual(self.node_of(r1), self.node_of(r2), f"{key} reached two nodes")
            spread[key] = self.node_of(r1)
        counts = {name: list(spread.values()).count(name) for name in ("node1", "node2", "node3")}
        self.assertTrue(all(counts.values()), f"30 objects did not reach every node: {counts}")
        # /metrics stays off the public side: through HAProxy every client would look like loopback to a node.
        for target in ("/metrics", "/metrics?x=1", "/%6Detrics"):
            with rawhttp.Connection(proxy.port, timeout=TIMEOUT) as c:
                r = c.request("GET", target)
            self.assertEqual(r.status, 403, f"{target} through HAProxy:\n{r.describe()}")
        self.assert_clean_stops(nodes)

    # -- (b) the same validators and bytes from every node

    def check_same_everywhere(self, nodes: list[harness.Server]) -> None:
        for key, size in ((CLIP_KEY, len(self.clip)), (BIG_KEY, BIG_SIZE)):
            seen = set()
            for node in nodes:
                with rawhttp.Connection(node.port, timeout=TIMEOUT) as c:
                    head = c.request("HEAD", media(key))
                    part = c.request("GET", media(key), [("Range", f"bytes={size - 5000}-")])
                self.assertEqual(head.status, 200, head.describe())
                self.assertEqual(head.header("content-length"), str(size))
                self.assertEqual(part.status, 206, part.describe())
                expected = (self.clip[size - 5000:] if key == CLIP_KEY else harness.pattern_bytes(size - 5000, 5000))
                self.assertEqual(part.body, expected, f"{node.name}: bytes of {key} differ")
                seen.add((head.header("etag"), head.header("last-modified"), part.header("etag")))
            self.assertEqual(len(seen), 1, f"{key}: nodes disagree on ETag/Last-Modified: {seen}")
            etag = next(iter(seen))[0]
            self.assertRegex(etag, rawhttp.STRONG_ETAG.pattern + "$")
            # A validator from one node is honoured by every other: If-None-Match and If-Range.
            for node in nodes:
                with rawhttp.Connection(node.port, timeout=TIMEOUT) as c:
                    r = c.request("GET", media(key), [("If-None-Match", etag)])
                    self.assertEqual(r.status, 304, f"{node.name}:\n{r.describe()}")
                    r = c.request("GET", media(key), [("Range", "bytes=10-19"), ("If-Range", etag)])
                    self.assertEqual(r.status, 206, f"{node.name}:\n{r.describe()}")

    def test_same_validators_and_bytes_on_every_node_s3(self) -> None:
        nodes = self.start_nodes(3, "s3")
        self.check_same_everywhere(nodes)
        self.assert_clean_stops(nodes)

    def test_same_validators_and_bytes_on_every_node_local(self) -> None:
        nodes = self.start_nodes(3, "local")
        self.check_same_everywhere(nodes)
        self.assert_clean_stops(nodes)

    def stream_big_through_proxy(self):
        """Starts the cluster and a GET of the big object through HAProxy; returns the nodes, the proxy, the
        connection and its 200 response head (the body not read yet)."""
        nodes, proxy = self.start_cluster()
        conn = rawhttp.Connection(proxy.port, timeout=TIMEOUT, rcvbuf=256 * 1024)
        self.addCleanup(conn.close)
        conn.send_request("GET", media(BIG_KEY))
        head = conn.read_head()
        self.assertEqual(head.status, 200, head.describe())
        return nodes, proxy, conn, head

    # -- (c) kill -9 mid-stream, resume elsewhere with If-Range

    def test_resume_on_another_node_after_kill_9(self) -> None:
        nodes, proxy, conn, head = self.stream_big_through_proxy()
        self.assertEqual(head.header("content-length"), str(BIG_SIZE))
        etag = head.header("etag")
        victim = nodes[int(self.node_of(head)[len("node"):]) - 1]
        check = harness.PatternCheck(0)
        first = conn.read_exact(4 * MIB)
        check(first)
        # The node dies with most of the body unsent (the client stopped reading; buffers are far smaller).
        victim.proc.kill()
        victim.proc.wait(timeout=10)
        while True:
            data = conn.read_some("reading after the node died")
            if not data:
                break
            check(data)
        got = check.pos
        self.assertIsNone(check.problem())
        self.assertLess(got, BIG_SIZE, "the whole body arrived although its node was killed")

        # Resume through HAProxy: the hash still points at the dead node until its checks fail, so this also
        # exercises retry + redispatch on connection failure.
        with rawhttp.Connection(proxy.port, timeout=TIMEOUT) as c:
            rest = harness.PatternCheck(got)
            r = c.request("GET", media(BIG_KEY), [("Range", f"bytes={got}-"), ("If-Range", etag)], sink=rest)
        self.assertEqual(r.status, 206, r.describe())
        self.assertEqual(r.header("content-range"), f"bytes {got}-{BIG_SIZE - 1}/{BIG_SIZE}", r.describe())
        self.assertEqual(r.header("content-length"), str(BIG_SIZE - got))
        self.assertEqual(r.header("etag"), etag)
        self.assertNotEqual(self.node_of(r), victim.name)
        self.assertIsNone(rest.problem())
        self.assertEqual(rest.pos, BIG_SIZE, "the resumed body does not end at the object's end")
        # An If-Range that no longer matches gets the whole object, never a mix.
        with rawhttp.Connection(proxy.port, timeout=TIMEOUT) as c:
            r = c.request("GET", media(CLIP_KEY), [("Range", "bytes=100-"), ("If-Range", '"not-the-etag"')])
        self.assertEqual(r.status, 200, r.describe())
        self.assertEqual(r.body, self.clip)
        proxy.wait_for(lambda s: s.get(victim.name) == "DOWN", f"{victim.name} DOWN")
        victim.stop(check=False)
        self.assert_clean_stops(nodes, skip=(victim,))

    # -- (d) SIGTERM: out of the pool before it stops, its stream finishes

    def test_sigterm_leaves_the_pool_and_finishes_its_stream(self) -> None:
        nodes, proxy, conn, head = self.stream_big_through_proxy()
        draining = nodes[int(self.node_of(head)[len("node"):]) - 1]
        check = harness.PatternCheck(0)
        check(conn.read_exact(MIB))
        draining.proc.send_signal(signal.SIGTERM)
        self.assertIsNotNone(draining.wait_for_line("draining", 10), draining.output())

        # New requests meanwhile: every one succeeds, and none reaches the draining node, for objects that hash
        # to it as well as to the others. Once HAProxy's check has seen /readyz fail, it is DOWN.
        keys = [f"spread/object-{i}.mp4" for i in range(12)]
        failures, on_draining, t_end = [], [], time.monotonic() + 3.0
        rounds = 0
        while time.monotonic() < t_end or rounds == 0:
            rounds += 1
            for key in [CLIP_KEY, *keys]:
                try:
                    with rawhttp.Connection(proxy.port, timeout=TIMEOUT) as c:
                        r = c.request("GET", media(key), [("Range", "bytes=0-99")])
                except AssertionError as e:
                    failures.append(f"{key}: {e}")
                    continue
                expected = 206 if key == CLIP_KEY else 404
                if r.status != expected or (key == CLIP_KEY and r.body != self.clip[:100]):
                    failures.append(f"{key}: {r.status}\n{r.describe()}")
                if r.header(NODE_HEADER) == draining.name:
                    on_draining.append(key)
        self.assertEqual(failures, [], "requests failed while a node drained")
        self.assertEqual(on_draining, [], f"new requests reached the draining {draining.name}")
        proxy.wait_for(lambda s: s.get(draining.name) == "DOWN" and
                       all(s.get(n.name) == "UP" for n in nodes if n is not draining), f"{draining.name} DOWN")

        # The in-flight stream finishes whole, then the node exits cleanly.
        while check.pos < BIG_SIZE:
            data = conn.read_some("reading the draining node's stream")
            if not data:
                break
            check(data)
        self.assertIsNone(check.problem())
        self.assertEqual(check.pos, BIG_SIZE, "the draining node's stream was cut")
        # It exits by itself once its last stream is done: status 0, no sanitizer report.
        self.assertEqual(draining.proc.wait(timeout=30), 0, draining.output())
        draining.stop(check=False)
        self.assertEqual(harness.sanitizer_reports(line for _, line in draining.lines), [])
        self.assert_clean_stops(nodes, skip=(draining,))


if __name__ == "__main__":
    unittest.main()
