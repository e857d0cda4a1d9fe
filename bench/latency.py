#!/usr/bin/env python3
"""Issue 15: what a viewer waits for when the S3 is across a network. radosgw behind the shaped S3 of
tests/integration/shaped_s3.py (a fixed delay before every request, a per-connection rate cap), and side by
side through it: mediagate (no cache; slice cache cold and warm; optionally mg-cache-noahead, the slice cache
without read-ahead, and mg-onefirst, a player's start in one GET), nginx proxy_pass, nginx slice+proxy_cache,
and the browser reading the shaped S3 directly (a presigned URL); mediagate on local storage as the floor.
Headless chromium (bench/latency_browser.mjs) measures the time to the first painted frame after `src` is set
and after each of 5 seeks, for a fast-start MP4 and a moov-at-end copy of the same ~200 MB object; the shaped
S3's log gives the S3 requests and bytes of every viewer action.

    bench/latency.py --exe build/mediagate --media DIR_WITH_big.mp4 --node-dir DIR_WITH_node_modules

Cold = an object name no one has read (a server-side copy made for the session); warm = the same name again,
in a fresh browser context (so the browser's own cache is empty: only the gateway's is warm).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import struct
import time
import urllib.parse
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(HERE))
from bench import read_head  # noqa: E402
from shaped_s3 import ShapedS3  # noqa: E402

BUCKET = "latency"
FILES = {"fast-start": "fast.mp4", "moov-at-end": "moov-end.mp4"}

NGINX_CONF = """\
user root;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush off;
  tcp_nodelay on;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  upstream s3 {{
    server 127.0.0.1:{s3_port};
    keepalive 64;
  }}
  proxy_cache_path {dir}/cache levels=1:2 keys_zone=media:16m max_size=8g inactive=1h use_temp_path=off;
  proxy_http_version 1.1;
  proxy_set_header Connection "";
  proxy_buffering on;
  proxy_buffer_size 16k;
  proxy_buffers 4 16k;
  proxy_busy_buffers_size 32k;
  proxy_max_temp_file_size 0;
  server {{
    listen 127.0.0.1:{proxy_port};
    location /media/ {{ proxy_pass http://s3/{bucket}/; }}
  }}
  server {{
    listen 127.0.0.1:{cache_port};
    location /media/ {{
      slice 1m;
      proxy_cache media;
      proxy_cache_key $uri$slice_range;
      proxy_set_header Range $slice_range;
      proxy_cache_valid 200 206 1h;
      proxy_pass http://s3/{bucket}/;
    }}
  }}
}}
"""


def log(msg: str) -> None:
    print(f"latency: {msg}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Proc:
    def __init__(self, name: str, cmd: list[str], logfile: Path, env=None) -> None:
        self.name = name
        self.out = open(logfile, "wb")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=self.out, stderr=subprocess.STDOUT,
                                     env=env)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


def start_mediagate(exe: Path, work: Path, name: str, args: list[str], env: dict) -> tuple[Proc, int]:
    port = free_port()
    d = work / name
    d.mkdir(parents=True, exist_ok=True)
    p = Proc(name, [str(exe), "serve", "--listen", f"127.0.0.1:{port}", "--access-log", "off",
                    "--catalog", f"sqlite:{d / 'catalog.db'}", *args], d / "out.log", env)
    wait_port(port)
    return p, port


# -- The scripted player (--player script) ---------------------------------------------------------------------
# Chrome's requests for a cold start and for seeks, replayed from Python without decoding: what the gateway and
# the store make a player wait for, without a browser's decoding and scheduling on a busy 2-core machine. The
# "first frame" is the moment the bytes it needs are here: the index (moov) and the file's first FRAMES video
# packets (and what lies between them), as ffprobe finds them; a seek needs as many bytes from its offset.
FRAMES = 8
BLOCK = 64 << 10
PLAYERS = {"chromium": "headless chromium",
           "script": f"scripted player: Chrome's requests without decoding; a first frame = the index and the "
                     f"bytes of the first {FRAMES} video packets in hand, a seek = as many bytes from its share of "
                     f"the file in hand"}


def first_frames_end(path: Path) -> int:
    """The offset just past the file's first FRAMES video packets."""
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size",
                          "-read_intervals", f"%+#{FRAMES}", "-of", "csv=p=0", str(path)], capture_output=True,
                         text=True, check=True).stdout.split()
    return max(int(pos) + int(size) for pos, size in (line.split(",")[:2] for line in out))


BOX = struct.Struct(">I4s")


class ScriptedPlayer:
    def __init__(self, url: str) -> None:
        u = urllib.parse.urlsplit(url)
        self.host, self.port = u.hostname, u.port or 80
        self.path = u.path + (f"?{u.query}" if u.query else "")
        self.requests: list[dict] = []

    def open(self, first: int) -> tuple[socket.socket, bytes, dict]:
        """Sends GET bytes=FIRST- on a new connection; returns it, the body bytes that came with the head, and
        the trace entry (epoch ms, as the browser script records them)."""
        entry = {"range": f"bytes={first}-", "at": time.time() * 1000}
        self.requests.append(entry)
        s = socket.create_connection((self.host, self.port), timeout=30)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sendall(f"GET {self.path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nRange: bytes={first}-\r\n"
                  f"Accept-Encoding: identity\r\n\r\n".encode())
        head, body = read_head(s, entry["range"])
        entry["status"] = int(head.split(b" ", 2)[1])
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
        entry["length"] = int(length.group(1)) if length else None
        entry["head_at"] = time.time() * 1000
        if entry["status"] != 206:
            raise RuntimeError(f"{entry['range']}: status {entry['status']}")
        return s, body, entry

    def read(self, first: int, until) -> bytes:
        """GET bytes=FIRST-, read until `until(bytes so far)` says enough, then drop the connection as a player
        does (aborted unless the body ended)."""
        s, data, entry = self.open(first)
        try:
            while not until(data):
                got = s.recv(1 << 20) if len(data) != entry["length"] else b""
                if not got:
                    entry["end_at"] = time.time() * 1000
                    return data
                data += got
            entry["end_at"] = time.time() * 1000
            entry["failed"] = "aborted by the player"
        finally:
            s.close()
        return data

    def start(self, need_end: int) -> None:
        """A cold start: the head of bytes=0- until its top-level boxes show where the index is; a fast-start
        file goes on to `need_end` on that request. A file whose index follows the media: the head is dropped,
        the index read from its offset to the end, then the media resumed after the head read so far, up to
        `need_end`."""
        found: dict = {}

        def boxes(data: bytes) -> bool:
            pos = 0
            while pos + 8 <= len(data):
                size, kind = BOX.unpack_from(data, pos)
                if size == 1 and pos + 16 <= len(data):
                    size = int.from_bytes(data[pos + 8:pos + 16], "big")
                if kind == b"moov":
                    return len(data) >= max(pos + size, need_end)
                if kind == b"mdat":
                    found["mdat_end"] = pos + size
                    found["read"] = len(data)
                    return True
                if size < 8:
                    raise RuntimeError(f"box {kind!r} of size {size}")
                pos += size
            return False

        self.read(0, boxes)
        if "mdat_end" not in found:
            return
        # (in 64 KiB blocks, as Chrome's media cache asks: the index from the start of its block, the media
        # from the first block the head did not fill)
        self.read(found["mdat_end"] // BLOCK * BLOCK, lambda d: False)  # the index, to the end
        resume = -(-found["read"] // BLOCK) * BLOCK
        if resume < need_end:
            self.read(resume, lambda d: resume + len(d) >= need_end)

    def seek(self, offset: int, need: int) -> None:
        self.read(offset, lambda d: len(d) >= need)


def run_scripted(sessions: list[dict], file_of) -> list[dict]:
    """The sessions as latency_browser.mjs runs them, with ScriptedPlayer; each seek to the byte at its share of
    the duration (a browser looks it up in the index: near enough for what the store is asked)."""
    results = []
    for sess in sessions:
        player = ScriptedPlayer(sess["url"])
        res = {"label": sess["label"], "start": time.time() * 1000}
        size, need_end = file_of(sess)
        try:
            player.start(need_end)
            res["first_frame"] = time.time() * 1000
            res["ttff_ms"] = res["first_frame"] - res["start"]
            res["seeks"] = []
            for t in sess["seeks"]:
                at = time.time() * 1000
                player.seek(int(size * t / sess["duration"]), need_end)
                done = time.time() * 1000
                res["seeks"].append({"ms": done - at, "at": at, "done": done})
        except (OSError, RuntimeError) as e:
            res["error"] = str(e)
        res["end"] = time.time() * 1000
        res["requests"] = player.requests
        results.append(res)
        log(f"{res['label']}: first frame {res.get('ttff_ms', float('nan')):.0f} ms, seeks "
            f"{[round(x['ms']) for x in res.get('seeks', [])]} {res.get('error', '')}")
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--exe", type=Path, default=ROOT / "build" / "mediagate")
    ap.add_argument("--media", type=Path, default=ROOT / "build" / "latency",
                    help="directory with big.mp4 (a fast-start MP4); the moov-at-end copy is made there")
    ap.add_argument("--node-dir", type=Path, default=ROOT / "build" / "latency-node",
                    help="directory with node_modules/playwright-core (npm ci of tests/e2e/package.json)")
    ap.add_argument("--work", type=Path, default=ROOT / "bench" / "results" / "tmp" / "latency")
    ap.add_argument("--delay-ms", type=float, default=30)
    ap.add_argument("--rate", default="80m", help="per-connection rate of the shaped S3 (nginx limit_rate)")
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--systems", default="mg,mg-cache,ngx-proxy,ngx-cache,direct,mg-local")
    ap.add_argument("--files", default=",".join(FILES), help="which of " + ", ".join(FILES))
    ap.add_argument("--player", choices=("chromium", "script"), default="chromium",
                    help="script: replay Chrome's requests from Python, without decoding (ScriptedPlayer)")
    ap.add_argument("--trace", action="store_true",
                    help="add to the report, for each cold start, the browser's media requests and the S3 "
                         "requests until the first frame (times from `src` set)")
    ap.add_argument("--out", type=Path, default=None, help="Markdown report (default bench/results/LATENCY-date.md)")
    args = ap.parse_args()
    systems = args.systems.split(",")
    files = {k: v for k, v in FILES.items() if k in args.files.split(",")}

    src = args.media / "big.mp4"
    moov_end = args.media / "big-moov-end.mp4"
    if not moov_end.exists():
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(src), "-map", "0", "-c", "copy",
                        str(moov_end)], check=True)  # the mp4 muxer's default: moov after mdat
    local = {"fast.mp4": src, "moov-end.mp4": moov_end}
    duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                                     "default=nw=1:nk=1", str(src)], capture_output=True, text=True,
                                    check=True).stdout)
    rng = random.Random(15)
    seeks = [round(rng.uniform(0.05, 0.95) * duration, 2) for _ in range(5)]

    work = args.work
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    procs: list = []
    rgw_dir = work / "rgw"
    env = dict(os.environ, RGW_DEBUG="0")
    r = subprocess.run([str(ROOT / "scripts" / "radosgw.sh"), "start", str(rgw_dir)], env=env, capture_output=True,
                       text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    # radosgw holds a window of each GET's data (rgw_get_obj_window_size, 16 MiB) until its client reads it, and
    # all of them within objecter_inflight_op_bytes (100 MiB): a few players that keep long ranges open without
    # reading (every browser does) then stall every other request for tens of seconds. A real S3 has no such
    # shared budget: raise it.
    with open(rgw_dir / "ceph.conf", "a") as conf:
        conf.write("objecter inflight op bytes = 4294967296\nobjecter inflight ops = 65536\n")
    r = subprocess.run([str(ROOT / "scripts" / "radosgw.sh"), "restart-rgw", str(rgw_dir)], env=env,
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(r.stderr)
    rgw_env = {}
    for line in (rgw_dir / "env").read_text().splitlines():
        m = re.match(r"(?:export )?([A-Z_]+)=(.*)", line)
        if m:
            rgw_env[m.group(1)] = m.group(2)
    rgw_port = int(rgw_env["AWS_ENDPOINT_URL"].rsplit(":", 1)[1])
    shaped = ShapedS3(work / "shaped", rgw_port, args.delay_ms, args.rate)
    results = []
    args.load = [os.getloadavg()]
    try:
        shaped.start()
        log(f"radosgw on {rgw_port}, shaped S3 at {shaped.endpoint} ({args.delay_ms} ms, {args.rate}/connection)")
        os.environ.update({k: v for k, v in rgw_env.items() if k.startswith("AWS_")})
        import s3util  # noqa: E402  (tests/integration; botocore)

        direct = s3util.client_from_env()
        s3util.create_bucket(BUCKET, client=direct)
        for key, path in local.items():
            with open(path, "rb") as body:
                direct.put_object(Bucket=BUCKET, Key=f"base/{key}", Body=body, ContentType="video/mp4")
        policy = {"Version": "2012-10-17", "Statement": [{"Sid": "PublicRead", "Effect": "Allow", "Principal": "*",
                                                          "Action": ["s3:GetObject"],
                                                          "Resource": [f"arn:aws:s3:::{BUCKET}/*"]}]}
        direct.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(policy))
        shaped_client = s3util.client_from_env(endpoint_url=shaped.endpoint)

        mg_env = dict(os.environ)
        mg_env.update({k: v for k, v in rgw_env.items() if k.startswith("AWS_")})
        mg_env["AWS_ENDPOINT_URL"] = shaped.endpoint
        s3_args = ["--storage", f"s3://{BUCKET}", "--s3-endpoint", shaped.endpoint, "--s3-addressing", "path"]
        base_urls = {}
        # mg-onefirst: a player's cold start in one GET (--s3-first-read 0), to compare.
        for name, extra in (("mg", []), ("mg-onefirst", ["--s3-first-read", "0"])):
            if name in systems:
                p, port = start_mediagate(args.exe, work, name, [*s3_args, *extra], mg_env)
                procs.append(p)
                base_urls[name] = f"http://127.0.0.1:{port}/media/"
        # mg-cache-noahead: the slice cache without reading ahead of clients (--cache-read-ahead 0), to compare.
        for name, extra in (("mg-cache", []), ("mg-cache-noahead", ["--cache-read-ahead", "0"])):
            if name in systems:
                p, port = start_mediagate(args.exe, work, name,
                                          [*s3_args, "--cache-dir", str(work / name / "slices"), "--cache-size",
                                           "8GiB", "--cache-slice", "1MiB", "--cache-meta-ttl", "3600", *extra], mg_env)
                procs.append(p)
                base_urls[name] = f"http://127.0.0.1:{port}/media/"
        if "mg-local" in systems:
            p, port = start_mediagate(args.exe, work, "mg-local", ["--storage", str(args.media)], mg_env)
            procs.append(p)
            base_urls["mg-local"] = f"http://127.0.0.1:{port}/media/"
        if "ngx-proxy" in systems or "ngx-cache" in systems:
            d = work / "nginx"
            for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi", "cache"):
                (d / sub).mkdir(parents=True, exist_ok=True)
            proxy_port, cache_port = free_port(), free_port()
            (d / "nginx.conf").write_text(NGINX_CONF.format(dir=d, s3_port=shaped.port, proxy_port=proxy_port,
                                                            cache_port=cache_port, bucket=BUCKET))
            procs.append(Proc("nginx", ["nginx", "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                              d / "out.log"))
            wait_port(proxy_port)
            wait_port(cache_port)
            base_urls["ngx-proxy"] = f"http://127.0.0.1:{proxy_port}/media/"
            base_urls["ngx-cache"] = f"http://127.0.0.1:{cache_port}/media/"

        def url_of(system: str, key: str) -> str:
            if system == "direct":
                return shaped_client.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key},
                                                            ExpiresIn=3600)
            return base_urls[system] + key

        # Sessions: for each rep, file and system (interleaved), a cold session on a new name, then a warm one.
        sessions = []
        copies = []
        # First, one unmeasured start per system on an object of its own: the browser's first session and each
        # gateway's first request (connections to S3, its first use of the media stack) are not what a viewer of
        # a running service waits for, and would always fall on the same system.
        for system in systems:
            key = local["fast.mp4"].name if system == "mg-local" else "base/fast.mp4"
            sessions.append({"label": f"{system}|warm-up|cold|-1", "url": url_of(system, key), "seeks": []})
        for rep in range(args.reps):
            for label, name in files.items():
                # Interleaved, and in another order each rep: none is always the first after a file change.
                for system in systems[rep % len(systems):] + systems[:rep % len(systems)]:
                    key = f"cold/{rep}-{system}-{name}"
                    if system == "mg-local":  # the files themselves (the page cache is warm: the floor)
                        key = local[name].name
                    else:
                        direct.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": f"base/{name}"})
                        copies.append(key)
                    for temp in ("cold", "warm"):
                        sessions.append({"label": f"{system}|{label}|{temp}|{rep}", "url": url_of(system, key),
                                         "seeks": seeks})
        if args.player == "script":
            shape = {name: (path.stat().st_size, first_frames_end(path)) for name, path in local.items()}
            for sess in sessions:
                sess["duration"] = duration
            log(f"{len(sessions)} scripted sessions; seeks to {seeks} s; first frames end at {shape}")
            results += run_scripted(sessions, lambda sess: shape["moov-end.mp4" if "moov" in sess["label"]
                                                                 else "fast.mp4"])
        else:
            spec = work / "spec.json"
            spec.write_text(json.dumps({"chromium": os.environ.get("CHROMIUM", "/usr/bin/chromium"),
                                        "timeout_ms": 60000, "sessions": sessions, "trace": args.trace}))
            script = args.node_dir / "latency_browser.mjs"
            shutil.copy(HERE / "latency_browser.mjs", script)
            log(f"{len(sessions)} browser sessions; seeks to {seeks} s")
            with subprocess.Popen(["node", str(script), str(spec)], cwd=args.node_dir, stdout=subprocess.PIPE,
                                  text=True) as node:
                for line in node.stdout:
                    res = json.loads(line)
                    results.append(res)
                    log(f"{res['label']}: first frame {res.get('ttff_ms', float('nan')):.0f} ms, seeks "
                        f"{[round(s['ms']) for s in res.get('seeks', [])]} {res.get('error', '')}")
        args.load.append(os.getloadavg())
        time.sleep(2)  # the shaped S3's log is flushed every 100 ms; cancelled reads end
    finally:
        for p in procs:
            p.stop()
        shaped.stop()
        subprocess.run([str(ROOT / "scripts" / "radosgw.sh"), "stop", str(rgw_dir)], capture_output=True, timeout=120)

    # What S3 saw per action: requests that started within it (and before the frame was painted).
    s3log = shaped.requests()
    (work / "raw.json").write_text(json.dumps({"results": results, "s3": s3log}))  # (should the report fail)

    def s3_between(t0: float, t1: float) -> tuple[int, int]:
        rs = [r for r in s3log if t0 <= r["start"] * 1000 < t1 and r["method"] in ("GET", "HEAD")]
        return len(rs), sum(r["bytes"] for r in rs)

    rows = []
    for res in results:
        system, label, temp, rep = res["label"].split("|")
        row = {"system": system, "file": label, "temp": temp, "rep": int(rep), "error": res.get("error")}
        if "ttff_ms" in res:
            row["ttff_ms"] = res["ttff_ms"]
            row["start_s3"] = s3_between(res["start"], res["first_frame"] + 1)
            row["seek_ms"] = [s["ms"] for s in res["seeks"]]
            row["seek_s3"] = [s3_between(s["at"], s["done"] + 1) for s in res["seeks"]]
            if args.trace:
                t0 = res["start"]
                row["trace_browser"] = res.get("requests", [])
                row["trace_s3"] = [{"start_ms": r["start"] * 1000 - t0, "end_ms": r["end"] * 1000 - t0,
                                    "method": r["method"], "range": r["range"], "status": r["status"],
                                    "bytes": r["bytes"], "store_head_ms": None if r.get("store_head") is None
                                    else r["store_head"] * 1000}
                                   for r in s3log if t0 <= r["start"] * 1000 <= res["end"] + 1]
                row["trace_seeks"] = [{"at_ms": s["at"] - t0, "done_ms": s["done"] - t0} for s in res["seeks"]]
                for b in row["trace_browser"]:
                    for k in ("at", "head_at", "end_at"):
                        if k in b:
                            b[k] -= t0
        rows.append(row)
    report(rows, args, seeks, systems, files)
    return 0


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def report(rows, args, seeks, systems, files) -> None:
    date = datetime.date.today().isoformat()
    out = args.out or (HERE / "results" / f"LATENCY-{date}.md")
    out.with_suffix(".json").write_text(json.dumps({"rows": rows, "seeks": seeks, "delay_ms": args.delay_ms,
                                                    "rate": args.rate}, indent=1))
    lines = [f"# Latency through a shaped S3 ({args.delay_ms:g} ms before every request, {args.rate}B/s per "
             f"connection), {date}", "",
             f"`bench/latency.py --reps {args.reps}{' --player script' if args.player == 'script' else ''}` "
             f"({PLAYERS[args.player]}; seeks to {seeks} s; paused seeks; "
             "medians over reps and seeks; one unmeasured start per system first; systems interleaved, in a "
             "rotated order each rep). The machine (2 cores) was shared with other builds while this ran (load "
             f"average over 1/5/15 min: {' / '.join(f'{x:.1f}' for x in args.load[0])} at the start, "
             f"{' / '.join(f'{x:.1f}' for x in args.load[-1])} at the end): absolute figures are noisy, the "
             "ratios within one run are what to read.", "",
             "mediagate's slice cache runs with `--cache-meta-ttl 3600`, as nginx's `proxy_cache_valid 1h` (no "
             "revalidation within the hour); radosgw with `objecter inflight op bytes` raised (see latency.py). ",
             "S3 requests/bytes: requests the shaped S3 logged as starting between the action and its painted "
             "frame (bytes: the whole of those responses, read-ahead included).", ""]

    def get(system, file, temp, key):
        return [r.get(key) for r in rows if r["system"] == system and r["file"] == file and r["temp"] == temp]

    for file in files:
        lines += [f"## {file}", "", "| system | cold first frame ms | cold S3 req / MiB to frame | warm first frame ms "
                  "| cold seek ms (median) | cold S3 req / MiB per seek | warm seek ms (median) |", "|---|---|---|---|---|---|---|"]
        for system in systems:
            cold = med(get(system, file, "cold", "ttff_ms"))
            warm = med(get(system, file, "warm", "ttff_ms"))
            s3s = [x for x in get(system, file, "cold", "start_s3") if x]
            cseek = med([m for ms in get(system, file, "cold", "seek_ms") if ms for m in ms])
            wseek = med([m for ms in get(system, file, "warm", "seek_ms") if ms for m in ms])
            sreq = med([n for ss in get(system, file, "cold", "seek_s3") if ss for n, _ in ss])
            sbytes = med([b for ss in get(system, file, "cold", "seek_s3") if ss for _, b in ss])
            fmt = lambda v: "—" if v is None else f"{v:.0f}"  # noqa: E731
            s3txt = "—" if not s3s else f"{med([n for n, _ in s3s]):.0f} / {med([b for _, b in s3s]) / 1048576:.2f}"
            lines.append(f"| {system} | {fmt(cold)} | {s3txt} | {fmt(warm)} | {fmt(cseek)} | "
                         f"{'—' if sreq is None else f'{sreq:.1f} / {sbytes / 1048576:.2f}'} | {fmt(wseek)} |")
        lines.append("")
        # Ratios of the targets.
        def ratio(a, b):
            return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"
        mg_cold = med(get("mg", file, "cold", "ttff_ms"))
        mgc_cold = med(get("mg-cache", file, "cold", "ttff_ms"))
        lines += [f"Cold first frame, mediagate (no cache) vs nginx proxy_pass: "
                  f"{ratio(mg_cold, med(get('ngx-proxy', file, 'cold', 'ttff_ms')))}; vs the browser reading S3 "
                  f"directly: {ratio(mg_cold, med(get('direct', file, 'cold', 'ttff_ms')))}; mediagate cache (cold) vs "
                  f"nginx slice cache (cold): {ratio(mgc_cold, med(get('ngx-cache', file, 'cold', 'ttff_ms')))}. "
                  f"Warm cache vs local storage: first frame "
                  f"{ratio(med(get('mg-cache', file, 'warm', 'ttff_ms')), med(get('mg-local', file, 'warm', 'ttff_ms')))}"
                  f", seeks {ratio(med([m for ms in get('mg-cache', file, 'warm', 'seek_ms') if ms for m in ms]), med([m for ms in get('mg-local', file, 'warm', 'seek_ms') if ms for m in ms]))}.", ""]

        # The same ratios paired within each rep (the two systems ran minutes apart at most), then the median
        # and the range over reps: less sensitive to the machine's load drifting between reps.
        def paired(a, b, temp, key="ttff_ms"):
            by_rep = {}
            for r in rows:
                if r["file"] == file and r["temp"] == temp and r["system"] in (a, b) and r.get(key) is not None:
                    v = r[key] if key == "ttff_ms" else med(r[key])
                    by_rep.setdefault(r["rep"], {})[r["system"]] = v
            rs = sorted(x[a] / x[b] for x in by_rep.values() if a in x and b in x and x[b])
            if not rs:
                return "—"
            return f"{statistics.median(rs):.2f}× ({rs[0]:.2f}–{rs[-1]:.2f}, {len(rs)} reps)"
        lines += ["Paired within each rep (median, range): cold first frame mg / ngx-proxy "
                  f"{paired('mg', 'ngx-proxy', 'cold')}, mg / direct {paired('mg', 'direct', 'cold')}, "
                  f"mg-cache / ngx-proxy {paired('mg-cache', 'ngx-proxy', 'cold')}, mg-cache / direct "
                  f"{paired('mg-cache', 'direct', 'cold')}, mg-cache / ngx-cache {paired('mg-cache', 'ngx-cache', 'cold')}; "
                  f"warm mg-cache / mg-local: first frame {paired('mg-cache', 'mg-local', 'warm')}, seeks "
                  f"{paired('mg-cache', 'mg-local', 'warm', 'seek_ms')}; cold seeks mg / ngx-proxy "
                  f"{paired('mg', 'ngx-proxy', 'cold', 'seek_ms')}, mg-cache / mg-local "
                  f"{paired('mg-cache', 'mg-local', 'cold', 'seek_ms')}.", ""]
        # How long the store took to the head of each GET the shaped S3 passed on (after its delay): whether a
        # system waited on the store (a long range's stripe read) or on the network's round trips.
        def store_heads(system, seeks):
            out = []
            for r in rows:
                if r["system"] != system or r["file"] != file or r["temp"] != "cold" or "trace_s3" not in r:
                    continue
                spans = [(s["at_ms"], s["done_ms"]) for s in r["trace_seeks"]] if seeks else [(0, r["ttff_ms"])]
                out += [x["store_head_ms"] for x in r["trace_s3"] if x.get("store_head_ms") is not None
                        and x["method"] == "GET" and any(a - 1 <= x["start_ms"] <= b + 1 for a, b in spans)]
            return "—" if not out else f"{med(out):.1f} ms ({len(out)} GETs)"
        if any("trace_s3" in r for r in rows):
            cold_systems = [x for x in systems if x != "mg-local"]
            lines += ["The store's time to the head of the GETs asked for cold (median, after the shaped S3's "
                      "delay): to the first frame " +
                      ", ".join(f"{x} {store_heads(x, False)}" for x in cold_systems) + "; for seeks " +
                      ", ".join(f"{x} {store_heads(x, True)}" for x in cold_systems) + ".", ""]
        if "mg-onefirst" in systems:
            lines += [f"A player's start in one GET: cold first frame mg / mg-onefirst "
                      f"{paired('mg', 'mg-onefirst', 'cold')}, mg-onefirst / ngx-proxy "
                      f"{paired('mg-onefirst', 'ngx-proxy', 'cold')}, mg-onefirst / direct "
                      f"{paired('mg-onefirst', 'direct', 'cold')}.", ""]
        if "mg-cache-noahead" in systems:
            lines += [f"Without read-ahead: warm mg-cache-noahead / mg-local: first frame "
                      f"{paired('mg-cache-noahead', 'mg-local', 'warm')}, seeks "
                      f"{paired('mg-cache-noahead', 'mg-local', 'warm', 'seek_ms')}.", ""]
    traced = [r for r in rows if "trace_browser" in r and r["temp"] == "cold" and r["rep"] >= 0]
    if traced:
        lines += ["## Traces of cold starts (ms from `src` set to the first frame)", ""]
        for r in traced:
            lines.append(f"- **{r['system']} {r['file']} rep {r['rep']}**: first frame {r['ttff_ms']:.0f} ms")
            for b in r["trace_browser"]:
                if b["at"] > r["ttff_ms"]:
                    continue
                end = f"failed at {b['end_at']:.0f} ({b.get('failed')})" if b.get("failed") else \
                    f"ended at {b['end_at']:.0f}" if "end_at" in b else "open"
                lines.append(f"  - browser at {b['at']:.0f}: {b['range']} → {b.get('status', '?')} head at "
                             f"{b.get('head_at', float('nan')):.0f}, {end}")
            for x in r["trace_s3"]:
                if x["start_ms"] > r["ttff_ms"] + 1:
                    continue
                head = "" if x.get("store_head_ms") is None else f", the store's head {x['store_head_ms']:.0f} ms"
                lines.append(f"  - S3 {x['method']} {x['range']} from {x['start_ms']:.0f} to {x['end_ms']:.0f}: "
                             f"{x['status']}, {x['bytes'] / 1048576:.2f} MiB{head}")
        lines.append("")
    errors = [r for r in rows if r.get("error")]
    if errors:
        lines += ["## Errors", ""] + [f"- {r['system']} {r['file']} {r['temp']}: {r['error']}" for r in errors] + [""]
    out.write_text("\n".join(lines))
    log(f"wrote {out}")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
