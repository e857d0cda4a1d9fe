#!/usr/bin/python3
"""Turns the raw figures of a bench/run into the Markdown report (stdlib only).

  report.py --work DIR --out bench/results/RESULTS-DATE.md   from a scratch directory (raw.jsonl, meta.json,
                                                                micro.json); also writes OUT with .json: the
                                                                raw figures, to regenerate the report later
  report.py --bundle RESULTS-DATE.json --out FILE.md            from such a bundle
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path

MIB = 1 << 20

PAIRS = {  # label: (mediagate system, nginx system, reference system, reference label)
    "local": ("mg-local", "ngx-static", None, ""),
    "S3 radosgw": ("mg-s3", "ngx-s3", "rgw", "radosgw direct"),
    "S3 radosgw, unsigned": ("mg-s3-anon", "ngx-s3", "rgw", "radosgw direct"),
    "S3 fast upstream": ("mg-fast", "ngx-fast", "fast", "fast upstream direct"),
    "slice cache, warm": ("mg-cache", "ngx-cache", "ngx-static", "nginx static"),
    "slice cache, cold": ("mg-cache-cold", "ngx-cache-cold", None, ""),
}

# (workload, variant, metric key, label, unit, higher is better, scale, pairs)
ALL = list(PAIRS)
WARM = ["local", "S3 radosgw", "S3 radosgw, unsigned", "S3 fast upstream", "slice cache, warm"]
ROWS = [
    ("w1", "c1", "MBps", "1. large object, 1 conn", "MB/s", True, 1, WARM),
    ("w1", "cold-c1", "MBps", "1. large object, 1 conn, first read", "MB/s", True, 1, ["slice cache, cold"]),
    ("w1", "c8", "MBps", "1. large object, 8 conns", "MB/s", True, 1, WARM),
    ("w2", "c16", "rps", "2. random 64 KiB ranges, 16 conns", "req/s", True, 1, WARM),
    ("w2", "c16", "p50_ms", "2. latency p50", "ms", False, 1, WARM),
    ("w2", "c16", "p99_ms", "2. latency p99", "ms", False, 1, WARM),
    ("w2", "cold-c16", "rps", "2. random 64 KiB ranges from an empty cache", "req/s", True, 1, ["slice cache, cold"]),
    ("w2", "cold-c16", "p99_ms", "2. latency p99, from an empty cache", "ms", False, 1, ["slice cache, cold"]),
    ("w3", None, "rps", "3. Chrome seek: bytes=N-, read 1 MiB, close", "req/s", True, 1, WARM),
    ("w3", None, "fast_sent_per_req", "3. bytes the upstream sent per request (its own `$bytes_sent` log)", "MiB",
     False, MIB, ["S3 fast upstream"]),
    ("w3", None, "upstream_per_req", "3. bytes read from upstream per request (detail: each gateway's own "
     "counter)", "MiB", False, MIB, ["S3 radosgw", "S3 radosgw, unsigned", "S3 fast upstream", "slice cache, warm"]),
    ("w4", None, "rss_per_stream_kib", "4. slow readers: RSS growth per stream", "KiB", False, 1,
     ["local", "S3 fast upstream", "slice cache, warm"]),
    ("w4", None, "rss_peak_kib", "4. slow readers: peak RSS", "MiB", False, 1024,
     ["local", "S3 fast upstream", "slice cache, warm"]),
    ("w4", None, "cpu_pct", "4. slow readers: CPU (100 = one core)", "%", False, 1,
     ["local", "S3 fast upstream", "slice cache, warm"]),
    ("w4", None, "aggregate_MBps", "4. slow readers: delivered", "MB/s", True, 1,
     ["local", "S3 fast upstream", "slice cache, warm"]),
    ("w4", None, "errors", "4. slow readers: errors", "", False, 1, ["local", "S3 fast upstream", "slice cache, warm"]),
    ("w4", None, "starved", "4. slow readers: streams under 80% of 2 Mbit/s", "", False, 1,
     ["local", "S3 fast upstream", "slice cache, warm"]),
    ("w5", "c1", "p50_ms", "5. time to first byte, p50", "ms", False, 1, WARM),
    ("w5", "c1", "p99_ms", "5. time to first byte, p99", "ms", False, 1, WARM),
]


def load(args) -> dict:
    if args.bundle:
        return json.loads(Path(args.bundle).read_text())
    work = Path(args.work)
    records = []
    if (work / "raw.jsonl").exists():
        records = [json.loads(l) for l in (work / "raw.jsonl").read_text().splitlines() if l.strip()]
    meta = json.loads((work / "meta.json").read_text()) if (work / "meta.json").exists() else {}
    micro = json.loads((work / "micro.json").read_text()) if (work / "micro.json").exists() else None
    return {"meta": meta, "records": records, "micro": micro, "machine": machine(args.repo),
            "wall_seconds": args.wall_seconds}


def sh(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=20)
        return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def machine(repo: str | None) -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("model name")]
    mhz = [l.split(":", 1)[1].strip() for l in cpuinfo.splitlines() if l.startswith("cpu MHz")]
    mem = "?"
    for line in sh(["free", "-m"]).splitlines():
        f = line.split()
        if f and f[0] == "Mem:" and len(f) >= 7:
            mem = f"{int(f[1]):,} MiB total, {int(f[2]):,} used, {int(f[6]):,} available (`free -m`)"
    return {
        "cpu": f"{models[0] if models else '?'} ({len(models)} logical CPUs listed, {mhz[0] if mhz else '?'} MHz)",
        "nproc": sh(["nproc"]),
        "memory": mem,
        "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "nginx": sh(["nginx", "-v"]),
        "wrk": sh(["sh", "-c", "wrk -v 2>&1 | head -1"]),
        "ceph": sh(["sh", "-c", "radosgw --version 2>&1 | head -1"]),
        "commit": sh(["git", "-C", repo or ".", "describe", "--always", "--dirty"]),
    }


def load_before(meta: dict) -> str:
    return meta.get("loadavg_before", "?")


def group(records: list[dict]) -> dict:
    g: dict = defaultdict(list)
    for r in records:
        g[(r["workload"], r["variant"], r["system"])].append(r)
    return g


def values(recs: list[dict], key: str) -> list[float]:
    return [float(r[key]) for r in recs if "failed" not in r and r.get(key) is not None]


def fmt_num(v: float) -> str:
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 100:
        return f"{v:.0f}"
    if a >= 10:
        return f"{v:.1f}"
    if a >= 1:
        return f"{v:.2f}"
    if a == 0:
        return "0"
    return f"{v:.3f}"


def cell(vals: list[float], scale: float) -> str:
    if not vals:
        return "n/a"
    vs = [v / scale for v in vals]
    med = statistics.median(vs)
    if len(vs) == 1:
        return fmt_num(med)
    return f"{fmt_num(med)} ({fmt_num(min(vs))}–{fmt_num(max(vs))})"


def med(vals: list[float]) -> float | None:
    return statistics.median(vals) if vals else None


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None:
        return "n/a"
    if b == 0:
        return "—" if a == 0 else "∞"
    return f"{a / b:.2f}×"


def slope_kib_per_min(points: list[dict]) -> float:
    """Least-squares slope of RSS over time (KiB per minute)."""
    if len(points) < 2:
        return 0.0
    xs = [p["t"] / 60 for p in points]
    ys = [p["rss_kib"] for p in points]
    mx, my = statistics.mean(xs), statistics.mean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / den if den else 0.0


def render_soak(data: dict) -> str:
    """bench/run --soak: the slow readers held for a long time, viewers coming and going (issue 11)."""
    meta, records, m = data["meta"], data["records"], data["machine"]
    args = meta.get("args", {})
    date = time.strftime("%Y-%m-%d", time.localtime(meta.get("started", time.time())))
    out = [f"# mediagate soak: {args.get('streams')} slow readers for {args.get('soak'):.0f} s, {date}\n",
           f"Made by `bench/run --soak {args.get('soak'):.0f}`. Every stream reads `bytes=N-` at "
           f"{args.get('rate', 0) * 8 / 1e6:.0f} Mbit/s, closes after about 8 MB (0.5-1.5x at random) and is "
           "replaced by a new one at another random offset, so connections keep opening and closing all along.\n",
           f"- CPU: {m['cpu']}; `nproc`: {m['nproc']}; {m['memory']}",
           f"- mediagate `{m['commit']}`, Release build (build-bench/)",
           f"- Load average before: {meta.get('loadavg_before', '?')}; after: {meta.get('loadavg_after', '?')} "
           "(other work on the machine slows the client, not the RSS figures)\n",
           "RSS is the server's resident memory (all its processes). \"Growth\" compares the last sample with the "
           "one at 60 s, once every stream is open and the first buffers are allocated; the slope is a least-squares "
           "fit over the samples after 60 s.\n",
           "| system | RSS at 60 s | RSS at end | peak | growth after 60 s | slope | fds before / at 60 s / end / after | "
           "streams replaced | errors | delivered |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        if r.get("workload") != "w4" or r.get("variant") != "soak":
            continue
        if "failed" in r:
            out.append(f"| {r['system']} | failed: {r['failed']} |||||||||")
            continue
        pts = r.get("series", [])
        late = [p for p in pts if p["t"] >= 60] or pts
        if not late:
            continue
        first, last = late[0], late[-1]
        peak = max(p["rss_kib"] for p in pts)
        settle = f" ({r['fds_settle_s']} s after the clients left)" if "fds_settle_s" in r else ""
        # What the clients received over the hold, from their own byte counts (cycled streams included).
        sent = [p for p in pts if "client_bytes" in p]
        delivered = ((sent[-1]["client_bytes"] - sent[0]["client_bytes"]) / (sent[-1]["t"] - sent[0]["t"]) / 1e6
                     if len(sent) >= 2 and sent[-1]["t"] > sent[0]["t"] else 0.0)
        growth = last["rss_kib"] - first["rss_kib"]
        pct = 100.0 * growth / first["rss_kib"] if first["rss_kib"] else 0.0
        out.append(f"| {r['system']} | {first['rss_kib'] / 1024:.1f} MiB | {last['rss_kib'] / 1024:.1f} MiB | "
                   f"{peak / 1024:.1f} MiB | {growth / 1024:+.1f} MiB ({pct:+.1f}%) | "
                   f"{slope_kib_per_min(late):+.0f} KiB/min | {r.get('fds_before', '?')} / {first['fds']} / {last['fds']} / "
                   f"{r.get('fds_after', '?')}{settle} | {r.get('cycled', 0):,} | {r.get('errors', '?')} "
                   f"{r.get('error_kinds', '')} | {delivered:.0f} MB/s |")
    out.append("\n\"fds ... after\": the server's open descriptors once the clients closed every stream (waiting up to "
               "20 s for them to come back to the count before the run). The slice cache keeps up to 256 recently "
               "used slice files open per event loop for 2 s (like nginx's open_file_cache), closed on a later "
               "request's sweep, so its count stays above the start until traffic comes again; that is bounded.")
    out.append("\n## Time series (one row per minute)\n")
    for r in records:
        pts = r.get("series", [])
        if r.get("variant") != "soak" or not pts:
            continue
        out.append(f"### {r['system']}\n")
        out.append("| t (s) | RSS (MiB) | open fds | streams alive | replaced so far | client errors |")
        out.append("|---|---|---|---|---|---|")
        shown = -60.0
        for p in pts:
            if p["t"] - shown >= 59 or p is pts[-1]:
                shown = p["t"]
                out.append(f"| {p['t']:.0f} | {p['rss_kib'] / 1024:.1f} | {p['fds']} | {p.get('client_alive', '?')} | "
                           f"{p.get('client_cycled', '?')} | {p.get('client_errors', '?')} |")
        out.append("")
    return "\n".join(out) + "\n"


def render(data: dict) -> str:
    meta, records, m = data["meta"], data["records"], data["machine"]
    if meta.get("args", {}).get("soak"):
        return render_soak(data)
    g = group(records)
    args = meta.get("args", {})
    variants_w3 = {r["variant"] for r in records if r["workload"] == "w3"}
    variants_w4 = {r["variant"] for r in records if r["workload"] == "w4"}

    def recs(w, v, system):
        if v is None:
            v = next(iter(variants_w3 if w == "w3" else variants_w4), None)
        return g.get((w, v, system), [])

    out = []
    date = time.strftime("%Y-%m-%d", time.localtime(meta.get("started", time.time())))
    out.append(f"# mediagate vs nginx — benchmark results, {date}\n")
    out.append("Made by `bench/run`" + (" --quick" if args.get("quick") else "") +
               " (see [bench/README.md](../README.md)); every server on 127.0.0.1 of this machine, clients included.\n")
    out.append("## Machine\n")
    out.append(f"- CPU: {m['cpu']}; `nproc`: {m['nproc']}")
    out.append(f"- Memory: {m['memory']}")
    out.append(f"- {m['os']}, Linux {m['kernel']}; {m['nginx']}; {m['wrk']}; {m['ceph']}")
    out.append(f"- mediagate `{m['commit']}`, Release build (build-bench/)")
    loads = sorted(r["loadavg"] for r in records if "loadavg" in r)
    during = (f"; 1-minute load average at the start of the runs: median {statistics.median(loads):.1f}, "
              f"max {loads[-1]:.1f} (the benchmark itself adds about 2-3)" if loads else "")
    out.append(f"- Load average before the run (other work on the machine skews figures): {load_before(meta)}; "
               f"after: {meta.get('loadavg_after', '?')}{during}")
    reps = args.get("reps", "?")
    out.append(f"- Each figure: median of {reps} interleaved repetition(s) (every system once per repetition), "
               f"spread as (min–max); load runs of {args.get('duration', '?')} s "
               f"({args.get('duration_w1', '?')} s for whole-object runs); wall time of the whole run "
               f"{data.get('wall_seconds') or '?'} s (measurement {meta.get('measure_seconds', 0):.0f} s).")
    out.append(f"- Objects: `big.mp4` {meta.get('size', 0) / 1e6:.0f} MB (H.264 lossless testsrc2 + AAC, faststart) "
               "for workloads 1-4; the sample clips (`sample-faststart.mp4`, `sample-moov-at-end.mp4`, "
               "`sample.webm`) for workload 5. MB = 10⁶ bytes.\n")

    out.append("## mediagate beside nginx\n")
    out.append("Ratio = mediagate ÷ nginx (↑: higher is better, ↓: lower is better). The last column is the "
               "upstream alone (or, for the warm slice cache, nginx static: the machine's ceiling).\n")
    out.append("| Workload | Storage | mediagate | nginx | ratio | reference |")
    out.append("|---|---|---:|---:|---:|---:|")
    for w, v, key, label, unit, higher, scale, pairs in ROWS:
        for p in pairs:
            mg, ngx, ref, ref_label = PAIRS[p]
            a, b = values(recs(w, v, mg), key), values(recs(w, v, ngx), key)
            if not a and not b:
                continue
            arrow = "↑" if higher else "↓"
            unit_s = f" ({unit})" if unit else ""
            ref_cell = ""
            if ref:
                rv = values(recs(w, v, ref), key)
                if rv:
                    ref_cell = f"{cell(rv, scale)} {ref_label}"
            out.append(f"| {label}{unit_s} {arrow} | {p} | {cell(a, scale)} | {cell(b, scale)} | "
                       f"{ratio(med(a), med(b))} | {ref_cell} |")
    out.append("")

    # Targets of issue 5.
    out.append("## Targets of issue 5\n")
    out.append("| Target | Figure | mediagate | nginx | ratio | verdict | measure; detail |")
    out.append("|---|---|---:|---:|---:|---|---|")

    def target(name, w, v, key, mg, ngx, higher=True, scale=1, factor=1.0, figure="", detail=""):
        a, b = med(values(recs(w, v, mg), key)), med(values(recs(w, v, ngx), key))
        if a is None or b is None:
            verdict = "not measured"
        else:
            ok = a >= factor * b if higher else a <= b * factor
            verdict = "met" if ok else "**missed**"
        r = ratio(a, b)
        out.append(f"| {name} | {figure} | {fmt_num(a / scale) if a is not None else 'n/a'} | "
                   f"{fmt_num(b / scale) if b is not None else 'n/a'} | {r} | {verdict} | {detail} |")

    def counters(mg, ngx):
        """Each gateway's own upstream counter (MiB/request), as detail beside an upstream-side verdict."""
        a, b = med(values(recs("w3", None, mg), "upstream_per_req")), med(values(recs("w3", None, ngx),
                                                                                   "upstream_per_req"))
        f = lambda x: fmt_num(x / MIB) if x is not None else "n/a"  # noqa: E731
        return f"gateways' own counters: mediagate {f(a)}, nginx {f(b)} MiB/request"

    target("local ≥ 1.0× nginx static", "w1", "c1", "MBps", "mg-local", "ngx-static", figure="1. 1 conn MB/s")
    target("local ≥ 1.0× nginx static", "w1", "c8", "MBps", "mg-local", "ngx-static", figure="1. 8 conns MB/s")
    target("local ≥ 1.0× nginx static", "w2", "c16", "rps", "mg-local", "ngx-static", figure="2. req/s")
    for up, mg, ngx in (("radosgw", "mg-s3", "ngx-s3"), ("fast upstream", "mg-fast", "ngx-fast")):
        t = f"S3 ({up}) ≥ 1.0× nginx proxy_pass"
        target(t, "w1", "c1", "MBps", mg, ngx, figure="1. 1 conn MB/s")
        target(t, "w1", "c8", "MBps", mg, ngx, figure="1. 8 conns MB/s")
        target(t, "w2", "c16", "rps", mg, ngx, figure="2. req/s")
        target(t, "w3", None, "rps", mg, ngx, figure="3. req/s")
        if up == "fast upstream":
            # What the upstream itself sent: the fast upstream's access log ($bytes_sent, heads included).
            target(f"S3 ({up}): upstream bytes ≤ nginx", "w3", None, "fast_sent_per_req", mg, ngx, higher=False,
                   scale=MIB, figure="3. MiB/request the upstream sent",
                   detail="**upstream-side**: the fast upstream's `$bytes_sent` log; " + counters(mg, ngx))
        else:
            # radosgw runs with `debug rgw = 0` and writes no per-request log: no upstream-side figure exists.
            target(f"S3 ({up}): upstream bytes ≤ nginx", "w3", None, "upstream_per_req", mg, ngx, higher=False,
                   scale=MIB, figure="3. MiB/request read from upstream",
                   detail="**gateway-side** (radosgw keeps no per-request log): mediagate's "
                          "`mediagate_s3_received_bytes_total` (bodies) vs nginx's `$upstream_bytes_received` "
                          "(heads included)")
    target("warm cache ≥ 1.0× nginx slice+proxy_cache", "w1", "c1", "MBps", "mg-cache", "ngx-cache",
           figure="1. 1 conn MB/s")
    target("warm cache ≥ 1.0× nginx slice+proxy_cache", "w1", "c8", "MBps", "mg-cache", "ngx-cache",
           figure="1. 8 conns MB/s")
    target("warm cache ≥ 1.0× nginx slice+proxy_cache", "w2", "c16", "rps", "mg-cache", "ngx-cache",
           figure="2. req/s")
    target("warm cache within 10% of nginx static", "w1", "c1", "MBps", "mg-cache", "ngx-static", factor=0.9,
           figure="1. 1 conn MB/s")
    target("warm cache within 10% of nginx static", "w1", "c8", "MBps", "mg-cache", "ngx-static", factor=0.9,
           figure="1. 8 conns MB/s")
    target("warm cache within 10% of nginx static", "w2", "c16", "rps", "mg-cache", "ngx-static", factor=0.9,
           figure="2. req/s")
    for label, mg in (("local", "mg-local"), ("S3 fast upstream", "mg-fast"), ("warm cache", "mg-cache")):
        rs = values(recs("w4", None, mg), "rss_per_stream_kib")
        er = values(recs("w4", None, mg), "errors")
        if rs:
            ok = med(rs) <= 48 and max(er or [0]) == 0
            out.append(f"| memory ({label}): ≤ 48 KiB RSS per slow stream, no errors | 4. KiB/stream, errors | "
                       f"{fmt_num(med(rs))}, {int(max(er or [0]))} errors | | | {'met' if ok else '**missed**'} | |")
    out.append("")

    # Issue 12: signed links against the same object opened publicly, on the same server.
    sig, pub = recs("w2", "c16-signed", "mg-signed"), recs("w2", "c16-signed", "mg-signed-pub")
    if sig or pub:
        out.append("## Signed links (issue 12)\n")
        out.append("Workload 2 (random 64 KiB ranges, 16 conns) on one mediagate (local files, `--signing-keys`, "
                   "`--signed-prefix private/`): the same object as `private/big.mp4` through a signed link and as "
                   "`big.mp4` without one, runs interleaved (the order alternates between repetitions).\n")
        out.append("| Figure | signed | public | signed / public | target | verdict |")
        out.append("|---|---:|---:|---:|---|---|")
        for key, label, higher in (("rps", "req/s ↑", True), ("p50_ms", "p50 ms ↓", False),
                                   ("p99_ms", "p99 ms ↓", False)):
            a, b = values(sig, key), values(pub, key)
            goal = verdict = ""
            if key == "rps":
                goal = "≥ 0.97"
                ma, mb = med(a), med(b)
                verdict = "not measured" if ma is None or not mb else ("met" if ma / mb >= 0.97 else "**missed**")
            out.append(f"| 2. {label} | {cell(a, 1)} | {cell(b, 1)} | {ratio(med(a), med(b))} | {goal} | {verdict} |")
        out.append("")

    # Upstreams alone.
    out.append("## The upstreams alone\n")
    out.append("| Workload | radosgw | fast upstream (nginx, files) |")
    out.append("|---|---:|---:|")
    for w, v, key, label, unit, higher, scale, _ in ROWS:
        if w == "w4" or v and v.startswith("cold"):
            continue
        a, b = values(recs(w, v, "rgw"), key), values(recs(w, v, "fast"), key)
        if a or b:
            out.append(f"| {label} ({unit}) | {cell(a, scale)} | {cell(b, scale)} |")
    out.append("")

    # Micro-benchmarks.
    micro = data.get("micro")
    if micro:
        out.append("## Micro-benchmarks (Google Benchmark, build-bench/bench/mediagate_micro_bench)\n")
        ctx = micro.get("context", {})
        out.append(f"{ctx.get('num_cpus', '?')} CPUs at {ctx.get('mhz_per_cpu', '?')} MHz; mediagate's code built as "
                   f"Release (Debian's Google Benchmark library itself reports build type "
                   f"'{ctx.get('library_build_type', '?')}', which does not affect the code measured).\n")
        out.append("| Benchmark | Time (ns) | CPU (ns) | Iterations |")
        out.append("|---|---:|---:|---:|")
        for b in micro.get("benchmarks", []):
            out.append(f"| `{b['name']}` | {b['real_time']:.1f} | {b['cpu_time']:.1f} | {b['iterations']:,} |")
        out.append("")

    # Failures, notes, set-up.
    failed = [r for r in records if "failed" in r]
    statuses = [r for r in records if r.get("errors") and "failed" not in r]
    notes = list(meta.get("notes", []))
    if failed or statuses or notes:
        out.append("## Errors and notes\n")
        for n in notes:
            out.append(f"- {n}")
        for r in failed:
            out.append(f"- {r['workload']} {r['variant']} {r['system']} rep {r['rep']}: run failed: {r['failed']}")
        for r in statuses:
            extra = ""
            if r["workload"] == "w4":
                extra = f" ({r.get('error_kinds')}, statuses {r.get('statuses')})"
            elif "wrk" in r:
                extra = " (wrk: " + ", ".join(f"{k} {v}" for k, v in r["wrk"].items() if k.startswith("err_") and v) + ")"
            elif "statuses" in r:
                extra = f" (statuses {r['statuses']})"
            out.append(f"- {r['workload']} {r['variant']} {r['system']} rep {r['rep']}: {int(r['errors'])} errors{extra}")
        out.append("")

    out.append("## How it was measured\n")
    out.append(SETUP.format(seek_conns=args.get("seek_conns", 8), seek_procs=args.get("seek_procs", 2),
                            streams=args.get("streams", 2000), rate=args.get("rate", 250000) / 1000,
                            ramp=args.get("ramp", 2), hold=args.get("hold", 6),
                            rcvbuf=args.get("rcvbuf", 262144) // 1024, ttfb=args.get("ttfb_count", 150)))
    return "\n".join(out) + "\n"


SETUP = """\
Systems (all on 127.0.0.1; 2 worker processes for every nginx, `--threads 0` = one event loop per core for mediagate):
- **mediagate local**: `mediagate serve --storage DIR --access-log off`; **nginx static**: the same directory,
  `sendfile on`, `tcp_nopush off`, `tcp_nodelay on`, `open_file_cache`, `access_log off`, `worker_processes 2`.
- **mediagate S3**: `--storage s3://bench` (SigV4, default `--s3-meta-ttl 5`); **nginx proxy_pass**: HTTP/1.1 to an
  `upstream` with `keepalive 64`, `proxy_buffering on` with `proxy_buffers 4 16k`, `proxy_max_temp_file_size 0`
  (no temporary files: a client that leaves stops the upstream read). nginx cannot sign SigV4, so the bucket
  carries a public-read bucket policy and nginx (and wrk, for the "direct" rows) read it anonymously.
  **mediagate S3, unsigned**: the same with `--s3-anonymous` and no keys in its environment: it reads the bucket
  as nginx does, so radosgw's cost of checking signatures (on the same 2 CPUs) is out of the comparison.
- Upstreams: **radosgw**, the one-host Ceph cluster of `scripts/radosgw.sh` (memstore OSD, `RGW_DEBUG=0`); and the
  **fast S3-shaped upstream**, nginx serving the bucket directory as `/bench/KEY` files (ranges, strong ETag,
  If-Match, an empty ListObjectsV2 answer; signatures ignored), to expose each gateway's own cost where
  radosgw would be the bottleneck.
- **Slice cache**: mediagate `--cache-dir DIR --cache-size 4GiB --cache-slice 1MiB` over radosgw; nginx
  `slice 1m` + `proxy_cache` (`proxy_cache_key $uri$slice_range`, `proxy_cache_lock on`) over radosgw. *Warm*: the
  whole object was read through it once before the measurements. *Cold*: the server is restarted with an empty
  cache directory before each run.

Workloads:
1. `wrk` whole-object GETs of `big.mp4` on keep-alive connections (1 thread for 1 connection, else 2):
   MB/s = body and header bytes read ÷ run time. *First read*: one GET of the whole object through an emptied
   cache (a Python client that counts and drops the bytes).
2. `wrk -t2 -c16` with `bench/wrk/ranges.lua`: `Range: bytes=a-(a+65535)` at random offsets; p50/p99 from wrk.
3. `bench/loadgen.py seek`: {seek_conns} concurrent clients in {seek_procs} processes; each request on a new
   connection asks `Range: bytes=N-` at a random N, reads the head and 1 MiB of body, closes. Upstream bytes per
   request, divided by the requests started and counted 1.5 s after the run (aborted requests finished): what
   the upstream itself sent where the upstream logs it (the fast upstream's `$bytes_sent` access log, heads
   included), the measure of the fast upstream's "upstream bytes ≤ nginx" verdict; radosgw keeps no
   per-request log (`debug rgw = 0`), so its rows' verdicts use the gateway-side counters, labelled so. Each
   gateway's own counter is kept as detail: mediagate's `mediagate_s3_received_bytes_total` delta (bodies
   only), nginx's `$upstream_bytes_received` summed from its access log (heads included).
4. `bench/loadgen.py slow`: {streams} connections opened over {ramp} s, each `Range: bytes=N-` read at
   {rate:.0f} kB/s (2 Mbit/s) with a {rcvbuf} KiB receive buffer, held {hold} s. RSS: VmRSS of the mediagate
   process, of the nginx worker processes summed; each run starts from a freshly restarted server (caches on
   disk kept; a few requests to warm it), since a process keeps the memory earlier workloads made it allocate;
   growth per stream = (peak during the hold − idle before) ÷ streams. CPU: utime+stime deltas of the same processes over the hold (100% = one core). Errors: refused,
   reset or ended connections and non-206 answers; starved: streams under 80% of the rate over the hold.
5. `bench/loadgen.py ttfb`: {ttfb} sequential requests, each on a new connection, `Range: bytes=0-` on the clips in
   turn; time from connect to the first response byte; the body is read to the end.

The clients share the 2 CPUs with the servers (and radosgw, and the fast upstream), as on any single-host
benchmark; every system meets the same clients.
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work")
    ap.add_argument("--bundle")
    ap.add_argument("--out", required=True)
    ap.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent))
    ap.add_argument("--wall-seconds", type=int, default=0)
    a = ap.parse_args()
    if not a.work and not a.bundle:
        ap.error("--work or --bundle")
    data = load(a)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(data))
    if a.work:
        out.with_suffix(".json").write_text(json.dumps(data, indent=0))


if __name__ == "__main__":
    main()
