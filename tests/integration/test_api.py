"""The library's JSON API, uploads and scans against the real binary, with local or S3 storage
(MEDIAGATE_TEST_STORAGE, as for the rest of this suite: see harness.py).

Each test class gets its own storage (a directory, or a bucket of the suite's radosgw) and catalog, so that
uploads and deletions never touch the fixtures other tests read.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import types
import unittest
import urllib.parse
import uuid
from pathlib import Path

import harness

TOKEN = "test-admin-token-" + uuid.uuid4().hex[:8]
MIB = 1 << 20
SEED_MEDIA = {"clip.mp4": "clip.mp4", "clip-nofaststart.mp4": "clip-nofaststart.mp4", "clip.webm": "clip.webm",
              "pics/image.jpg": "image.jpg"}


def parse_vtt(text: str) -> list[tuple[float, float, str]]:
    """(start, end, text) of each cue of a WebVTT file."""
    def seconds(t: str) -> float:
        h, m, rest = t.split(":")
        return int(h) * 3600 + int(m) * 60 + float(rest)

    assert text.startswith("WEBVTT\n"), text[:40]
    cues = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if " --> " in line:
            start, end = line.split(" --> ")
            cues.append((seconds(start), seconds(end), lines[i + 1]))
    return cues


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a JPEG's start-of-frame segment."""
    assert data.startswith(b"\xff\xd8"), "not a JPEG"
    i = 2
    while i + 9 < len(data):
        marker, length = data[i + 1], int.from_bytes(data[i + 2:i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            return int.from_bytes(data[i + 7:i + 9], "big"), int.from_bytes(data[i + 5:i + 7], "big")
        i += 2 + length
    raise AssertionError("no start-of-frame segment")


class Storage:
    """A fresh directory or bucket for one test class, and what is in it."""

    def __init__(self, name: str) -> None:
        self.fx = harness.fixtures()  # starts the suite's radosgw in s3 mode
        self.tmp = Path(tempfile.mkdtemp(prefix=f"api-{name}-", dir=self.fx.tmp))
        self.mode = harness.STORAGE_MODE
        if self.mode == "local":
            self.root = self.tmp / "media"
            self.root.mkdir()
            self.args = ["--storage", str(self.root)]
            self.env: dict[str, str] = {}
        else:
            self.client = self.fx.s3.client
            self.bucket = f"mg-api-{name.lower()}-{uuid.uuid4().hex[:8]}"
            self.fx.s3.s3util.create_bucket(self.bucket, client=self.client)
            self.args = ["--storage", f"s3://{self.bucket}"]
            self.env = dict(self.fx.server_env)

    def put(self, key: str, data: bytes) -> None:
        if self.mode == "local":
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        else:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data)

    def remove(self, key: str) -> None:
        if self.mode == "local":
            (self.root / key).unlink()
        else:
            self.client.delete_object(Bucket=self.bucket, Key=key)

    def keys(self) -> set[str]:
        """Every stored key, hidden ones (temporaries, posters) included."""
        if self.mode == "local":
            return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file()}
        out = set()
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket):
            out.update(o["Key"] for o in page.get("Contents", []))
        return out

    def read(self, key: str) -> bytes:
        if self.mode == "local":
            return (self.root / key).read_bytes()
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def pending_uploads(self) -> list[str]:
        """Multipart uploads started and neither completed nor aborted (S3 only)."""
        if self.mode == "local":
            return []
        return [u["Key"] for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", [])]

    def cleanup(self) -> None:
        if self.mode == "s3":
            try:
                for u in self.client.list_multipart_uploads(Bucket=self.bucket).get("Uploads", []):
                    self.client.abort_multipart_upload(Bucket=self.bucket, Key=u["Key"], UploadId=u["UploadId"])
                self.fx.s3.s3util.delete_bucket(self.bucket, client=self.client)
            except Exception as e:  # best effort: the cluster is thrown away anyway
                print(f"test_api: could not delete bucket {self.bucket}: {e}")
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_server(storage: Storage, args: list[str], name: str) -> harness.Server:
    fx = types.SimpleNamespace(tmp=storage.tmp, storage_args=storage.args, server_env=storage.env)
    catalog = harness.new_catalog(storage.tmp)  # SQLite or PostgreSQL (MEDIAGATE_TEST_CATALOG)
    return harness.Server(fx, ["--catalog", catalog, "--access-log", "off", *args], name=name)


class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    def request(self, method: str, target: str, body=None, headers=None, token=None, timeout=60):
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            r = conn.getresponse()
            data = r.read()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, data
        finally:
            conn.close()

    def json(self, method: str, target: str, **kwargs):
        status, headers, data = self.request(method, target, **kwargs)
        if headers.get("content-type", "").startswith("application/json"):
            return status, json.loads(data)
        return status, data

    def items(self, query: str = "") -> list[dict]:
        status, body = self.json("GET", "/api/media?per_page=200" + query)
        assert status == 200, body
        return body["items"]

    def wait_probed(self, count: int, timeout: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            items = self.items()
            if len(items) >= count and all(i["probed"] for i in items):
                return items
            if time.monotonic() > deadline:
                raise AssertionError(f"items not probed within {timeout}s: {items}")
            time.sleep(0.2)


def multipart(fields: dict[str, str], filename: str, data: bytes, content_type="application/octet-stream"):
    boundary = "----mediagate-test-" + uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 f"Content-Type: {content_type}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def random_bytes(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


class ServerCase(unittest.TestCase):
    """A class of tests sharing one server (cls.server) on one Storage (cls.storage), both set up by the subclass:
    checked and stopped at the end, its output shown with a failure."""

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            problem = cls.server.health_problem()
            if problem:
                raise AssertionError(f"at the end of {cls.__name__}: {problem}:\n{cls.server.output()}")
        finally:
            try:
                cls.server.stop()  # checks the exit status and sanitizer reports
            finally:
                cls.storage.cleanup()

    def run(self, result=None):
        return harness.run_reporting_server_output(self, result, super().run, lambda: (
            f"\nlast server output:\n{self.server.output(25)}"))


class ApiCase(ServerCase):
    server_args: list[str] = []
    seed = True

    @classmethod
    def setUpClass(cls) -> None:
        cls.storage = Storage(cls.__name__)
        cache = harness.build_cache()
        if cls.seed:
            for key, source in SEED_MEDIA.items():
                cls.storage.put(key, (cache / source).read_bytes())
        cls.server = start_server(cls.storage, ["--scan-on-start", *cls.server_args], cls.__name__)
        cls.api = Client(cls.server.port)

    def assert_error(self, status, body, expected_status):
        self.assertEqual(status, expected_status, body)
        self.assertIsInstance(body, dict, body)
        self.assertIsInstance(body.get("error"), str, body)
        self.assertTrue(body["error"], body)

    def assert_nothing_stored(self, name: str, timeout: float = 10.0) -> None:
        """No object (nor temporary, nor multipart upload) whose key contains `name`, and no catalog row."""
        deadline = time.monotonic() + timeout
        while True:
            leftovers = [k for k in self.storage.keys() if name in k] + \
                        [k for k in self.storage.pending_uploads() if name in k]
            if not leftovers:
                break
            if time.monotonic() > deadline:
                self.fail(f"left behind in storage: {leftovers}")
            time.sleep(0.1)
        self.assertEqual([i["key"] for i in self.items_all() if name in i["key"]], [])

    def items_all(self) -> list[dict]:
        status, body = self.api.json("GET", "/api/media?per_page=200&missing=1")
        self.assertEqual(status, 200, body)
        return body["items"]


class LibraryApi(ApiCase):
    server_args = ["--admin-token", TOKEN, "--max-upload-bytes", "64MiB"]

    def test_scan_probe_and_read(self):
        items = {i["key"]: i for i in self.api.wait_probed(len(SEED_MEDIA)) if i["key"] in SEED_MEDIA}
        self.assertEqual(set(items), set(SEED_MEDIA))
        for key in ("clip.mp4", "clip-nofaststart.mp4", "clip.webm"):
            item = items[key]
            self.assertEqual(item["kind"], "video")
            self.assertRegex(item["id"], r"^[0-9A-Za-z]{10}$")
            self.assertAlmostEqual(item["duration"], 10.0, delta=0.2)
            self.assertEqual((item["width"], item["height"]), (640, 360))
            self.assertEqual(item["poster"], f"/v/{item['id']}/poster")
            self.assertEqual(item["url"], f"/v/{item['id']}")
            status, headers, poster = self.api.request("GET", item["poster"])
            self.assertEqual(status, 200)
            self.assertEqual(headers["content-type"], "image/jpeg")
            self.assertTrue(poster.startswith(b"\xff\xd8"), "the poster is not a JPEG")
        image = items["pics/image.jpg"]
        self.assertEqual((image["kind"], image["width"], image["height"], image["duration"]), ("image", 640, 360, None))
        self.assertIsNone(image["poster"])
        self.assertEqual(image["title"], "image")

        # GET /v/{id} is /media/<key>: the same bytes, ranges and validators.
        item = items["clip.webm"]
        expected = self.storage.read("clip.webm")
        status, headers, body = self.api.request("GET", item["url"])
        self.assertEqual((status, headers["content-type"], headers["accept-ranges"]), (200, "video/webm", "bytes"))
        self.assertEqual(body, expected)
        status, headers, body = self.api.request("GET", item["url"], headers={"Range": "bytes=100-199"})
        self.assertEqual(status, 206)
        self.assertEqual(headers["content-range"], f"bytes 100-199/{len(expected)}")
        self.assertEqual(body, expected[100:200])
        status, headers, _ = self.api.request("GET", item["url"], headers={"If-None-Match": headers["etag"]})
        self.assertEqual(status, 304)
        status, _, _ = self.api.request("GET", "/v/NoSuchItem0")
        self.assertEqual(status, 404)
        status, _, _ = self.api.request("GET", f"/v/{image['id']}/poster")
        self.assertEqual(status, 404)

        status, body = self.api.json("GET", f"/api/media/{item['id']}")
        self.assertEqual((status, body["key"], body["size"]), (200, "clip.webm", len(expected)))

    def test_seek_thumbnails(self):
        items = {i["key"]: i for i in self.api.wait_probed(len(SEED_MEDIA)) if i["key"] in SEED_MEDIA}
        for key in ("clip.mp4", "clip-nofaststart.mp4", "clip.webm"):
            item = items[key]
            vtt_url = f"/v/{item['id']}/thumbs.vtt"
            status, headers, body = self.api.request("GET", vtt_url)
            self.assertEqual((status, headers["content-type"]), (200, "text/vtt; charset=utf-8"), body)
            cues = parse_vtt(body.decode())
            # One tile per 2 s of a 10 s clip, end to end, each pointing at a tile of a sprite that exists.
            self.assertEqual(len(cues), 5, body)
            self.assertEqual(cues[0][0], 0.0)
            for (_, end, _), (start, _, _) in zip(cues, cues[1:]):
                self.assertEqual(end, start)
            self.assertAlmostEqual(cues[-1][1], item["duration"], delta=0.001)
            self.assertEqual([c[2] for c in cues], [f"thumbs-0.jpg#xywh={160 * i},0,160,90" for i in range(5)])
            status, headers, sprite = self.api.request("GET", f"/v/{item['id']}/thumbs-0.jpg")
            self.assertEqual((status, headers["content-type"]), (200, "image/jpeg"))
            self.assertEqual(jpeg_size(sprite), (800, 90), key)  # 5 tiles of 160 x 90 side by side
            # Validators: a strong ETag, 304 on If-None-Match; the sprite keeps /media/'s rules (ranges).
            self.assertRegex(headers["etag"], r'^"[^"]+"$')
            status, vtt_headers, _ = self.api.request("GET", vtt_url)
            status, _, _ = self.api.request("GET", vtt_url, headers={"If-None-Match": vtt_headers["etag"]})
            self.assertEqual(status, 304)
            status, headers, part = self.api.request("GET", f"/v/{item['id']}/thumbs-0.jpg",
                                                     headers={"Range": "bytes=0-1"})
            self.assertEqual((status, part), (206, b"\xff\xd8"))
            for missing in ("thumbs-1.jpg", "thumbs-6.jpg", "thumbs-x.jpg", "thumbs-0.png", "other"):
                self.assertEqual(self.api.request("GET", f"/v/{item['id']}/{missing}")[0], 404, missing)
        # Pictures and unknown items have none.
        self.assertEqual(self.api.request("GET", f"/v/{items['pics/image.jpg']['id']}/thumbs.vtt")[0], 404)
        self.assertEqual(self.api.request("GET", "/v/NoSuchItem0/thumbs.vtt")[0], 404)

    def test_list_filters_and_pages(self):
        self.api.wait_probed(len(SEED_MEDIA))
        status, body = self.api.json("GET", "/api/media?type=image")
        self.assertEqual(status, 200)
        self.assertTrue(body["items"] and all(i["kind"] == "image" for i in body["items"]), body)
        status, body = self.api.json("GET", "/api/media?q=NOFAST")  # case-insensitive title search
        self.assertEqual([i["key"] for i in body["items"]], ["clip-nofaststart.mp4"])
        status, body = self.api.json("GET", "/api/media?q=%25")  # LIKE wildcards are taken literally
        self.assertEqual(body["total"], 0)
        status, first = self.api.json("GET", "/api/media?type=video&per_page=2&page=1")
        status, second = self.api.json("GET", "/api/media?type=video&per_page=2&page=2")
        self.assertEqual((first["per_page"], first["page"], second["page"]), (2, 1, 2))
        self.assertGreaterEqual(first["total"], 3)
        self.assertEqual(first["pages"], (first["total"] + 1) // 2)
        self.assertEqual(len(first["items"]), 2)
        self.assertFalse({i["id"] for i in first["items"]} & {i["id"] for i in second["items"]})
        for query in ("type=movies", "page=0", "page=x", "per_page=1000", "per_page=-1"):
            status, body = self.api.json("GET", "/api/media?" + query)
            self.assert_error(status, body, 400)

    def test_unknown_ids_and_paths(self):
        for method in ("GET", "PATCH", "DELETE"):
            status, body = self.api.json(method, "/api/media/NoSuchItem0", token=TOKEN,
                                         body=b'{"title": "x"}' if method == "PATCH" else None)
            self.assert_error(status, body, 404)
        status, body = self.api.json("GET", "/api/nothing-here")
        self.assert_error(status, body, 404)
        status, body = self.api.json("POST", "/api/media/abc", token=TOKEN, body=b"")
        self.assert_error(status, body, 405)

    def test_put_small_then_replace(self):
        key = f"uploads/small-{uuid.uuid4().hex[:6]}.png"
        data = (harness.build_cache() / "image.png").read_bytes()
        status, item = self.api.json("PUT", "/api/media/" + urllib.parse.quote(key), body=data, token=TOKEN,
                                     headers={"Content-Type": "application/octet-stream"})
        self.assertEqual(status, 201, item)
        self.assertEqual((item["key"], item["size"], item["content_type"]), (key, len(data), "image/png"))
        self.assertEqual(self.storage.read(key), data)
        status, _, body = self.api.request("GET", item["url"])
        self.assertEqual((status, body), (200, data))
        # A second PUT replaces the object and keeps the item (same id, new ETag).
        data2 = data + b"\0" * 10
        status, again = self.api.json("PUT", "/api/media/" + urllib.parse.quote(key), body=data2, token=TOKEN)
        self.assertEqual(status, 200, again)
        self.assertEqual((again["id"], again["size"]), (item["id"], len(data2)))
        self.assertNotEqual(again["etag"], item["etag"])
        self.assertEqual(self.storage.read(key), data2)

    def test_put_large_streams(self):
        # 30 MiB: more than one 8 MiB part, so S3 gets a multipart upload.
        key = f"big-{uuid.uuid4().hex[:6]}.bin"
        data = random_bytes(30 * MIB, 7)
        started = time.monotonic()
        status, item = self.api.json("PUT", "/api/media/" + key, body=data, token=TOKEN, timeout=120)
        self.assertEqual(status, 201, item)
        self.assertEqual(item["size"], len(data))
        self.assertEqual(hashlib.sha256(self.storage.read(key)).hexdigest(), hashlib.sha256(data).hexdigest())
        if self.storage.mode == "s3":
            # A multipart upload's ETag is "<md5 of the part md5s>-<parts>".
            self.assertRegex(item["etag"], r'-[0-9]+"$', "30 MiB should have been a multipart upload")
        self.assertEqual(self.storage.pending_uploads(), [])
        status, _, body = self.api.request("GET", item["url"], headers={"Range": f"bytes={20 * MIB}-{20 * MIB + 99}"})
        self.assertEqual((status, body), (206, data[20 * MIB:20 * MIB + 100]))
        print(f"\n  30 MiB PUT took {time.monotonic() - started:.2f}s ({self.storage.mode})")

    def test_put_chunked(self):
        key = f"chunked-{uuid.uuid4().hex[:6]}.bin"
        data = random_bytes(3 * MIB + 17, 11)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(f"PUT /api/media/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                      "Transfer-Encoding: chunked\r\n\r\n".encode())
            for i in range(0, len(data), 100_000):
                piece = data[i:i + 100_000]
                s.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            s.sendall(b"0\r\n\r\n")
            response = s.makefile("rb").read()
        self.assertTrue(response.startswith(b"HTTP/1.1 201 "), response[:300])
        self.assertEqual(self.storage.read(key), data)

    def test_form_upload(self):
        name = f"form-{uuid.uuid4().hex[:6]}.webm"
        data = (harness.build_cache() / "clip.webm").read_bytes()
        body, ctype = multipart({"title": "Uploaded through a form"}, name, data, "video/webm")
        status, item = self.api.json("POST", "/api/media", body=body, token=TOKEN, headers={"Content-Type": ctype})
        self.assertEqual(status, 201, item)
        self.assertEqual((item["key"], item["title"], item["size"], item["kind"]),
                         (name, "Uploaded through a form", len(data), "video"))
        self.assertEqual(self.storage.read(name), data)
        # The same file name again gets a new key rather than replacing the first upload.
        body, ctype = multipart({}, name, data[:1000])
        status, second = self.api.json("POST", "/api/media", body=body, token=TOKEN, headers={"Content-Type": ctype})
        self.assertEqual(status, 201, second)
        self.assertEqual(second["key"], name.replace(".webm", "-2.webm"))
        self.assertEqual(self.storage.read(name), data)
        # Probing reaches uploads too.
        deadline = time.monotonic() + 30
        while True:
            status, got = self.api.json("GET", f"/api/media/{item['id']}")
            if got["probed"] or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        self.assertAlmostEqual(got["duration"], 10.0, delta=0.2)
        self.assertIsNotNone(got["poster"])

    def test_form_errors(self):
        status, body = self.api.json("POST", "/api/media", body=b"x=1", token=TOKEN,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        self.assert_error(status, body, 400)
        body, ctype = multipart({"title": "no file"}, "x.bin", b"")
        body = body.replace(b'; filename="x.bin"', b"")  # a form without a file field
        status, answer = self.api.json("POST", "/api/media", body=body, token=TOKEN, headers={"Content-Type": ctype})
        self.assert_error(status, answer, 400)
        name = f"truncated-{uuid.uuid4().hex[:6]}.bin"
        body, ctype = multipart({}, name, random_bytes(100_000, 3))
        status, answer = self.api.json("POST", "/api/media", body=body[:-30], token=TOKEN, headers={"Content-Type": ctype})
        self.assert_error(status, answer, 400)  # the closing boundary never came
        self.assert_nothing_stored(name)

    def test_bad_keys(self):
        for target in ("/api/media/.posters/x.jpg", "/api/media/a/../b.mp4", "/api/media/a//b.mp4",
                       "/api/media/%00.mp4", "/api/media/sub/.hidden.mp4"):
            status, body = self.api.json("PUT", target, body=b"data", token=TOKEN)
            self.assert_error(status, body, 400)

    def test_tokens(self):
        key = f"auth-{uuid.uuid4().hex[:6]}.bin"
        for token, expected in ((None, 401), ("wrong", 401), (TOKEN + "x", 401), ("", 401)):
            status, body = self.api.json("PUT", "/api/media/" + key, body=b"abc", token=token)
            self.assert_error(status, body, expected)
            self.assertIn("bearer", self.api.request("PUT", "/api/media/" + key, body=b"abc", token=token)[1]
                          .get("www-authenticate", "").lower())
        status, _, _ = self.api.request("PUT", "/api/media/" + key, body=b"abc",
                                        headers={"Authorization": f"Basic {TOKEN}"})
        self.assertEqual(status, 401)
        self.assert_nothing_stored(key)
        item = self.api.wait_probed(len(SEED_MEDIA))[0]
        status, body = self.api.json("PATCH", f"/api/media/{item['id']}", body=b'{"title":"x"}', token="nope")
        self.assert_error(status, body, 401)
        status, body = self.api.json("DELETE", f"/api/media/{item['id']}", token="nope")
        self.assert_error(status, body, 401)
        self.assertEqual(self.api.json("GET", f"/api/media/{item['id']}")[0], 200)

    def test_patch(self):
        item = self.api.wait_probed(len(SEED_MEDIA))[0]
        target = f"/api/media/{item['id']}"
        for bad in (b"{not json", b"[1,2]", b'{"title": 5}', b'{"title": ""}', b'{"size": 1}', b"{}",
                    json.dumps({"title": "x" * 400}).encode()):
            status, body = self.api.json("PATCH", target, body=bad, token=TOKEN,
                                         headers={"Content-Type": "application/json"})
            self.assert_error(status, body, 400)
        status, body = self.api.json("PATCH", target, body=json.dumps({"title": "  Renamed ✓ "}).encode(), token=TOKEN,
                                     headers={"Content-Type": "application/json"})
        self.assertEqual((status, body["title"]), (200, "Renamed ✓"))
        self.assertEqual(self.api.json("GET", target)[1]["title"], "Renamed ✓")
        try:
            status, body = self.api.json("PATCH", target, body=b"{" + b" " * 100_000 + b"}", token=TOKEN)
        except (BrokenPipeError, ConnectionResetError):
            # The server may answer 413 and close before the client has written the whole body: a refusal too.
            status, body = None, None
        if status is not None:
            self.assert_error(status, body, 413)
        self.assertEqual(self.api.json("GET", target)[1]["title"], "Renamed ✓")

    def test_delete(self):
        name = f"delete-{uuid.uuid4().hex[:6]}.webm"
        data = (harness.build_cache() / "clip.webm").read_bytes()
        status, item = self.api.json("PUT", "/api/media/" + name, body=data, token=TOKEN)
        self.assertEqual(status, 201, item)
        deadline = time.monotonic() + 30
        while not item["poster"] and time.monotonic() < deadline:
            time.sleep(0.2)
            item = self.api.json("GET", f"/api/media/{item['id']}")[1]
        self.assertIsNotNone(item["poster"], "no poster was made")
        # The poster and the one sprite of seek thumbnails of a 10 s clip.
        made = sorted(k for k in self.storage.keys() if item["id"] in k)
        self.assertEqual(made, [f".posters/{item['id']}-thumbs-0.jpg", f".posters/{item['id']}.jpg"])
        status, body = self.api.json("DELETE", f"/api/media/{item['id']}", token=TOKEN)
        self.assertEqual((status, body), (200, {"deleted": item["id"]}))
        self.assertNotIn(name, self.storage.keys())
        self.assertEqual([k for k in self.storage.keys() if item["id"] in k], [])
        self.assertEqual(self.api.json("GET", f"/api/media/{item['id']}")[0], 404)
        self.assertEqual(self.api.request("GET", item["url"])[0], 404)

    def test_interrupted_put_leaves_nothing(self):
        for size in (2 * MIB, 20 * MIB):  # a single PUT to S3, and a multipart upload
            name = f"interrupted-{size}-{uuid.uuid4().hex[:6]}.bin"
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
                s.sendall(f"PUT /api/media/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                          f"Content-Length: {size}\r\n\r\n".encode())
                sent = 0
                chunk = random_bytes(64 * 1024, 5)
                while sent < size * 3 // 4:
                    s.sendall(chunk)
                    sent += len(chunk)
                time.sleep(0.3)  # let the server store what it can (S3 parts)
            self.assert_nothing_stored(name)
        self.assertIsNone(self.server.health_problem())

    def test_interrupted_form_leaves_nothing(self):
        name = f"interrupted-form-{uuid.uuid4().hex[:6]}.bin"
        body, ctype = multipart({"title": "never"}, name, random_bytes(12 * MIB, 9))
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(f"POST /api/media HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                      f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n".encode())
            s.sendall(body[:10 * MIB])
            time.sleep(0.3)
        self.assert_nothing_stored(name)

    def test_length_required(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(f"PUT /api/media/nolength.bin HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                      "Connection: close\r\n\r\n".encode())
            response = s.makefile("rb").read()
        self.assertTrue(response.startswith(b"HTTP/1.1 411 "), response[:200])

    def test_expect_continue(self):
        key = f"continue-{uuid.uuid4().hex[:6]}.bin"
        data = random_bytes(200_000, 13)
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(f"PUT /api/media/{key} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                      f"Content-Length: {len(data)}\r\nExpect: 100-continue\r\n\r\n".encode())
            interim = s.recv(100)
            self.assertTrue(interim.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"), interim)
            s.sendall(data)
            response = s.makefile("rb").read()
        self.assertTrue(response.startswith(b"HTTP/1.1 201 "), response[:200])
        self.assertEqual(self.storage.read(key), data)

    def test_page_and_assets(self):
        status, headers, body = self.api.request("GET", "/")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/html"))
        self.assertIn(b"/ui/app.js", body)
        for asset, kind in (("/ui/app.js", "text/javascript"), ("/ui/style.css", "text/css"),
                            ("/ui/icon.svg", "image/svg+xml")):
            status, h, _ = self.api.request("GET", asset)
            self.assertEqual((status, h["content-type"].split(";")[0]), (200, kind))
            status, _, _ = self.api.request("GET", asset, headers={"If-None-Match": h["etag"]})
            self.assertEqual(status, 304)
        self.assertEqual(self.api.request("GET", "/ui/nope.js")[0], 404)
        status, info = self.api.json("GET", "/api/info")
        self.assertEqual((status, info["uploads"], info["max_upload_bytes"]), (200, True, 64 * MIB))


class UploadLimit(ApiCase):
    server_args = ["--admin-token", TOKEN, "--max-upload-bytes", "1MiB"]
    seed = False
    def send_and_read(self, head: bytes, body_pieces) -> bytes:
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=30) as s:
            s.sendall(head)
            try:
                for piece in body_pieces:
                    s.sendall(piece)
            except OSError:
                pass  # the server may stop reading once it has answered
            s.shutdown(socket.SHUT_WR)
            return s.makefile("rb").read()

    def test_declared_too_large(self):
        name = f"declared-{uuid.uuid4().hex[:6]}.bin"
        head = (f"PUT /api/media/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Length: {2 * MIB}\r\n\r\n").encode()
        response = self.send_and_read(head, [])
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:300])
        self.assertIn(b'"error"', response)
        self.assert_nothing_stored(name)

    def test_chunked_too_large(self):
        name = f"chunked-big-{uuid.uuid4().hex[:6]}.bin"
        head = (f"PUT /api/media/{name} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
                "Transfer-Encoding: chunked\r\n\r\n").encode()
        piece = random_bytes(256 * 1024, 1)
        chunks = [f"{len(piece):x}\r\n".encode() + piece + b"\r\n"] * 8 + [b"0\r\n\r\n"]
        response = self.send_and_read(head, chunks)
        self.assertTrue(response.startswith(b"HTTP/1.1 413 "), response[:300])
        self.assert_nothing_stored(name)

    def test_form_too_large(self):
        name = f"form-big-{uuid.uuid4().hex[:6]}.bin"
        body, ctype = multipart({}, name, random_bytes(MIB + 10, 2))
        status, answer = self.api.json("POST", "/api/media", body=body, token=TOKEN, headers={"Content-Type": ctype})
        self.assert_error(status, answer, 413)
        self.assert_nothing_stored(name)

    def test_at_the_limit(self):
        name = f"exact-{uuid.uuid4().hex[:6]}.bin"
        data = random_bytes(MIB, 4)
        status, item = self.api.json("PUT", "/api/media/" + name, body=data, token=TOKEN)
        self.assertEqual((status, item["size"]), (201, MIB))


class WritesDisabled(ApiCase):
    seed = False

    def test_writes_refused_without_token(self):
        for method, target in (("PUT", "/api/media/x.bin"), ("POST", "/api/media"), ("PATCH", "/api/media/abc"),
                               ("DELETE", "/api/media/abc")):
            status, body = self.api.json(method, target, body=b"abc", token="anything")
            self.assert_error(status, body, 403)
            self.assertIn("--admin-token", body["error"])
        self.assertEqual(self.storage.keys(), set())
        status, info = self.api.json("GET", "/api/info")
        self.assertEqual((status, info["uploads"]), (200, False))


class ScanCommand(unittest.TestCase):
    """`mediagate scan`: indexes the storage idempotently, marks vanished objects missing, re-probes changes."""

    @classmethod
    def setUpClass(cls) -> None:
        cls.storage = Storage(cls.__name__)
        cls.catalog = harness.new_catalog(cls.storage.tmp, "scan")
        cache = harness.build_cache()
        for key, source in SEED_MEDIA.items():
            cls.storage.put(key, (cache / source).read_bytes())
        cls.storage.put("notes.txt", b"not media")
        cls.storage.put(".hidden/clip.mp4", (cache / "clip.mp4").read_bytes())

    @classmethod
    def tearDownClass(cls) -> None:
        cls.storage.cleanup()

    def scan(self) -> str:
        env = dict(os.environ, **self.storage.env)
        r = subprocess.run([str(harness.binary()), "scan", *self.storage.args, "--catalog", self.catalog],
                           capture_output=True, text=True, timeout=180, env=env, cwd=self.storage.tmp)
        harness.assert_clean_exit(self, r)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return r.stdout.strip().splitlines()[-1]

    def rows(self) -> dict[str, tuple]:
        sql = "SELECT key, id, etag, missing, duration, poster_key FROM items"
        if harness.CATALOG_MODE == "postgres":
            return {r[0]: (r[1], r[2], int(r[3]), None if r[4] is None else float(r[4]), r[5])
                    for r in harness.postgres().query(self.catalog, sql)}
        import sqlite3
        with sqlite3.connect(self.catalog.removeprefix("sqlite:")) as db:
            return {r[0]: r[1:] for r in db.execute(sql)}

    def test_scan_is_idempotent(self):
        self.assertEqual(self.scan(), "scan: 4 added, 0 changed, 0 missing, 0 unchanged")
        first = self.rows()
        self.assertEqual(set(first), set(SEED_MEDIA))
        self.assertAlmostEqual(first["clip.mp4"][3], 10.0, delta=0.2)
        self.assertTrue(first["clip.mp4"][4].startswith(".posters/"))
        self.assertEqual(self.scan(), "scan: 0 added, 0 changed, 0 missing, 4 unchanged")
        self.assertEqual(self.rows(), first)

        self.storage.remove("clip-nofaststart.mp4")
        cache = harness.build_cache()
        self.storage.put("clip.webm", (cache / "clip.mp4").read_bytes()[:50_000])  # changed (and now broken)
        self.assertEqual(self.scan(), "scan: 0 added, 1 changed, 1 missing, 2 unchanged")
        after = self.rows()
        self.assertEqual(after["clip-nofaststart.mp4"][2], 1)
        self.assertEqual(after["clip-nofaststart.mp4"][0], first["clip-nofaststart.mp4"][0])
        self.assertNotEqual(after["clip.webm"][1], first["clip.webm"][1])
        self.assertEqual(after["clip.webm"][0], first["clip.webm"][0], "a changed object keeps its id")
        self.assertEqual(self.scan(), "scan: 0 added, 0 changed, 0 missing, 3 unchanged")

        self.storage.put("clip-nofaststart.mp4", (cache / "clip-nofaststart.mp4").read_bytes())
        self.assertEqual(self.scan(), "scan: 0 added, 1 changed, 0 missing, 3 unchanged")
        self.assertEqual(self.rows()["clip-nofaststart.mp4"][2], 0)


if __name__ == "__main__":
    unittest.main()
