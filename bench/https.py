#!/usr/bin/env python3
"""Issue 13: HTTPS and HTTP/2 side by side with nginx 1.22 (`listen ... ssl http2`, the same certificate and files),
one run on this machine. Run by `bench/run --https` (or directly):

    bench/https.py --exe build-bench/mediagate --work DIR --out bench/results/HTTPS-<date>.md [--duration S] [--runs N]

Rows:
  h2 64 KiB ranges   h2load (nghttp2-client), 16 connections x 16 streams, GET with Range: bytes=X-X+65535 of a
                     200 MB object; h2load sends one header set per run, so each run takes a random X (runs alternate
                     between the servers; the median of --runs runs).
  h2 50-poster page  h2load, 4 connections each loading 50 distinct ~30 KB JPEGs at once (-m 50), requests/s.
  h1+TLS large       curl --http1.1 downloading the 200 MB object once per run (one connection), MB/s.
  slow h2 streams    400 streams (8 connections x 50) of the 200 MB object whose client never gives window back:
                     the server's RSS growth over them / 400.
Servers: mediagate with --threads 2, nginx with worker_processes 2 (both on the 2 cores the clients use as well).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import free_port, rss_kib, wait_port  # noqa: E402  (bench/bench.py)

MIB = 1 << 20
BIG = "big.bin"

NGINX_CONF = """
user root;
worker_processes 2;
worker_rlimit_nofile 20000;
daemon off;
pid @DIR@/nginx.pid;
error_log @DIR@/error.log warn;
events { worker_connections 10000; }
http {
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush off;
  tcp_nodelay on;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  access_log off;
  open_file_cache max=1000 inactive=60s;
  client_body_temp_path @DIR@/tmp;
  proxy_temp_path @DIR@/tmp;
  fastcgi_temp_path @DIR@/tmp;
  uwsgi_temp_path @DIR@/tmp;
  scgi_temp_path @DIR@/tmp;
  http2_max_concurrent_streams 128;
  ssl_protocols TLSv1.2 TLSv1.3;
  ssl_session_tickets on;
  server {
    listen 127.0.0.1:@PORT@ ssl http2;
    ssl_certificate @CERT@;
    ssl_certificate_key @KEY@;
    location /media/ { alias @MEDIA@/; }
  }
}
"""


def log(msg: str) -> None:
    print(f"[https {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Server:
    def __init__(self, name: str, port: int, proc: subprocess.Popen, pids) -> None:
        self.name, self.port, self.proc, self._pids = name, port, proc, pids

    def pids(self) -> list[int]:
        return self._pids()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_mediagate(exe: Path, work: Path, media: Path, cert: Path, key: Path) -> Server:
    port = free_port()
    out = open(work / "mediagate.log", "wb")
    proc = subprocess.Popen([str(exe), "serve", "--listen", f"127.0.0.1:{port}", "--storage", str(media),
                             "--access-log", "off", "--threads", "2", "--tls-cert", str(cert), "--tls-key", str(key)],
                            stdout=out, stderr=subprocess.STDOUT)
    wait_port(port)
    return Server("mediagate", port, proc, lambda: [proc.pid])


def start_nginx(work: Path, media: Path, cert: Path, key: Path) -> Server:
    port = free_port()
    d = work / "nginx"
    (d / "tmp").mkdir(parents=True, exist_ok=True)
    conf = NGINX_CONF
    for k, v in {"DIR": d, "PORT": port, "CERT": cert, "KEY": key, "MEDIA": media}.items():
        conf = conf.replace(f"@{k}@", str(v))
    (d / "nginx.conf").write_text(conf)
    proc = subprocess.Popen(["nginx", "-c", str(d / "nginx.conf"), "-e", str(d / "error.log")],
                            stdout=open(d / "stdout.log", "wb"), stderr=subprocess.STDOUT)
    wait_port(port)

    def workers() -> list[int]:
        out = []
        for child in Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split():
            out.append(int(child))
        return out
    time.sleep(0.5)
    return Server("nginx", port, proc, workers)


def h2load(url: str, args: list[str], uris: Path | None = None) -> dict:
    # With an input file of paths, the URL only gives the scheme, host and port (--base-uri).
    cmd = ["h2load", *args, url] if uris is None else ["h2load", *args, "-B", url, "-i", str(uris)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s, ([\d.]+)(\w+)/s", out)
    ok = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored",
                   out)
    st = re.search(r"status codes: (\d+) 2xx", out)
    if not m or not ok:
        raise RuntimeError(f"h2load output not understood:\n{out}")
    return {"req_s": float(m.group(1)), "succeeded": int(ok.group(4)), "failed": int(ok.group(5)) + int(ok.group(6)),
            "2xx": int(st.group(1)) if st else 0}


def curl_speed(url: str) -> float:
    out = subprocess.run(["curl", "-sk", "--http1.1", "-o", "/dev/null", "-w", "%{speed_download} %{http_version}",
                          url], capture_output=True, text=True, timeout=300).stdout.split()
    assert out[1] == "1.1", out
    return float(out[0]) / 1e6


def slow_streams(server: Server, connections: int = 8, per_connection: int = 50) -> dict:
    """Streams whose client reads every byte but never sends WINDOW_UPDATE: each holds what the server keeps for a
    stalled stream."""
    import h2.config
    import h2.connection
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    warm = [BIG]  # a first request, so that lazily allocated state is in the baseline
    conns = []
    for i in range(connections + 1):
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", server.port)), server_hostname="127.0.0.1")
        c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        c.initiate_connection()
        c.increment_flow_control_window(1 << 30)  # the connection's window stays open: each stream fills its own
        s.sendall(c.data_to_send())
        conns.append((s, c))
    received = {}

    def open_streams(s, c, n):
        for _ in range(n):
            sid = c.get_next_available_stream_id()
            c.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", "127.0.0.1"),
                                 (":path", f"/media/{BIG}")], end_stream=True)
            received[(id(c), sid)] = 0
        s.sendall(c.data_to_send())

    def drain(s, c, seconds):
        s.settimeout(0.05)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                data = s.recv(1 << 20)
            except (socket.timeout, ssl.SSLWantReadError):
                return
            if not data:
                return
            for e in c.receive_data(data):
                if type(e).__name__ == "DataReceived":
                    received[(id(c), e.stream_id)] += len(e.data)
            out = c.data_to_send()
            if out:
                s.sendall(out)

    open_streams(*conns[0], len(warm))
    for _ in range(20):
        drain(*conns[0], 0.1)
    time.sleep(1.0)
    before = rss_kib(server.pids())
    for s, c in conns[1:]:
        open_streams(s, c, per_connection)
    for _ in range(30):
        for s, c in conns[1:]:
            drain(s, c, 0.05)
    time.sleep(1.0)
    for s, c in conns[1:]:
        drain(s, c, 0.2)
    after = rss_kib(server.pids())
    n = connections * per_connection
    got = sorted(v for k, v in received.items() if k[0] != id(conns[0][1]))
    for s, _ in conns:
        s.close()
    if got[len(got) // 2] < 60_000:
        raise RuntimeError(f"the slow streams did not fill their windows: median {got[len(got) // 2]} bytes")
    return {"streams": n, "rss_before_kib": before, "rss_after_kib": after,
            "kib_per_stream": (after - before) / n, "bytes_per_stream_median": got[len(got) // 2]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--exe", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--big", type=Path, help="a large object to serve (default: 200 MB of random bytes)")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    work = a.work.resolve()
    media = work / "media"
    media.mkdir(parents=True, exist_ok=True)
    if a.big:
        shutil.copyfile(a.big, media / BIG)
    else:
        with open(media / BIG, "wb") as f:
            rnd = random.Random(13)
            for _ in range(200):
                f.write(rnd.randbytes(MIB))
    size = (media / BIG).stat().st_size
    poster = work / "poster.jpg"
    subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=480x270",
                    "-frames:v", "1", "-q:v", "3", str(poster)], check=True)
    (media / "posters").mkdir(exist_ok=True)
    for i in range(50):
        shutil.copyfile(poster, media / "posters" / f"p{i:02}.jpg")
    uris = work / "posters.txt"
    uris.write_text("".join(f"/media/posters/p{i:02}.jpg\n" for i in range(50)))
    key, cert = work / "key.pem", work / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)

    servers = {"mediagate": start_mediagate(a.exe, work, media, cert, key),
               "nginx": start_nginx(work, media, cert, key)}
    rows: dict[str, dict[str, list]] = {}
    try:
        def add(row: str, name: str, value) -> None:
            rows.setdefault(row, {}).setdefault(name, []).append(value)

        # First, on fresh processes: RSS growth is only meaningful before the load runs left freed heap behind.
        for name, s in servers.items():
            log(f"{name}: 400 slow h2 streams")
            add("slow_streams", name, slow_streams(s))
        rnd = random.Random(2026)
        for run in range(a.runs):
            first = rnd.randrange(0, size - 65536)
            order = list(servers.items()) if run % 2 == 0 else list(servers.items())[::-1]
            for name, s in order:
                base = f"https://127.0.0.1:{s.port}"
                log(f"run {run + 1}: {name}: h2 64 KiB ranges at {first}")
                r = h2load(f"{base}/media/{BIG}", ["-c", "16", "-m", "16", "-t", "1", "-D", str(a.duration),
                                                   "-H", f"Range: bytes={first}-{first + 65535}"])
                add("h2_ranges", name, r)
                log(f"run {run + 1}: {name}: 50-poster page loads")
                r = h2load(base, ["-c", "4", "-m", "50", "-t", "1", "-D", str(a.duration)], uris)
                add("h2_posters", name, r)
                log(f"run {run + 1}: {name}: h1+TLS large object")
                add("h1_tls_large", name, {"mb_s": curl_speed(f"{base}/media/{BIG}")})
    finally:
        for s in servers.values():
            s.stop()

    def median(row, name, field):
        return statistics.median(x[field] for x in rows[row][name])

    summary = {
        "h2_ranges": {n: median("h2_ranges", n, "req_s") for n in servers},
        "h2_posters": {n: median("h2_posters", n, "req_s") for n in servers},
        "h1_tls_large": {n: median("h1_tls_large", n, "mb_s") for n in servers},
        "slow_streams": {n: rows["slow_streams"][n][0]["kib_per_stream"] for n in servers},
    }
    date = datetime.date.today().isoformat()
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps({"date": date, "runs": a.runs, "duration": a.duration,
                                                      "summary": summary, "raw": rows}, indent=1))
    ratio = lambda row: summary[row]["mediagate"] / summary[row]["nginx"] if summary[row]["nginx"] else float("nan")
    failed = {row: {n: sum(x.get("failed", 0) for x in rows[row][n]) for n in servers}
              for row in ("h2_ranges", "h2_posters")}
    lines = [
        f"# HTTPS and HTTP/2: mediagate beside nginx 1.22 ({date})",
        "",
        f"One run of bench/https.py (`bench/run --https` runs it) with {a.exe}, on this machine: 2 cores shared "
        "with two other engineers' "
        "builds and the lead's test runs while it ran, so the figures are noisy; clients (h2load, curl, Python) run "
        "on the same 2 cores as the servers. Same certificate (P-256, self-signed), same files; nginx "
        "`listen ... ssl http2`, worker_processes 2, sendfile, tcp_nopush off; mediagate --threads 2. "
        f"Median of {a.runs} runs of {a.duration} s; runs alternate between the servers.",
        "",
        "| row | mediagate | nginx | mediagate / nginx | target |",
        "|---|---|---|---|---|",
        f"| h2 random 64 KiB ranges (h2load -c16 -m16), req/s | {summary['h2_ranges']['mediagate']:,.0f} | "
        f"{summary['h2_ranges']['nginx']:,.0f} | {ratio('h2_ranges'):.2f}x | >= 1.0x |",
        f"| h2 50-poster page (h2load -c4 -m50, 50 x ~30 KB), req/s | {summary['h2_posters']['mediagate']:,.0f} | "
        f"{summary['h2_posters']['nginx']:,.0f} | {ratio('h2_posters'):.2f}x | |",
        f"| h1+TLS 200 MB object (curl --http1.1, 1 connection), MB/s | {summary['h1_tls_large']['mediagate']:,.0f} | "
        f"{summary['h1_tls_large']['nginx']:,.0f} | {ratio('h1_tls_large'):.2f}x | >= 0.9x |",
        f"| memory per slow h2 stream (RSS growth / 400 stalled streams), KiB | "
        f"{summary['slow_streams']['mediagate']:.1f} | {summary['slow_streams']['nginx']:.1f} | | <= 64 KiB |",
        "",
        f"Failed or errored h2load requests: {json.dumps(failed)}. Raw figures: {a.out.with_suffix('.json').name}.",
        "",
        "h2load sends the same headers on every request of a run, so a run's ranges all start at one random offset "
        "(a new one per run); both servers read the object from the page cache either way. The slow streams are "
        "measured first, on fresh processes (after the load runs, freed heap hides growth).",
    ]
    a.out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
