#!/usr/bin/python3
"""Load clients for bench/run that wrk cannot play (stdlib only; loopback targets only).

  loadgen.py seek URL --size N [--read BYTES] [--conns C] [--procs P] [--duration S]
      Chrome's seek pattern (workload 3): each request is `Range: bytes=N-` at a random N on a new
      connection; the client reads the response head and BYTES of body (1 MiB), then closes the socket.
  loadgen.py slow URL --size N [--streams K] [--rate BYTES_PER_S] [--ramp S] [--hold S] [--rcvbuf BYTES]
      Slow readers (workload 4): K connections, each `Range: bytes=N-` at a random N, each read at about
      RATE bytes/s (2 Mbit/s = 250,000 B/s) like a playing video. Prints the line "ramped" once every stream
      was opened, then holds for S seconds and reports per-stream rates and errors.
      With --cycle BYTES (the soak, bench/run --soak) each stream closes after reading about BYTES (0.5-1.5x,
      at random) and a new one opens at another random offset, so connections keep coming and going.
  loadgen.py ttfb URL [URL...] [--count N]
      Time to first byte at low load (workload 5): N sequential `Range: bytes=0-` requests, one at a time on a
      new connection, over the given URLs in turn; measures connect-to-first-response-byte, reads the body.

Each mode prints one JSON object on its last line of stdout. Servers must be on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import random
import select
import socket
import sys
import time
import urllib.parse

MIB = 1 << 20


def parse_url(url: str) -> tuple[str, int, str]:
    u = urllib.parse.urlsplit(url)
    if u.scheme != "http" or u.hostname != "127.0.0.1":
        raise SystemExit(f"loadgen: only http://127.0.0.1 targets are allowed, not {url}")
    return u.hostname, u.port or 80, u.path + (("?" + u.query) if u.query else "")


def request_bytes(host: str, port: int, path: str, range_value: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: mediagate-bench\r\n"
            f"Accept: */*\r\nRange: {range_value}\r\n\r\n").encode()


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


class Conn:
    """One non-blocking HTTP exchange driven by an epoll loop."""

    __slots__ = ("sock", "fd", "state", "req", "head", "status", "body", "t0", "budget", "got", "registered",
                 "opened", "want")

    def __init__(self, addr, req: bytes, want: int, rcvbuf: int = 0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.fd = self.sock.fileno()
        self.req = req
        self.head = b""
        self.status = 0
        self.body = 0  # body bytes read
        self.want = want
        self.t0 = time.monotonic()
        self.state = "connect"
        self.budget = 0.0
        self.got = 0
        self.registered = 0
        self.opened = self.t0
        rc = self.sock.connect_ex(addr)
        if rc not in (0, errno.EINPROGRESS):
            raise OSError(rc, os.strerror(rc))


def feed_head(c: Conn, data: memoryview) -> int:
    """Accumulates the response head; returns how many bytes of `data` belong to the body (or -1 if bad)."""
    c.head += bytes(data)
    end = c.head.find(b"\r\n\r\n")
    if end < 0:
        if len(c.head) > 65536:
            return -1
        return 0
    first = c.head[: c.head.find(b"\r\n")]
    try:
        c.status = int(first.split()[1])
    except (IndexError, ValueError):
        return -1
    c.state = "body"
    extra = len(c.head) - (end + 4)
    c.head = b""
    return extra


# -- workload 3 ---------------------------------------------------------------------------------------------

def run_seek(url: str, size: int, read: int, conns: int, duration: float, seed: int) -> dict:
    host, port, path = parse_url(url)
    addr = (host, port)
    rng = random.Random(seed)
    ep = select.epoll()
    buf = bytearray(256 * 1024)
    mv = memoryview(buf)
    live: dict[int, Conn] = {}
    stats = {"requests": 0, "started": 0, "errors": 0, "bad_status": 0, "body_bytes": 0}
    lat: list[float] = []
    statuses: dict[str, int] = {}
    hi = max(0, size - 2 * read)

    def start():
        n = rng.randint(0, hi)
        c = Conn(addr, request_bytes(host, port, path, f"bytes={n}-"), read)
        stats["started"] += 1
        live[c.fd] = c
        ep.register(c.fd, select.EPOLLOUT)

    def finish(c: Conn, ok: bool):
        ep.unregister(c.fd)
        del live[c.fd]
        c.sock.close()
        if ok:
            stats["requests"] += 1
            lat.append(time.monotonic() - c.t0)
        else:
            stats["errors"] += 1

    t_start = time.monotonic()
    deadline = t_start + duration
    for _ in range(conns):
        start()
    while live:
        now = time.monotonic()
        if now >= deadline:
            break
        for fd, ev in ep.poll(min(0.2, deadline - now)):
            c = live.get(fd)
            if c is None:
                continue
            if c.state == "connect":
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    finish(c, False)
                    start()
                    continue
                c.sock.send(c.req)  # small: fits the empty send buffer
                c.state = "head"
                ep.modify(fd, select.EPOLLIN)
                continue
            try:
                n = c.sock.recv_into(mv)
            except (ConnectionResetError, BrokenPipeError):
                n = 0
            except BlockingIOError:
                continue
            if n == 0:
                finish(c, False)
                start()
                continue
            if c.state == "head":
                extra = feed_head(c, mv[:n])
                if extra < 0:
                    finish(c, False)
                    start()
                    continue
                if c.state != "body":
                    continue
                statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
                if c.status != 206:
                    stats["bad_status"] += 1
                    finish(c, False)
                    start()
                    continue
                n = extra
            c.body += n
            stats["body_bytes"] += n
            if c.body >= c.want:
                finish(c, True)
                start()
    elapsed = time.monotonic() - t_start
    for c in list(live.values()):
        c.sock.close()
    return {
        "mode": "seek", "requests": stats["requests"], "started": stats["started"], "errors": stats["errors"],
        "bad_status": stats["bad_status"], "statuses": statuses, "body_bytes": stats["body_bytes"],
        "duration": elapsed, "rps": stats["requests"] / elapsed if elapsed else 0.0,
        "p50_ms": (percentile(lat, 50) or 0) * 1e3, "p99_ms": (percentile(lat, 99) or 0) * 1e3,
    }


def run_seek_procs(url, size, read, conns, duration, procs) -> dict:
    """Runs `procs` forked copies of run_seek (conns split between them) and adds their results up."""
    if procs <= 1:
        return run_seek(url, size, read, conns, duration, seed=os.getpid())
    pipes = []
    for i in range(procs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            share = conns // procs + (1 if i < conns % procs else 0)
            res = run_seek(url, size, read, share, duration, seed=os.getpid() * 31 + i)
            os.write(w, json.dumps(res).encode())
            os._exit(0)
        os.close(w)
        pipes.append((pid, r))
    results = []
    for pid, r in pipes:
        data = b""
        while chunk := os.read(r, 65536):
            data += chunk
        os.close(r)
        os.waitpid(pid, 0)
        results.append(json.loads(data))
    out = {"mode": "seek", "procs": procs}
    for k in ("requests", "started", "errors", "bad_status", "body_bytes", "rps"):
        out[k] = sum(r[k] for r in results)
    out["duration"] = max(r["duration"] for r in results)
    out["statuses"] = {}
    for r in results:
        for s, n in r["statuses"].items():
            out["statuses"][s] = out["statuses"].get(s, 0) + n
    # Latency percentiles of the parts, weighted by requests (the parts run the same mix).
    tot = max(1, out["requests"])
    out["p50_ms"] = sum(r["p50_ms"] * r["requests"] for r in results) / tot
    out["p99_ms"] = max(r["p99_ms"] for r in results)
    return out


# -- workload 4 ---------------------------------------------------------------------------------------------

def run_slow(url: str, size: int, streams: int, rate: float, ramp: float, hold: float, rcvbuf: int,
             cycle: int = 0) -> dict:
    host, port, path = parse_url(url)
    addr = (host, port)
    rng = random.Random(os.getpid())
    ep = select.epoll()
    buf = bytearray(256 * 1024)
    mv = memoryview(buf)
    live: dict[int, Conn] = {}
    errors = {"connect": 0, "status": 0, "eof": 0, "reset": 0}
    statuses: dict[str, int] = {}
    tick = 0.2
    per_tick = rate * tick
    # Each stream starts far enough from the end that it never reaches it during the run.
    span = int(rate * (ramp + hold + 5) * 1.5) + MIB
    if cycle:  # streams end and are replaced: each only needs room for its own read
        span = int(cycle * 1.5) + MIB
    hi = max(0, size - span)
    cycled = 0
    gone = [0]  # bytes read by streams that have closed

    def open_one():
        n = rng.randint(0, hi)
        want = int(cycle * rng.uniform(0.5, 1.5)) if cycle else 0
        try:
            c = Conn(addr, request_bytes(host, port, path, f"bytes={n}-"), want, rcvbuf)
        except OSError:
            errors["connect"] += 1
            return
        live[c.fd] = c
        ep.register(c.fd, select.EPOLLOUT)
        c.registered = select.EPOLLOUT

    def drop(c: Conn, why: str):
        errors[why] += 1
        gone[0] += c.got
        ep.unregister(c.fd)
        del live[c.fd]
        c.sock.close()

    t0 = time.monotonic()
    opened = 0
    next_tick = t0
    ramped_at = None
    next_progress = float("inf")
    hold_start_bytes: dict[int, int] = {}
    hold_end = None
    while True:
        now = time.monotonic()
        # Ramp: open streams evenly over `ramp` seconds.
        target = streams if ramp <= 0 else min(streams, int(streams * (now - t0) / ramp) + 1)
        while opened < target:
            open_one()
            opened += 1
        if ramped_at is None and opened >= streams:
            ramped_at = now
            hold_end = now + hold
            hold_start_bytes = {fd: c.got for fd, c in live.items()}
            next_progress = now + 10.0
            print("ramped", flush=True)
        if hold_end is not None and now >= hold_end:
            break
        if ramped_at is not None and now >= next_progress:  # for the soak's time series
            next_progress += 10.0
            print("progress " + json.dumps({"t": round(now - ramped_at, 1), "alive": len(live),
                                            "errors": sum(errors.values()), "cycled": cycled,
                                            "bytes": gone[0] + sum(c.got for c in live.values())}), flush=True)
        if now >= next_tick:
            next_tick += tick
            for c in live.values():
                if c.state == "body":
                    c.budget = min(c.budget + per_tick, 2 * per_tick)
                    if c.budget > 0 and not c.registered:
                        ep.modify(c.fd, select.EPOLLIN)
                        c.registered = select.EPOLLIN
        timeout = max(0.0, min(next_tick, hold_end or next_tick) - time.monotonic())
        if ramped_at is None:
            timeout = min(timeout, 0.005)
        for fd, ev in ep.poll(timeout):
            c = live.get(fd)
            if c is None:
                continue
            if c.state == "connect":
                if c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    drop(c, "connect")
                    continue
                c.sock.send(c.req)
                c.state = "head"
                ep.modify(fd, select.EPOLLIN)
                c.registered = select.EPOLLIN
                continue
            limit = 2048 if c.state == "head" else max(1, min(len(buf), int(c.budget)))
            try:
                n = c.sock.recv_into(mv, limit)
            except (ConnectionResetError, BrokenPipeError):
                drop(c, "reset")
                continue
            except BlockingIOError:
                continue
            if n == 0:
                drop(c, "eof")
                continue
            if c.state == "head":
                extra = feed_head(c, mv[:n])
                if extra < 0:
                    drop(c, "status")
                    continue
                if c.state != "body":
                    continue
                statuses[str(c.status)] = statuses.get(str(c.status), 0) + 1
                if c.status != 206:
                    drop(c, "status")
                    continue
                c.budget = per_tick - extra
                c.got += extra
                c.body += extra
                n = 0
            c.got += n
            c.budget -= n
            c.body += n
            if c.want and c.body >= c.want:  # this viewer is done: a new one takes its place
                ep.unregister(fd)
                del live[fd]
                c.sock.close()
                gone[0] += c.got
                cycled += 1
                if hold_end is not None:
                    open_one()
                continue
            if c.budget <= 0 and c.registered:
                ep.modify(fd, 0)
                c.registered = 0
    elapsed_hold = time.monotonic() - (ramped_at or t0)
    # Streams opened after the ramp (a cycled stream's replacement may reuse a descriptor number) have no rate.
    rates = [(c.got - hold_start_bytes[fd]) / elapsed_hold for fd, c in live.items()
             if fd in hold_start_bytes and ramped_at is not None and c.opened <= ramped_at]
    total = sum(c.got for c in live.values())
    for c in list(live.values()):
        c.sock.close()
    slow = sum(1 for r in rates if r < 0.8 * rate)
    return {
        "mode": "slow", "streams": streams, "alive": len(live), "errors": sum(errors.values()),
        "error_kinds": errors, "statuses": statuses, "starved": slow, "hold_s": elapsed_hold,
        "ramp_s": (ramped_at or t0) - t0, "rate_target": rate,
        "rate_p50": percentile(rates, 50) or 0.0, "rate_p1": percentile(rates, 1) or 0.0,
        "aggregate_MBps": sum(rates) / 1e6, "bytes": total, "cycled": cycled,
    }


# -- workload 5 ---------------------------------------------------------------------------------------------

def run_ttfb(urls: list[str], count: int) -> dict:
    targets = [parse_url(u) for u in urls]
    samples: list[float] = []
    errors = 0
    statuses: dict[str, int] = {}
    buf = bytearray(256 * 1024)
    t_begin = time.monotonic()
    for i in range(count):
        host, port, path = targets[i % len(targets)]
        req = request_bytes(host, port, path, "bytes=0-")
        try:
            t0 = time.perf_counter()
            s = socket.create_connection((host, port), timeout=10)
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.sendall(req)
            n = s.recv_into(buf)
            t1 = time.perf_counter()
            if n == 0:
                raise ConnectionError("closed before a byte")
            data = bytes(buf[:n])
            while b"\r\n\r\n" not in data:
                m = s.recv_into(buf)
                if m == 0:
                    raise ConnectionError("closed in the head")
                data += bytes(buf[:m])
            head, _, rest = data.partition(b"\r\n\r\n")
            status = int(head.split(b"\r\n")[0].split()[1])
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            length = None
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                if k.strip().lower() == b"content-length":
                    length = int(v.strip())
            got = len(rest)
            while length is not None and got < length:
                m = s.recv_into(buf)
                if m == 0:
                    raise ConnectionError("short body")
                got += m
            s.close()
            if status not in (200, 206):
                errors += 1
                continue
            samples.append(t1 - t0)
        except (OSError, ValueError, IndexError):
            errors += 1
    return {
        "mode": "ttfb", "requests": len(samples), "errors": errors, "statuses": statuses,
        "p50_ms": (percentile(samples, 50) or 0) * 1e3, "p99_ms": (percentile(samples, 99) or 0) * 1e3,
        "duration": time.monotonic() - t_begin,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("seek")
    p.add_argument("url")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--read", type=int, default=MIB)
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--duration", type=float, default=5.0)
    p = sub.add_parser("slow")
    p.add_argument("url")
    p.add_argument("--size", type=int, required=True)
    p.add_argument("--streams", type=int, default=2000)
    p.add_argument("--rate", type=float, default=250_000.0)
    p.add_argument("--ramp", type=float, default=2.0)
    p.add_argument("--hold", type=float, default=6.0)
    p.add_argument("--rcvbuf", type=int, default=0, help="SO_RCVBUF of each client socket (0: kernel default)")
    p.add_argument("--cycle", type=int, default=0, help="close each stream after about this many bytes, open another")
    p = sub.add_parser("ttfb")
    p.add_argument("urls", nargs="+")
    p.add_argument("--count", type=int, default=200)
    a = ap.parse_args()
    if a.mode == "seek":
        res = run_seek_procs(a.url, a.size, a.read, a.conns, a.duration, a.procs)
    elif a.mode == "slow":
        res = run_slow(a.url, a.size, a.streams, a.rate, a.ramp, a.hold, a.rcvbuf, a.cycle)
    else:
        res = run_ttfb(a.urls, a.count)
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    sys.exit(main())
