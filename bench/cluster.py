#!/usr/bin/python3
"""The measurement part of bench/cluster (issue 16): 1 and 2 mediagate nodes behind HAProxy, over radosgw.

Every configuration gets fresh nodes (empty slice caches) over one bucket of COUNT objects of SIZE bytes, and
HAProxy with deploy/haproxy.cfg (consistent hashing on the path) or a copy of it with `balance roundrobin`:

  1. S3 bytes read per byte served: one fixed, seeded sequence of random SPAN-byte ranges over the objects
     (the same requests, in the same order, for every configuration), sent through HAProxy from cold caches;
     S3 bytes from the nodes' /metrics (mediagate_s3_received_bytes_total), bytes served counted by the client.
  2. Requests per second (wrk, random SPAN-byte ranges over the objects, keep-alive connections, warm caches)
     through HAProxy, and straight to the node for the 1-node configuration.

Everything listens on 127.0.0.1; every process started here is stopped here, by pid.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests" / "integration"))
sys.path.insert(0, str(HERE))

from bench import Mediagate, Proc, free_port, log, start_radosgw, stop_radosgw  # noqa: E402

BUCKET = "cluster"
PREFIX = "/media/obj-"
S3_BYTES = "mediagate_s3_received_bytes_total"


class HAProxy:
    def __init__(self, work: Path, cfg: Path, nodes: list[int]) -> None:
        self.port, self.stats = free_port(), free_port()
        env = dict(os.environ, MEDIAGATE_FRONTEND=f"127.0.0.1:{self.port}", MEDIAGATE_STATS=f"127.0.0.1:{self.stats}")
        for i in range(3):
            env[f"MEDIAGATE_NODE{i + 1}"] = f"127.0.0.1:{nodes[i] if i < len(nodes) else free_port()}"
        self.proc = Proc(f"haproxy-{self.port}", ["haproxy", "-f", str(cfg), "-db"], work / f"haproxy-{self.port}.log",
                         env=env)
        self.proc.start()
        # The nodes that run are UP and the others DOWN before a request is sent.
        deadline = time.monotonic() + 30
        want = {f"node{i + 1}": ("UP" if i < len(nodes) else "DOWN") for i in range(3)}
        while True:
            states = {}
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.stats}/stats;csv", timeout=5) as r:
                    for line in r.read().decode().splitlines()[1:]:
                        f = line.split(",")
                        if len(f) > 17 and f[0] == "mediagate" and f[1].startswith("node"):
                            states[f[1]] = f[17].split(" ")[0]
            except OSError:
                pass
            if states == want:
                return
            if time.monotonic() > deadline or not self.proc.alive():
                raise RuntimeError(f"haproxy: nodes {states}, wanted {want}")
            time.sleep(0.2)

    def stop(self) -> None:
        self.proc.stop()


class ClusterBench:
    def __init__(self, a) -> None:
        self.a = a
        self.work = Path(a.work).resolve()
        self.exe = Path(a.exe).resolve()
        self.rgw_dir = self.work / "rgw"
        self.rgw_env: dict[str, str] = {}
        self.rows: list[dict] = []

    def start_rgw(self) -> None:
        self.rgw_env = start_radosgw(self.rgw_dir)

    def stop_rgw(self) -> None:
        if (self.rgw_dir / "env").exists():
            stop_radosgw(self.rgw_dir)

    def upload(self) -> None:
        os.environ.update(self.rgw_env)
        import s3util  # noqa: E402  (tests/integration; botocore)

        c = s3util.client_from_env()
        s3util.wait_until_ready(client=c)
        s3util.create_bucket(BUCKET, client=c)
        rnd = random.Random(16)
        for i in range(self.a.objects):
            c.put_object(Bucket=BUCKET, Key=f"obj-{i:03d}.bin", Body=rnd.randbytes(self.a.size))
        log(f"uploaded {self.a.objects} objects of {self.a.size} bytes to s3://{BUCKET}")

    # -- one configuration --

    def start_nodes(self, name: str, n: int) -> list[Mediagate]:
        nodes = []
        for i in range(n):
            cache = self.work / name / f"node{i + 1}" / "cache"
            shutil.rmtree(cache, ignore_errors=True)
            cache.mkdir(parents=True)
            node = Mediagate(f"{name}/node{i + 1}", self.exe, self.work, f"s3://{BUCKET}",
                             ["--cache-dir", str(cache), "--cache-size", "4GiB", "--cache-slice", self.a.slice],
                             dict(os.environ, **self.rgw_env))
            node.start()
            nodes.append(node)
        return nodes

    def sequence(self) -> list[tuple[int, int]]:
        """The fixed request sequence of the S3-bytes measurement: (object, first byte)."""
        rnd = random.Random(20261201)
        return [(rnd.randrange(self.a.objects), rnd.randrange(self.a.size - self.a.span + 1))
                for _ in range(self.a.requests)]

    def replay(self, port: int, seq: list[tuple[int, int]]) -> tuple[int, int, float]:
        """Sends the sequence on CONNS keep-alive connections (request i on connection i % CONNS); returns
        (bytes served, failed requests, seconds)."""
        served, failed = [0] * self.a.conns, [0] * self.a.conns

        def worker(k: int) -> None:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            for obj, first in seq[k::self.a.conns]:
                conn.request("GET", f"{PREFIX}{obj:03d}.bin",
                             headers={"Range": f"bytes={first}-{first + self.a.span - 1}"})
                r = conn.getresponse()
                body = r.read()
                if r.status == 206 and len(body) == self.a.span:
                    served[k] += len(body)
                else:
                    failed[k] += 1
            conn.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(self.a.conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return sum(served), sum(failed), time.monotonic() - t0

    def wrk(self, port: int) -> dict:
        env = dict(os.environ, BENCH_WRK_DIR=str(HERE / "wrk"))
        out = subprocess.run(["wrk", "-t", "2", "-c", str(self.a.wrk_conns), "-d", f"{self.a.duration}s",
                              "-s", str(HERE / "wrk" / "cluster_ranges.lua"), f"http://127.0.0.1:{port}/", "--",
                              PREFIX, str(self.a.objects), str(self.a.size), str(self.a.span)],
                             env=env, capture_output=True, text=True, timeout=self.a.duration + 60)
        line = [x for x in out.stdout.splitlines() if x.startswith("{")]
        if out.returncode != 0 or not line:
            raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
        res = json.loads(line[-1])
        res["rps"] = res["requests"] / (res["duration_us"] / 1e6)
        return res

    def run_config(self, name: str, n: int, balance: str) -> None:
        log(f"{name}: {n} node(s), {balance}")
        cfg = ROOT / "deploy" / "haproxy.cfg"
        if balance == "roundrobin":
            text = cfg.read_text()
            assert "    balance uri path-only\n" in text
            cfg = self.work / "haproxy-roundrobin.cfg"
            cfg.write_text(text.replace("    balance uri path-only\n", "    balance roundrobin\n"))
        nodes = self.start_nodes(re.sub(r"\W+", "-", name).strip("-"), n)
        proxy = None
        try:
            proxy = HAProxy(self.work, cfg, [node.port for node in nodes])
            before = sum(node.metrics().get(S3_BYTES, 0) for node in nodes)
            served, failed, secs = self.replay(proxy.port, self.sequence())
            s3 = sum(node.metrics().get(S3_BYTES, 0) for node in nodes) - before
            row = {"config": name, "nodes": n, "balance": balance, "requests": self.a.requests, "served": served,
                   "failed": failed, "s3_bytes": s3, "s3_per_served": s3 / served if served else None,
                   "replay_s": secs}
            log(f"  S3 bytes {s3:.0f} for {served} served: {row['s3_per_served']:.3f} per byte; {failed} failed")
            row["wrk_haproxy"] = self.wrk(proxy.port)
            log(f"  through HAProxy: {row['wrk_haproxy']['rps']:.0f} req/s")
            if n == 1:
                row["wrk_direct"] = self.wrk(nodes[0].port)
                log(f"  straight to the node: {row['wrk_direct']['rps']:.0f} req/s")
            self.rows.append(row)
        finally:
            if proxy:
                proxy.stop()
            for node in nodes:
                node.stop()

    def report(self) -> str:
        a = self.a
        out = [f"# bench/cluster: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
               f"{a.objects} objects of {a.size} bytes in radosgw (memstore); every node has its own slice cache "
               f"(--cache-slice {a.slice}, large enough for every object), started empty for every configuration. "
               f"Binary: `{self.exe}`. HAProxy {haproxy_version()} with deploy/haproxy.cfg "
               f"(round-robin: the same file with `balance roundrobin`). Everything on one machine (nproc "
               f"{os.cpu_count()}), loopback.", "",
               f"**S3 bytes per byte served**: the same {a.requests} random {a.span}-byte ranges (fixed seed, same "
               f"order) through HAProxy on {a.conns} keep-alive connections, from cold caches; S3 bytes from the "
               f"nodes' `{S3_BYTES}`, bytes served counted by the client.", "",
               "| configuration | S3 bytes | bytes served | S3 bytes per byte served | vs 1 node | failed |",
               "|---|---:|---:|---:|---:|---:|"]
        base = next((r["s3_per_served"] for r in self.rows if r["nodes"] == 1), None)
        for r in self.rows:
            rel = f"{r['s3_per_served'] / base:.2f}x" if base else "-"
            out.append(f"| {r['config']} | {r['s3_bytes']:.0f} | {r['served']} | {r['s3_per_served']:.3f} | {rel} | "
                       f"{r['failed']} |")
        out += ["", f"**Requests per second** (wrk -t2 -c{a.wrk_conns} -d{a.duration}s, random {a.span}-byte ranges "
                    "over every object, caches warm from the run above):", "",
                "| configuration | req/s through HAProxy | req/s straight to the node | p50 / p99 latency (HAProxy) | errors |",
                "|---|---:|---:|---:|---:|"]
        for r in self.rows:
            w = r["wrk_haproxy"]
            direct = f"{r['wrk_direct']['rps']:.0f}" if "wrk_direct" in r else "-"
            errs = sum(w[k] for k in w if k.startswith("err_"))
            out.append(f"| {r['config']} | {w['rps']:.0f} | {direct} | {w['lat_p50_us'] / 1000:.1f} / "
                       f"{w['lat_p99_us'] / 1000:.1f} ms | {errs} |")
        out += ["", "Notes:",
                "- The machine has 2 cores, shared by radosgw, HAProxy, the nodes and wrk, and during this run by "
                "other engineers' builds and a soak test: the req/s figures are noisy and say little about what two "
                "machines would do; the S3-bytes ratios do not depend on speed (the same requests every time).",
                "- Two nodes on one machine share its cores: more nodes here add work (HAProxy, a second cache), "
                "not capacity. HAProxy logs every request (option httplog) to a file, as the deployed file does.",
                ""]
        return "\n".join(out)


def haproxy_version() -> str:
    out = subprocess.run(["haproxy", "-v"], capture_output=True, text=True).stdout
    m = re.search(r"version (\S+)", out)
    return m.group(1) if m else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("--out", required=True, help="the Markdown report; raw figures go beside it as .json")
    ap.add_argument("--objects", type=int, default=40)
    ap.add_argument("--size", type=int, default=8_000_000)
    ap.add_argument("--span", type=int, default=65536)
    ap.add_argument("--slice", default="1MiB")
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--conns", type=int, default=8)
    ap.add_argument("--wrk-conns", type=int, default=16)
    ap.add_argument("--duration", type=int, default=10)
    a = ap.parse_args()
    b = ClusterBench(a)
    b.work.mkdir(parents=True, exist_ok=True)
    try:
        b.start_rgw()
        b.upload()
        b.run_config("1 node, HAProxy (hash)", 1, "uri")
        b.run_config("2 nodes, HAProxy consistent hash", 2, "uri")
        b.run_config("2 nodes, HAProxy round-robin", 2, "roundrobin")
    finally:
        for p in list(Proc.all):
            p.stop()
        b.stop_rgw()
    report = b.report()
    Path(a.out).write_text(report)
    Path(a.out).with_suffix(".json").write_text(json.dumps({"args": vars(a), "rows": b.rows}, indent=1))
    print(report)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    main()
