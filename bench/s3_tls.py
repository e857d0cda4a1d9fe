#!/usr/bin/env python3
"""Issue 15: what TLS to S3 costs per request. radosgw serves http and https (a test CA's certificate for
*.s3.test, `rgw dns name = s3.test`); mediagate (one event loop, no cache) reads it over plain http (path style)
and over https with virtual-hosted addressing (--s3-connect-to), with pooled connections on or off
(--s3-idle-connections 0: a new connection per S3 request) and TLS session resumption on or off. A client sends
N small ranged GETs (4 KiB at random offsets of a 16 MiB object) one after another on one keep-alive connection;
per request: the client's latency (mean, p50, p99), mediagate's CPU time, and from /metrics the connections,
TLS handshakes and resumed handshakes to S3.

    bench/s3_tls.py --exe build/mediagate [--requests 1000] [--reps 2] [--out bench/results/S3TLS-DATE]

Configurations run interleaved, `--reps` times each; the table shows the median of the repetitions.
"""
from __future__ import annotations

import argparse
import datetime
import http.client
import json
import shutil
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(HERE))
import tlsutil  # noqa: E402
from bench import Mediagate, log, start_radosgw, stop_radosgw, write_report  # noqa: E402

BUCKET = "tlsbench"
KEY = "object.bin"
SIZE = 16 << 20
RANGE = 4096
NAME = "s3.test"

CONFIGS = [
    # name, https, pooled, resume
    ("http, pooled", False, True, True),
    ("http, new connection per request", False, False, True),
    ("https, pooled", True, True, True),
    ("https, new connection, resumed", True, False, True),
    ("https, new connection, full handshake", True, False, False),
]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(exe: Path, work: Path, rgw: dict, ca: Path, cfg, requests: int, seed: int) -> dict:
    name, https, pooled, resume = cfg
    extra = ["--threads", "1", "--s3-meta-ttl", "60"]
    env = dict(os.environ, AWS_ACCESS_KEY_ID=rgw["AWS_ACCESS_KEY_ID"],
               AWS_SECRET_ACCESS_KEY=rgw["AWS_SECRET_ACCESS_KEY"], AWS_REGION="us-east-1")
    if https:
        port = rgw["RGW_SSL_PORT"]
        env.update(AWS_ENDPOINT_URL=f"https://{NAME}:{port}", AWS_CA_BUNDLE=str(ca))
        extra += ["--s3-addressing", "virtual", "--s3-connect-to", f"127.0.0.1:{port}"]
    else:
        env["AWS_ENDPOINT_URL"] = rgw["AWS_ENDPOINT_URL"]
    if not pooled:
        extra += ["--s3-idle-connections", "0"]
    if not resume:
        extra.append("--s3-no-tls-resume")
    mg = Mediagate("mg-" + name.replace(" ", "").replace(",", "-"), exe, work, f"s3://{BUCKET}", extra, env)
    mg.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", mg.port, timeout=30)
        rng = random.Random(seed)

        def get(first: int) -> float:
            t0 = time.perf_counter()
            conn.request("GET", f"/media/{KEY}", headers={"Range": f"bytes={first}-{first + RANGE - 1}"})
            r = conn.getresponse()
            body = r.read()
            if r.status != 206 or len(body) != RANGE:
                raise RuntimeError(f"{name}: status {r.status}, {len(body)} bytes")
            return time.perf_counter() - t0

        for _ in range(20):  # warm-up: metadata cached, the loop's first connection and session made
            get(rng.randrange(0, SIZE - RANGE))
        before = mg.metrics()
        cpu0 = cpu_seconds(mg.proc.pid)
        times = [get(rng.randrange(0, SIZE - RANGE)) for _ in range(requests)]
        cpu1 = cpu_seconds(mg.proc.pid)
        after = mg.metrics()
        conn.close()
    finally:
        mg.stop()

    def d(metric: str) -> float:
        return after.get(f"mediagate_s3_{metric}_total", 0) - before.get(f"mediagate_s3_{metric}_total", 0)

    times.sort()
    return {
        "config": name, "requests": requests,
        "mean_ms": statistics.fmean(times) * 1e3,
        "p50_ms": times[len(times) // 2] * 1e3,
        "p99_ms": times[int(len(times) * 0.99)] * 1e3,
        "cpu_us_per_request": (cpu1 - cpu0) / requests * 1e6,
        "s3_requests": d("requests"), "connections": d("connections_opened"),
        "tls_handshakes": d("tls_handshakes"), "tls_resumed": d("tls_resumed"),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exe", type=Path, default=ROOT / "build" / "mediagate")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mediagate-s3tls-"))
    ca = tlsutil.TestCA(work / "ca", name="mediagate S3 bench CA")
    pair = ca.issue("rgw", cn=NAME, sans=f"DNS:*.{NAME},IP:127.0.0.1")
    os.environ.update(RGW_SSL_CERT=str(pair.cert), RGW_SSL_KEY=str(pair.key), RGW_DNS_NAME=NAME)
    rgw_dir = work / "radosgw"
    rgw = start_radosgw(rgw_dir)
    try:
        import botocore.config
        import botocore.session

        s3 = botocore.session.get_session().create_client(
            "s3", endpoint_url=rgw["AWS_ENDPOINT_URL"], region_name="us-east-1",
            aws_access_key_id=rgw["AWS_ACCESS_KEY_ID"], aws_secret_access_key=rgw["AWS_SECRET_ACCESS_KEY"],
            config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=random.Random(1).randbytes(SIZE))
        runs = []
        for rep in range(args.reps):
            for cfg in CONFIGS:
                log(f"rep {rep + 1}/{args.reps}: {cfg[0]}")
                runs.append(one_run(args.exe, work, rgw, ca.cert, cfg, args.requests, seed=rep))
                log(json.dumps(runs[-1]))
    finally:
        import subprocess
        stop_radosgw(rgw_dir)
        shutil.rmtree(work, ignore_errors=True)

    lines = [f"# TLS to S3: cost per request ({datetime.date.today()})", "",
             f"`bench/s3_tls.py --requests {args.requests} --reps {args.reps}`: mediagate (RelWithDebInfo, one event "
             "loop, no cache) in front of one radosgw on loopback; one client sends 4 KiB ranged GETs of a 16 MiB "
             "object one after another on one keep-alive connection. Median of the repetitions (configurations "
             "interleaved). Shared 2-core machine: absolute figures are noisy, compare rows.", "",
             "| S3 connection | mean ms | p50 ms | p99 ms | mediagate CPU µs/req | S3 conns/req | TLS handshakes "
             "| resumed |", "|---|---|---|---|---|---|---|---|"]
    for cfg in CONFIGS:
        rows = [r for r in runs if r["config"] == cfg[0]]
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0] if k != "config"}
        lines.append(f"| {cfg[0]} | {med['mean_ms']:.2f} | {med['p50_ms']:.2f} | {med['p99_ms']:.2f} "
                     f"| {med['cpu_us_per_request']:.0f} | {med['connections'] / med['requests']:.2f} "
                     f"| {med['tls_handshakes']:.0f} | {med['tls_resumed']:.0f} |")
    text = "\n".join(lines) + "\n"
    write_report(args.out, text, runs)


if __name__ == "__main__":
    main()
