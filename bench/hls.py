#!/usr/bin/env python3
"""HLS on the fly (issue 14) against the package-ahead-of-time alternative, on 127.0.0.1.

mediagate serves /hls/big.mp4/... made from the MP4 as it is stored; nginx serves the fMP4 segments that
`ffmpeg -c copy -f hls -hls_segment_type fmp4` wrote once beforehand (made here, cached beside the object), from
local disk (page cache warm). Rows, each with segments/s, MB/s and latency percentiles:

  cold  every segment is asked for once (index cached, segments not): a server started afresh (a fresh slice
        cache directory for radosgw), the index read by fetching the playlist, then every video segment once,
        in a random order, by N keep-alive connections taking the next one from a shared queue; repeated
        --batches times (the figures are over all batches). nginx gets the very same batches.
  warm  random segments, already served once, for --duration seconds from N connections (mediagate from
        local storage: the page cache; from radosgw: the slice cache).

mediagate runs from local storage and from radosgw (scripts/radosgw.sh, one host) through the slice cache;
"radosgw direct" is what radosgw itself delivers of the same bytes (the object in as many ranged GETs as there
are segments, botocore, no mediagate): the ceiling of the cold radosgw row. Server CPU per segment is the
user + system time of the mediagate process or of nginx's workers (not radosgw's, not the client's): on a
shared machine it is steadier than the rates. Repetitions are interleaved so that every row sees the same
machine. Also: the time of the first request of a playlist (moov read, parsed and segmented) on a cold index.

    /usr/bin/python3 bench/hls.py --exe build-bench/mediagate --media bench/.cache/objects --work DIR
(bench/run calls it after the other workloads and writes bench/results/HLS-<date>.md.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import ROOT, free_port, log, start_radosgw, stop_radosgw, wait_port  # noqa: E402  (bench/bench.py)

NGINX_CONF = """
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  sendfile on;
  tcp_nopush off;
  tcp_nodelay on;
  keepalive_requests 1000000;
  open_file_cache max=10000 inactive=60s;
  access_log off;
  client_body_temp_path {dir}/tmp;
  proxy_temp_path {dir}/tmp;
  fastcgi_temp_path {dir}/tmp;
  uwsgi_temp_path {dir}/tmp;
  scgi_temp_path {dir}/tmp;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    etag on;
  }}
}}
"""
BUCKET = "hlsbench"


def cpu_ticks(pids: list[int]) -> int:
    """User + system clock ticks (1/100 s) of these processes so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total


def get(conn: http.client.HTTPConnection, path: str) -> int:
    conn.request("GET", path)
    r = conn.getresponse()
    n = 0
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        n += len(chunk)
    if r.status != 200:
        raise RuntimeError(f"GET {path}: {r.status}")
    return n


def summary(latencies: list[float], nbytes: int, wall: float, ticks: int = 0) -> dict:
    latencies = sorted(latencies)

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"segments": len(latencies), "segments_per_s": len(latencies) / wall, "MBps": nbytes / wall / 1e6,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "wall_s": wall,
            "cpu_ms_per_segment": ticks * 10 / max(len(latencies), 1)}


def load_random(port: int, paths: list[str], conns: int, seconds: float, seed: int, pids: list[int]) -> dict:
    """Random segments from `conns` connections for `seconds`; the CPU time of `pids` per segment."""
    latencies: list[float] = []
    total = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(seed + i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine, nbytes = [], 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            nbytes += get(conn, rng.choice(paths))
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)
            total[0] += nbytes

    threads = [threading.Thread(target=client, args=(i,)) for i in range(conns)]
    t0, ticks = time.monotonic(), cpu_ticks(pids)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return summary(latencies, total[0], time.monotonic() - t0, cpu_ticks(pids) - ticks)


def load_once_each(port: int, paths: list[str], conns: int, seed: int, pids: list[int],
                   fetch=None) -> tuple[list[float], int, float, int]:
    """Every path once, in a random order, `conns` connections taking the next from a shared queue; the
    latencies, bytes, wall time and CPU ticks of `pids`. `fetch(path) -> bytes` replaces the HTTP GET."""
    order = list(paths)
    random.Random(seed).shuffle(order)
    todo: queue.Queue = queue.Queue()
    for p in order:
        todo.put(p)
    latencies: list[float] = []
    total = [0]
    lock = threading.Lock()
    conns_open = [http.client.HTTPConnection("127.0.0.1", port, timeout=60) for _ in range(conns)]
    for c in conns_open:
        c.connect()

    def client(conn: http.client.HTTPConnection) -> None:
        mine, nbytes = [], 0
        while True:
            try:
                path = todo.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            nbytes += fetch(path) if fetch else get(conn, path)
            mine.append(time.perf_counter() - t0)
        conn.close()
        with lock:
            latencies.extend(mine)
            total[0] += nbytes

    threads = [threading.Thread(target=client, args=(c,)) for c in conns_open]
    t0, ticks = time.monotonic(), cpu_ticks(pids)
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, total[0], time.monotonic() - t0, cpu_ticks(pids) - ticks


class Mediagate:
    """One mediagate process: local storage, or radosgw with a slice cache in a directory made afresh."""

    def __init__(self, exe: str, storage: str, work: Path, env: dict, cache: bool) -> None:
        self.exe, self.storage, self.work, self.env, self.cache = exe, storage, work, env, cache
        self.proc: subprocess.Popen | None = None
        self.port = 0

    def start(self) -> None:
        self.port = free_port()
        args = [self.exe, "serve", "--listen", f"127.0.0.1:{self.port}", "--storage", self.storage,
                "--access-log", "off", "--threads", "2"]
        if self.cache:
            cache_dir = self.work / "slice-cache"
            shutil.rmtree(cache_dir, ignore_errors=True)
            args += ["--cache-dir", str(cache_dir)]
        self.proc = subprocess.Popen(args, env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=open(self.work / "mediagate.log", "ab"))
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None

    def segment_paths(self) -> list[str]:
        """Reads the index (master and video playlists): afterwards it is cached."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        conn.request("GET", "/hls/big.mp4/master.m3u8")
        master = conn.getresponse().read().decode()
        video = re.search(r"^(\d+)\.m3u8$", master, re.M).group(1)
        conn.request("GET", f"/hls/big.mp4/{video}.m3u8")
        playlist = conn.getresponse().read().decode()
        conn.close()
        return [f"/hls/big.mp4/{p}" for p in re.findall(r"^(\d+/seg-\d+\.m4s)$", playlist, re.M)]


def package(big: Path) -> Path:
    """The alternative: every segment packaged once, ahead of time (and stored as a second copy)."""
    packaged = big.parent / "big-hls"
    if not (packaged / "complete").exists():
        shutil.rmtree(packaged, ignore_errors=True)
        packaged.mkdir()
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(big), "-map", "0:v", "-c", "copy",
                        "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "6", "-hls_playlist_type", "vod",
                        "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename",
                        str(packaged / "seg-%d.m4s"), str(packaged / "video.m3u8")], check=True, timeout=600)
        (packaged / "complete").write_text("ok\n")
    return packaged


def median(values: list[float]) -> float:
    values = sorted(values)
    return values[len(values) // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", required=True)
    ap.add_argument("--media", required=True, help="directory with big.mp4")
    ap.add_argument("--work", required=True)
    ap.add_argument("--duration", type=float, default=5, help="seconds of each warm run")
    ap.add_argument("--batches", type=int, default=4, help="cold batches (every segment once) per repetition")
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-s3", action="store_true", help="local storage only (no radosgw)")
    ap.add_argument("--out", help="markdown report")
    a = ap.parse_args()
    media, work = Path(a.media).resolve(), Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    big = media / "big.mp4"
    packaged = package(big)
    nginx_paths = ["/" + p for p in re.findall(r"^(seg-\d+\.m4s)$", (packaged / "video.m3u8").read_text(), re.M)]
    for p in packaged.iterdir():  # nginx's files in the page cache, as the source is for mediagate
        p.read_bytes()
    big.read_bytes()

    ndir = work / "hls-nginx"
    (ndir / "tmp").mkdir(parents=True, exist_ok=True)
    nport = free_port()
    (ndir / "nginx.conf").write_text(NGINX_CONF.format(dir=ndir, port=nport, root=packaged))
    nginx = subprocess.Popen(["nginx", "-c", str(ndir / "nginx.conf")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    servers = {"local": Mediagate(a.exe, str(media), work / "mg-local", dict(os.environ), False)}
    rgw_dir = work / "hls-rgw"
    results: dict = {"rows": {}, "notes": []}
    s3_client = None
    try:
        wait_port(nport)
        if not a.no_s3:
            rgw_env = dict(os.environ, **start_radosgw(rgw_dir))
            sys.path.insert(0, str(ROOT / "tests" / "integration"))
            os.environ.update(rgw_env)
            import s3util  # noqa: E402  (tests/integration; botocore)
            s3_client = s3util.client_from_env()
            s3util.create_bucket(BUCKET, client=s3_client)
            subprocess.run([a.exe, "put", str(big), f"s3://{BUCKET}/big.mp4"], env=rgw_env, check=True,
                           stdout=subprocess.DEVNULL, timeout=600)
            servers["radosgw"] = Mediagate(a.exe, f"s3://{BUCKET}", work / "mg-rgw", rgw_env, True)
        for s in servers.values():
            s.work.mkdir(parents=True, exist_ok=True)

        # The first playlist of a cold index (moov read, parsed and segmented), from local storage.
        mg = servers["local"]
        mg.start()
        conn = http.client.HTTPConnection("127.0.0.1", mg.port, timeout=60)
        t0 = time.perf_counter()
        get(conn, "/hls/big.mp4/master.m3u8")
        results["first_playlist_ms"] = (time.perf_counter() - t0) * 1000
        conn.close()
        mg.stop()

        def record(row: str, r: dict) -> None:
            results["rows"].setdefault(row, []).append(r)
            print(f"hls: {row}: {r['segments_per_s']:.1f} segments/s, {r['MBps']:.0f} MB/s, p50 {r['p50_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms, CPU {r['cpu_ms_per_segment']:.2f} ms/segment ({r['segments']} segments)",
                  flush=True)

        nginx_pids = [int(p) for p in subprocess.check_output(["pgrep", "-P", str(nginx.pid)]).split()]
        if s3_client is not None:
            size, parts = big.stat().st_size, len(nginx_paths)
            regions = [f"bytes={i * size // parts}-{(i + 1) * size // parts - 1}" for i in range(parts)]

            def s3_get(rng: str) -> int:
                return len(s3_client.get_object(Bucket=BUCKET, Key="big.mp4", Range=rng)["Body"].read())

        for rep in range(a.reps):  # interleaved, so that every row sees the same machine
            seed = 1000 * rep
            lat, nbytes, wall, ticks = [], 0, 0.0, 0
            for b in range(a.batches):
                l, n, w, t = load_once_each(nport, nginx_paths, a.conns, seed + b, nginx_pids)
                lat, nbytes, wall, ticks = lat + l, nbytes + n, wall + w, ticks + t
            record("nginx-static cold", summary(lat, nbytes, wall, ticks))
            record("nginx-static warm", load_random(nport, nginx_paths, a.conns, a.duration, seed, nginx_pids))
            if s3_client is not None:  # what radosgw itself delivers: the same bytes in as many ranges
                lat, nbytes, wall = [], 0, 0.0
                for b in range(a.batches):
                    l, n, w, _ = load_once_each(nport, regions, a.conns, seed + b, [], s3_get)
                    lat, nbytes, wall = lat + l, nbytes + n, wall + w
                record("radosgw direct cold", summary(lat, nbytes, wall))
            for name, s in servers.items():
                lat, nbytes, wall, ticks = [], 0, 0.0, 0
                for b in range(a.batches):
                    s.start()  # a fresh process (and slice cache): nothing of a segment is kept
                    try:
                        paths = s.segment_paths()
                        l, n, w, t = load_once_each(s.port, paths, a.conns, seed + b, [s.proc.pid])
                        lat, nbytes, wall, ticks = lat + l, nbytes + n, wall + w, ticks + t
                        if b == a.batches - 1:  # every segment served once: now warm
                            record(f"mediagate {name} cold", summary(lat, nbytes, wall, ticks))
                            record(f"mediagate {name} warm",
                                   load_random(s.port, paths, a.conns, a.duration, seed, [s.proc.pid]))
                    finally:
                        s.stop()
    finally:
        nginx.send_signal(signal.SIGTERM)
        nginx.wait(timeout=30)
        for s in servers.values():
            s.stop()
        if rgw_dir.exists():
            stop_radosgw(rgw_dir)
    (work / "hls.json").write_text(json.dumps(results, indent=2))

    rows = results["rows"]

    def med(row: str, key: str) -> float:
        return median([r[key] for r in rows[row]])

    load = os.getloadavg()
    lines = [f"# HLS on the fly vs segments packaged ahead of time ({time.strftime('%Y-%m-%d')})", "",
             f"Object: big.mp4 ({big.stat().st_size / 1e6:.0f} MB, {len(nginx_paths)} video segments of 6 s); "
             f"{a.conns} connections; cold: {a.batches} batches of every segment once per repetition; warm: random "
             f"segments for {a.duration:g} s; median of {a.reps} interleaved repetitions; 127.0.0.1; load average "
             f"at the end {load[0]:.1f}.", "",
             "| row | segments/s | MB/s | p50 ms | p99 ms | server CPU ms/segment | / nginx segments/s |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        base = "nginx-static " + row.rsplit(" ", 1)[1]
        ratio = med(row, "segments_per_s") / med(base, "segments_per_s")
        cpu = f"{med(row, 'cpu_ms_per_segment'):.2f}" if not row.startswith("radosgw") else "-"
        lines.append(f"| {row} | {med(row, 'segments_per_s'):.1f} | {med(row, 'MBps'):.0f} | "
                     f"{med(row, 'p50_ms'):.1f} | {med(row, 'p99_ms'):.1f} | {cpu} | {ratio:.2f} |")
    lines += ["", f"First master.m3u8 on a cold index (moov read, parsed, segmented), local storage: "
              f"{results['first_playlist_ms']:.1f} ms.", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
