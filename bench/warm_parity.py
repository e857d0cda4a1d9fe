#!/usr/bin/env python3
"""Issue 15: the warm slice cache beside local storage, on a player's reads. mediagate serving a directory and
mediagate serving the same files as an S3 bucket (nginx, bench/nginx/fast-upstream.conf.in) through its slice
cache, warmed and left to settle (read-ahead done), then interleaved: a start (`bytes=0-`, the first 1.5 MB read,
then the connection closed, as a player that has its first frame) and seeks (`bytes=N-` at 5 random points, 1 MB
each), each on a new connection; median milliseconds per system and the ratio, per rep.

latency.py measures the same through a browser or its scripted player beside S3 traffic; at 1-3 ms a warm action
there is within the noise of the machine. Here nothing else runs.

    bench/warm_parity.py --exe build-rel/mediagate --media bench/.cache/objects [--reps 3] [--rounds 100] [--out F]
"""
from __future__ import annotations

import argparse
import datetime
import os
import random
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import BIG, BUCKET, Mediagate, fast_upstream, fast_upstream_env, log, read_head, write_report  # noqa: E402

START_BYTES = 1_500_000
SEEK_BYTES = 1_000_000


def timed_read(port: int, key: str, first: int, want: int) -> float:
    """Milliseconds from connect to the WANT-th byte of `bytes=FIRST-`'s body; the connection is then closed."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(f"GET /media/{key} HTTP/1.1\r\nHost: bench\r\nRange: bytes={first}-\r\n\r\n".encode())
        head, body = read_head(s, f"port {port}")
        if not head.startswith(b"HTTP/1.1 206"):
            raise RuntimeError(f"port {port}: {head[:100]!r}")
        got = len(body)
        while got < want:
            chunk = s.recv(1 << 20)
            if not chunk:
                raise RuntimeError(f"port {port}: the body ended after {got} bytes")
            got += len(chunk)
        return (time.perf_counter() - t0) * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exe", type=Path, required=True)
    p.add_argument("--media", type=Path, required=True, help=f"a directory with {BIG}")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--rounds", type=int, default=100, help="starts (and 5 seeks each) per system per rep")
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args()
    media = args.media.resolve()
    size = (media / BIG).stat().st_size
    work = Path(tempfile.mkdtemp(prefix="mediagate-warm-"))
    fast = fast_upstream(work, media)
    env = fast_upstream_env(fast)
    local = Mediagate("mg-local", args.exe.resolve(), work, str(media), ["--threads", "1"], dict(os.environ))
    cache = Mediagate("mg-cache", args.exe.resolve(), work, f"s3://{BUCKET}",
                      ["--threads", "1", "--cache-dir", str(work / "slices"), "--cache-meta-ttl", "3600"], env)
    rnd = random.Random(15)
    seeks = [rnd.randrange(0, size - SEEK_BYTES) for _ in range(5)]
    runs = []
    try:
        fast.start()
        local.start()
        cache.start()
        systems = {"mg-local": local.port, "mg-cache": cache.port}
        for port in systems.values():  # warm: the same reads once, then the read-ahead left to finish
            timed_read(port, BIG, 0, START_BYTES)
            for at in seeks:
                timed_read(port, BIG, at, SEEK_BYTES)
        time.sleep(3)
        for rep in range(1, args.reps + 1):
            got = {name: {"start": [], "seek": []} for name in systems}
            for i in range(args.rounds):
                for name in (list(systems) if i % 2 == 0 else list(systems)[::-1]):
                    got[name]["start"].append(timed_read(systems[name], BIG, 0, START_BYTES))
                    for at in seeks:
                        got[name]["seek"].append(timed_read(systems[name], BIG, at, SEEK_BYTES))
            row = {"rep": rep}
            for name in systems:
                for action in ("start", "seek"):
                    row[f"{name} {action}"] = statistics.median(got[name][action])
            log(f"rep {rep}: start {row['mg-cache start']:.2f} / {row['mg-local start']:.2f} ms, seek "
                f"{row['mg-cache seek']:.2f} / {row['mg-local seek']:.2f} ms (warm cache / local)")
            runs.append(row)
    finally:
        cache.stop()
        local.stop()
        fast.stop()
    lines = [f"# The warm slice cache beside local storage ({datetime.date.today()})", "",
             f"`bench/warm_parity.py --reps {args.reps} --rounds {args.rounds}`: {BIG} ({size} bytes) from a "
             "directory (mg-local) and as an S3 bucket served by nginx through the slice cache (mg-cache, warmed, "
             "read-ahead settled), one event loop each, interleaved; a start reads the first "
             f"{START_BYTES} bytes of `bytes=0-`, a seek {SEEK_BYTES} bytes of `bytes=N-` at 5 random points, "
             "each on a new connection. Median ms per rep.", "",
             "| rep | start: cache / local ms | ratio | seek: cache / local ms | ratio |", "|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['rep']} | {r['mg-cache start']:.2f} / {r['mg-local start']:.2f} | "
                     f"{r['mg-cache start'] / r['mg-local start']:.2f}x | {r['mg-cache seek']:.2f} / "
                     f"{r['mg-local seek']:.2f} | {r['mg-cache seek'] / r['mg-local seek']:.2f}x |")
    write_report(args.out, "\n".join(lines) + "\n", runs)


if __name__ == "__main__":
    main()
