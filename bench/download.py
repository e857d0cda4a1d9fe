#!/usr/bin/env python3
"""Issue 15: one client downloading a large object through an S3 across a network. radosgw behind the shaped S3
of tests/integration/shaped_s3.py (a fixed delay before every request, a per-connection rate cap); mediagate (no
cache) in front of it with parallel ranged GETs of parts off (--s3-download-parts 1: one S3 connection) and on
(4, 6 and 8 parts of 8 MiB); the client is curl, one connection, GET without Range, body discarded. A viewer's
stream (`Range: bytes=0-`, same speed of reading) is measured too: it must stay on one connection.

    bench/download.py --exe build/mediagate [--size-mb 200] [--delay-ms 30] [--rate 80m] [--reps 3] [--out FILE]

Configurations interleaved, --reps times; the table shows the median MB/s and the S3 GETs of one download.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shutil
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(HERE))
from bench import Mediagate, log, start_radosgw, stop_radosgw, write_report  # noqa: E402
from shaped_s3 import ShapedS3  # noqa: E402

BUCKET = "download"
KEY = "big.mp4"

CONFIGS = [
    # name, extra args, request headers
    ("one S3 connection (--s3-download-parts 1)", ["--s3-download-parts", "1"], []),
    ("4 parts of 8 MiB", ["--s3-download-parts", "4"], []),
    ("6 parts of 8 MiB (default)", [], []),
    ("8 parts of 8 MiB", ["--s3-download-parts", "8"], []),
    ("viewer: Range bytes=0-, default settings", [], ["-H", "Range: bytes=0-"]),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exe", type=Path, default=ROOT / "build" / "mediagate")
    p.add_argument("--size-mb", type=int, default=200)
    p.add_argument("--delay-ms", type=float, default=30)
    p.add_argument("--rate", default="80m")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mediagate-download-"))
    rgw_dir = work / "radosgw"
    rgw = start_radosgw(rgw_dir)
    shaped = None
    servers = []
    try:
        import botocore.config
        import botocore.session

        s3 = botocore.session.get_session().create_client(
            "s3", endpoint_url=rgw["AWS_ENDPOINT_URL"], region_name="us-east-1",
            aws_access_key_id=rgw["AWS_ACCESS_KEY_ID"], aws_secret_access_key=rgw["AWS_SECRET_ACCESS_KEY"],
            config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"}))
        s3.create_bucket(Bucket=BUCKET)
        size = args.size_mb * 1000 * 1000
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=os.urandom(size), ContentType="video/mp4")
        shaped = ShapedS3(work / "shaped", upstream_port=int(rgw["AWS_ENDPOINT_URL"].rsplit(":", 1)[1]),
                          delay_ms=args.delay_ms, rate=args.rate)
        shaped.start()
        env = dict(os.environ, AWS_ENDPOINT_URL=shaped.endpoint, AWS_ACCESS_KEY_ID=rgw["AWS_ACCESS_KEY_ID"],
                   AWS_SECRET_ACCESS_KEY=rgw["AWS_SECRET_ACCESS_KEY"], AWS_REGION="us-east-1")
        for i, (name, extra, _) in enumerate(CONFIGS):
            mg = Mediagate(f"mg{i}", args.exe, work, f"s3://{BUCKET}", ["--threads", "1", *extra], env)
            mg.start()
            servers.append(mg)
        runs = []
        for rep in range(args.reps):
            for (name, _, headers), mg in zip(CONFIGS, servers):
                before = mg.metrics()
                t0 = time.perf_counter()
                out = subprocess.run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
                                      *headers, mg.url(KEY)], capture_output=True, text=True, timeout=600)
                took = time.perf_counter() - t0
                after = mg.metrics()
                code, got = out.stdout.split()
                if code not in ("200", "206") or int(got) != size:
                    raise RuntimeError(f"{name}: {out.stdout} {out.stderr}")
                gets = after["mediagate_s3_get_requests_total"] - before["mediagate_s3_get_requests_total"]
                runs.append({"config": name, "seconds": took, "mb_per_s": size / took / 1e6, "s3_gets": gets})
                log(json.dumps(runs[-1]))
    finally:
        for mg in servers:
            mg.stop()
        if shaped:
            shaped.stop()
        stop_radosgw(rgw_dir)
        shutil.rmtree(work, ignore_errors=True)

    one = statistics.median(r["mb_per_s"] for r in runs if r["config"] == CONFIGS[0][0])
    lines = [f"# One client's download through a shaped S3 ({datetime.date.today()})", "",
             f"`bench/download.py --size-mb {args.size_mb} --delay-ms {args.delay_ms:g} --rate {args.rate} "
             f"--reps {args.reps}`: radosgw behind nginx+Lua adding {args.delay_ms:g} ms before every request and "
             f"capping each connection at {args.rate}B/s; mediagate (RelWithDebInfo, one event loop, no cache) in "
             f"front; curl downloads the {args.size_mb} MB object on one connection (body discarded). Median of "
             "the repetitions, configurations interleaved. Shared 2-core machine.", "",
             "| configuration | MB/s | × one S3 connection | S3 GETs per download |", "|---|---|---|---|"]
    for name, _, _ in CONFIGS:
        rows = [r for r in runs if r["config"] == name]
        rate = statistics.median(r["mb_per_s"] for r in rows)
        gets = statistics.median(r["s3_gets"] for r in rows)
        lines.append(f"| {name} | {rate:.1f} | {rate / one:.2f}× | {gets:.0f} |")
    text = "\n".join(lines) + "\n"
    write_report(args.out, text, runs)


if __name__ == "__main__":
    main()
