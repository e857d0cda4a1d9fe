"""Private media (issue 12) against the real binary, with local or S3 storage (MEDIAGATE_TEST_STORAGE, see
harness.py): signed expiring links, prefix rules, key rotation and key-file checks, the access log, /v/{id} of
a private item, and CORS (allowed origins named with Vary: Origin on every status, preflights, `OPTIONS *`).

Links are minted here with hmac/hashlib/base64 following canonical_link_string in src/http/signed_link.cpp, so a
change of the canonical string on the server side shows up as a failure here, not as a silent agreement.

"No storage request" for a refused link is proved three ways: in S3 mode the server's own counter
mediagate_s3_requests_total does not move; in both modes mediagate_signed_link_refusals_total{reason} moves by
exactly one for that reason only; and a refused link to a key that does not exist answers 403, not 404.

Run from tests/integration: /usr/bin/python3 run_suite.py --bin ../../build/mediagate --storage local
test_private_media (CTest: private_media_local, private_media_s3).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import time
import unittest
import urllib.parse
from pathlib import Path
from typing import Optional

import harness
import rawhttp
from harness import Fixture, media_target

# Two keys: the file lists K2 first (it would sign), K1 second (it still verifies: rotation).
SECRET_1 = random.Random(1201).randbytes(32)
SECRET_2 = random.Random(1202).randbytes(48)
OTHER_SECRET = random.Random(1203).randbytes(32)  # not in the file: a link made with it is forged
KEYS_TEXT = (f"# mediagate signing keys: the first signs, all verify\n"
             f"k2 {base64.urlsafe_b64encode(SECRET_2).rstrip(b'=').decode()}\n"
             f"k1 {SECRET_1.hex()}   # older key, kept while its links live\n")
HOUR = 3600
SIGNED_CACHE_CONTROL = "private, max-age=3600"  # the default of --signed-cache-control
PUBLIC_CACHE_CONTROL = "public, max-age=3600"  # the default of --cache-control
REASONS = ("missing", "garbled", "expired", "unknown_kid", "bad_signature", "wrong_method", "wrong_address")
EXPOSED = ("Content-Range", "Content-Length", "Accept-Ranges", "ETag", "Last-Modified")

# Objects this suite adds to the shared fixtures (the source names are files of the harness's fixture cache).
EXTRA = [
    Fixture("private/clip.mp4", "clip.mp4", "video/mp4"),
    Fixture("private/deep/random.bin", "random.bin", "application/octet-stream"),
    Fixture("private/vidéo ñ+1.webm", "clip.webm", "video/webm"),
    Fixture("private/public/image.jpg", "image.jpg", "image/jpeg"),
    Fixture("private/public/secret/image.png", "image.png", "image/png"),
    Fixture("privateer.jpg", "image.jpg", "image/jpeg"),
    Fixture("open/clip.webm", "clip.webm", "video/webm"),
]
_added = False


def add_private_objects(fx: harness.Fixtures) -> None:
    """Puts EXTRA beside the harness's fixtures (the local copy always: expected bytes come from it)."""
    global _added
    if _added:
        return
    cache = harness.build_cache()
    for f in EXTRA:
        dest = fx.root / f.key
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cache / f.source, dest)
        os.utime(dest, (harness.FIXED_MTIME, harness.FIXED_MTIME))
        if fx.mode == "s3":
            fx.s3.client.put_object(Bucket=fx.s3.bucket, Key=f.key, Body=dest.read_bytes())
        fx.files[f.key] = f
    _added = True


def canonical(key: str, exp: int, prefix: bool, ip: str) -> bytes:
    """canonical_link_string of src/http/signed_link.cpp: version, method class, decoded key, expiry, kind, CIDR."""
    return f"mediagate-link-v1\nGET\n{key}\n{exp}\n{'prefix' if prefix else 'exact'}\n{ip}".encode()


def mint(key: str, secret: bytes = SECRET_2, kid: str = "k2", exp: Optional[int] = None, prefix: bool = False,
         ip: str = "") -> str:
    """The query string (without '?') of a link for `key` (the folder when `prefix`), as sign_link makes it."""
    exp = int(time.time()) + HOUR if exp is None else exp
    mac = hmac.new(secret, canonical(key, exp, prefix, ip), hashlib.sha256).digest()
    query = f"exp={exp}&kid={kid}"
    if prefix:
        query += "&pfx=1"
    if ip:
        query += "&ip=" + urllib.parse.quote(ip, safe="/")
    return query + "&sig=" + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def signed(key: str, query: str) -> str:
    return media_target(key) + "?" + query


def write_keys(directory: Path, text: str = KEYS_TEXT, mode: int = 0o600) -> Path:
    path = Path(tempfile.mkdtemp(prefix="keys-", dir=directory)) / "signing.keys"
    path.write_text(text)
    path.chmod(mode)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_metrics(port: int) -> dict[tuple[str, tuple], float]:
    with rawhttp.Connection(port) as c:
        r = c.request("GET", "/metrics")
    assert r.status == 200, r.describe()
    _, samples = harness.parse_metrics(r.body.decode())
    return {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples}


def refusals(m: dict, reason: str) -> float:
    return m.get(("mediagate_signed_link_refusals_total", (("reason", reason),)), 0.0)


def s3_requests(m: dict) -> float:
    return sum(v for (name, _), v in m.items() if name == "mediagate_s3_requests_total")


ADMIN_TOKEN = "private-media-admin-token"


class PrivateCase(harness.MediagateTestCase):
    """A server with signing keys; `access_args` are its access options (the keys file is added here)."""

    access_args: list[str] = []

    @classmethod
    def setUpClass(cls) -> None:
        fx = harness.fixtures()
        add_private_objects(fx)
        cls.keys_file = write_keys(fx.tmp)
        cls.server_args = ["--signing-keys", str(cls.keys_file), *cls.access_args]
        super().setUpClass()

    def metrics(self) -> dict:
        return read_metrics(self.port)

    def assert_refused(self, target: str, reason: str, method: str = "GET", headers=(), body: bytes = b"",
                       conn: Optional[rawhttp.Connection] = None) -> rawhttp.Response:
        """403 with a one-line reason, counted under `reason` alone, and no storage request (S3 counter)."""
        before = self.metrics()
        if conn is None:
            r = self.request(method, target, headers, body=body)
        else:
            r = conn.request(method, target, headers, body=body)
        after = self.metrics()
        self.assertEqual(r.status, 403, f"{method} {target}:\n{r.describe()}")
        self.assert_framing(r, method)
        if method != "HEAD":
            text = r.body.decode()
            self.assertEqual(text.count("\n"), 1, f"want one line:\n{r.describe()}")
            self.assertTrue(text.endswith(f"({reason})\n"), f"want the reason {reason}:\n{r.describe()}")
            self.assertNotIn("sig=", text)
        self.assertEqual(r.header("cache-control"), "no-store", r.describe())
        self.assertIsNone(r.header("etag"), f"a refusal tells nothing about the object:\n{r.describe()}")
        for other in REASONS:
            self.assertEqual(refusals(after, other) - refusals(before, other), 1 if other == reason else 0,
                             f"refusal counter {other} for {method} {target}")
        if self.fx.mode == "s3":
            self.assertEqual(s3_requests(after) - s3_requests(before), 0,
                             f"a refused link made S3 requests: {method} {target}")
        return r


class SignedAccess(PrivateCase):
    """--access signed, with public and signed prefixes nested three deep (longest match wins)."""

    cors_port = free_port()
    ORIGIN = f"http://127.0.0.1:{cors_port}"
    access_args = ["--access", "signed", "--public-prefix", "open/", "--public-prefix", "private/public/",
                   "--signed-prefix", "private/public/secret/", "--cors-origin", f"{ORIGIN},http://other.test"]

    # -- links that open

    def test_a_signed_link_plays_and_seeks(self):
        key = "private/clip.mp4"
        q = mint(key)
        size = self.fx.size(key)
        with self.connect() as c:
            r = c.request("GET", signed(key, q))
            self.assert_full(r, key)
            self.assertEqual(r.header("cache-control"), SIGNED_CACHE_CONTROL, r.describe())
            for first, last in ((0, 1), (1000, 65535), (size // 2, size - 1)):
                r = c.request("GET", signed(key, q), [("Range", f"bytes={first}-{last}")])
                self.assert_range(r, key, first, last)
                self.assertEqual(r.header("cache-control"), SIGNED_CACHE_CONTROL, r.describe())
            r = c.request("GET", signed(key, q), [("Range", "bytes=-500")])
            self.assert_range(r, key, size - 500, size - 1)
            r = c.request("HEAD", signed(key, q))
            self.assert_full(r, key, "HEAD")
            etag = r.header("etag")
            r = c.request("GET", signed(key, q), [("If-None-Match", etag)])
            self.assertEqual(r.status, 304, r.describe())
            self.assertEqual(r.header("cache-control"), SIGNED_CACHE_CONTROL, r.describe())
            r = c.request("GET", signed(key, q), [("Range", "bytes=10-19"), ("If-Range", etag)])
            self.assert_range(r, key, 10, 19)
            r = c.request("GET", signed(key, q), [("Range", "bytes=0-0,100-199")])
            self.assert_multipart(r, key, [(0, 0), (100, 199)])

    def test_a_link_covers_the_decoded_key(self):
        key = "private/vidéo ñ+1.webm"
        r = self.request("GET", signed(key, mint(key)), [("Range", "bytes=5-104")])
        self.assert_range(r, key, 5, 104)

    def test_the_first_read_of_a_key_does_reach_storage(self):
        # The S3 counter the refusals are measured with is live: a good link makes requests (local storage has
        # no counter: there the read itself is what is checked).
        key = "private/public/secret/image.png"
        before = self.metrics()
        self.assert_full(self.request("GET", signed(key, mint(key))), key)
        if self.fx.mode == "s3":
            self.assertGreater(s3_requests(self.metrics()) - s3_requests(before), 0)

    def test_prefix_links_open_their_folder_only(self):
        folder = mint("private/", prefix=True)
        self.assert_full(self.request("GET", signed("private/clip.mp4", folder)), "private/clip.mp4")
        self.assert_full(self.request("GET", signed("private/deep/random.bin", folder)), "private/deep/random.bin")
        everything = mint("", prefix=True)
        self.assert_full(self.request("GET", signed("clip.mp4", everything)), "clip.mp4")
        deep = mint("private/deep/", prefix=True)
        self.assert_full(self.request("GET", signed("private/deep/random.bin", deep)), "private/deep/random.bin")
        self.assert_refused(signed("private/clip.mp4", deep), "bad_signature")  # outside its folder
        self.assert_refused(signed("clip.mp4", folder), "bad_signature")
        # "private/" is a folder, not a string prefix: "privateer.jpg" is not in it.
        self.assert_refused(signed("privateer.jpg", folder), "bad_signature")
        # An exact link cannot be widened into a folder link, nor a folder link narrowed.
        self.assert_refused(signed("private/clip.mp4", mint("private/clip.mp4") + "&pfx=1"), "bad_signature")
        self.assert_refused(signed("private/clip.mp4", mint("private/", prefix=True).replace("&pfx=1", "")),
                            "bad_signature")

    def test_key_rotation_every_key_in_the_file_verifies(self):
        key = "private/clip.mp4"
        for secret, kid in ((SECRET_2, "k2"), (SECRET_1, "k1")):
            r = self.request("GET", signed(key, mint(key, secret, kid)), [("Range", "bytes=0-99")])
            self.assert_range(r, key, 0, 99)
        # Each secret belongs to its kid: k1's secret under kid k2 is a forgery.
        self.assert_refused(signed(key, mint(key, SECRET_1, "k2")), "bad_signature")

    def test_ip_binding(self):
        key = "private/clip.mp4"
        for cidr in ("127.0.0.0/8", "127.0.0.1", "127.0.0.1/32", "0.0.0.0/0"):
            r = self.request("GET", signed(key, mint(key, ip=cidr)), [("Range", "bytes=0-9")])
            self.assert_range(r, key, 0, 9)
        for cidr in ("10.0.0.0/8", "127.0.0.2/32", "::1/128"):
            self.assert_refused(signed(key, mint(key, ip=cidr)), "wrong_address")
        # A binding added to (or changed in) a signed link is tampering, not a new binding.
        self.assert_refused(signed(key, mint(key) + "&ip=127.0.0.1"), "bad_signature")
        self.assert_refused(signed(key, mint(key, ip="10.0.0.0/8").replace("ip=10.0.0.0/8", "ip=0.0.0.0/0")),
                            "bad_signature")

    # -- links that do not

    def test_every_failure_class_is_403_with_its_reason_and_no_storage_request(self):
        key = "private/clip.mp4"
        now = int(time.time())
        good = mint(key)
        exp, sig = re.search(r"exp=(\d+)", good).group(1), re.search(r"sig=([A-Za-z0-9_-]+)", good).group(1)
        flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
        cases = [
            ("no query at all", media_target(key), "missing"),
            ("unrelated query", media_target(key) + "?download=1", "missing"),
            ("no sig", media_target(key) + f"?exp={exp}&kid=k2", "garbled"),
            ("no kid", media_target(key) + f"?exp={exp}&sig={sig}", "garbled"),
            ("exp not a number", signed(key, good.replace(f"exp={exp}", "exp=tomorrow")), "garbled"),
            ("sig too short", signed(key, good.replace(sig, sig[:-1])), "garbled"),
            ("sig padded", signed(key, good + "%3D"), "garbled"),
            ("sig twice", signed(key, good + "&sig=" + sig), "garbled"),
            ("exp twice", signed(key, f"exp={exp}&" + good), "garbled"),
            ("pfx not 1", signed(key, good + "&pfx=yes"), "garbled"),
            ("bad escape", signed(key, good.replace("exp=", "exp=%ZZ")), "garbled"),
            ("expired an hour ago", signed(key, mint(key, exp=now - HOUR)), "expired"),
            ("expired long ago", signed(key, mint(key, exp=1)), "expired"),
            ("unknown kid", signed(key, mint(key, kid="k3")), "unknown_kid"),
            ("kid of another case", signed(key, mint(key, kid="K2")), "unknown_kid"),
            ("key tampered", signed("private/deep/random.bin", good), "bad_signature"),
            ("exp tampered", signed(key, good.replace(f"exp={exp}", f"exp={int(exp) + 1}")), "bad_signature"),
            ("sig tampered", signed(key, good.replace(sig, flipped)), "bad_signature"),
            ("wrong secret", signed(key, mint(key, OTHER_SECRET)), "bad_signature"),
            ("expired and tampered", signed(key, mint(key, exp=now - HOUR).replace("sig=", "sig=x")[:-1]),
             "bad_signature"),
        ]
        for what, target, reason in cases:
            with self.subTest(what):
                self.assert_refused(target, reason)
        # The link is checked before storage is asked anything: a key that does not exist is 403 too, and 404
        # only with a good link.
        self.assert_refused(media_target("private/nothing.mp4"), "missing")
        self.assert_refused(signed("private/nothing.mp4", mint("private/clip.mp4")), "bad_signature")
        r = self.request("GET", signed("private/nothing.mp4", mint("private/nothing.mp4")))
        self.assertEqual(r.status, 404, r.describe())
        # HEAD is refused the same way.
        self.assert_refused(media_target(key), "missing", method="HEAD")

    def test_write_methods_are_405_before_the_link_is_looked_at(self):
        # Pinned: /media/ answers a method other than GET and HEAD with 405 before it reads the link, whatever the
        # link and the key (public or private, existing or not), so the answer tells nothing about either; the
        # link is not counted as refused (the verdict wrong_method of verify_link is never reached from /media/).
        key = "private/clip.mp4"
        good = signed(key, mint(key))
        for method, target in (("POST", good), ("DELETE", good), ("POST", media_target(key)),
                               ("POST", signed(key, mint(key, OTHER_SECRET))), ("PATCH", media_target("open/clip.webm")),
                               ("POST", media_target("private/nothing.mp4"))):
            with self.subTest(method=method, target=target[:50]):
                self.assert_not_allowed(method, target)
        # A PUT with a body and a good link: 405, and the connection closes (the body was not read, so its bytes
        # cannot be taken for a next request).
        with self.connect() as c:
            body = b"GET /media/open/clip.webm HTTP/1.1\r\nHost: x\r\n\r\n"
            self.assert_not_allowed("PUT", good, body=body, conn=c)
            self.assertTrue(c.is_closed_by_peer(5.0), "the connection stayed open after an unread body")

    def assert_not_allowed(self, method: str, target: str, body: bytes = b"",
                           conn: Optional[rawhttp.Connection] = None) -> None:
        before = self.metrics()
        r = (conn or self).request(method, target, body=body)
        after = self.metrics()
        self.assertEqual(r.status, 405, f"{method} {target}:\n{r.describe()}")
        self.assertEqual(r.header("allow"), "GET, HEAD", r.describe())
        self.assertIsNone(r.header("etag"), r.describe())
        for reason in REASONS:
            self.assertEqual(refusals(after, reason), refusals(before, reason), f"{method} {target}: {reason}")
        if self.fx.mode == "s3":
            self.assertEqual(s3_requests(after), s3_requests(before), f"{method} {target} made S3 requests")

    def test_prefix_rules_longest_match_wins(self):
        # --access signed: everything needs a link but what a public prefix covers, unless a longer signed
        # prefix covers it again.
        r = self.request("GET", media_target("open/clip.webm"))
        self.assert_full(r, "open/clip.webm")
        self.assertEqual(r.header("cache-control"), PUBLIC_CACHE_CONTROL, r.describe())
        r = self.request("GET", media_target("private/public/image.jpg"), [("Range", "bytes=0-99")])
        self.assert_range(r, "private/public/image.jpg", 0, 99)
        self.assertEqual(r.header("cache-control"), PUBLIC_CACHE_CONTROL, r.describe())
        self.assert_refused(media_target("private/public/secret/image.png"), "missing")
        self.assert_refused(media_target("clip.mp4"), "missing")
        self.assert_refused(media_target("sub/dir/x.jpg"), "missing")
        self.assert_refused(media_target("private/clip.mp4"), "missing")
        # A public object opens with or without a link, and a link does not make it private.
        r = self.request("GET", signed("open/clip.webm", "exp=1&kid=nobody&sig=x"))
        self.assert_full(r, "open/clip.webm")

    def test_the_access_log_redacts_the_signature(self):
        key = "private/deep/random.bin"
        q = mint(key)
        sig = q.rsplit("sig=", 1)[1]
        start = self.server.line_count()
        r = self.request("GET", signed(key, q), [("Range", "bytes=0-9")])
        self.assert_range(r, key, 0, 9)
        self.assert_refused(signed(key, q.replace("exp=", "exp=1")), "bad_signature")
        expected = re.escape(f'"GET {media_target(key)}?{q.rsplit("sig=", 1)[0]}sig=REDACTED"') + r'.* 206 10 '
        line = self.server.wait_for_line(expected, 10.0, start)
        self.assertIsNotNone(line, f"no access log line matching {expected}:\n{self.server.output(10)}")
        self.assertIsNotNone(self.server.wait_for_line(r"sig=REDACTED\".* 403 ", 10.0, start),
                             self.server.output(10))
        leaked = [line for _, line in self.server.lines if sig in line]
        self.assertEqual(leaked, [], "the signature appears in the server's output")

    # -- CORS

    def cors(self, r: rawhttp.Response, origin: Optional[str]) -> None:
        """`origin` named (None: no CORS headers at all), with Vary: Origin in both cases."""
        vary = [v.strip().lower() for v in ",".join(r.all("vary")).split(",")]
        self.assertIn("origin", vary, f"Vary: Origin missing:\n{r.describe()}")
        if origin is None:
            self.assertFalse(r.has("access-control-allow-origin"), r.describe())
            self.assertFalse(r.has("access-control-expose-headers"), r.describe())
            return
        self.assertEqual(r.all("access-control-allow-origin"), [origin], r.describe())
        exposed = {v.strip().lower() for v in self.assert_single(r, "access-control-expose-headers").split(",")}
        for name in EXPOSED:
            self.assertIn(name.lower(), exposed, r.describe())

    def test_cors_allowed_origins_are_named_on_every_status(self):
        key = "private/clip.mp4"
        q = mint(key)
        size = self.fx.size(key)
        etag = self.request("HEAD", signed(key, q)).header("etag")
        for origin in (self.ORIGIN, "http://other.test"):
            o = [("Origin", origin)]
            cases = [
                (200, media_target("open/clip.webm"), []),
                (200, signed(key, q), []),
                (206, signed(key, q), [("Range", "bytes=0-99")]),
                (304, signed(key, q), [("If-None-Match", etag)]),
                (412, signed(key, q), [("If-Match", '"not-the-etag"')]),
                (416, signed(key, q), [("Range", f"bytes={size}-")]),
                (404, media_target("open/nothing.bin"), []),
                (404, signed("private/nothing.mp4", mint("private/nothing.mp4")), []),
                (403, media_target(key), []),
            ]
            for status, target, headers in cases:
                with self.subTest(origin=origin, status=status, target=target[:40]):
                    r = self.request("GET", target, o + headers)
                    self.assertEqual(r.status, status, r.describe())
                    self.cors(r, origin)
            r = self.request("HEAD", signed(key, q), o)
            self.assertEqual(r.status, 200, r.describe())
            self.cors(r, origin)

    def test_cors_other_origins_get_no_cors_headers(self):
        for origin in ("http://evil.test", "null", f"{self.ORIGIN}.evil.test", "http://other.test.evil",
                       f"https://127.0.0.1:{self.cors_port}", "http://OTHER.test"):
            with self.subTest(origin=origin):
                r = self.request("GET", media_target("open/clip.webm"), [("Origin", origin)])
                self.assertEqual(r.status, 200, r.describe())  # CORS is not access control: the bytes are public
                self.cors(r, None)
        r = self.request("GET", media_target("open/clip.webm"))
        self.cors(r, None)

    def preflight(self, target: str, origin: str, method: str = "GET",
                  headers: str = "range,if-none-match", conn: Optional[rawhttp.Connection] = None):
        h = [("Origin", origin), ("Access-Control-Request-Method", method)]
        if headers:
            h.append(("Access-Control-Request-Headers", headers))
        return (conn or self).request("OPTIONS", target, h)

    def test_cors_preflight(self):
        key = "private/clip.mp4"
        before = self.metrics()
        with self.connect() as c:
            for target in (signed(key, mint(key)), media_target(key), media_target("open/clip.webm")):
                r = self.preflight(target, self.ORIGIN, conn=c)
                self.assertEqual(r.status, 204, r.describe())
                self.assertEqual(r.body, b"", r.describe())
                self.assertEqual(r.all("access-control-allow-origin"), [self.ORIGIN], r.describe())
                self.assertIn("origin", r.header("vary").lower(), r.describe())
                methods = {m.strip() for m in self.assert_single(r, "access-control-allow-methods").split(",")}
                self.assertTrue({"GET", "HEAD"} <= methods, r.describe())
                self.assertFalse({"PUT", "POST", "DELETE"} & methods, r.describe())
                allowed = {h.strip().lower() for h in self.assert_single(r, "access-control-allow-headers").split(",")}
                for name in ("range", "if-range", "if-none-match", "if-match", "if-modified-since"):
                    self.assertIn(name, allowed, r.describe())
                self.assertRegex(self.assert_single(r, "access-control-max-age"), r"^[1-9][0-9]*$", r.describe())
            after = self.metrics()
            # The preflight kept the connection open (it used to be a 405 with Connection: close).
            r = c.request("GET", signed(key, mint(key)), [("Origin", self.ORIGIN), ("Range", "bytes=0-9")])
            self.assert_range(r, key, 0, 9)
        for reason in REASONS:  # a preflight carries no link and needs none
            self.assertEqual(refusals(after, reason), refusals(before, reason))
        if self.fx.mode == "s3":
            self.assertEqual(s3_requests(after), s3_requests(before), "a preflight made S3 requests")

    def test_cors_preflight_of_another_origin_names_nothing(self):
        r = self.preflight(media_target("open/clip.webm"), "http://evil.test")
        self.assertEqual(r.status, 204, r.describe())
        for name in ("access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
                     "access-control-max-age"):
            self.assertFalse(r.has(name), r.describe())

    def test_options_without_preflight_and_options_star(self):
        for target in ("*", media_target("open/clip.webm")):
            with self.subTest(target=target):
                r = self.request("OPTIONS", target)
                self.assertEqual(r.status, 204, r.describe())
                allow = {m.strip() for m in self.assert_single(r, "allow").split(",")}
                self.assertTrue({"GET", "HEAD", "OPTIONS"} <= allow, r.describe())
                self.assertFalse(r.has("access-control-allow-origin"), r.describe())

    def test_api_preflight_allows_authorization(self):
        r = self.preflight("/api/media", self.ORIGIN, method="PATCH", headers="authorization,content-type")
        self.assertEqual(r.status, 204, r.describe())
        self.assertEqual(r.header("access-control-allow-origin"), self.ORIGIN, r.describe())
        allowed = {h.strip().lower() for h in r.header("access-control-allow-headers").split(",")}
        self.assertTrue({"authorization", "content-type", "range"} <= allowed, r.describe())
        self.assertIn("PATCH", r.header("access-control-allow-methods"), r.describe())


class AnyOrigin(PrivateCase):
    """--cors-origin '*': every origin may read (named back, or '*' when the request has no Origin)."""

    access_args = ["--signed-prefix", "private/", "--cors-origin", "*"]

    def test_star_allows_any_origin(self):
        key = "private/clip.mp4"
        for origin in ("http://127.0.0.1:1", "https://example.test", "null"):
            with self.subTest(origin=origin):
                r = self.request("GET", signed(key, mint(key)), [("Origin", origin), ("Range", "bytes=0-9")])
                self.assert_range(r, key, 0, 9)
                self.assertIn(r.header("access-control-allow-origin"), (origin, "*"), r.describe())
                self.assertIn("Content-Range", r.header("access-control-expose-headers"), r.describe())
                self.assertIn("origin", r.header("vary").lower(), r.describe())
                p = self.request("OPTIONS", media_target(key),
                                 [("Origin", origin), ("Access-Control-Request-Method", "GET"),
                                  ("Access-Control-Request-Headers", "range")])
                self.assertEqual(p.status, 204, p.describe())
                self.assertIn(p.header("access-control-allow-origin"), (origin, "*"), p.describe())

    def test_public_access_with_a_signed_prefix(self):
        # --access public (the default): only the signed prefix needs a link.
        r = self.request("GET", media_target("clip.mp4"), [("Range", "bytes=0-9")])
        self.assert_range(r, "clip.mp4", 0, 9)
        self.assertEqual(r.header("cache-control"), PUBLIC_CACHE_CONTROL, r.describe())
        r = self.request("GET", media_target("privateer.jpg"))
        self.assert_full(r, "privateer.jpg")
        self.assert_refused(media_target("private/clip.mp4"), "missing")
        self.assert_refused(media_target("private/public/image.jpg"), "missing")


class SkewAndCacheControl(PrivateCase):
    """--link-skew and --signed-cache-control."""

    access_args = ["--signed-prefix", "private/", "--link-skew", "1800", "--signed-cache-control",
                   "private, no-transform, max-age=60"]

    def test_skew_accepts_a_link_just_expired_and_cache_control_is_the_configured_one(self):
        key = "private/clip.mp4"
        now = int(time.time())
        r = self.request("GET", signed(key, mint(key, exp=now - 600)), [("Range", "bytes=0-9")])
        self.assert_range(r, key, 0, 9)
        self.assertEqual(r.header("cache-control"), "private, no-transform, max-age=60", r.describe())
        self.assert_refused(signed(key, mint(key, exp=now - 2 * HOUR)), "expired")


class ViewOfPrivateItems(unittest.TestCase):
    """/v/{id} and /v/{id}/poster of an item under a signed prefix need a link signed for the item's key; the
    items are found by --scan-on-start into a catalog (a storage of this class's own, as in test_api)."""

    MEDIA = {"clip.mp4": "clip.mp4", "private/clip.mp4": "clip.mp4", "private/image.jpg": "image.jpg"}

    @classmethod
    def setUpClass(cls) -> None:
        from test_api import Client, Storage, start_server

        cls.storage = Storage(cls.__name__)
        cache = harness.build_cache()
        cls.data = {key: (cache / source).read_bytes() for key, source in cls.MEDIA.items()}
        for key, data in cls.data.items():
            cls.storage.put(key, data)
        keys = write_keys(cls.storage.tmp)
        try:
            cls.server = start_server(cls.storage, ["--scan-on-start", "--signed-prefix", "private/",
                                                    "--signing-keys", str(keys), "--admin-token", ADMIN_TOKEN],
                                      cls.__name__)
        except BaseException:
            cls.storage.cleanup()
            raise
        cls.api = Client(cls.server.port)
        cls.port = cls.server.port

    @classmethod
    def tearDownClass(cls) -> None:
        try:
            cls.server.stop()
        finally:
            cls.storage.cleanup()

    def run(self, result=None):
        return harness.run_reporting_server_output(self, result, super().run, lambda: (
            f"\nlast server output:\n{self.server.output(25)}"))

    def items(self) -> dict[str, dict]:
        """Every item, as the admin sees them (private ones are listed to the admin only)."""
        deadline = time.monotonic() + 60
        while True:
            status, body = self.api.json("GET", "/api/media?per_page=200", token=ADMIN_TOKEN)
            self.assertEqual(status, 200, body)
            found = {i["key"]: i for i in body["items"]}
            # Done: every item probed, or its probe failed (probe_error says why).
            if set(self.MEDIA) <= set(found) and all(found[k]["probed"] or found[k]["probe_error"]
                                                     for k in self.MEDIA):
                return found
            if time.monotonic() > deadline:
                self.fail(f"items not scanned and probed within 60 s: {found}")
            time.sleep(0.2)

    def get(self, target: str, headers=()) -> rawhttp.Response:
        with rawhttp.Connection(self.port) as c:
            return c.request("GET", target, headers)

    def test_view_of_a_private_item_needs_the_link(self):
        items = self.items()
        public, private = items["clip.mp4"], items["private/clip.mp4"]
        r = self.get(f"/v/{public['id']}", [("Range", "bytes=0-99")])
        self.assertEqual((r.status, r.body), (206, self.data["clip.mp4"][:100]), r.describe())
        before = read_metrics(self.port)
        for target, reason in ((f"/v/{private['id']}", "missing"),
                               (f"/v/{private['id']}?" + mint("clip.mp4"), "bad_signature"),
                               (f"/v/{private['id']}?" + mint("private/clip.mp4", exp=1), "expired")):
            r = self.get(target)
            self.assertEqual(r.status, 403, f"{target}:\n{r.describe()}")
            self.assertTrue(r.body.decode().endswith(f"({reason})\n"), r.describe())
        after = read_metrics(self.port)
        for reason in ("missing", "bad_signature", "expired"):
            self.assertEqual(refusals(after, reason) - refusals(before, reason), 1, reason)
        if self.storage.mode == "s3":
            self.assertEqual(s3_requests(after), s3_requests(before), "refused /v/ requests made S3 requests")
        data = self.data["private/clip.mp4"]
        for q in (mint("private/clip.mp4"), mint("private/", prefix=True)):
            r = self.get(f"/v/{private['id']}?{q}", [("Range", "bytes=1000-1999")])
            self.assertEqual(r.status, 206, r.describe())
            self.assertEqual(r.header("content-range"), f"bytes 1000-1999/{len(data)}", r.describe())
            self.assertEqual(r.body, data[1000:2000])
            self.assertEqual(r.header("cache-control"), SIGNED_CACHE_CONTROL, r.describe())
        r = self.get(f"/v/{items['private/image.jpg']['id']}?" + mint("private/image.jpg"))
        self.assertEqual((r.status, r.body), (200, self.data["private/image.jpg"]), r.describe())

    def test_private_items_are_listed_to_the_admin_only(self):
        admin = self.items()
        self.assertTrue(any(k.startswith("private/") for k in admin), admin)
        anonymous = {i["key"] for i in self.api.items()}
        self.assertEqual({k for k in admin if not k.startswith("private/")}, anonymous)
        private_id = next(i["id"] for k, i in admin.items() if k.startswith("private/"))
        self.assertEqual(self.api.json("GET", f"/api/media/{private_id}")[0], 404)
        self.assertEqual(self.api.json("GET", f"/api/media/{private_id}", token=ADMIN_TOKEN)[0], 200)

    # Probes read private items through the server with a short-lived link of their own (app/serve.cpp).
    def test_private_items_are_probed_and_their_poster_opens_with_the_link(self):
        items = self.items()
        private = items["private/clip.mp4"]
        self.assertIsNone(private.get("probe_error"), private)
        self.assertAlmostEqual(private["duration"] or 0, 10.0, delta=0.2, msg=private)
        self.assertEqual(private["poster"], f"/v/{private['id']}/poster", private)
        r = self.get(f"/v/{private['id']}/poster")
        self.assertEqual(r.status, 403, r.describe())
        r = self.get(f"/v/{private['id']}/poster?" + mint("private/clip.mp4"))
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue(r.body.startswith(b"\xff\xd8"), "the poster is not a JPEG")

    def test_private_seek_thumbnails_open_with_the_link_and_carry_it(self):
        private = self.items()["private/clip.mp4"]
        vtt = f"/v/{private['id']}/thumbs.vtt"
        self.assertEqual(self.get(vtt).status, 403)
        self.assertEqual(self.get(f"/v/{private['id']}/thumbs-0.jpg").status, 403)
        query = mint("private/clip.mp4")
        r = self.get(vtt + "?" + query)
        self.assertEqual(r.status, 200, r.describe())
        # Every image URL of the track carries the same link, so that a player can open the sprites.
        refs = {line.split("#")[0] for line in r.body.decode().splitlines() if "#xywh=" in line}
        self.assertEqual(refs, {"thumbs-0.jpg?" + query})
        r = self.get(f"/v/{private['id']}/thumbs-0.jpg?" + query)
        self.assertEqual(r.status, 200, r.describe())
        self.assertTrue(r.body.startswith(b"\xff\xd8"), "the sprite is not a JPEG")


class StartUp(unittest.TestCase):
    """Key files and access options that the server refuses before it listens (exit status 2 and why)."""

    def setUp(self) -> None:
        self.fx = harness.fixtures()

    def serve(self, *args: str) -> tuple[int, str]:
        cmd = [str(harness.binary()), "serve", "--listen", "127.0.0.1:0", *self.fx.storage_args, *args]
        r = subprocess.run(cmd, env=dict(os.environ, **self.fx.server_env), cwd=self.fx.tmp, capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        harness.assert_clean_exit(self, r)
        return r.returncode, r.stdout + r.stderr

    def test_a_key_file_others_may_read_is_refused(self):
        for mode in (0o640, 0o604, 0o660, 0o644, 0o620):
            with self.subTest(mode=oct(mode)):
                path = write_keys(self.fx.tmp, mode=mode)
                rc, out = self.serve("--access", "signed", "--signing-keys", str(path))
                self.assertEqual(rc, 2, out)
                self.assertIn(f"the signing keys {path} may be read by other users: chmod 600 it", out)
                self.assertNotIn("listening on", out)

    def test_the_environment_variable_names_the_file_too(self):
        path = write_keys(self.fx.tmp, mode=0o644)
        cmd = [str(harness.binary()), "serve", "--listen", "127.0.0.1:0", *self.fx.storage_args, "--access", "signed"]
        r = subprocess.run(cmd, env=dict(os.environ, **self.fx.server_env, MEDIAGATE_SIGNING_KEYS=str(path)),
                           cwd=self.fx.tmp, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("may be read by other users", r.stdout + r.stderr)

    def test_bad_key_files_and_missing_keys(self):
        short = f"k1 {os.urandom(16).hex()}\n"
        cases = [
            ("--access", "signed"),  # no keys at all
            ("--signed-prefix", "private/"),
        ]
        for args in cases:
            with self.subTest(args=args):
                rc, out = self.serve(*args)
                self.assertEqual(rc, 2, out)
                self.assertIn("need --signing-keys FILE", out)
        for text, message in ((short, "line 1: the secret must have at least 32 random bytes"),
                              (f"k1 {SECRET_1.hex()}\nk1 {SECRET_2.hex()}\n", "line 2: key id 'k1' is given twice"),
                              ("k1\n", "line 1: want 'KID SECRET'"),
                              ("# nothing\n", "no keys")):
            with self.subTest(text=text[:20]):
                rc, out = self.serve("--access", "signed", "--signing-keys", str(write_keys(self.fx.tmp, text)))
                self.assertEqual(rc, 2, out)
                self.assertIn(message, out)
                self.assertNotIn(SECRET_1.hex(), out, "the error message shows a secret")
        rc, out = self.serve("--access", "signed", "--signing-keys", str(self.fx.tmp / "no-such.keys"))
        self.assertEqual(rc, 2, out)
        self.assertIn("cannot read the signing keys", out)


if __name__ == "__main__":
    unittest.main()
