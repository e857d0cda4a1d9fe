#!/usr/bin/env python3
"""HLS on the fly (issue 14) against the package-ahead-of-time alternative, on 127.0.0.1.

mediagate serves /hls/big.mp4/... made from the MP4 as it is stored; nginx serves the fMP4 segments that
`ffmpeg -c copy -f hls -hls_segment_type fmp4` wrote once beforehand (made here, cached beside the object).
A client on N keep-alive connections fetches random media segments for D seconds from each; the figures are
segments/s, MB/s and the latency percentiles. Also: the time of the first request of a playlist (moov read,
parsed and segmented) on a cold index.

    /usr/bin/python3 bench/hls.py --exe build-bench/mediagate --media bench/.cache/objects --work DIR
(bench/run calls it after the other workloads and writes bench/results/HLS-<date>.md.)
"""

from __future__ import annotations

import argparse
import http.client
import json
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


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


def load(port: int, paths: list[str], conns: int, seconds: float, seed: int) -> dict:
    latencies: list[float] = []
    total = [0]
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(i: int) -> None:
        rng = random.Random(seed + i)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
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
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - t0
    latencies.sort()

    def pct(p: float) -> float:
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000

    return {"segments": len(latencies), "segments_per_s": len(latencies) / wall, "MBps": total[0] / wall / 1e6,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", required=True)
    ap.add_argument("--media", required=True, help="directory with big.mp4")
    ap.add_argument("--work", required=True)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--conns", type=int, default=4)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--out", help="markdown report")
    a = ap.parse_args()
    media, work = Path(a.media).resolve(), Path(a.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    big = media / "big.mp4"

    # The alternative: every segment packaged once, ahead of time (and stored as a second copy).
    packaged = media / "big-hls"
    if not (packaged / "complete").exists():
        shutil.rmtree(packaged, ignore_errors=True)
        packaged.mkdir()
        subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-i", str(big), "-map", "0:v", "-c", "copy",
                        "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "6", "-hls_playlist_type", "vod",
                        "-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename",
                        str(packaged / "seg-%d.m4s"), str(packaged / "video.m3u8")], check=True, timeout=600)
        (packaged / "complete").write_text("ok\n")
    nginx_paths = ["/" + p for p in re.findall(r"^(seg-\d+\.m4s)$", (packaged / "video.m3u8").read_text(), re.M)]

    ndir = work / "hls-nginx"
    (ndir / "tmp").mkdir(parents=True, exist_ok=True)
    nport = free_port()
    (ndir / "nginx.conf").write_text(NGINX_CONF.format(dir=ndir, port=nport, root=packaged))
    nginx = subprocess.Popen(["nginx", "-c", str(ndir / "nginx.conf")], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    mport = free_port()
    mg = subprocess.Popen([a.exe, "serve", "--listen", f"127.0.0.1:{mport}", "--storage", str(media),
                           "--access-log", "off", "--threads", "2"], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    results: dict = {}
    try:
        wait_port(nport)
        wait_port(mport)
        conn = http.client.HTTPConnection("127.0.0.1", mport, timeout=60)
        t0 = time.perf_counter()
        get(conn, "/hls/big.mp4/master.m3u8")
        results["first_playlist_ms"] = (time.perf_counter() - t0) * 1000  # moov read + parsed + segmented
        conn.request("GET", "/hls/big.mp4/master.m3u8")
        master = conn.getresponse().read().decode()
        video = re.search(r"^(\d+)\.m3u8$", master, re.M).group(1)
        conn.request("GET", f"/hls/big.mp4/{video}.m3u8")
        playlist = conn.getresponse().read().decode()
        mg_paths = [f"/hls/big.mp4/{p}" for p in re.findall(r"^(\d+/seg-\d+\.m4s)$", playlist, re.M)]
        conn.close()
        results["segments"] = {"mediagate": len(mg_paths), "nginx": len(nginx_paths)}
        for rep in range(a.reps):  # interleaved, so that both see the same machine
            for name, port, paths in (("nginx-static", nport, nginx_paths), ("mediagate", mport, mg_paths)):
                r = load(port, paths, a.conns, a.duration, 1000 * rep)
                results.setdefault(name, []).append(r)
                print(f"hls: {name} rep {rep + 1}: {r['segments_per_s']:.1f} segments/s, {r['MBps']:.0f} MB/s, "
                      f"p50 {r['p50_ms']:.1f} ms, p99 {r['p99_ms']:.1f} ms", flush=True)
    finally:
        for p in (mg, nginx):
            p.send_signal(signal.SIGTERM)
            p.wait(timeout=30)
    (work / "hls.json").write_text(json.dumps(results, indent=2))

    def median(name: str, key: str) -> float:
        values = sorted(r[key] for r in results[name])
        return values[len(values) // 2]

    lines = [f"# HLS on the fly vs segments packaged ahead of time ({time.strftime('%Y-%m-%d')})", "",
             f"Object: big.mp4 ({big.stat().st_size / 1e6:.0f} MB); {a.conns} connections fetching random video "
             f"segments for {a.duration:g} s, median of {a.reps}; 127.0.0.1.", "",
             "| server | segments/s | MB/s | p50 ms | p99 ms |", "|---|---|---|---|---|"]
    for name in ("nginx-static", "mediagate"):
        lines.append(f"| {name} | {median(name, 'segments_per_s'):.1f} | {median(name, 'MBps'):.0f} | "
                     f"{median(name, 'p50_ms'):.1f} | {median(name, 'p99_ms'):.1f} |")
    ratio = median("mediagate", "segments_per_s") / median("nginx-static", "segments_per_s")
    lines += ["", f"mediagate / nginx segments/s: {ratio:.2f}; first master.m3u8 on a cold index (moov read, "
              f"parsed, segmented): {results['first_playlist_ms']:.1f} ms.", ""]
    text = "\n".join(lines)
    print(text)
    if a.out:
        Path(a.out).write_text(text)


if __name__ == "__main__":
    main()
