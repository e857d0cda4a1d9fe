"""Several mediagate nodes sharing one PostgreSQL catalog and one bucket (issue 16), over real sockets: a
PostgreSQL 15 and (with --storage s3) a radosgw that the suite starts, and three nodes on ports of their own.

What one node changes (an upload, a replacement, a rename, a visibility change, a delete) is seen through every
other node at once, although their metadata caches are set to keep entries for a minute: the catalog's change
notifications (PostgreSQL LISTEN/NOTIFY) end them. And `mediagate scan` run from every node at the same moment
makes one row per object and probes each item once (the probe claims in the catalog).

    run_suite.py --bin build/mediagate --storage s3 --catalog postgres test_nodes
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading
import time
import types
import unittest
import urllib.parse

import harness
from test_api import TOKEN, Client, Storage, random_bytes
from test_private_media import write_keys

# CACHE_TTL is far above SEEN_WITHIN, so a change seen within SEEN_WITHIN can only be the notification's doing;
# SEEN_WITHIN is not a speed limit (a loaded 2-core CI machine may take a second or more).
CACHE_TTL = "60"
SEEN_WITHIN = 10.0


def media_path(key: str) -> str:
    return "/media/" + urllib.parse.quote(key)


class Nodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.storage = Storage(cls.__name__)
        cls.catalog = harness.postgres().new_database("nodes")
        cls.keys_file = write_keys(cls.storage.tmp)
        # Counts the probes: every ffprobe run appends the URL it reads, then the real ffprobe runs.
        cls.probe_log = cls.storage.tmp / "ffprobe.log"
        cls.ffprobe = cls.storage.tmp / "ffprobe-counting"
        cls.ffprobe.write_text(f'#!/bin/sh\nfor a; do last="$a"; done\necho "$last" >> {cls.probe_log}\n'
                               'exec /usr/bin/ffprobe "$@"\n')
        cls.ffprobe.chmod(0o755)
        cls.nodes: list[harness.Server] = []
        try:
            for i in range(3):
                cls.nodes.append(cls.start_node(i))
        except BaseException:
            cls.tearDownClass()
            raise
        cls.api = [Client(n.port) for n in cls.nodes]

    @classmethod
    def start_node(cls, i: int) -> harness.Server:
        fx = types.SimpleNamespace(tmp=cls.storage.tmp, storage_args=cls.storage.args, server_env=cls.storage.env)
        args = ["--catalog", cls.catalog, "--access-log", "off", "--admin-token", TOKEN,
                "--signing-keys", str(cls.keys_file), "--ffprobe", str(cls.ffprobe), "--s3-meta-ttl", CACHE_TTL]
        if i > 0:  # node 0 keeps S3 metadata per event loop; the others have a slice cache in front
            args += ["--cache-dir", str(cls.storage.tmp / f"cache-{i}"), "--cache-meta-ttl", CACHE_TTL]
        else:  # one event loop: every request meets the metadata the first one cached
            args += ["--threads", "1"]
        return harness.Server(fx, args, name=f"node-{i}")

    @classmethod
    def tearDownClass(cls) -> None:
        for n in cls.nodes:
            n.stop(check=False)
        cls.storage.cleanup()

    def tearDown(self) -> None:
        for n in self.nodes:
            self.assertTrue(n.alive(), f"{n.name} died:\n{n.output()}")

    # -- helpers ---------------------------------------------------------------------------------------

    def put(self, node: int, key: str, data: bytes) -> dict:
        status, body = self.api[node].json("PUT", "/api/media/" + urllib.parse.quote(key), body=data, token=TOKEN,
                                           headers={"Content-Type": "application/octet-stream"})
        self.assertIn(status, (200, 201), body)
        return body

    def get(self, node: int, key: str, headers=None):
        return self.api[node].request("GET", media_path(key), headers=headers)

    def until(self, what: str, check, within: float = SEEN_WITHIN):
        """Polls check() until it returns a true value; fails after `within` seconds."""
        deadline = time.monotonic() + within
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"not within {within} s: {what}")
            time.sleep(0.02)

    def metric(self, node: int, name: str) -> float:
        status, _, body = self.api[node].request("GET", "/metrics")
        self.assertEqual(status, 200)
        for line in body.decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        self.fail(f"no {name} in node {node}'s /metrics")

    def keys_listed(self, node: int, query: str = "") -> set[str]:
        return {i["key"] for i in self.api[node].items(query)}

    # -- tests -----------------------------------------------------------------------------------------

    def test_upload_on_one_node_is_listed_and_streamed_by_the_others(self):
        data = random_bytes(300_000, seed=1)
        item = self.put(0, "shared/first.bin", data)
        for node in (1, 2):
            self.until(f"node {node} lists the upload", lambda: "shared/first.bin" in self.keys_listed(node))
            status, headers, body = self.get(node, "shared/first.bin")
            self.assertEqual(status, 200)
            self.assertEqual(body, data)
            status, _, got = self.api[node].request("GET", f"/api/media/{item['id']}")
            self.assertEqual(status, 200)
        # The same object has the same validator on every node (a client may resume on another one).
        etags = {self.get(n, "shared/first.bin")[1]["etag"] for n in range(3)}
        self.assertEqual(len(etags), 1, etags)
        status, headers, body = self.get(2, "shared/first.bin", {"Range": "bytes=1000-1999",
                                                                 "If-Range": etags.pop()})
        self.assertEqual((status, body), (206, data[1000:2000]))

    def test_a_replacement_through_one_node_is_served_whole_by_the_others_at_once(self):
        old = random_bytes(2_500_000, seed=2)
        new = random_bytes(1_700_000, seed=3)
        self.put(0, "shared/replaced.bin", old)
        # Every node reads the old version first: its metadata (and slices) are now cached for a minute.
        old_etag = None
        for node in range(3):
            status, headers, body = self.until(f"node {node} serves the old version",
                                               lambda: (r := self.get(node, "shared/replaced.bin"))[0] == 200 and r)
            self.assertEqual(body, old)
            old_etag = headers["etag"]
        cached_before = self.metric(2, "mediagate_cache_stored_bytes")
        self.put(1, "shared/replaced.bin", new)
        for node in (0, 2):
            def fetch():
                status, headers, body = self.get(node, "shared/replaced.bin")
                self.assertEqual(status, 200)
                # Never a mix: the whole old version with its ETag, or the whole new one with its own.
                if headers["etag"] == old_etag:
                    self.assertEqual(body, old, "old ETag with other bytes")
                    return None
                self.assertEqual(hashlib.sha256(body).hexdigest(), hashlib.sha256(new).hexdigest(),
                                 "new ETag with other bytes than the new version")
                return headers["etag"]
            new_etag = self.until(f"node {node} serves the replacement", fetch)
            self.assertNotEqual(new_etag, old_etag)
            status, headers, body = self.get(node, "shared/replaced.bin", {"Range": "bytes=1500000-1600000"})
            self.assertEqual((status, body), (206, new[1500000:1600001]))
            status, _, _ = self.get(node, "shared/replaced.bin", {"Range": "bytes=0-9", "If-Range": old_etag})
            self.assertEqual(status, 200, "If-Range with the old ETag must give the whole new version")
        # Node 2's slice cache dropped the old version's slices (the notification carries its ETag and size)
        # and holds the new one's.
        self.assertEqual(self.metric(2, "mediagate_cache_stored_bytes"), cached_before - len(old) + len(new),
                         self.nodes[2].output(20))

    def test_rename_visibility_and_delete_through_one_node_are_seen_by_the_others(self):
        data = random_bytes(100_000, seed=4)
        item = self.put(2, "shared/changing.bin", data)
        for node in (0, 1):
            self.until(f"node {node} serves it", lambda: self.get(node, "shared/changing.bin")[0] == 200)

        status, body = self.api[0].json("PATCH", f"/api/media/{item['id']}", body=b'{"title": "Renamed"}',
                                        token=TOKEN, headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        for node in (1, 2):
            status, got = self.api[node].json("GET", f"/api/media/{item['id']}")
            self.assertEqual((status, got["title"]), (200, "Renamed"))

        status, body = self.api[0].json("PATCH", f"/api/media/{item['id']}", body=b'{"visibility": "private"}',
                                        token=TOKEN, headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        for node in (1, 2):
            self.until(f"node {node} refuses the private item without a link",
                       lambda: self.get(node, "shared/changing.bin")[0] == 403)
            self.assertNotIn("shared/changing.bin", self.keys_listed(node))
        status, body = self.api[1].json("PATCH", f"/api/media/{item['id']}", body=b'{"visibility": "public"}',
                                        token=TOKEN, headers={"Content-Type": "application/json"})
        self.assertEqual(status, 200, body)
        self.until("node 2 serves it again", lambda: self.get(2, "shared/changing.bin")[0] == 200)

        status, body = self.api[0].json("DELETE", f"/api/media/{item['id']}", token=TOKEN)
        self.assertEqual(status, 200, body)
        for node in (1, 2):
            self.until(f"node {node} no longer serves the deleted object",
                       lambda: self.get(node, "shared/changing.bin")[0] == 404)
            self.assertEqual(self.api[node].request("GET", f"/api/media/{item['id']}")[0], 404)

    def test_scans_from_every_node_at_once_make_one_row_and_one_probe_per_object(self):
        cache = harness.build_cache()
        sources = {"clip.mp4": "clip.mp4", "clip.webm": "clip.webm", "image.jpg": "image.jpg",
                   "image.png": "image.png"}
        keys = []
        for copy in range(3):
            for name, source in sources.items():
                key = f"scanned/{copy}/{name}"
                self.storage.put(key, (cache / source).read_bytes())
                keys.append(key)
        self.probe_log.unlink(missing_ok=True)
        env = dict(os.environ, **self.storage.env)
        cmd = [str(harness.binary()), "scan", *self.storage.args, "--catalog", self.catalog,
               "--ffprobe", str(self.ffprobe), "--probe-workers", "2"]
        start = threading.Barrier(3)
        results: list = [None] * 3

        def scan(i: int) -> None:
            start.wait()
            results[i] = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env,
                                        cwd=self.storage.tmp)

        threads = [threading.Thread(target=scan, args=(i,)) for i in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for r in results:
            harness.assert_clean_exit(self, r)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

        rows = harness.postgres().query(
            self.catalog, "SELECT key, COUNT(*), bool_and(probed_etag = etag)::int FROM items "
                          "WHERE key LIKE 'scanned/%' GROUP BY key")
        self.assertEqual(sorted(r[0] for r in rows), sorted(keys))
        self.assertEqual({r[1] for r in rows}, {"1"}, "one row per object")
        self.assertEqual({r[2] for r in rows}, {"1"}, f"every item probed: {rows}")
        probed = [line for line in self.probe_log.read_text().splitlines() if "/scanned/" in line]
        per_key = {}
        for url in probed:
            key = urllib.parse.unquote(url.split("/media/", 1)[1].split("?", 1)[0])
            per_key[key] = per_key.get(key, 0) + 1
        self.assertEqual(per_key, {k: 1 for k in keys}, "each item probed exactly once")
        # Every node lists them (the nodes did not scan: they read the shared catalog).
        for node in range(3):
            self.assertTrue(set(keys) <= self.keys_listed(node))


class CatalogDown(unittest.TestCase):
    """A PostgreSQL of its own that goes away and comes back: the API answers 503 with the reason meanwhile,
    media keep streaming (they do not read the catalog), and both connections (the catalog's and the change
    listener's) are restored without restarting the node."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.storage = Storage(cls.__name__)
        cls.storage.put("down/clip.bin", random_bytes(50_000, seed=9))
        cls.pg = harness.Postgres()
        cls.catalog = cls.pg.new_database("down")
        fx = types.SimpleNamespace(tmp=cls.storage.tmp, storage_args=cls.storage.args, server_env=cls.storage.env)
        cls.node = harness.Server(fx, ["--catalog", cls.catalog, "--access-log", "off", "--admin-token", TOKEN],
                                  name="node")
        cls.api = Client(cls.node.port)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.node.stop(check=False)
        cls.pg.stop()
        cls.storage.cleanup()

    def listener_up(self) -> str:
        status, _, body = self.api.request("GET", "/metrics")
        self.assertEqual(status, 200)
        for line in body.decode().splitlines():
            if line.startswith("mediagate_catalog_listener_up "):
                return line.split()[1]
        self.fail("no mediagate_catalog_listener_up in /metrics")

    def test_the_api_says_503_while_postgres_is_down_and_recovers(self):
        self.assertEqual(self.api.json("GET", "/api/media")[0], 200)
        deadline = time.monotonic() + 10
        while self.listener_up() != "1":
            self.assertLess(time.monotonic(), deadline, "the change listener never connected")
            time.sleep(0.05)
        self.pg.halt()
        status, headers, body = self.api.request("GET", "/api/media")
        self.assertEqual(status, 503, body)
        self.assertIn("catalog is unavailable", json.loads(body)["error"])
        self.assertIn("retry-after", headers)
        status, body = self.api.json("PUT", "/api/media/down/new.bin", body=b"x" * 100, token=TOKEN)
        self.assertEqual(status, 503, body)
        # Streaming does not need the catalog.
        status, _, body = self.api.request("GET", media_path("down/clip.bin"))
        self.assertEqual((status, body), (200, random_bytes(50_000, seed=9)))
        deadline = time.monotonic() + 10
        while self.listener_up() != "0":
            self.assertLess(time.monotonic(), deadline, "the listener did not notice")
            time.sleep(0.05)

        self.pg.restart()
        # Reconnection attempts are spaced (at most 2 s apart) so that a missing server costs no event loop a
        # connect timeout per request: the API is back within a few seconds.
        deadline = time.monotonic() + 10
        while (status := self.api.json("GET", "/api/media")[0]) != 200:
            self.assertEqual(status, 503)
            self.assertLess(time.monotonic(), deadline, "the catalog connection did not come back")
            time.sleep(0.1)
        status, body = self.api.json("PUT", "/api/media/down/new.bin", body=b"x" * 100, token=TOKEN)
        self.assertIn(status, (200, 201), body)
        deadline = time.monotonic() + 15
        while self.listener_up() != "1":
            self.assertLess(time.monotonic(), deadline, "the change listener did not reconnect")
            time.sleep(0.1)
        self.assertTrue(self.node.alive())


if __name__ == "__main__":
    unittest.main()
