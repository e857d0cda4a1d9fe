"""An S3 across a network, on loopback: Debian's nginx with its Lua module in front of radosgw, adding a fixed
delay before every request is passed on and capping each connection's response rate (DESIGN.md "An S3
across a network"; this kernel has no netem). Used by tests (properties that depend on round trips) and by
bench/ (time to first frame, seeks).

    shaped = ShapedS3(work_dir, upstream_port=rgw_port, delay_ms=30, rate="80m")
    shaped.start()          # shaped.endpoint -> "http://127.0.0.1:PORT"
    ...
    shaped.stop()

With total_rate (bytes a second), the S3 sits behind one link that every connection shares (SharedLink, between
nginx and radosgw): a store whose bandwidth is shared rather than capped per connection.

Run by hand: python3 tests/integration/shaped_s3.py DIR RGW_PORT [DELAY_MS] [RATE]  (Ctrl-C stops it).

Needs: nginx (nginx-light) and libnginx-mod-http-lua (Debian 12); the Host header is passed through, so
SigV4 signatures made for the proxy's address verify at radosgw.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MODULES = Path("/usr/lib/nginx/modules")

CONF = """\
load_module {modules}/ndk_http_module.so;
load_module {modules}/ngx_http_lua_module.so;
{user}
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
  # When each request ended (s), how long it took, and what it was: for counting S3 requests per action; last,
  # how long the store took to its answer's head once asked (s, after the delay).
  log_format shaped '$msec $request_time $request_method $uri "$http_range" $status $body_bytes_sent '
                    '$upstream_header_time';
  access_log {dir}/access.log shaped buffer=4k flush=100ms;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  client_max_body_size 0;
  keepalive_timeout 65;
  keepalive_requests 1000000;
  tcp_nodelay on;
  upstream s3 {{
    server 127.0.0.1:{upstream_port};
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{
      # The network's round trip: every request waits this long before it is passed on (a suffix range,
      # bytes=-N, `suffix_delay` longer: a store slow to answer one request of several in flight).
      access_by_lua_block {{
        local r = ngx.var.http_range
        if r and string.sub(r, 1, 7) == "bytes=-" then ngx.sleep({delay} + {suffix_delay}) else ngx.sleep({delay}) end
      }}
      # One connection's bandwidth; limit_rate acts only on buffered proxied responses. It paces each write by
      # what the write sent, so the first write of every response (up to these 2 MiB of buffers) goes out at
      # once: an 8 MiB part at 80m comes in about 80 ms, not 105. Smaller buffers do not help: a pause under
      # 1 ms rounds down to none, and the cap becomes an average with a second of credit.
      limit_rate {rate};
      proxy_buffering on;
      proxy_max_temp_file_size 0;
      proxy_buffer_size 16k;
      proxy_buffers 32 64k;
      proxy_busy_buffers_size 256k;
      proxy_request_buffering off;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_pass http://s3;
    }}
  }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def store_head(fields: list[str]) -> float | None:
    """$upstream_header_time: seconds from the request passed on to the store's answer's head (the last
    attempt's when nginx tried more than one); None when the store never answered."""
    try:
        return float(fields[-1].rstrip(","))
    except (IndexError, ValueError):
        return None


class SharedLink:
    """One link on loopback that every connection shares: relays TCP to `upstream_port` and lets through at
    most `rate` bytes a second towards the clients, all connections together (nginx's limit_rate caps each
    connection on its own; this kernel has no netem or tc qdisc to cap them together). Each piece of at most
    16 KiB books the next free slot on the link and is sent when its slot ends, so the connections share the
    rate in turn; one connection alone gets all of it."""

    PIECE = 16 * 1024

    def __init__(self, upstream_port: int, rate: float, port: int | None = None) -> None:
        self.upstream_port = upstream_port
        self.rate = float(rate)
        self.port = port or free_port()
        self.lock = threading.Lock()
        self.free_at = 0.0  # when the link is free again (time.monotonic())
        self.sockets: list[socket.socket] = []
        self.listener: socket.socket | None = None

    def start(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", self.port), backlog=256)
        threading.Thread(target=self._accept, daemon=True).start()

    def stop(self) -> None:
        if self.listener:
            self.listener.close()
            self.listener = None
        with self.lock:
            sockets, self.sockets = self.sockets, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _accept(self) -> None:
        while self.listener:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            try:
                up = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                down.close()
                continue
            pair = [down, up]
            with self.lock:
                self.sockets += pair
            pumping = [2]  # both directions; the pair is closed once both have ended
            threading.Thread(target=self._pump, args=(down, up, False, pair, pumping), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, True, pair, pumping), daemon=True).start()

    # A slot may start this long in the past: a sleep that overran does not cost the link its rate.
    SLACK = 0.005

    def _wait_for_slot(self, n: int) -> None:
        with self.lock:
            now = time.monotonic()
            start = max(now - self.SLACK, self.free_at)
            self.free_at = start + n / self.rate
            until = self.free_at
        if until > now:
            time.sleep(until - now)

    def _pump(self, src: socket.socket, dst: socket.socket, shaped: bool, pair: list[socket.socket],
              pumping: list[int]) -> None:
        try:
            while True:
                data = src.recv(256 * 1024)
                if not data:
                    break
                view = memoryview(data)
                while view:
                    piece = view[:self.PIECE] if shaped else view
                    if shaped:
                        self._wait_for_slot(len(piece))
                    dst.sendall(piece)
                    view = view[len(piece):]
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self.lock:
            pumping[0] -= 1
            if pumping[0] > 0:
                return
            self.sockets = [s for s in self.sockets if s not in pair]
        for s in pair:  # (stop() may have closed them already: closing twice is harmless)
            s.close()


class ShapedS3:
    def __init__(self, work: Path, upstream_port: int, delay_ms: float = 30, rate: str = "80m",
                 port: int | None = None, suffix_delay_ms: float = 0, total_rate: float | None = None) -> None:
        """suffix_delay_ms: added to the delay of requests for a suffix range (bytes=-N) only. rate: each
        connection's cap (nginx's limit_rate; "0": none). total_rate: bytes a second for all connections
        together (a SharedLink in front of the upstream)."""
        self.dir = Path(work)
        self.suffix_delay_ms = suffix_delay_ms
        self.link = SharedLink(upstream_port, total_rate) if total_rate else None
        self.upstream_port = self.link.port if self.link else upstream_port
        self.delay_ms = delay_ms
        self.rate = rate
        self.port = port or free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access_log(self) -> Path:
        return self.dir / "access.log"

    def requests(self) -> list[dict]:
        """The requests logged so far: start and end (epoch seconds), method, uri, range, status, body bytes."""
        out = []
        if not self.access_log.exists():
            return out
        for line in self.access_log.read_text(errors="replace").splitlines():
            parts = line.split(" ")
            if len(parts) < 7:
                continue
            end, took = float(parts[0]), float(parts[1])
            out.append({"start": end - took, "end": end, "method": parts[2], "uri": parts[3],
                        "range": parts[4].strip('"'), "status": int(parts[5]), "bytes": int(parts[6]),
                        "store_head": store_head(parts[7:])})
        return out

    def start(self, timeout: float = 10) -> None:
        if self.link:
            self.link.start()
        for sub in ("tmp/body", "tmp/proxy", "tmp/fastcgi", "tmp/uwsgi", "tmp/scgi"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        conf = self.dir / "nginx.conf"
        conf.write_text(CONF.format(modules=MODULES, dir=self.dir, port=self.port,
                                    upstream_port=self.upstream_port, delay=self.delay_ms / 1000.0,
                                    suffix_delay=self.suffix_delay_ms / 1000.0,
                                    rate=self.rate, user="user root;" if os.geteuid() == 0 else ""))
        with open(self.dir / "stdout.log", "wb") as out:
            self.proc = subprocess.Popen(["nginx", "-c", str(conf), "-e", str(self.dir / "error.log")],
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"shaped S3 (nginx) exited: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"shaped S3 (nginx) did not listen on {self.port}: {self.log_tail()}")

    def log_tail(self) -> str:
        parts = []
        for name in ("error.log", "stdout.log"):
            p = self.dir / name
            if p.exists():
                parts.append(p.read_text(errors="replace")[-2000:])
        return "\n".join(parts)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # fast shutdown; the master waits for its worker
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.link:
            self.link.stop()


if __name__ == "__main__":
    if len(sys.argv) < 3:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        sys.exit(2)
    shaped = ShapedS3(Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]) if len(sys.argv) > 3 else 30,
                      sys.argv[4] if len(sys.argv) > 4 else "80m")
    shaped.start()
    print(shaped.endpoint, flush=True)
    try:
        shaped.proc.wait()
    except KeyboardInterrupt:
        shaped.stop()
