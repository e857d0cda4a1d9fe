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

RANGES = ["0-", "0-65535", "0-1048575", "0-4194303", "0-16777215", "0-67108863", "-1048576", "100000000-",
          "100000000-101048575"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--object", type=Path, default=HERE / ".cache" / "objects" / "big.mp4")
    p.add_argument("--reps", type=int, default=8)
    p.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = p.parse_args()

    work = Path(tempfile.mkdtemp(prefix="mediagate-ttfb-"))
    rgw_dir = work / "radosgw"
    rgw = start_radosgw(rgw_dir)
    runs = []
    try:
        os.environ.update(rgw)
        import s3util  # noqa: E402  (tests/integration; botocore)

        s3 = s3util.client_from_env()
        s3util.create_bucket("ttfb", client=s3)
        with open(args.object, "rb") as f:
            s3.put_object(Bucket="ttfb", Key="object", Body=f.read())
        url = s3.generate_presigned_url("get_object", Params={"Bucket": "ttfb", "Key": "object"}, ExpiresIn=3600)
        for rep in range(args.reps):  # ranges interleaved
            for r in RANGES:
                out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-r", r, "-w", "%{http_code} %{time_starttransfer}",
                                      "-m", "30", url], capture_output=True, text=True, timeout=60).stdout.split()
                if out[0] != "206":
                    raise RuntimeError(f"bytes={r}: status {out[0]}")
                runs.append({"range": r, "rep": rep, "ttfb_ms": float(out[1]) * 1000})
        log(f"{len(runs)} requests")
    finally:
        stop_radosgw(rgw_dir)
        shutil.rmtree(work, ignore_errors=True)

    lines = [f"# radosgw's time to the first byte, by range ({datetime.date.today()})", "",
             f"`bench/s3_ttfb.py --reps {args.reps}`: curl, one GET at a time (presigned, SigV4 checked), radosgw on "
             f"loopback, the {args.object.stat().st_size} byte `{args.object.name}`; ranges interleaved.", "",
             "| Range | TTFB median ms | min | max |", "|---|---|---|---|"]
    for r in RANGES:
        v = [x["ttfb_ms"] for x in runs if x["range"] == r]
        lines.append(f"| bytes={r} | {statistics.median(v):.1f} | {min(v):.1f} | {max(v):.1f} |")
    write_report(args.out, "\n".join(lines) + "\n", runs)


if __name__ == "__main__":
    main()
