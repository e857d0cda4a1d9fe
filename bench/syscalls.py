#!/usr/bin/env python3
"""Issue 15: system calls per request, mediagate against nginx, on workload 2's requests (random 64 KiB ranges of
a 200 MB file, 16 keep-alive connections), each server as bench.py's W2 runs it from local storage (mg-local;
nginx's ngx-static, bench/nginx/gateway.conf.in). `perf stat` counts the system calls each makes while wrk
runs, divided by the requests wrk completed, and its CPU time (task-clock) per request. Unlike strace, perf's
tracepoints barely slow the server, so the counts are those of a server at full speed (a speculative read that
finds EAGAIN shows only at full speed). --pin keeps wrk on one core and the servers on the others, so that the
requests a second compare the servers rather than where the scheduler put wrk.

    bench/syscalls.py --exe build-rel/mediagate --media bench/.cache/objects [--seconds 5] [--reps 3] [--pin]
                      [--out F]

Needs perf (linux-perf) and permission to trace (root, or kernel.perf_event_paranoid <= 1).
"""
from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import BIG, BUCKET, Mediagate, Nginx, free_port, log, run_wrk, server_args, write_report  # noqa: E402

CALLS = ["recvfrom", "read", "sendmsg", "writev", "sendfile64", "splice", "newfstatat", "openat", "close",
         "epoll_wait", "epoll_ctl", "futex"]

def count(pids: list[int], url: str, size: int, seconds: int, pin: bool = False) -> dict:
    """perf stat of PIDS around one wrk run: system calls and CPU time per completed request. pin: wrk runs
    on the first core alone (one thread), the server on the others (taskset)."""
    events = ",".join(["task-clock"] + [f"syscalls:sys_enter_{c}" for c in CALLS])
    with tempfile.NamedTemporaryFile("r", suffix=".perf") as out:
        perf = subprocess.Popen(["perf", "stat", "-x", ",", "-o", out.name, "-e", events,
                                 "-p", ",".join(map(str, pids)), "--", "sleep", str(seconds + 1)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(0.4)
        result = run_wrk(url, "ranges.lua", [str(size), "65536"], seconds, threads=1 if pin else 2,
                         prefix=["taskset", "-c", "0"] if pin else None)
        _, err = perf.communicate(timeout=seconds + 30)
        if perf.returncode != 0:
            raise RuntimeError(f"perf stat failed: {err}")
        counts = {}
        cpu_ms = 0.0
        for line in Path(out.name).read_text().splitlines():
            parts = line.split(",")
            if len(parts) > 2 and parts[2] == "task-clock":
                cpu_ms = float(parts[0]) if parts[0].replace(".", "", 1).isdigit() else 0.0
            if len(parts) > 2 and parts[2].startswith("syscalls:sys_enter_"):
                counts[parts[2].removeprefix("syscalls:sys_enter_")] = int(parts[0]) if parts[0].isdigit() else 0
    requests = result["requests"]
    per = {c: counts.get(c, 0) / requests for c in CALLS}
    return {"requests": requests, "rps": requests * 1e6 / result["duration_us"], "per_request": per,
            "total": sum(per.values()), "cpu_us": cpu_ms * 1000 / requests}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    server_args(p, seconds=5, reps=3)
    p.add_argument("--pin", action="store_true",
                   help="wrk on the first core, each server on the other cores (taskset): the servers' share of "
                        "the machine no longer depends on how the scheduler places wrk beside them")
    args = p.parse_args()
    size = (args.media / BIG).stat().st_size
    work = Path(tempfile.mkdtemp(prefix="mediagate-syscalls-"))
    media = args.media.resolve()
    # The two as bench.py's W2 runs them: mg-local, and nginx with bench/nginx/gateway.conf.in (ngx-static; its
    # other servers point at upstreams that are not running and get no requests here).
    mg = Mediagate("mg-local", args.exe.resolve(), work, str(media), [], dict(os.environ))
    ports = {k: free_port() for k in ("STATIC_PORT", "S3_PORT", "FASTPROXY_PORT", "CACHE_PORT")}
    subst = dict(ports, RGW_PORT=free_port(), FAST_PORT=free_port(), MEDIA_DIR=media, BUCKET=BUCKET)
    ngx = Nginx("nginx", work, HERE / "nginx" / "gateway.conf.in", subst, list(ports.values()))
    runs = []
    try:
        mg.start()
        ngx.start()
        if args.pin:
            others = f"1-{os.cpu_count() - 1}"
            for pid in mg.pids() + ngx.pids():
                subprocess.run(["taskset", "-a", "-p", "-c", others, str(pid)], check=True, capture_output=True)
        systems = [("mediagate", mg.pids(), mg.url(BIG)),
                   ("nginx", ngx.pids(), f"http://127.0.0.1:{ports['STATIC_PORT']}/media/{BIG}")]
        for rep in range(1, args.reps + 1):
            for name, pids, url in systems:
                r = count(pids, url, size, args.seconds, args.pin)
                log(f"{name} rep {rep}: {r['rps']:.0f} req/s, {r['total']:.2f} system calls and "
                    f"{r['cpu_us']:.1f} us of CPU per request")
                runs.append(dict(r, system=name, rep=rep))
    finally:
        mg.stop()
        ngx.stop()
    pinned = " --pin" if args.pin else ""
    lines = [f"# System calls per request, workload 2 ({datetime.date.today()})", "",
             f"`bench/syscalls.py --seconds {args.seconds} --reps {args.reps}{pinned}`: random 64 KiB ranges of {BIG} "
             f"({size} bytes), 16 connections, mediagate and nginx as bench.py's W2 runs them (mg-local, "
             "ngx-static: an event loop or a worker per core); `perf stat` of the server's system calls while wrk "
             "runs, per completed request, median of the runs.", "",
             "| system call | mediagate | nginx |", "|---|---|---|"]
    med = {name: {c: statistics.median(r["per_request"][c] for r in runs if r["system"] == name) for c in CALLS}
           for name in ("mediagate", "nginx")}
    for c in CALLS:
        if med["mediagate"][c] or med["nginx"][c]:
            lines.append(f"| {c} | {med['mediagate'][c]:.2f} | {med['nginx'][c]:.2f} |")
    totals = {name: statistics.median(r["total"] for r in runs if r["system"] == name) for name in med}
    lines.append(f"| **total** | **{totals['mediagate']:.2f}** | **{totals['nginx']:.2f}** |")
    cpu = {name: statistics.median(r["cpu_us"] for r in runs if r["system"] == name) for name in med}
    lines.append(f"| CPU per request (task-clock, us) | {cpu['mediagate']:.1f} | {cpu['nginx']:.1f} |")
    rps = {name: [round(r["rps"]) for r in runs if r["system"] == name] for name in med}
    lines += ["", f"Requests a second under perf: mediagate {rps['mediagate']}, nginx {rps['nginx']}; mediagate / "
              f"nginx per rep: {', '.join(f'{a / b:.2f}' for a, b in zip(rps['mediagate'], rps['nginx']))}"
              + (" (wrk pinned to core 0 with one thread, the servers to the others)." if args.pin else ".")]
    write_report(args.out, "\n".join(lines) + "\n", runs)


if __name__ == "__main__":
    main()
