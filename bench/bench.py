#!/usr/bin/python3
"""The measurement part of bench/run (stdlib only): starts the systems, runs workloads 1-5, writes raw results.

bench/run builds the binary and the objects first, then calls this; see bench/README.md. Everything listens on
127.0.0.1; every load loop is bounded in time; every process started here is stopped here, by pid.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))

BUCKET = "bench"
BIG = "big.mp4"
SIGNED_DIR = "private/"  # mg-signed: --signed-prefix for this folder; the same object also lies at the root
LINK_KID = "k1"
CLIPS = ["sample-faststart.mp4", "sample-moov-at-end.mp4", "sample.webm"]
MIB = 1 << 20
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def write_report(out: Path | None, text: str, runs: list) -> None:
    """Prints a Markdown report; with `out`, writes it to OUT.md and the raw runs to OUT.json."""
    print(text)
    if out:
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(json.dumps(runs, indent=1) + "\n")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout} s")
            time.sleep(0.05)


def read_head(s: socket.socket, what: str) -> tuple[bytes, bytes]:
    """An HTTP response's head read from `s` (without its blank line), and the body bytes that came with it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = s.recv(65536)
        if not got:
            raise RuntimeError(f"{what}: closed before the head")
        buf += got
    head, body = buf.split(b"\r\n\r\n", 1)
    return head, body


# -- /proc ---------------------------------------------------------------------------------------------------

def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def rss_kib(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def start_radosgw(rgw_dir: Path) -> dict[str, str]:
    """Starts a one-host radosgw (scripts/radosgw.sh) in `rgw_dir`; returns the environment it exports."""
    log("starting radosgw (one-host Ceph cluster, memstore)")
    env = dict(os.environ, RGW_DEBUG="0", RGW_MEMSTORE_BYTES=str(4 << 30))
    out = subprocess.run([str(ROOT / "scripts" / "radosgw.sh"), "start", str(rgw_dir)], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=180)
    if out.returncode != 0:
        raise RuntimeError(f"radosgw did not start: {out.stderr}")
    exported = {}
    for line in (rgw_dir / "env").read_text().splitlines():
        m = re.match(r"export (\w+)=(.*)", line)
        if m:
            exported[m.group(1)] = m.group(2)
    return exported


def stop_radosgw(rgw_dir: Path) -> None:
    """Stops the radosgw that start_radosgw() started in `rgw_dir` (its output discarded)."""
    subprocess.run([str(ROOT / "scripts" / "radosgw.sh"), "stop", str(rgw_dir)], timeout=120,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def open_fds(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def cpu_ticks(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
        except (OSError, IndexError):
            pass
    return total


# -- processes -----------------------------------------------------------------------------------------------

class Proc:
    """A child process with its output in a file, stopped by pid."""

    all: list["Proc"] = []

    def __init__(self, name: str, args: list[str], logfile: Path, env: dict | None = None, cwd: Path | None = None):
        self.name = name
        self.args = args
        self.logfile = logfile
        self.env = env
        self.cwd = cwd
        self.p: subprocess.Popen | None = None

    def start(self) -> None:
        self.logfile.parent.mkdir(parents=True, exist_ok=True)
        self.out = open(self.logfile, "ab")
        self.p = subprocess.Popen(self.args, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                  env=self.env, cwd=self.cwd, start_new_session=True)
        Proc.all.append(self)

    @property
    def pid(self) -> int:
        return self.p.pid

    def alive(self) -> bool:
        return self.p is not None and self.p.poll() is None

    def stop(self, sig=signal.SIGTERM) -> None:
        if self.p is None:
            return
        if self.p.poll() is None:
            try:
                os.kill(self.p.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                os.kill(self.p.pid, signal.SIGKILL)
                self.p.wait(5)
        self.out.close()
        if self in Proc.all:
            Proc.all.remove(self)
        self.p = None


class Mediagate:
    kind = "mediagate"

    def __init__(self, name: str, exe: Path, work: Path, storage: str, extra: list[str], env: dict):
        self.name = name
        self.exe = exe
        self.dir = work / name
        self.storage = storage
        self.extra = extra
        self.env = env
        self.proc: Proc | None = None
        self.port = 0
        self.wrapper: list[str] = []  # a program that runs the server (bench/instructions.py: valgrind)

    def start(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        logfile = self.dir / "server.log"
        offset = logfile.stat().st_size if logfile.exists() else 0
        args = [*self.wrapper, str(self.exe), "serve", "--listen", "127.0.0.1:0", "--storage", self.storage,
                "--access-log", "off", "--catalog", f"sqlite:{self.dir / 'catalog.db'}", *self.extra]
        self.proc = Proc(self.name, args, logfile, env=self.env, cwd=self.dir)
        self.proc.start()
        deadline = time.monotonic() + 60
        while True:
            with open(logfile, "rb") as f:
                f.seek(offset)
                m = re.search(rb"mediagate listening on http://127\.0\.0\.1:(\d+)/", f.read())
            if m:
                self.port = int(m.group(1))
                return
            if not self.proc.alive() or time.monotonic() > deadline:
                tail = logfile.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{self.name} did not start:\n{tail}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop()
            self.proc = None

    def pids(self) -> list[int]:
        return [self.proc.pid]

    def url(self, key: str) -> str:
        return f"http://127.0.0.1:{self.port}/media/{key}"

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as r:
            text = r.read().decode()
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                try:
                    out[name] = float(value)
                except ValueError:
                    pass
        return out


class Nginx:
    kind = "nginx"

    def __init__(self, name: str, work: Path, template: Path, subst: dict[str, str], ports: list[int]):
        self.name = name
        self.dir = work / name
        self.template = template
        self.subst = dict(subst, DIR=str(self.dir))
        self.ports = ports
        self.proc: Proc | None = None

    workers_expected = 2
    start_timeout = 20.0

    def config(self, text: str) -> str:
        """The configuration to run, from the template's with its placeholders filled."""
        return text

    def command(self, conf: Path) -> list[str]:
        return ["nginx", "-c", str(conf), "-e", str(self.dir / "error.log")]

    def start(self) -> None:
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "cache"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        text = self.template.read_text()
        for k, v in self.subst.items():
            text = text.replace(f"@{k}@", str(v))
        left = re.findall(r"@[A-Z_]+@", text)
        if left:
            raise RuntimeError(f"unfilled placeholders in {self.template}: {left}")
        conf = self.dir / "nginx.conf"
        conf.write_text(self.config(text))
        self.proc = Proc(self.name, self.command(conf), self.dir / "stdout.log")
        self.proc.start()
        for port in self.ports:
            wait_port(port, self.start_timeout)
        deadline = time.monotonic() + 10
        while len(self.workers()) < self.workers_expected and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        if self.proc:
            self.proc.stop(signal.SIGTERM)  # fast shutdown; the master waits for its workers
            self.proc = None

    def workers(self) -> list[int]:
        return [c for c in children(self.proc.pid) if "worker process" in cmdline(c)]

    def pids(self) -> list[int]:
        return self.workers()


def run_wrk(url: str, script: str, args: list[str], seconds: float, conns: int = 16, threads: int = 2,
            prefix: list[str] | None = None) -> dict:
    """One wrk run of bench/wrk/SCRIPT (ARGS after "--"), PREFIX before wrk (e.g. taskset): the JSON line
    report.lua prints (requests, bytes, duration_us, err_*, lat_*_us). Raises when wrk fails."""
    cmd = [*(prefix or []), "wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds:g}s", "--timeout", "10s", "-s",
           str(HERE / "wrk" / script), url]
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=seconds + 60,
                         env=dict(os.environ, BENCH_WRK_DIR=str(HERE / "wrk")))
    line = [l for l in out.stdout.splitlines() if l.startswith("{")]
    if out.returncode != 0 or not line:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr.strip()[-500:]} {out.stdout[-500:]}")
    return json.loads(line[-1])


def wrk_errors(r: dict) -> int:
    return r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]


def fast_upstream(work: Path, media: Path) -> Nginx:
    """The fast S3-shaped upstream, not yet started: nginx serving WORK/fast-root/BUCKET, a link to the objects
    directory, on ports[0]."""
    root = work / "fast-root"
    root.mkdir(parents=True, exist_ok=True)
    link = root / BUCKET
    if link.is_symlink() or link.exists():
        link.unlink()
    link.symlink_to(media)
    port = free_port()
    return Nginx("nginx-fast-upstream", work, HERE / "nginx" / "fast-upstream.conf.in",
                 {"PORT": port, "ROOT": root, "BUCKET": BUCKET}, [port])


def fast_upstream_env(fast: Nginx) -> dict[str, str]:
    """The environment of a mediagate reading the fast upstream as s3://BUCKET (it ignores the signature)."""
    return dict(os.environ, AWS_ENDPOINT_URL=f"http://127.0.0.1:{fast.ports[0]}", AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")


def server_args(p: argparse.ArgumentParser, seconds: float, reps: int) -> None:
    """The options of the scripts that measure a mediagate binary beside nginx on BIG."""
    p.add_argument("--exe", type=Path, required=True)
    p.add_argument("--media", type=Path, required=True, help=f"a directory with {BIG}")
    p.add_argument("--seconds", type=type(seconds), default=seconds)
    p.add_argument("--reps", type=int, default=reps)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")


class System:
    """One thing a workload is run against: a server role and the URL of an object in it."""

    def __init__(self, name: str, server, url_fn, kind: str, upstream_log: Path | None = None,
                 fast_log: Path | None = None, restart=None):
        self.name = name
        self.server = server
        self.url = url_fn
        self.kind = kind  # "mediagate", "nginx" or "upstream"
        self.upstream_log = upstream_log  # nginx: its access log with $upstream_bytes_received
        self.fast_log = fast_log  # the fast upstream's access log ($bytes_sent), when it is the upstream
        self.restart = restart  # cold roles: a function that restarts the server with an empty cache
        self.broken: str | None = None


def sign_link(key: str, secret: bytes, expires: int, kid: str = LINK_KID) -> str:
    """The query of a signed link, as src/http/signed_link.cpp's canonical_link_string + sign_link make it:
    HMAC-SHA256 with the raw secret over the canonical string (exact key, no IP binding), base64url unpadded."""
    canonical = f"mediagate-link-v1\nGET\n{key}\n{expires}\nexact\n"
    mac = hmac.new(secret, canonical.encode(), hashlib.sha256).digest()
    sig = base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    return f"exp={expires}&kid={kid}&sig={sig}"


def log_offset(path: Path | None) -> int:
    return path.stat().st_size if path and path.exists() else 0


def sum_log(path: Path | None, offset: int, field: int) -> tuple[int, int]:
    """(sum of numeric FIELD, lines) of the log lines written after OFFSET; '1, 2' lists and '-' allowed."""
    if not path or not path.exists():
        return 0, 0
    total = lines = 0
    with open(path, "rb") as f:
        f.seek(offset)
        for line in f.read().decode(errors="replace").splitlines():
            parts = line.split(" ", 2)
            if len(parts) <= field:
                continue
            lines += 1
            for v in re.findall(r"\d+", parts[field] if field < 2 else parts[2]):
                total += int(v)
    return total, lines


# -- the bench ----------------------------------------------------------------------------------------------

class Bench:
    def __init__(self, a):
        self.a = a
        self.work = Path(a.work).resolve()
        self.media = Path(a.media).resolve()
        self.exe = Path(a.exe).resolve()
        self.raw = self.work / "raw.jsonl"
        self.size = (self.media / BIG).stat().st_size
        self.systems: dict[str, System] = {}
        self.servers: list = []
        self.notes: list[str] = []
        self.rgw_dir = self.work / "rgw"
        self.rgw_env: dict[str, str] = {}

    # -- set-up --

    def start_rgw(self) -> None:
        self.rgw_env = start_radosgw(self.rgw_dir)
        self.rgw_port = int(self.rgw_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
        log(f"radosgw on 127.0.0.1:{self.rgw_port}")

    def stop_rgw(self) -> None:
        if self.rgw_dir.exists():
            stop_radosgw(self.rgw_dir)

    def upload(self) -> None:
        os.environ.update(self.rgw_env)
        import s3util  # noqa: E402  (tests/integration; botocore)

        c = s3util.client_from_env()
        s3util.create_bucket(BUCKET, client=c)
        env = dict(os.environ, **self.rgw_env)
        for key in [BIG, *CLIPS]:
            subprocess.run([str(self.exe), "put", str(self.media / key), f"s3://{BUCKET}/{key}"], env=env, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=300)
        # nginx cannot sign SigV4: a bucket policy lets it (and wrk, for the "upstream directly" rows) read
        # the objects anonymously. mediagate still signs every request.
        policy = {"Version": "2012-10-17", "Statement": [{
            "Sid": "BenchPublicRead", "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
            "Resource": [f"arn:aws:s3:::{BUCKET}/*"]}]}
        c.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
        url = f"http://127.0.0.1:{self.rgw_port}/{BUCKET}/{CLIPS[0]}"
        try:
            urllib.request.urlopen(url, timeout=10).read()
            self.notes.append("radosgw: the bucket has a public-read bucket policy (s3:GetObject for \"*\") so that "
                              "nginx proxies anonymously; mediagate signs its requests (SigV4) as usual.")
        except urllib.error.HTTPError:
            for key in [BIG, *CLIPS]:
                c.put_object_acl(Bucket=BUCKET, Key=key, ACL="public-read")
            urllib.request.urlopen(url, timeout=10).read()
            self.notes.append("radosgw: objects have the public-read ACL so that nginx proxies anonymously; "
                              "mediagate signs its requests (SigV4) as usual.")
        log(f"uploaded {BIG} ({self.size} bytes) and {len(CLIPS)} clips to s3://{BUCKET}")

    def start_servers(self) -> None:
        w = self.work
        fast = fast_upstream(w, self.media)
        self.fast_port = fast.ports[0]
        fast.start()
        self.servers.append(fast)
        self.fast = fast
        fast_log = fast.dir / "access.log"

        ports = {k: free_port() for k in ("STATIC_PORT", "S3_PORT", "FASTPROXY_PORT", "CACHE_PORT")}
        subst = dict(ports, RGW_PORT=self.rgw_port, FAST_PORT=self.fast_port, MEDIA_DIR=self.media, BUCKET=BUCKET)
        gw = Nginx("nginx", w, HERE / "nginx" / "gateway.conf.in", subst, list(ports.values()))
        gw.start()
        self.servers.append(gw)
        cports = {k: free_port() for k in ("STATIC_PORT", "S3_PORT", "FASTPROXY_PORT", "CACHE_PORT")}
        cold_ngx = Nginx("nginx-cold", w, HERE / "nginx" / "gateway.conf.in",
                         dict(subst, **cports), list(cports.values()))
        cold_ngx.start()
        self.servers.append(cold_ngx)

        rgw_env = dict(os.environ, **self.rgw_env)
        fast_env = dict(rgw_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{self.fast_port}")
        s3 = f"s3://{BUCKET}"
        mg_local = Mediagate("mg-local", self.exe, w, str(self.media), [], dict(os.environ))
        mg_s3 = Mediagate("mg-s3", self.exe, w, s3, [], rgw_env)
        mg_fast = Mediagate("mg-fast", self.exe, w, s3, [], fast_env)
        # The same bucket read the way nginx reads it: unsigned (--s3-anonymous, no keys in the environment),
        # which takes radosgw's cost of checking SigV4 signatures out of the comparison.
        anon_env = {k: v for k, v in rgw_env.items()
                    if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")}
        mg_anon = Mediagate("mg-s3-anon", self.exe, w, s3, ["--s3-anonymous"], anon_env)
        mg_signed = self.make_signed_server()
        mgs = [mg_local, mg_s3, mg_anon, mg_fast, mg_signed]
        mg_cache = mg_cold = None
        if self.a.cache:
            mg_cache = Mediagate("mg-cache", self.exe, w, s3, ["--cache-dir", str(w / "mg-cache" / "slices"),
                                                              "--cache-size", "4GiB", "--cache-slice", "1MiB"], rgw_env)
            mg_cold = Mediagate("mg-cache-cold", self.exe, w, s3,
                                ["--cache-dir", str(w / "mg-cache-cold" / "slices"), "--cache-size", "4GiB",
                                 "--cache-slice", "1MiB"], rgw_env)
            mgs += [mg_cache, mg_cold]
        for m in mgs:
            m.start()
            self.servers.append(m)

        def ngx_url(port):
            return lambda key: f"http://127.0.0.1:{port}/media/{key}"

        S = self.systems
        S["mg-local"] = System("mg-local", mg_local, mg_local.url, "mediagate")
        S["ngx-static"] = System("ngx-static", gw, ngx_url(ports["STATIC_PORT"]), "nginx")
        S["mg-s3"] = System("mg-s3", mg_s3, mg_s3.url, "mediagate")
        S["ngx-s3"] = System("ngx-s3", gw, ngx_url(ports["S3_PORT"]), "nginx", upstream_log=gw.dir / "s3.log")
        S["mg-s3-anon"] = System("mg-s3-anon", mg_anon, mg_anon.url, "mediagate")
        S["rgw"] = System("rgw", None, lambda key: f"http://127.0.0.1:{self.rgw_port}/{BUCKET}/{key}", "upstream")
        S["mg-fast"] = System("mg-fast", mg_fast, mg_fast.url, "mediagate", fast_log=fast_log)
        S["ngx-fast"] = System("ngx-fast", gw, ngx_url(ports["FASTPROXY_PORT"]), "nginx",
                               upstream_log=gw.dir / "fast.log", fast_log=fast_log)
        S["fast"] = System("fast", fast, lambda key: f"http://127.0.0.1:{self.fast_port}/{BUCKET}/{key}", "upstream")
        S["ngx-cache"] = System("ngx-cache", gw, ngx_url(ports["CACHE_PORT"]), "nginx",
                                upstream_log=gw.dir / "cache.log")
        S["ngx-cache-cold"] = System("ngx-cache-cold", cold_ngx, ngx_url(cports["CACHE_PORT"]), "nginx",
                                     upstream_log=cold_ngx.dir / "cache.log",
                                     restart=lambda: self.restart_empty(cold_ngx, cold_ngx.dir / "cache"))
        # Issue 12: one server, the same object public (at the root) and private (under SIGNED_DIR, signed links).
        S["mg-signed-pub"] = System("mg-signed-pub", mg_signed, mg_signed.url, "mediagate")
        S["mg-signed"] = System("mg-signed", mg_signed, self.signed_url, "mediagate")
        if mg_cache:
            S["mg-cache"] = System("mg-cache", mg_cache, mg_cache.url, "mediagate")
            S["mg-cache-cold"] = System("mg-cache-cold", mg_cold, mg_cold.url, "mediagate",
                                        restart=lambda: self.restart_empty(mg_cold, mg_cold.dir / "slices"))
        else:
            self.notes.append("slice cache rows skipped: `mediagate serve --help` lists no --cache-dir.")
        log("servers up: " + ", ".join(S))

    def make_signed_server(self) -> Mediagate:
        """mediagate on local files with a signing key and --signed-prefix SIGNED_DIR; its root holds hard links
        to the same files at the root and under SIGNED_DIR (local storage refuses symlinks leaving the root)."""
        root = self.work / "mg-signed" / "root"
        (root / SIGNED_DIR).mkdir(parents=True, exist_ok=True)
        for key in [BIG, *CLIPS]:
            for dst in (root / key, root / SIGNED_DIR / key):
                if not dst.exists():
                    try:
                        os.link(self.media / key, dst)
                    except OSError:
                        shutil.copyfile(self.media / key, dst)
        self.link_secret = os.urandom(32)
        keys = self.work / "mg-signed" / "signing-keys"
        fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"{LINK_KID} {self.link_secret.hex()}\n")
        os.chmod(keys, 0o600)
        return Mediagate("mg-signed", self.exe, self.work, str(root),
                         ["--signing-keys", str(keys), "--signed-prefix", SIGNED_DIR], dict(os.environ))

    def signed_url(self, key: str) -> str:
        """A signed link to SIGNED_DIR + KEY on mg-signed, valid for a day (wrk sends the same link each time)."""
        private = SIGNED_DIR + key
        query = sign_link(private, self.link_secret, int(time.time()) + 86400)
        return self.systems["mg-signed"].server.url(private) + "?" + query

    def check_signed(self) -> None:
        """mg-signed must refuse the private object without a link (else the row measures nothing)."""
        s = self.systems.get("mg-signed")
        if not s or s.broken:
            return
        status, _, _, _ = self.fetch(s.server.url(SIGNED_DIR + BIG), "bytes=0-1")
        if status != 403:
            s.broken = f"the private object answered {status} without a signed link (403 expected)"
            log(f"{s.name}: {s.broken}")
            self.notes.append(f"{s.name} skipped: {s.broken}")

    def restart_empty(self, server, cache_dir: Path) -> None:
        server.stop()
        shutil.rmtree(cache_dir, ignore_errors=True)
        server.start()
        # Connections to the server must not be refused right after start (nginx binds before forking).
        if isinstance(server, Mediagate):
            wait_port(server.port)

    def stop_all(self) -> None:
        for s in reversed(self.servers):
            try:
                s.stop()
            except Exception as e:  # keep stopping the others
                log(f"stopping {getattr(s, 'name', s)}: {e}")
        for p in list(Proc.all):
            p.stop()
        self.stop_rgw()

    # -- checks and warm-up --

    def fetch(self, url: str, range_value: str | None = None, limit: int | None = None) -> tuple[int, dict, bytes, float]:
        req = urllib.request.Request(url, headers={"Range": range_value} if range_value else {})
        t0 = time.perf_counter()
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                body = r.read() if limit is None else r.read(limit)
                return r.status, dict(r.headers), body, time.perf_counter() - t0
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read(), time.perf_counter() - t0

    def stream_once(self, url: str) -> dict:
        """One whole-object GET on a new connection, body counted and dropped; for the cold-cache rows."""
        u = urllib.parse.urlsplit(url)
        host, port, path = u.hostname, u.port, u.path + (f"?{u.query}" if u.query else "")
        assert host == "127.0.0.1"
        buf = bytearray(1 << 20)
        t0 = time.perf_counter()
        s = socket.create_connection((host, port), timeout=60)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode())
        got = 0
        head = b""
        ttfb = None
        while True:
            n = s.recv_into(buf)
            if ttfb is None:
                ttfb = time.perf_counter() - t0
            if n == 0:
                break
            got += n
            if len(head) < 4096:
                head += bytes(buf[: min(n, 4096)])
        s.close()
        secs = time.perf_counter() - t0
        status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
        end = head.find(b"\r\n\r\n")
        body = got - (end + 4 if end >= 0 else 0)
        return {"status": status, "body_bytes": body, "seconds": secs, "ttfb_ms": (ttfb or 0) * 1e3,
                "MBps": body / secs / 1e6, "ok": status == 200 and body == self.size}

    def check(self, s: System) -> None:
        """Correct bytes first: a ranged GET must give 206 with the right Content-Range and the file's bytes."""
        with open(self.media / BIG, "rb") as f:
            f.seek(1000003)
            want = f.read(65536)
        status, headers, body, _ = self.fetch(s.url(BIG), "bytes=1000003-1065538")
        cr = headers.get("Content-Range", "")
        if status != 206 or cr != f"bytes 1000003-1065538/{self.size}" or body != want:
            s.broken = f"ranged GET check failed: status {status}, Content-Range '{cr}', {len(body)} bytes" + \
                       ("" if body == want else " (wrong bytes)")
            log(f"{s.name}: {s.broken}")
            self.notes.append(f"{s.name} skipped: {s.broken}")

    def warm_up(self) -> None:
        self.check_signed()
        for s in self.systems.values():
            self.check(s)
            if s.broken:
                continue
            if s.restart:
                continue  # cold roles are emptied before each of their runs
            r = self.stream_once(s.url(BIG))
            for clip in CLIPS:
                self.fetch(s.url(clip))
            log(f"warm-up {s.name}: whole {BIG} {r['MBps']:.0f} MB/s, status {r['status']}")

    # -- runners --

    def record(self, rec: dict) -> None:
        rec["time"] = time.time()
        with open(self.raw, "a") as f:
            f.write(json.dumps(rec) + "\n")

    def wrk(self, url: str, conns: int, script: str, args: list[str], duration: float) -> dict:
        r = run_wrk(url, script, args, max(1, round(duration)), conns, threads=1 if conns == 1 else 2)
        secs = r["duration_us"] / 1e6
        return {"requests": r["requests"], "rps": r["requests"] / secs, "MBps": r["bytes"] / secs / 1e6,
                "bytes_per_req": r["bytes"] / max(1, r["requests"]), "p50_ms": r["lat_p50_us"] / 1e3,
                "p99_ms": r["lat_p99_us"] / 1e3, "errors": wrk_errors(r), "wrk": r}

    def loadgen(self, args: list[str], timeout: float, on_line=None) -> dict:
        cmd = ["/usr/bin/python3", str(HERE / "loadgen.py"), *args]
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        last = None
        deadline = time.monotonic() + timeout
        try:
            for line in p.stdout:
                line = line.strip()
                if line.startswith("{"):
                    last = json.loads(line)
                elif on_line:
                    on_line(line)
                if time.monotonic() > deadline:
                    break
            p.wait(max(1, deadline - time.monotonic()))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if last is None:
            raise RuntimeError(f"loadgen {args[0]} failed: {p.stderr.read()[-800:]}")
        return last

    # upstream byte counters around a run (workload 3)
    def upstream_mark(self, s: System) -> dict:
        m = {"fast": log_offset(s.fast_log)}
        if s.kind == "mediagate":
            m["mg"] = s.server.metrics().get("mediagate_s3_received_bytes_total", 0.0)
        elif s.upstream_log:
            m["log"] = log_offset(s.upstream_log)
        return m

    def upstream_delta(self, s: System, mark: dict) -> dict:
        time.sleep(1.5)  # the gateway notices the closed clients; nginx flushes its buffered logs (flush=1s)
        out = {}
        if s.kind == "mediagate":
            out["upstream_bytes"] = s.server.metrics().get("mediagate_s3_received_bytes_total", 0.0) - mark["mg"]
        elif s.upstream_log:
            out["upstream_bytes"], out["upstream_log_lines"] = sum_log(s.upstream_log, mark["log"], 2)
        if s.fast_log:
            out["fast_sent_bytes"], out["fast_log_lines"] = sum_log(s.fast_log, mark["fast"], 1)
        return out

    def upstream_pids(self, s: System) -> list[int]:
        """The processes of the store a system reads: radosgw and its OSD, or the fast upstream's workers."""
        if s.fast_log or s.name == "fast":
            return self.fast.pids()
        if s.name in ("rgw", "mg-s3", "mg-s3-anon", "ngx-s3") or s.name.startswith(("mg-cache", "ngx-cache")):
            rgw = str(self.rgw_dir)
            return [int(d.name) for d in Path("/proc").iterdir() if d.name.isdigit() and
                    cmdline(int(d.name)).split(" ", 1)[0].endswith(("radosgw", "ceph-osd")) and
                    rgw in cmdline(int(d.name))]
        return []

    def run_one(self, workload: str, variant: str, s: System, rep: int) -> None:
        a = self.a
        rec = {"workload": workload, "variant": variant, "system": s.name, "rep": rep,
               "loadavg": float(Path("/proc/loadavg").read_text().split()[0])}
        try:
            if s.restart:
                s.restart()
            if workload == "w1":
                if variant == "cold-c1":
                    rec.update(self.stream_once(s.url(BIG)))
                    if not rec["ok"]:
                        rec["errors"] = 1
                else:
                    conns = int(variant[1:])
                    rec.update(self.wrk(s.url(BIG), conns, "full.lua", [], a.duration_w1))
            elif workload == "w2":
                # CPU per request of the server and of the store behind it (radosgw with its OSD, or the fast
                # upstream): on 2 shared cores, what the store spends (e.g. checking SigV4) is taken from the
                # gateway and the load generator.
                pids, up = (s.server.pids() if s.server else []), self.upstream_pids(s)
                c0, u0 = cpu_ticks(pids), cpu_ticks(up)
                rec.update(self.wrk(s.url(BIG), 16, "ranges.lua", [str(self.size), "65536"], a.duration))
                n = max(1, rec["requests"])
                if pids:
                    rec["server_cpu_us_per_req"] = (cpu_ticks(pids) - c0) / CLK_TCK * 1e6 / n
                if up:
                    rec["upstream_cpu_us_per_req"] = (cpu_ticks(up) - u0) / CLK_TCK * 1e6 / n
                if rec["bytes_per_req"] < 65536:
                    rec["short_bodies"] = True
            elif workload == "w3":
                mark = self.upstream_mark(s)
                r = self.loadgen(["seek", s.url(BIG), "--size", str(self.size), "--read", str(MIB), "--conns",
                                  str(a.seek_conns), "--procs", str(a.seek_procs), "--duration", str(a.duration)],
                                 a.duration + 60)
                rec.update(r)
                rec.update(self.upstream_delta(s, mark))
                started = max(1, r["started"])
                if "upstream_bytes" in rec:
                    rec["upstream_per_req"] = rec["upstream_bytes"] / started
                if "fast_sent_bytes" in rec:
                    rec["fast_sent_per_req"] = rec["fast_sent_bytes"] / started
            elif workload == "w4":
                rec.update(self.slow_readers(s))
            elif workload == "w5":
                r = self.loadgen(["ttfb", *[s.url(c) for c in CLIPS], "--count", str(a.ttfb_count)], 300)
                rec.update(r)
        except Exception as e:
            rec["failed"] = f"{type(e).__name__}: {e}"
            log(f"{workload} {variant} {s.name} rep {rep}: FAILED {rec['failed']}")
        self.record(rec)
        brief = {k: rec[k] for k in ("rps", "MBps", "p50_ms", "p99_ms", "upstream_per_req", "fast_sent_per_req",
                                     "rss_per_stream_kib", "server_cpu_us_per_req", "upstream_cpu_us_per_req",
                                     "cpu_pct", "errors") if k in rec}
        log(f"{workload} {variant:8} {s.name:15} rep {rep}: " +
            ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in brief.items()))

    def fresh(self, s: System) -> None:
        """Restarts the server of S (caches on disk stay) and warms it lightly: a process keeps the memory
        earlier workloads made it allocate (malloc does not hand it back), which would hide the growth."""
        srv = s.server
        srv.stop()
        srv.start()
        if isinstance(srv, Mediagate):
            wait_port(srv.port)
        for clip in CLIPS:
            self.fetch(s.url(clip))
        self.fetch(s.url(BIG), "bytes=0-65535")

    def slow_readers(self, s: System) -> dict:
        a = self.a
        self.fresh(s)
        pids = s.server.pids()
        time.sleep(0.5)
        rss0 = rss_kib(pids)
        fds0 = open_fds(pids)
        mark = s.server.metrics() if s.kind == "mediagate" else {}
        state = {"ramped": None, "progress": {}}
        samples: list[int] = []
        series: list[dict] = []  # the soak's time series: one point every 10 s
        cpu = {}

        def on_line(line: str) -> None:
            if line == "ramped":
                state["ramped"] = time.monotonic()
            elif line.startswith("progress "):
                state["progress"] = json.loads(line[len("progress "):])

        # Sample from a thread: the loadgen runs as a child and reports "ramped" on stdout.
        import threading

        stop = threading.Event()

        def sampler():
            while not stop.is_set():
                if state["ramped"] is not None:
                    if "t0" not in cpu and time.monotonic() - state["ramped"] > 0.5:
                        cpu["t0"], cpu["c0"] = time.monotonic(), cpu_ticks(pids)
                    if "t0" in cpu:
                        samples.append(rss_kib(pids))
                        cpu["t1"], cpu["c1"] = time.monotonic(), cpu_ticks(pids)
                    if a.soak and time.monotonic() >= state.get("next_point", 0):
                        state["next_point"] = time.monotonic() + 10.0
                        point = {"t": round(time.monotonic() - state["ramped"], 1), "rss_kib": rss_kib(pids),
                                 "fds": open_fds(pids), "cpu_ticks": cpu_ticks(pids)}
                        point.update({"client_" + k: v for k, v in state["progress"].items() if k != "t"})
                        series.append(point)
                stop.wait(0.25)

        th = threading.Thread(target=sampler, daemon=True)
        th.start()
        try:
            args = ["slow", s.url(BIG), "--size", str(self.size), "--streams", str(a.streams), "--rate",
                    str(a.rate), "--ramp", str(a.ramp), "--hold", str(a.soak or a.hold), "--rcvbuf", str(a.rcvbuf)]
            if a.soak:  # viewers come and go: each reads about 8 MB (32 s at 2 Mbit/s), then another starts
                args += ["--cycle", str(8 * 1000 * 1000)]
            r = self.loadgen(args, a.ramp + (a.soak or a.hold) + 120, on_line)
        finally:
            stop.set()
            th.join()
        out = dict(r)
        out["rss_idle_kib"] = rss0
        if a.soak:
            out["series"] = series
            # Every stream's descriptors must be released once the clients left: wait up to 20 s for the
            # count to come back to where it was before the run.
            out["fds_before"] = fds0
            t_gone = time.monotonic()
            while open_fds(pids) > fds0 + 8 and time.monotonic() - t_gone < 20:
                time.sleep(0.1)
            out["fds_after"] = open_fds(pids)
            out["fds_settle_s"] = round(time.monotonic() - t_gone, 2)
        out["rss_peak_kib"] = max(samples) if samples else rss_kib(pids)
        out["rss_per_stream_kib"] = (out["rss_peak_kib"] - rss0) / a.streams
        if "t1" in cpu and cpu["t1"] > cpu["t0"]:
            out["cpu_pct"] = (cpu["c1"] - cpu["c0"]) / CLK_TCK / (cpu["t1"] - cpu["t0"]) * 100
        out["errors"] = r["errors"]
        if mark:  # what the streams cost upstream (a warm cache should read nothing but metadata)
            after = s.server.metrics()
            for k in ("mediagate_s3_received_bytes_total", "mediagate_cache_hits_total", "mediagate_cache_misses_total"):
                if k in after:
                    out[k.replace("mediagate_", "").replace("_total", "")] = after[k] - mark.get(k, 0.0)
        time.sleep(1.0)  # let the server close the streams before the next run
        return out

    # -- the plan --

    def plan(self) -> list[tuple[str, str, list[str]]]:
        have = set(self.systems)
        cache_warm = ["mg-cache", "ngx-cache"] if "mg-cache" in have else []
        cache_cold = ["mg-cache-cold", "ngx-cache-cold"] if "mg-cache-cold" in have else []
        base = ["mg-local", "ngx-static", "mg-s3", "mg-s3-anon", "ngx-s3", "rgw", "mg-fast", "ngx-fast", "fast"]
        plan = [
            ("w1", "c1", base + cache_warm),
            ("w1", "c8", base + cache_warm),
            ("w1", "cold-c1", cache_cold),
            ("w2", "c16", base + cache_warm),
            ("w2", "cold-c16", cache_cold),
            # Issue 12: signed links vs public, the same object on the same server; the order alternates by rep.
            ("w2", "c16-signed", ["mg-signed-pub", "mg-signed"]),
            ("w3", "c%d" % self.a.seek_conns, base + cache_warm),
            ("w4", "s%d" % self.a.streams, ["mg-local", "ngx-static", "mg-fast", "ngx-fast"] + cache_warm),
            ("w5", "c1", base + cache_warm),
        ]
        if self.a.soak:  # bench/run --soak: only the slow readers, for a long time, on the gateway's own paths
            plan = [("w4", "soak", [x for x in ("mg-local", "mg-fast", "mg-cache") if x in have])]
        only = set(self.a.only.split(",")) if self.a.only else None
        chosen = set(self.a.systems.split(",")) if self.a.systems else None
        plan = [(w, v, [x for x in systems if chosen is None or x in chosen]) for w, v, systems in plan]
        return [(w, v, [x for x in systems if not self.systems[x].broken]) for w, v, systems in plan
                if systems and (only is None or w in only)]

    def run(self) -> None:
        meta = {"started": time.time(), "args": vars(self.a), "size": self.size,
                "loadavg_before": Path("/proc/loadavg").read_text().strip()}
        try:
            self.start_rgw()
            self.upload()
            self.start_servers()
            self.warm_up()
            if self.a.serve_only:
                # For profiling by hand: every system stays up for SERVE_ONLY seconds, then everything stops.
                for name, sys_ in self.systems.items():
                    pids = sys_.server.pids() if sys_.server else []
                    log(f"{name:15} {sys_.url(BIG)}  pids {pids}")
                time.sleep(self.a.serve_only)
                return
            t0 = time.monotonic()
            for workload, variant, systems in self.plan():
                for rep in range(1, self.a.reps + 1):  # interleaved: every system once per repetition
                    order = systems
                    if variant == "c16-signed" and rep % 2 == 0:
                        order = systems[::-1]  # signed/public pairs: alternate which goes first
                    for name in order:
                        self.run_one(workload, variant, self.systems[name], rep)
            meta["measure_seconds"] = time.monotonic() - t0
        finally:
            meta["loadavg_after"] = Path("/proc/loadavg").read_text().strip()
            meta["notes"] = self.notes
            meta["finished"] = time.time()
            (self.work / "meta.json").write_text(json.dumps(meta, indent=1))
            self.stop_all()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--work", required=True, help="scratch directory (servers, logs, caches, raw results)")
    ap.add_argument("--media", required=True, help="directory with big.mp4 and the sample clips")
    ap.add_argument("--exe", required=True, help="the mediagate binary")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per wrk / seek run")
    ap.add_argument("--duration-w1", type=float, default=3.0, help="seconds per large-object wrk run")
    ap.add_argument("--seek-conns", type=int, default=8)
    ap.add_argument("--seek-procs", type=int, default=2)
    ap.add_argument("--streams", type=int, default=2000)
    ap.add_argument("--rate", type=float, default=250_000.0, help="bytes/s per slow reader (2 Mbit/s)")
    ap.add_argument("--ramp", type=float, default=2.0)
    ap.add_argument("--hold", type=float, default=6.0)
    ap.add_argument("--rcvbuf", type=int, default=262144)
    ap.add_argument("--ttfb-count", type=int, default=150)
    ap.add_argument("--cache", action=argparse.BooleanOptionalAction, default=True,
                    help="measure the slice cache rows (bench/run passes --no-cache when serve has no --cache-dir)")
    ap.add_argument("--serve-only", type=float, default=0, metavar="SECONDS",
                    help="start and warm up every system, print their URLs and pids, keep them up this long, stop")
    ap.add_argument("--quick", action="store_true", help="only recorded in the results (bench/run --quick)")
    ap.add_argument("--only", default="", help="comma-separated workloads to run (w1..w5); default all")
    ap.add_argument("--systems", default="", help="comma-separated systems to measure (e.g. mg-s3,ngx-s3,rgw); "
                                                  "default all")
    ap.add_argument("--soak", type=float, default=0, metavar="SECONDS",
                    help="run only workload 4 on mediagate's paths for this long, streams cycling (bench/run --soak)")
    a = ap.parse_args()
    b = Bench(a)

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    b.run()


if __name__ == "__main__":
    main()
