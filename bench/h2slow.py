#!/usr/bin/python3
"""Stalled HTTP/2 streams, for the memory figure of bench/run's HTTPS rows (issue 13).

  h2slow.py URL --conns C --streams S --hold SECONDS [--cafile CA.pem]

Opens C TLS connections (ALPN h2) to URL's host and on each S streams `GET URL` with `Range: bytes=N-` (N
spread over the object), reads what the server sends but never returns flow-control credit: after the
initial windows (64 KiB per connection) every stream stalls, as a viewer whose player stopped reading would.
Prints `ramped` once every stream got its response headers or failed (or the server sent nothing for 3 s), holds the streams SECONDS, then
prints one JSON line: streams opened, answered (2xx headers), reset or refused, body bytes received.
python3-h2 (Debian) does the framing; nothing here speaks h2 by hand.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import threading
import time
import urllib.parse

import h2.config
import h2.connection
import h2.events


def one_connection(u, args, first_stream: int, stats: dict, lock: threading.Lock, ready: threading.Event,
                   stop: threading.Event) -> None:
    ctx = ssl.create_default_context(cafile=args.cafile) if args.cafile else ssl._create_unverified_context()
    ctx.set_alpn_protocols(["h2"])
    try:
        raw = socket.create_connection((u.hostname, u.port or 443), timeout=30)
        s = ctx.wrap_socket(raw, server_hostname=u.hostname)
        if s.selected_alpn_protocol() != "h2":
            raise RuntimeError(f"the server chose {s.selected_alpn_protocol()!r}, not h2")
    except Exception as e:  # a refused connection counts its streams as failed
        with lock:
            stats["failed"] += args.streams
            stats["errors"].append(f"{type(e).__name__}: {e}")
        ready.set()
        return
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    path = u.path + (f"?{u.query}" if u.query else "")
    waiting = set()
    for i in range(args.streams):
        sid = conn.get_next_available_stream_id()
        offset = ((first_stream + i) * 7919 * 65536) % max(1, args.size - 65536) if args.size else 0
        conn.send_headers(sid, [(":method", "GET"), (":scheme", "https"), (":authority", u.netloc),
                                (":path", path), ("range", f"bytes={offset}-")], end_stream=True)
        waiting.add(sid)
    s.sendall(conn.data_to_send())
    s.settimeout(0.2)
    progress = time.monotonic()
    while not stop.is_set():
        if time.monotonic() - progress > 3:
            ready.set()  # the server sends nothing more: its windows are spent, some streams may wait unanswered
        try:
            data = s.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            data = b""
        if not data:
            with lock:
                stats["closed_by_server"] += 1
                stats["failed"] += len(waiting)
            break
        progress = time.monotonic()
        for ev in conn.receive_data(data):
            if isinstance(ev, h2.events.ResponseReceived):
                status = dict(ev.headers).get(":status", "")
                with lock:
                    stats["answered" if status.startswith("2") else "failed"] += 1
                waiting.discard(ev.stream_id)
            elif isinstance(ev, h2.events.DataReceived):
                with lock:
                    stats["bytes"] += len(ev.data)  # no acknowledge_received_data: the window stays spent
            elif isinstance(ev, h2.events.StreamReset):
                with lock:
                    stats["reset"] += 1
                waiting.discard(ev.stream_id)
        out = conn.data_to_send()
        if out:
            s.sendall(out)
        if not waiting:
            ready.set()
    try:
        conn.close_connection()
        s.sendall(conn.data_to_send())
        s.close()
    except OSError:
        pass
    ready.set()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("--conns", type=int, default=10)
    ap.add_argument("--streams", type=int, default=100, help="per connection")
    ap.add_argument("--size", type=int, default=0, help="object size, to spread the ranges' offsets")
    ap.add_argument("--hold", type=float, default=5.0)
    ap.add_argument("--cafile")
    args = ap.parse_args()
    u = urllib.parse.urlsplit(args.url)
    stats = {"opened": args.conns * args.streams, "answered": 0, "failed": 0, "reset": 0, "bytes": 0,
             "closed_by_server": 0, "errors": []}
    lock = threading.Lock()
    stop = threading.Event()
    threads, readies = [], []
    for c in range(args.conns):
        ready = threading.Event()
        t = threading.Thread(target=one_connection, args=(u, args, c * args.streams, stats, lock, ready, stop),
                             daemon=True)
        t.start()
        threads.append(t)
        readies.append(ready)
    deadline = time.monotonic() + 30
    for r in readies:
        r.wait(max(0.1, deadline - time.monotonic()))
    time.sleep(0.5)  # the servers fill their windows and buffers
    print("ramped", flush=True)
    time.sleep(args.hold)
    stop.set()
    for t in threads:
        t.join(10)
    stats["errors"] = stats["errors"][:5]
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
