"""Fixtures and server lifecycle for the integration tests.

The same tests run against two storage backends, chosen by MEDIAGATE_TEST_STORAGE:
  local (default)  the server serves a temporary directory (--storage DIR)
  s3               the same files in a fresh bucket of a radosgw (--storage s3://BUCKET); see S3Backend
The binary comes from MEDIAGATE_BIN (default <repo>/build/mediagate).
The suites that use the catalog run on SQLite or on PostgreSQL, chosen by MEDIAGATE_TEST_CATALOG:
  sqlite (default) a file per server
  postgres         a fresh database per server in one PostgreSQL 15 the suite starts; see postgres()

MEDIAGATE_TEST_SCHEME=https runs the same tests over HTTPS: every server gets a certificate of a test CA made
here (tlsutil.py) and every rawhttp connection speaks TLS trusting that CA.
MEDIAGATE_TEST_SCHEME=h2 runs them over HTTP/2: the same certificates, and every rawhttp connection negotiates h2
by ALPN and speaks it through h2client.py (HTTP/1.1 bytes in and out, one stream per request).
MEDIAGATE_TEST_S3_TLS=1 (with s3 storage) starts the radosgw with HTTPS and `rgw dns name = s3.test` and has
the servers reach it as real S3 is reached: https, virtual-hosted addressing (BUCKET.s3.test, a certificate of a
test CA for *.s3.test only), the CA given by AWS_CA_BUNDLE, the name dialled at 127.0.0.1 via --s3-connect-to.

Media made by ffmpeg are cached under <repo>/.cache/integration-fixtures/<hash of the recipes> (or
MEDIAGATE_TEST_CACHE), so that reruns only copy files.
"""

from __future__ import annotations

import array
import atexit
import ctypes
import faulthandler
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import rawhttp
import tlsutil

REPO = Path(__file__).resolve().parents[2]
STORAGE_MODE = os.environ.get("MEDIAGATE_TEST_STORAGE", "local")
if STORAGE_MODE not in ("local", "s3"):
    raise SystemExit(f"MEDIAGATE_TEST_STORAGE must be local or s3, not {STORAGE_MODE!r}")
CATALOG_MODE = os.environ.get("MEDIAGATE_TEST_CATALOG", "sqlite")
if CATALOG_MODE not in ("sqlite", "postgres"):
    raise SystemExit(f"MEDIAGATE_TEST_CATALOG must be sqlite or postgres, not {CATALOG_MODE!r}")
SCHEME = os.environ.get("MEDIAGATE_TEST_SCHEME", "http")
S3_TLS = os.environ.get("MEDIAGATE_TEST_S3_TLS", "") == "1"
S3_TLS_NAME = "s3.test"  # radosgw's `rgw dns name`; never resolved (--s3-connect-to)
if SCHEME not in ("http", "https", "h2"):
    raise SystemExit(f"MEDIAGATE_TEST_SCHEME must be http, https or h2, not {SCHEME!r}")

# A last resort against a hang that no socket deadline catches: dump every thread's stack and exit.
faulthandler.dump_traceback_later(int(os.environ.get("MEDIAGATE_TEST_WATCHDOG", "600")), exit=True)

FFMPEG = os.environ.get("FFMPEG", "/usr/bin/ffmpeg")
FIXED_MTIME = 1700000000  # Tue, 14 Nov 2023 22:13:20 GMT: every local fixture gets it, so dates are known
RANDOM_SEED = 20240601
MIB = 1 << 20
BIG_SIZE = 200 * MIB  # counter pattern (pattern_bytes): every byte's value is known from its offset
BIG100_SIZE = 100 * MIB
SECRET_MARKER = b"MEDIAGATE-TEST-SECRET"

_BITEXACT = ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-flags:a", "+bitexact", "-map_metadata", "-1",
             "-threads", "1"]
_AV_INPUT = ["-f", "lavfi", "-i", "testsrc2=duration=10:size=640x360:rate=30",
             "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=10", "-map", "0:v", "-map", "1:a"]
_H264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "60", "-c:a", "aac", "-b:a", "96k"]
_STILL = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=1", "-frames:v", "1"]

# Output name -> ffmpeg arguments (before the output path). Changing one changes the cache key.
FFMPEG_RECIPES = {
    "clip.mp4": _AV_INPUT + _H264 + _BITEXACT + ["-movflags", "+faststart"],
    "clip-nofaststart.mp4": _AV_INPUT + _H264 + _BITEXACT,
    "clip.webm": _AV_INPUT + ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "500k",
                              "-c:a", "libopus", "-b:a", "64k"] + _BITEXACT,
    "image.jpg": _STILL + ["-q:v", "3"] + _BITEXACT,
    "image.png": _STILL + _BITEXACT,
}


@dataclass(frozen=True)
class Fixture:
    key: str  # storage key: path under the root / object key
    source: str  # name in the cache dir whose bytes it has
    content_type: Optional[str]  # the type the server must answer with; None: not checked
    s3_content_type: Optional[str] = None  # in s3 mode, the Content-Type stored with the object


# What the media root holds (besides the large pattern files, the symlinks and the secret). Name tests use
# copies of real media, with distinct bytes where a decoding mistake could pick a sibling ("a+b" vs "a b").
# In s3 mode some objects carry a specific type, some S3's generic ones, some none at all: the server must
# answer the same type in every case.
FIXTURES = [
    Fixture("clip.mp4", "clip.mp4", "video/mp4", s3_content_type="video/mp4"),
    Fixture("clip-nofaststart.mp4", "clip-nofaststart.mp4", "video/mp4"),
    Fixture("clip.webm", "clip.webm", "video/webm", s3_content_type="binary/octet-stream"),
    Fixture("image.jpg", "image.jpg", "image/jpeg", s3_content_type="image/jpeg"),
    Fixture("image.png", "image.png", "image/png", s3_content_type="application/octet-stream"),
    Fixture("png-no-extension", "image.png", "image/png"),
    Fixture("empty.bin", "empty.bin", None),
    Fixture("random.bin", "random.bin", None, s3_content_type="application/octet-stream"),
    Fixture("my clip.webm", "clip.webm", "video/webm"),
    Fixture("vidéo ñ.webm", "clip.webm", "video/webm", s3_content_type="video/webm"),
    Fixture("a+b=c.mp4", "clip.mp4", "video/mp4"),
    Fixture("a b=c.mp4", "clip-nofaststart.mp4", "video/mp4", s3_content_type="binary/octet-stream"),
    Fixture("sub/dir/x.jpg", "image.jpg", "image/jpeg"),
]
LARGE = {"big.bin": BIG_SIZE, "big100.bin": BIG100_SIZE}  # made with write_pattern_file, never held in memory


def mp4_layouts(rnd: random.Random, media_bytes: int, index_bytes: int) -> dict[str, bytes]:
    """The same random media (mdat) and index (moov) boxes as a moov-at-end file (ftyp, free, mdat, moov) and as a
    fast-start one (ftyp, moov, mdat): what a gateway sees of an MP4's top-level boxes, without real media."""
    def box(kind: bytes, body: bytes) -> bytes:
        return (8 + len(body)).to_bytes(4, "big") + kind + body

    ftyp = box(b"ftyp", b"isom\0\0\2\0isomiso2avc1mp41")
    mdat = box(b"mdat", rnd.randbytes(media_bytes))
    moov = box(b"moov", rnd.randbytes(index_bytes))
    return {"moov at end": ftyp + box(b"free", b"") + mdat + moov, "fast start": ftyp + moov + mdat}


def pattern_bytes(offset: int, length: int) -> bytes:
    """Bytes offset..offset+length-1 of a counter-pattern file: at every offset 8k, the number 8k as 8 bytes
    big-endian. A chunk sent twice, skipped or sent at the wrong place shows as a wrong byte."""
    first = offset - offset % 8
    words = array.array("Q", range(first, offset + length, 8))
    if sys.byteorder == "little":
        words.byteswap()
    skip = offset - first
    return words.tobytes()[skip:skip + length]


def write_pattern_file(path: Path, size: int) -> None:
    with open(path, "wb") as fh:
        for pos in range(0, size, 4 * MIB):
            fh.write(pattern_bytes(pos, min(4 * MIB, size - pos)))


class PatternCheck:
    """A rawhttp body sink that compares what arrives with pattern_bytes from `offset` on, holding nothing."""

    def __init__(self, offset: int = 0) -> None:
        self.start = self.pos = offset
        self.first_bad: Optional[int] = None  # file offset of the first wrong byte

    def __call__(self, data) -> None:
        data = bytes(data)
        if self.first_bad is None:
            expected = pattern_bytes(self.pos, len(data))
            if data != expected:
                self.first_bad = self.pos + next(i for i, (a, b) in enumerate(zip(data, expected)) if a != b)
        self.pos += len(data)

    def problem(self) -> Optional[str]:
        if self.first_bad is None:
            return None
        return (f"wrong byte at file offset {self.first_bad} (of bytes {self.start}..{self.pos - 1} received); "
                f"expected {pattern_bytes(self.first_bad - self.first_bad % 8, 8).hex()} there")
SECRET_DIR = "mg-secret"  # beside the media root; in s3 mode the name of a second bucket


def _ffmpeg_version() -> str:
    try:
        out = subprocess.run([FFMPEG, "-version"], capture_output=True, text=True, timeout=30).stdout
    except OSError as e:
        raise RuntimeError(f"ffmpeg not found at {FFMPEG}: apt-get install ffmpeg") from e
    return out.splitlines()[0] if out else "unknown"


def _cache_dir() -> Path:
    recipe = json.dumps({"ffmpeg": _ffmpeg_version(), "recipes": FFMPEG_RECIPES, "seed": RANDOM_SEED,
                         "version": 1}, sort_keys=True)
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:16]
    base = Path(os.environ.get("MEDIAGATE_TEST_CACHE", REPO / ".cache" / "integration-fixtures"))
    return base / digest


def build_cache() -> Path:
    """The cached generated files, created on first use (build_fixtures)."""
    def extra(work: Path) -> None:
        (work / "empty.bin").write_bytes(b"")
        (work / "random.bin").write_bytes(random.Random(RANDOM_SEED).randbytes(MIB))

    return build_fixtures(_cache_dir(), FFMPEG_RECIPES, extra)


def build_fixtures(cache: Path, recipes: dict[str, list[str]], extra=None) -> Path:
    """Makes `cache` once: every file of `recipes` (name -> ffmpeg arguments), then extra(dir) if given.
    Parallel runs each build into a temporary directory and rename it into place; the loser of the race uses the
    winner's copy."""
    if (cache / "complete").exists():
        return cache
    cache.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=cache.parent))
    try:
        for name, args in recipes.items():
            cmd = [FFMPEG, "-nostdin", "-hide_banner", "-loglevel", "error", "-y", *args, str(work / name)]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError(f"ffmpeg failed making {name}: {shlex.join(cmd)}\n{r.stderr}")
        if extra:
            extra(work)
        (work / "complete").write_text("ok\n")
        try:
            work.rename(cache)
        except OSError:
            if not (cache / "complete").exists():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return cache


class Fixtures:
    """The test media: a local copy (always, for expected bytes) and the backend that serves it."""

    def __init__(self) -> None:
        cache = build_cache()
        self.tmp = Path(tempfile.mkdtemp(prefix="mediagate-it-"))
        self.root = self.tmp / "media"
        self.root.mkdir()
        self.files: dict[str, Fixture] = {f.key: f for f in FIXTURES}
        self._content: dict[str, bytes] = {}
        for f in FIXTURES:
            dest = self.root / f.key
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(cache / f.source, dest)
        for name, size in LARGE.items():
            write_pattern_file(self.root / name, size)

        # A file outside the root, reachable by `..` from it, and symlinks inside the root that lead to it.
        self.secret = SECRET_MARKER + b"-" + uuid.uuid4().hex.encode() + b"\n"
        (self.tmp / "secret.txt").write_bytes(self.secret)
        (self.tmp / SECRET_DIR).mkdir()
        (self.tmp / SECRET_DIR / "secret.txt").write_bytes(self.secret)
        os.symlink(self.tmp / "secret.txt", self.root / "link-to-secret.txt")
        os.symlink(self.tmp / SECRET_DIR, self.root / "outside")
        self.secret_path = self.tmp / "secret.txt"

        for path in [self.root, *self.root.rglob("*")]:
            os.utime(path, (FIXED_MTIME, FIXED_MTIME), follow_symlinks=False)

        self.mode = STORAGE_MODE
        self.server_env: dict[str, str] = {}
        self.tls_args: list[str] = []  # given to every server in the HTTPS runs
        if SCHEME in ("https", "h2"):
            self.ca = tlsutil.TestCA(self.tmp / "ca")
            pair = self.ca.issue()
            self.tls_args = ["--tls-cert", str(pair.cert), "--tls-key", str(pair.key)]
            rawhttp.TLS_CONTEXT = self.ca.client_context()
            if SCHEME == "h2":
                rawhttp.TLS_CONTEXT.set_alpn_protocols(["h2"])
                rawhttp.H2 = True
        if self.mode == "local":
            self.storage_args = ["--storage", str(self.root)]
            self.secret_dir_name = SECRET_DIR  # `../mg-secret/secret.txt` from the root
        else:
            try:
                self.s3 = S3Backend(self)
            except BaseException:
                shutil.rmtree(self.tmp, ignore_errors=True)
                raise
            self.storage_args = ["--storage", f"s3://{self.s3.bucket}", *self.s3.server_args]
            self.server_env = self.s3.server_env
            self.secret_dir_name = self.s3.secret_bucket  # `../BUCKET-mg-secret/secret.txt` in a path-style URL
        atexit.register(self.cleanup)

    def size(self, key: str) -> int:
        return LARGE.get(key) if key in LARGE else (self.root / key).stat().st_size

    def content(self, key: str) -> bytes:
        if key in LARGE:
            raise ValueError(f"{key} is {LARGE[key]} bytes: compare with pattern_bytes / PatternCheck")
        if key not in self._content:
            self._content[key] = (self.root / key).read_bytes()
        return self._content[key]

    def cleanup(self) -> None:
        if self.mode == "s3":
            self.s3.cleanup()
        shutil.rmtree(self.tmp, ignore_errors=True)


_fixtures: Optional[Fixtures] = None
_fixtures_error: Optional[BaseException] = None


def fixtures() -> Fixtures:
    """The fixtures of this process, made once; a failure is remembered so later classes fail at once."""
    global _fixtures, _fixtures_error
    if _fixtures_error is not None:
        raise RuntimeError(f"the fixtures could not be set up earlier: {_fixtures_error}") from _fixtures_error
    if _fixtures is None:
        try:
            _fixtures = Fixtures()
        except BaseException as e:
            _fixtures_error = e
            raise
    return _fixtures


def media_target(key: str) -> str:
    """/media/<key> with every byte but unreserved characters and '/' percent-encoded."""
    return "/media/" + urllib.parse.quote(key, safe="/")


# -- S3 backend -----------------------------------------------------------------------------------------
# Only used with MEDIAGATE_TEST_STORAGE=s3. Credentials come from the env file of scripts/radosgw.sh: the one
# named by MEDIAGATE_TEST_S3_ENV, or one from a cluster started here (and stopped at exit).

def _read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                env[name] = value
    return env


class S3Backend:
    def __init__(self, fx: Fixtures) -> None:
        self.cluster_dir: Optional[Path] = None
        self.server_args: list[str] = []  # S3 options every server gets (the TLS run's addressing)
        self.rgw_env: dict[str, str] = {}  # knobs for scripts/radosgw.sh
        env_file = os.environ.get("MEDIAGATE_TEST_S3_ENV")
        if S3_TLS:
            if env_file:
                raise RuntimeError("MEDIAGATE_TEST_S3_TLS starts a radosgw of its own: unset MEDIAGATE_TEST_S3_ENV")
            self.ca = tlsutil.TestCA(fx.tmp / "s3-ca", name="mediagate S3 test CA")
            # The wildcard only: a path-style request to s3.test itself fails the name check.
            pair = self.ca.issue("rgw", cn=S3_TLS_NAME, sans=f"DNS:*.{S3_TLS_NAME},IP:127.0.0.1")
            self.rgw_env = {"RGW_SSL_CERT": str(pair.cert), "RGW_SSL_KEY": str(pair.key),
                            "RGW_DNS_NAME": S3_TLS_NAME}
            env_file = None
        if env_file:
            env_path = Path(env_file)
        else:
            self.cluster_dir = fx.tmp / "radosgw"
            env_path = self.cluster_dir / "env"
        try:
            if self.cluster_dir is not None:
                self._radosgw("start", timeout=180)
            self._set_up(fx, env_path)
        except BaseException:
            self._stop_cluster()
            raise

    def _radosgw(self, command: str, timeout: float) -> None:
        # Output goes to a file, not a pipe: the daemons it starts could keep a pipe open long after it exits.
        log = self.cluster_dir.parent / f"radosgw-{command}.log"
        with open(log, "wb") as out:
            r = subprocess.run([str(REPO / "scripts" / "radosgw.sh"), command, str(self.cluster_dir)],
                               stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, timeout=timeout,
                               env=dict(os.environ, **self.rgw_env))
        if r.returncode != 0:
            raise RuntimeError(f"scripts/radosgw.sh {command} failed:\n{log.read_text(errors='replace')[-3000:]}")

    def _stop_cluster(self) -> None:
        if self.cluster_dir is not None:
            try:
                self._radosgw("stop", timeout=120)
            except Exception as e:
                print(f"harness: {e}", file=sys.stderr)

    def _set_up(self, fx: Fixtures, env_path: Path) -> None:
        env = _read_env_file(env_path)
        wanted = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION")
        missing = [k for k in wanted if k not in env]
        if missing:
            raise RuntimeError(f"{env_path} lacks {missing}")
        self.server_env = {k: env[k] for k in wanted}
        if S3_TLS:
            # botocore: path style to 127.0.0.1 (an IP name in the certificate); the servers: virtual-hosted.
            port = env["RGW_SSL_PORT"]
            env["AWS_ENDPOINT_URL"] = env["RGW_HTTPS_URL"]
            env["AWS_CA_BUNDLE"] = str(self.ca.cert)
            wanted += ("AWS_CA_BUNDLE",)
            self.server_env.update(AWS_ENDPOINT_URL=f"https://{S3_TLS_NAME}:{port}", AWS_CA_BUNDLE=str(self.ca.cert))
            self.server_args = ["--s3-addressing", "virtual", "--s3-connect-to", f"127.0.0.1:{port}"]
        os.environ.update({k: env[k] for k in wanted})  # s3util reads the environment

        import s3util  # botocore: only needed in s3 mode

        self.s3util = s3util
        self.client = s3util.client_from_env()
        s3util.wait_until_ready(client=self.client)
        self.bucket = f"mediagate-it-{uuid.uuid4().hex[:12]}"
        self.secret_bucket = self.bucket + "-" + SECRET_DIR
        s3util.create_bucket(self.bucket, client=self.client)
        s3util.create_bucket(self.secret_bucket, client=self.client)
        for f in FIXTURES:
            s3util.put_object(self.bucket, f.key, fx.content(f.key), f.s3_content_type, client=self.client)
        for name in LARGE:
            with open(fx.root / name, "rb") as body:
                self.client.put_object(Bucket=self.bucket, Key=name, Body=body)
        s3util.put_object(self.secret_bucket, "secret.txt", fx.secret, "text/plain", client=self.client)

    def cleanup(self) -> None:
        if self.cluster_dir is not None:
            self._stop_cluster()  # memstore: the buckets go with the cluster
            return
        for bucket in (self.bucket, self.secret_bucket):
            try:
                self.s3util.delete_bucket(bucket, client=self.client)
            except Exception as e:  # best effort: the cluster is thrown away anyway
                print(f"harness: could not delete bucket {bucket}: {e}", file=sys.stderr)


# -- PostgreSQL -----------------------------------------------------------------------------------------

PG_BIN = Path("/usr/lib/postgresql/15/bin")


class Postgres:
    """One PostgreSQL 15 for the whole test process (scripts/postgres.sh: initdb + pg_ctl into a temporary
    directory, 127.0.0.1 only), stopped at exit. Each server gets a database of its own (new_database)."""

    def __init__(self) -> None:
        # Directly under /tmp: the server runs as `postgres` and must reach its directory (a mkdtemp parent is 0700).
        self.dir = Path(tempfile.mkdtemp(prefix="mediagate-pg-", dir="/tmp"))
        self._script("start", timeout=120)
        env = _read_env_file(self.dir / "env")
        self.url = env["MEDIAGATE_TEST_PG_URL"]
        self.port = int(env["PG_PORT"])
        self._count = 0
        atexit.register(self.stop)

    def _script(self, *args: str, timeout: float) -> str:
        r = subprocess.run([str(REPO / "scripts" / "postgres.sh"), args[0], str(self.dir), *args[1:]],
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"scripts/postgres.sh {' '.join(args)} failed:\n{r.stdout}{r.stderr}")
        return r.stdout.strip()

    def new_database(self, hint: str = "db") -> str:
        """A new empty database; its URL."""
        self._count += 1
        name = re.sub(r"[^a-z0-9_]", "_", f"{hint.lower()}_{os.getpid()}_{self._count}")[:60]
        return self._script("createdb", name, timeout=60)

    def query(self, url: str, sql: str) -> list[list[Optional[str]]]:
        """Rows of a query as text (NULL as None), through psql."""
        db = url.rsplit("/", 1)[1].split("?", 1)[0]
        r = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "mediagate",
                            "-d", db, "-AtX", "-F", "\x1f", "-P", "null=<NULL>", "-c", sql],
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            raise RuntimeError(f"psql failed: {r.stderr}")
        return [[None if v == "<NULL>" else v for v in line.split("\x1f")] for line in r.stdout.splitlines()]

    def halt(self) -> None:
        """Stops the server at once (as a crash would), keeping its data for restart()."""
        self._script("stop", timeout=60)

    def restart(self) -> None:
        self._script("restart", timeout=120)

    def stop(self) -> None:
        if self.dir.exists():
            try:
                self._script("stop", timeout=60)
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)


_postgres: Optional[Postgres] = None


def postgres() -> Postgres:
    """The test process's PostgreSQL, started on first use."""
    global _postgres
    if _postgres is None:
        _postgres = Postgres()
    return _postgres


def new_catalog(tmp: Path, hint: str = "catalog") -> str:
    """The --catalog of a new, empty catalog in the mode of MEDIAGATE_TEST_CATALOG."""
    if CATALOG_MODE == "postgres":
        return postgres().new_database(hint)
    return f"sqlite:{tmp / f'{hint}-{uuid.uuid4().hex[:6]}.db'}"


# -- the server process ----------------------------------------------------------------------------------

# What a sanitizer build prints on an error or a leak (ASan, LSan, TSan, MSan, UBSan).
SANITIZER = re.compile(r"ERROR: (Address|Leak|Thread|Memory)Sanitizer|\w+Sanitizer:DEADLYSIGNAL|runtime error: |"
                       r"SUMMARY: \w+Sanitizer|WARNING: ThreadSanitizer")


def sanitizer_reports(lines) -> list[str]:
    """The lines of a process's output that are sanitizer reports."""
    return [line for line in lines if SANITIZER.search(line)]


def assert_clean_exit(case: unittest.TestCase, r: subprocess.CompletedProcess) -> None:
    """A finished command (`mediagate scan`, `ls`, a `serve` that must give up) ended by itself, not by a signal
    (an ASan abort is SIGABRT), and printed no sanitizer report; its status is the caller's to check."""
    out = (r.stdout or "") + (r.stderr or "")
    out = out if isinstance(out, str) else out.decode("utf-8", "replace")
    case.assertGreaterEqual(r.returncode, 0, f"{shlex.join(map(str, r.args))} died by a signal:\n{out[-3000:]}")
    reports = sanitizer_reports(out.splitlines())
    case.assertEqual(reports, [], f"{shlex.join(map(str, r.args))}: sanitizer reports:\n{out[-3000:]}")


LISTENING = re.compile(r"listening on https?://127\.0\.0\.1:(\d+)")
_servers: list["Server"] = []


def _die_with_parent() -> None:
    # PR_SET_PDEATHSIG: the server gets SIGTERM if the test runner dies (watchdog, ^C), so none is left behind.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)


def binary() -> Path:
    return Path(os.environ.get("MEDIAGATE_BIN", REPO / "build" / "mediagate"))


class Server:
    """A running `mediagate serve` on a free port; stdout and stderr are collected line by line."""

    def __init__(self, fx: Fixtures, extra_args=(), name: str = "server", inherit_env: bool = True,
                 preexec=None, client_tls=None) -> None:
        """inherit_env=False: the server's environment is fx.server_env alone (no keys of this process).
        preexec: also run in the child before exec (e.g. to set resource limits).
        client_tls: the ssl.SSLContext of the harness's own requests (health checks) when the server's
        --listen speaks TLS outside the HTTPS runs; rawhttp.TLS_CONTEXT otherwise."""
        self.client_tls = client_tls
        self.tls_port: Optional[int] = None  # --listen-tls's port
        exe = binary()
        if not exe.is_file():
            raise RuntimeError(f"server binary {exe} does not exist: build it or set MEDIAGATE_BIN")
        self.name = name
        self.cwd = Path(tempfile.mkdtemp(prefix="run-", dir=fx.tmp))
        tls_args = [] if "--tls-cert" in extra_args else getattr(fx, "tls_args", [])
        self.args = [str(exe), "serve", "--listen", "127.0.0.1:0", *fx.storage_args, *tls_args, *extra_args]
        self.lines: list[tuple[str, str]] = []  # (stream, line)
        self._cond = threading.Condition()
        self._exited_by_itself = False  # the process had ended before stop() was called
        self._killed = False  # it ignored SIGTERM
        self._checked = False
        env = dict(os.environ if inherit_env else {}, **fx.server_env)
        self.proc = subprocess.Popen(self.args, cwd=self.cwd, env=env, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     preexec_fn=_die_with_parent if preexec is None else
                                     lambda: (_die_with_parent(), preexec()))
        _servers.append(self)
        self._readers = [threading.Thread(target=self._drain, args=(s, n), daemon=True)
                         for s, n in ((self.proc.stdout, "stdout"), (self.proc.stderr, "stderr"))]
        for t in self._readers:
            t.start()
        try:
            self.port = self._wait_for_port(20.0)
            if "--listen-tls" in self.args:
                line = self.wait_for_line(r"listening on https://127\.0\.0\.1:(\d+)", 5.0)
                if line is None:
                    raise RuntimeError(f"no https listening line; output:\n{self.output()}")
                self.tls_port = int(re.search(r":(\d+)/", line).group(1))
            self._wait_for_health(20.0)
        except BaseException:
            self.stop(check=False)  # the error raised says why, with the output
            raise

    def _drain(self, stream, stream_name: str) -> None:
        for raw in iter(stream.readline, b""):
            with self._cond:
                self.lines.append((stream_name, raw.decode("utf-8", "replace").rstrip("\r\n")))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def output(self, tail: int = 40) -> str:
        with self._cond:
            lines = self.lines[-tail:] if tail else list(self.lines)
        return "\n".join(f"  [{s}] {line}" for s, line in lines)

    def wait_for_line(self, pattern, timeout: float, start: int = 0) -> Optional[str]:
        """The first output line at index >= start that matches `pattern` (a regex or a predicate)."""
        match = pattern if callable(pattern) else re.compile(pattern).search
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    if match(self.lines[i][1]):
                        return self.lines[i][1]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not any(t.is_alive() for t in self._readers)):
                    return None
                self._cond.wait(min(left, 0.2))

    def line_count(self) -> int:
        with self._cond:
            return len(self.lines)

    def _wait_for_port(self, timeout: float) -> int:
        line = self.wait_for_line(LISTENING, timeout)
        if line is None:
            state = "exited with %s" % self.proc.returncode if self.proc.poll() is not None else "still running"
            raise RuntimeError(f"{shlex.join(self.args)}: no 'listening on http://127.0.0.1:PORT' line within "
                               f"{timeout}s ({state}); output:\n{self.output()}")
        return int(LISTENING.search(line).group(1))

    def _health_address(self) -> tuple[int, object]:
        """(port, tls) of the harness's own requests: --listen, unless it only redirects to --listen-tls."""
        if self.tls_port is None:
            return self.port, self.client_tls
        return (self.tls_port, self.client_tls) if "--redirect-http" in self.args else (self.port, False)

    def _wait_for_health(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with rawhttp.Connection(self._health_address()[0], timeout=2.0, tls=self._health_address()[1]) as c:
                    r = c.request("GET", "/healthz")
                if r.status == 200:
                    return
                last = f"status {r.status}"
            except (OSError, AssertionError) as e:
                last = str(e)
            time.sleep(0.05)
        raise RuntimeError(f"GET /healthz did not answer 200 within {timeout}s ({last}); output:\n{self.output()}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def health_problem(self) -> Optional[str]:
        """None when the process runs and /healthz answers 200; otherwise what is wrong."""
        if not self.alive():
            return f"the server process exited with status {self.proc.returncode}"
        # A 503 of the connection cap clears once the server has seen the test's own connections close.
        deadline = time.monotonic() + 3.0
        while True:
            try:
                with rawhttp.Connection(self._health_address()[0], timeout=5.0, tls=self._health_address()[1]) as c:
                    r = c.request("GET", "/healthz")
            except (OSError, AssertionError) as e:
                return f"GET /healthz failed: {e}"
            if r.status == 503 and time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            if r.status != 200:
                return f"GET /healthz answered {r.status}"
            return None

    def stop(self, check: bool = True) -> None:
        """Stops the server (SIGTERM) and, once, checks how it ended: every test's servers pass through here.
        A clean stop exits with status 0 and writes no sanitizer report (an ASan build with abort_on_error
        aborts on an error or a leak at exit; without it, it exits 1 and prints the report). Raises
        AssertionError with the output otherwise, unless check=False."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                print(f"harness: {self.name} ignored SIGTERM for 10 s; killing it", file=sys.stderr)
                self._killed = True
                self.proc.kill()
                self.proc.wait(timeout=10)
        elif not self._checked:
            self._exited_by_itself = True
        for t in self._readers:
            t.join(timeout=5)
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        if self in _servers:
            _servers.remove(self)
        if self._checked:
            return
        self._checked = True
        if check:
            problems = self.end_problems()
            if problems:
                raise AssertionError(f"{self.name} ({shlex.join(self.args)}): {'; '.join(problems)}; "
                                     f"server output:\n{self.output(60)}")

    def end_problems(self) -> list[str]:
        """What was wrong with how the stopped process ended (empty: a clean SIGTERM exit)."""
        problems = []
        rc = self.proc.returncode
        if self._killed:
            problems.append("it ignored SIGTERM for 10 s and was killed")
        elif rc != 0:
            how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"status {rc}"
            when = "by itself, before the test stopped it," if self._exited_by_itself else "on SIGTERM"
            problems.append(f"it exited {when} with {how}")
        elif self._exited_by_itself:
            problems.append("it exited by itself (status 0) before the test stopped it")
        reports = sanitizer_reports(line for _, line in self.lines)
        if reports:
            problems.append("sanitizer reports:\n  " + "\n  ".join(reports[:20]))
        return problems


@atexit.register
def _stop_all() -> None:
    # A server still running here escaped its test's cleanup: too late to fail a test, so say it loudly.
    for s in list(_servers):
        s.stop(check=False)
        for problem in s.end_problems():
            print(f"harness: {s.name}: {problem}", file=sys.stderr)


# -- the base test case ----------------------------------------------------------------------------------



def run_reporting_server_output(case, result, run, describe):
    """Runs a test case; a failure or error it adds gets the server's last lines appended: they usually say why."""
    counts = (len(result.failures), len(result.errors)) if result is not None else None
    out = run(result)
    if result is not None:
        for lst, n in ((result.failures, counts[0]), (result.errors, counts[1])):
            for i in range(n, len(lst)):
                test, text = lst[i]
                if getattr(test, "test_case", test) is case:
                    lst[i] = (test, text + describe())
    return out


class MediagateTestCase(unittest.TestCase):
    """Starts one server per test class (with `server_args`), checks at the end that it is still alive and
    healthy, and offers raw-socket requests and assertions about media responses."""

    server_args: list[str] = []
    maxDiff = 4000

    @classmethod
    def setUpClass(cls) -> None:
        cls.fx = fixtures()
        cls.server = Server(cls.fx, cls.server_args, name=cls.__name__)
        cls.port = cls.server.port
        cls._types: dict[str, str] = {}

    @classmethod
    def tearDownClass(cls) -> None:
        problems = []
        try:
            problem = cls.server.health_problem()
            if problem:
                problems.append(problem)
        finally:
            cls.server.stop(check=False)
        # Exit status and sanitizer reports (errors, and leaks, which are reported only at exit).
        problems += cls.server.end_problems()
        if problems:
            raise AssertionError(f"at the end of {cls.__name__}: {'; '.join(problems)}; server output:\n"
                                 f"{cls.server.output()}")

    def run(self, result=None):
        return run_reporting_server_output(self, result, super().run, lambda: (
            f"\nlast server output ({self.server.name}):\n{self.server.output(15)}"))

    # -- requests

    def connect(self, **kwargs) -> rawhttp.Connection:
        conn = rawhttp.Connection(self.port, **kwargs)
        self.addCleanup(conn.close)
        return conn

    def request(self, method: str, target: str, headers=(), **kwargs) -> rawhttp.Response:
        """One request on a new connection, which is closed afterwards."""
        with rawhttp.Connection(self.port) as conn:
            return conn.request(method, target, headers, **kwargs)

    def get(self, key: str, headers=(), method: str = "GET", conn: Optional[rawhttp.Connection] = None):
        target = media_target(key)
        if conn is not None:
            return conn.request(method, target, headers)
        return self.request(method, target, headers)

    def type_of(self, key: str) -> str:
        """The Content-Type the server gives `key` (expected type when the fixture defines one)."""
        f = self.fx.files.get(key)
        if f is not None and f.content_type:
            return f.content_type
        if key not in self._types:
            r = self.get(key, method="HEAD")
            self.assertEqual(r.status, 200, f"HEAD {key}:\n{r.describe()}")
            self._types[key] = r.header("content-type")
        return self._types[key]

    def validators(self, key: str) -> tuple[str, str]:
        """(ETag, Last-Modified) as the server reports them."""
        r = self.get(key, method="HEAD")
        self.assertEqual(r.status, 200, r.describe())
        etag = self.assert_single(r, "etag")
        self.assertRegex(etag, rawhttp.STRONG_ETAG.pattern + "$", f"ETag must be strong:\n{r.describe()}")
        last_modified = self.assert_single(r, "last-modified")
        rawhttp.parse_http_date(last_modified)
        return etag, last_modified

    # -- assertions

    def assert_single(self, r: rawhttp.Response, name: str) -> str:
        values = r.all(name)
        self.assertEqual(len(values), 1, f"expected exactly one {name} field:\n{r.describe()}")
        return values[0]

    def assert_framing(self, r: rawhttp.Response, method: str = "GET") -> None:
        """Exact Content-Length framing: never chunked, never close-delimited."""
        self.assertFalse(r.chunked, f"chunked transfer coding must never be used:\n{r.describe()}")
        self.assertFalse(r.has("transfer-encoding"), f"Transfer-Encoding present:\n{r.describe()}")
        self.assertFalse(r.close_delimited, f"no Content-Length; body delimited by close:\n{r.describe()}")
        if r.status != 304 and (method != "HEAD" or r.has("content-length")):
            length = self.assert_single(r, "content-length")
            self.assertRegex(length, r"^[0-9]+$")
            if method != "HEAD":
                self.assertEqual(int(length), r.body_length, f"Content-Length differs from the body:\n{r.describe()}")

    def assert_media_headers(self, r: rawhttp.Response, key: str, method: str = "GET") -> None:
        """What every successful media response (200, 206, 304) carries (DESIGN.md "HTTP rules")."""
        self.assert_framing(r, method)
        etag = self.assert_single(r, "etag")
        self.assertRegex(etag, rawhttp.STRONG_ETAG.pattern + "$", f"ETag must be strong:\n{r.describe()}")
        rawhttp.parse_http_date(self.assert_single(r, "last-modified"))
        rawhttp.parse_http_date(self.assert_single(r, "date"))  # RFC 9110 §6.6.1: origin servers with a clock
        self.assertTrue(r.header("cache-control"), f"Cache-Control missing:\n{r.describe()}")
        self.assertIsNone(r.header("content-encoding"), f"media must never be compressed:\n{r.describe()}")
        if r.status != 304:
            self.assertEqual(r.header("accept-ranges"), "bytes", r.describe())

    def assert_full(self, r: rawhttp.Response, key: str, method: str = "GET") -> None:
        self.assertEqual(r.status, 200, f"{method} {key}:\n{r.describe()}")
        self.assert_media_headers(r, key, method)
        self.assertIsNone(r.header("content-range"), f"a 200 never carries Content-Range:\n{r.describe()}")
        size = self.fx.size(key)
        self.assertEqual(r.header("content-length"), str(size), r.describe())
        self.assert_type(self.assert_single(r, "content-type"), key, r)
        if method == "GET":
            self.assertTrue(r.body == self.expected_bytes(key, 0, size), f"body of {key} differs from the file")

    def assert_range(self, r: rawhttp.Response, key: str, first: int, last: int) -> None:
        """A single-part 206 with exactly bytes first..last of the file."""
        size = self.fx.size(key)
        self.assertEqual(r.status, 206, f"expected 206 for {first}-{last}:\n{r.describe()}")
        self.assert_media_headers(r, key)
        self.assertEqual(self.assert_single(r, "content-range"), f"bytes {first}-{last}/{size}", r.describe())
        self.assertEqual(r.header("content-length"), str(last - first + 1), r.describe())
        self.assert_type(self.assert_single(r, "content-type"), key, r, "a single range is never multipart")
        self.assertTrue(r.body == self.expected_bytes(key, first, last - first + 1),
                        f"bytes {first}-{last} of {key} differ from the file")

    def expected_bytes(self, key: str, offset: int, length: int) -> bytes:
        if key in LARGE:
            return pattern_bytes(offset, length)
        return self.fx.content(key)[offset:offset + length]

    def assert_type(self, value: str, key: str, r: rawhttp.Response, note: str = "") -> None:
        """The media type (parameters aside) is the one `key` must have."""
        self.assertEqual(rawhttp.media_type_params(value)[0], rawhttp.media_type_params(self.type_of(key))[0],
                         f"Content-Type of {key} {note}:\n{r.describe()}")

    def assert_unsatisfiable(self, r: rawhttp.Response, key: str) -> None:
        self.assertEqual(r.status, 416, r.describe())
        self.assert_framing(r)
        self.assertEqual(r.header("content-range"), f"bytes */{self.fx.size(key)}", r.describe())

    def assert_multipart(self, r: rawhttp.Response, key: str, ranges: list[tuple[int, int]]) -> None:
        """A 206 multipart/byteranges with one part per range, in order, each with the right type and bytes."""
        size = self.fx.size(key)
        self.assertEqual(r.status, 206, r.describe())
        self.assert_media_headers(r, key)
        self.assertIsNone(r.header("content-range"), f"multipart 206 has no top-level Content-Range:\n{r.describe()}")
        ctype = self.assert_single(r, "content-type")
        self.assertEqual(rawhttp.media_type_params(ctype)[0], "multipart/byteranges", r.describe())
        parts = rawhttp.parse_byteranges(ctype, r.body)
        self.assertEqual([(p.first, p.last) for p in parts], ranges, "parts differ from the requested ranges")
        for p in parts:
            self.assertEqual(p.size, size)
            self.assert_type(p.header("content-type") or "", key, r, f"part {p.first}-{p.last}: {p.headers}")
            self.assertTrue(p.data == self.fx.content(key)[p.first:p.last + 1],
                            f"part {p.first}-{p.last}: bytes differ from the file")


def parse_metrics(text: str) -> tuple[dict[str, str], list[tuple[str, dict[str, str], float]]]:
    """Prometheus text format: ({family: type}, [(sample name, labels, value)])."""
    types: dict[str, str] = {}
    samples = []
    sample = re.compile(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?')
    label = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*,?')
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("#"):
            words = line.split()
            if len(words) >= 4 and words[1] == "TYPE":
                types[words[2]] = words[3]
            continue
        m = sample.fullmatch(line.strip())
        if not m:
            raise AssertionError(f"not a Prometheus sample line: {line!r}")
        labels = {k: v for k, v in label.findall(m.group(3) or "")}
        value = float(m.group(4).replace("+Inf", "inf").replace("-Inf", "-inf"))
        samples.append((m.group(1), labels, value))
    return types, samples


def unlabelled_metrics(port: int) -> dict[str, float]:
    """The samples without labels of the server's /metrics, by name."""
    with rawhttp.Connection(port, timeout=5.0) as c:
        r = c.request("GET", "/metrics")
    if r.status != 200:
        raise AssertionError(f"GET /metrics answered {r.status}")
    _, samples = parse_metrics(r.body.decode("utf-8", "replace"))
    return {name: value for name, labels, value in samples if not labels}
