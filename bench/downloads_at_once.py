#!/usr/bin/env python3
"""Issue 15: several clients downloading a large object at once from a store close by whose bandwidth they all
share (loopback radosgw, no shaping). mediagate (no cache) with its default download settings (parts when one
connection is slow), the same with parts off (--s3-download-parts 1), optionally a second build with the default
settings (--exe-b, to compare two builds side by side), and radosgw itself through a presigned URL. wrk, N
connections, GETs without Range of the whole object, for --duration seconds per run.

    bench/downloads_at_once.py --exe build/mediagate [--exe-b OTHER] [--conns 8] [--duration 20] [--reps 3]

Systems interleaved, --reps times, in a rotated order each rep. The table shows the median MB/s, its median ratio
to radosgw's within a rep, and what mediagate asked of S3 per download (GETs, downloads that went in parts, parts
stopped).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(HERE))
from bench import Mediagate, log, start_radosgw, stop_radosgw, write_report  # noqa: E402

BUCKET = "downloads"
KEY = "big.bin"
COUNTERS = ("mediagate_s3_get_requests_total", "mediagate_s3_downloads_in_parts_total",
            "mediagate_s3_download_parts_stopped_total")


def wrk(url: str, conns: int, duration: float) -> dict:
    cmd = ["wrk", "-t2", f"-c{conns}", f"-d{round(duration)}s", "--timeout", "60s", "-s", str(HERE / "wrk" / "full.lua"),
           url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120,
                         env=dict(os.environ, BENCH_WRK_DIR=str(HERE / "wrk")))
    line = [x for x in out.stdout.splitlines() if x.startswith("{")]
    if out.returncode != 0 or not line:
        raise RuntimeError(f"wrk failed ({out.returncode}): {out.stderr[-500:]} {out.stdout[-500:]}")
    r = json.loads(line[-1])
    errors = r["err_connect"] + r["err_read"] + r["err_write"] + r["err_status"] + r["err_timeout"]
    return {"bytes": r["bytes"], "requests": r["requests"], "mb_per_s": r["bytes"] / (r["duration_us"] / 1e6) / 1e6,
            "errors": errors}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exe", type=Path, required=True)
    p.add_argument("--exe-b", type=Path, help="a second build, with the default settings too")
    p.add_argument("--size-mb", type=int, default=200)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--duration", type=float, default=20)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mediagate-downloads-"))
    rgw_dir = work / "radosgw"
    rgw = start_radosgw(rgw_dir)
    servers: dict[str, Mediagate] = {}
    runs = []
    try:
        os.environ.update(rgw)
        import s3util  # noqa: E402  (tests/integration; botocore)

        s3 = s3util.client_from_env()
        s3.create_bucket(Bucket=BUCKET)
        size = args.size_mb * 1000 * 1000
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=os.urandom(size), ContentType="video/mp4")
        env = dict(os.environ, AWS_ENDPOINT_URL=rgw["AWS_ENDPOINT_URL"], AWS_ACCESS_KEY_ID=rgw["AWS_ACCESS_KEY_ID"],
                   AWS_SECRET_ACCESS_KEY=rgw["AWS_SECRET_ACCESS_KEY"], AWS_REGION="us-east-1")
        configs = [("mg", args.exe, []), ("mg-one-connection", args.exe, ["--s3-download-parts", "1"])]
        if args.exe_b:
            configs.append(("mg-b", args.exe_b, []))
        for name, exe, extra in configs:
            servers[name] = Mediagate(name, exe.resolve(), work, f"s3://{BUCKET}", extra, env)
            servers[name].start()
        urls = {name: mg.url(KEY) for name, mg in servers.items()}
        urls["rgw"] = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": KEY}, ExpiresIn=7200)
        names = list(urls)
        for rep in range(args.reps):
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                before = servers[name].metrics() if name in servers else {}
                r = wrk(urls[name], args.conns, args.duration)
                if name in servers:
                    after = servers[name].metrics()
                    r.update({k: after.get(k, 0) - before.get(k, 0) for k in COUNTERS})
                r.update(system=name, rep=rep)
                runs.append(r)
                log(json.dumps(r))
    finally:
        for mg in servers.values():
            mg.stop()
        stop_radosgw(rgw_dir)
        shutil.rmtree(work, ignore_errors=True)

    def of(name: str, rep: int) -> dict:
        return next(r for r in runs if r["system"] == name and r["rep"] == rep)

    lines = [f"# {args.conns} downloads at once from loopback radosgw ({datetime.date.today()})", "",
             f"`bench/downloads_at_once.py --conns {args.conns} --duration {args.duration:g} --reps {args.reps} "
             f"--size-mb {args.size_mb}`: wrk, {args.conns} connections, GETs without Range of a {args.size_mb} MB "
             "object, systems interleaved. Per download: S3 GETs, and how many went in parts and had their parts "
             "stopped.", "",
             "| system | MB/s (median) | × radosgw (paired median, range) | GETs per download | in parts | stopped |",
             "|---|---|---|---|---|---|"]
    for name in names:
        rows = [r for r in runs if r["system"] == name]
        ratios = [r["mb_per_s"] / of("rgw", r["rep"])["mb_per_s"] for r in rows]
        downloads = sum(r["bytes"] for r in rows) / size
        per = (lambda k: f"{sum(r[k] for r in rows) / downloads:.2f}") if name in servers else (lambda k: "—")
        lines.append(f"| {name} | {statistics.median(r['mb_per_s'] for r in rows):.0f} | "
                     f"{statistics.median(ratios):.2f}× ({min(ratios):.2f}–{max(ratios):.2f}) | "
                     f"{per(COUNTERS[0])} | {per(COUNTERS[1])} | {per(COUNTERS[2])} |")
    text = "\n".join(lines) + "\n"
    write_report(args.out, text, runs)


if __name__ == "__main__":
    main()
