#!/usr/bin/env python3
"""Issue 15: how long radosgw takes to the first byte of a ranged GET, by the length of the range. A gateway that
asks for `bytes=N-` (what a player sends) waits for whatever the store does before it answers an open-ended
range; a bounded range may be answered sooner. curl, one request at a time, against radosgw on loopback (no
shaping: the store's own time).

    bench/s3_ttfb.py [--object bench/.cache/objects/big.mp4] [--reps 8] [--out FILE]
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
from bench import log, start_radosgw, stop_radosgw, write_report  # noqa: E402

# Two GETs sent at once (--pairs): a player's first MiB beside the rest of its range, the rest starting within the
# same 4 MiB stripe or at the next one: does the head still come as soon as alone?
PAIRS = [("0-1048575", None), ("0-1048575", "1048576-"), ("0-1048575", "4194304-"), ("0-1048575", "1048576-4194303"),
         ("0-", None)]
RANGES = ["0-", "0-65535", "0-1048575", "0-4194303", "0-16777215", "0-67108863", "-1048576", "100000000-",
          "100000000-101048575"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--object", type=Path, default=HERE / ".cache" / "objects" / "big.mp4")
    p.add_argument("--reps", type=int, default=8)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    p.add_argument("--pairs", action="store_true", help="measure PAIRS (two GETs at once) instead of RANGES")
    p.add_argument("--objecter-raised", action="store_true",
                   help="radosgw's objecter budget raised as bench/latency.py runs it")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mediagate-ttfb-"))
    rgw_dir = work / "radosgw"
    rgw = start_radosgw(rgw_dir)
    if args.objecter_raised:
        with open(rgw_dir / "ceph.conf", "a") as conf:
            conf.write("objecter inflight op bytes = 4294967296\nobjecter inflight ops = 65536\n")
        subprocess.run([str(ROOT / "scripts" / "radosgw.sh"), "restart-rgw", str(rgw_dir)], check=True,
                       capture_output=True, timeout=300, env=dict(os.environ, RGW_DEBUG="0"))
    runs = []
    try:
        os.environ.update(rgw)
        import s3util  # noqa: E402  (tests/integration; botocore)

        s3 = s3util.client_from_env()
        s3util.create_bucket("ttfb", client=s3)
        with open(args.object, "rb") as f:
            s3.put_object(Bucket="ttfb", Key="object", Body=f.read())
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "ttfb", "Key": "object"}, ExpiresIn=3600)
        def curl(r: str) -> subprocess.Popen:
            return subprocess.Popen(["curl", "-s", "-o", "/dev/null", "-r", r, "-w",
                                     "%{http_code} %{time_starttransfer} %{time_total}", "-m", "30", url],
                                    stdout=subprocess.PIPE, text=True)

        def timings(proc: subprocess.Popen, r: str) -> tuple[float, float]:
            out = proc.communicate(timeout=60)[0].split()
            if out[0] != "206":
                raise RuntimeError(f"bytes={r}: status {out[0]}")
            return float(out[1]) * 1000, float(out[2]) * 1000

        for rep in range(args.reps):  # ranges interleaved
            if args.pairs:
                for head, rest in PAIRS:
                    procs = [curl(head)] + ([curl(rest)] if rest else [])
                    head_t = timings(procs[0], head)
                    rest_t = timings(procs[1], rest) if rest else (None, None)
                    runs.append({"head": head, "rest": rest, "rep": rep, "head_ttfb_ms": head_t[0],
                                 "head_total_ms": head_t[1], "rest_ttfb_ms": rest_t[0]})
                continue
            for r in RANGES:
                ttfb, _ = timings(curl(r), r)
                runs.append({"range": r, "rep": rep, "ttfb_ms": ttfb})
        log(f"{len(runs)} requests")
    finally:
        stop_radosgw(rgw_dir)
        shutil.rmtree(work, ignore_errors=True)

    if args.pairs:
        lines = [f"# radosgw's time to the first byte of a head GET sent beside another ({datetime.date.today()})",
                 "", f"`bench/s3_ttfb.py --pairs --reps {args.reps}{' --objecter-raised' if args.objecter_raised else ''}`: curl, two GETs started at once (or the head "
                 f"alone), radosgw on loopback, the {args.object.stat().st_size} byte `{args.object.name}`.", "",
                 "| head | beside it | head TTFB median ms (min–max) | head done median ms | rest TTFB median ms |",
                 "|---|---|---|---|---|"]
        for head, rest in PAIRS:
            v = [x for x in runs if x["head"] == head and x["rest"] == rest]
            t = [x["head_ttfb_ms"] for x in v]
            rt = [x["rest_ttfb_ms"] for x in v if x["rest_ttfb_ms"] is not None]
            lines.append(f"| bytes={head} | {'bytes=' + rest if rest else '—'} | {statistics.median(t):.1f} "
                         f"({min(t):.1f}–{max(t):.1f}) | {statistics.median(x['head_total_ms'] for x in v):.1f} | "
                         f"{statistics.median(rt) if rt else float('nan'):.1f} |")
        write_report(args.out, "\n".join(lines) + "\n", runs)
        return
    lines = [f"# radosgw's time to the first byte, by range ({datetime.date.today()})", "",
             f"`bench/s3_ttfb.py --reps {args.reps}{' --objecter-raised' if args.objecter_raised else ''}`: curl, one GET at a time (presigned, SigV4 checked), radosgw on "
             f"loopback, the {args.object.stat().st_size} byte `{args.object.name}`; ranges interleaved.", "",
             "| Range | TTFB median ms | min | max |", "|---|---|---|---|"]
    for r in RANGES:
        v = [x["ttfb_ms"] for x in runs if x["range"] == r]
        lines.append(f"| bytes={r} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
    write_report(args.out, "\n".join(lines) + "\n", runs)


if __name__ == "__main__":
    main()
