#!/usr/bin/env python3
"""Issue 15: the gateways' own instructions per request, mediagate against nginx, counted by callgrind, on
workload 2's requests (random 64 KiB ranges of a 200 MB file, 16 keep-alive connections). Requests a second
on this two-core machine move by +-20 % between reps of the same build (where the scheduler puts wrk, the
servers and the store); an instruction count does not, so it compares the servers' code and nothing else.

Three rows, each server with one event loop or one process (nginx: master_process off) under
`valgrind --tool=callgrind --instr-atstart=no`, warmed up, then counted only while wrk runs:
- local: mediagate from a directory (mg-local) against nginx static (ngx-static, bench/nginx/gateway.conf.in);
- fast upstream: mediagate's S3 client (SigV4, every answer checked) against nginx proxy_pass (ngx-fast), both
  reading bench/nginx/fast-upstream.conf.in, an nginx that serves the objects as an S3 bucket at full speed;
- the same with four objects in turn (big.mp4 and the three clips, bench/wrk/ranges_mixed.lua): no read is
  followed by another of the same object, as with viewers of different videos on one event loop.

Callgrind counts user space only (the servers' code and their libraries: libc, OpenSSL, tcmalloc). The
kernel's share (sendfile, TCP, epoll), 80-90 % of either server's CPU on this workload, is not in the count:
bench/syscalls.py and perf show it the same for both.

    bench/instructions.py --exe build-bench/mediagate --media bench/.cache/objects [--seconds 8] [--reps 2]
                          [--out F]

Needs valgrind. Everything listens on 127.0.0.1.
"""
from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench import (BIG, BUCKET, CLIPS, Mediagate, Nginx, fast_upstream, fast_upstream_env, free_port, log,  # noqa: E402
                   run_wrk, server_args, wrk_errors, write_report)

def callgrind(server) -> list[str]:
    """The command that runs SERVER under callgrind, uncounted until callgrind_control turns it on."""
    return ["valgrind", "--tool=callgrind", "--instr-atstart=no",
            f"--callgrind-out-file={server.dir / 'callgrind.out'}"]


class CountedNginx(Nginx):
    """nginx as one process (master_process off, one worker's work), under callgrind."""

    workers_expected = 0
    start_timeout = 60.0

    def config(self, text: str) -> str:
        text, n = re.subn(r"worker_processes \d+;", "worker_processes 1;\nmaster_process off;", text)
        if n != 1:
            raise RuntimeError(f"{self.template}: no worker_processes line to replace")
        return text

    def command(self, conf: Path) -> list[str]:
        return [*callgrind(self), *super().command(conf)]


def wrk(url: str, load: tuple[str, list[str]], seconds: float) -> int:
    """Completed requests of one wrk run of LOAD (a script of bench/wrk and its arguments) against URL."""
    r = run_wrk(url, *load, seconds, threads=1)
    if wrk_errors(r):
        raise RuntimeError(f"wrk saw errors: {r}")
    return r["requests"]


def count(server, url: str, load: tuple[str, list[str]], seconds: float, rep: int) -> dict:
    """Instructions per request of one wrk run: instrumentation on just around it, then a dump."""
    pid = str(server.proc.pid)
    subprocess.run(["callgrind_control", "--zero", pid], check=True, capture_output=True, timeout=60)
    subprocess.run(["callgrind_control", "--instr=on", pid], check=True, capture_output=True, timeout=60)
    requests = wrk(url, load, seconds)
    subprocess.run(["callgrind_control", "--instr=off", pid], check=True, capture_output=True, timeout=60)
    before = set(server.dir.glob("callgrind.out*"))
    subprocess.run(["callgrind_control", "--dump", pid], check=True, capture_output=True, timeout=60)
    deadline = time.monotonic() + 30
    while not (set(server.dir.glob("callgrind.out*")) - before) and time.monotonic() < deadline:
        time.sleep(0.2)
    dumps = sorted(set(server.dir.glob("callgrind.out*")) - before)
    if not dumps:
        raise RuntimeError(f"{server.name}: callgrind wrote no dump")
    total = 0
    for d in dumps:
        m = re.search(r"^totals: (\d+)", d.read_text(errors="replace"), re.M)
        total += int(m.group(1)) if m else 0
        d.rename(d.with_name(f"{d.name}.rep{rep}"))
    return {"requests": requests, "instructions": total, "per_request": total / requests}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    server_args(p, seconds=8.0, reps=2)
    args = p.parse_args()
    size = (args.media / BIG).stat().st_size
    work = Path(tempfile.mkdtemp(prefix="mediagate-instructions-"))
    media = args.media.resolve()
    fast = fast_upstream(work, media)
    ports = {k: free_port() for k in ("STATIC_PORT", "S3_PORT", "FASTPROXY_PORT", "CACHE_PORT")}
    # The S3 and cache servers of gateway.conf.in point at a radosgw that is not running; they get no requests.
    subst = dict(ports, RGW_PORT=free_port(), FAST_PORT=fast.ports[0], MEDIA_DIR=media, BUCKET=BUCKET)
    fast_env = fast_upstream_env(fast)
    mg_local = Mediagate("mg-local", args.exe.resolve(), work, str(media), ["--threads", "1"], dict(os.environ))
    mg_fast = Mediagate("mg-fast", args.exe.resolve(), work, f"s3://{BUCKET}", ["--threads", "1"], fast_env)
    for mg in (mg_local, mg_fast):
        mg.wrapper = callgrind(mg)
    ngx = CountedNginx("nginx", work, HERE / "nginx" / "gateway.conf.in", subst, list(ports.values()))
    one = ("ranges.lua", [str(size), "65536"])
    # Four objects in turn, one request each: a read of one object is never followed by another of the same.
    mixed = ("ranges_mixed.lua", ["65536"] + [x for k in (BIG, *CLIPS) for x in (k, str((media / k).stat().st_size))])
    ngx_local, ngx_fast = (f"http://127.0.0.1:{ports[k]}/media/" for k in ("STATIC_PORT", "FASTPROXY_PORT"))
    rows = [("local", mg_local, ngx_local, BIG, one), ("fast upstream", mg_fast, ngx_fast, BIG, one),
            ("fast upstream, 4 objects in turn", mg_fast, ngx_fast, "", mixed)]
    runs = []
    try:
        fast.start()
        for s in (mg_local, mg_fast, ngx):
            s.start()
        for row, mg, ngx_prefix, key, load in rows:
            systems = [("mediagate", mg, mg.url(key)), ("nginx", ngx, ngx_prefix + key)]
            for _, server, url in systems:
                wrk(url, load, 2)  # uncounted: connections, pools, caches and the page cache settle
            for rep in range(1, args.reps + 1):
                for name, server, url in systems:
                    r = count(server, url, load, args.seconds, len(runs))
                    log(f"{row}, {name} rep {rep}: {r['requests']} requests, {r['per_request']:.0f} instructions "
                        "per request")
                    runs.append(dict(r, row=row, system=name, rep=rep))
    finally:
        for s in (mg_local, mg_fast, ngx, fast):
            s.stop()
    lines = [f"# User-space instructions per request, workload 2 ({datetime.date.today()})", "",
             f"`bench/instructions.py --seconds {args.seconds:g} --reps {args.reps}`: random 64 KiB ranges of {BIG} "
             f"({size} bytes), 16 connections, one wrk thread; each server with one event loop or one process "
             "under callgrind, counted only while wrk runs. User space only: the servers' code and their "
             "libraries, not the kernel's sendfile, TCP and epoll.", "",
             "| row | mediagate | nginx | mediagate / nginx |", "|---|---|---|---|"]
    for row, *_ in rows:
        med = {name: statistics.median(r["per_request"] for r in runs if r["row"] == row and r["system"] == name)
               for name in ("mediagate", "nginx")}
        lines.append(f"| {row} | {med['mediagate']:,.0f} | {med['nginx']:,.0f} | "
                     f"{med['mediagate'] / med['nginx']:.2f} |")
    lines += ["", "Per run (instructions per request): " + "; ".join(
        f"{r['row']} {r['system']} {r['per_request']:,.0f} ({r['requests']} requests)" for r in runs) + "."]
    write_report(args.out, "\n".join(lines) + "\n", runs)


if __name__ == "__main__":
    main()
