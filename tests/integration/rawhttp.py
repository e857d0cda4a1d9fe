"""A small raw HTTP/1.1 client for the integration tests.

http.client normalises too much (it decodes chunked bodies silently, rewrites targets, hides pipelining
and partial reads), so the tests speak HTTP over plain sockets: they send exact bytes and parse responses
themselves, framing bodies by RFC 9112 §6.3. Every socket operation has a deadline; when it passes the
reader raises ServerHang, an AssertionError, so a server bug shows as a test failure with a message
instead of a hung suite.
"""

from __future__ import annotations

import email.utils
import re
import socket
import ssl
import struct
import time
from dataclasses import dataclass
from typing import Callable, Optional

DEFAULT_TIMEOUT = 10.0
MAX_HEAD = 256 * 1024
# When set (the HTTPS runs of the suites: harness.py), every Connection speaks TLS with this context, unless
# it is given a context (or tls=False) of its own.
TLS_CONTEXT: Optional[ssl.SSLContext] = None
# The HTTP/2 runs (run_suite.py --scheme h2): every TLS connection negotiates h2 by ALPN and speaks it through
# h2client.Session, which translates the HTTP/1.1 bytes the tests write and read.
H2 = False


class ServerHang(AssertionError):
    """The server did not send what was expected within the deadline."""


class ProtocolError(AssertionError):
    """The server's bytes are not a valid HTTP/1.1 response."""


class ConnectionClosed(AssertionError):
    """The server closed (or reset) the connection where a response was expected."""


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunked: bool = False  # the body came with Transfer-Encoding: chunked
    close_delimited: bool = False  # no Content-Length: the body ran until the server closed
    body_length: int = 0  # bytes of body received (also when a sink consumed them)
    raw_head: bytes = b""

    def all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def header(self, name: str) -> Optional[str]:
        """The field's value (several lines joined with ', ' as RFC 9110 §5.3 allows), or None."""
        values = self.all(name)
        return ", ".join(values) if values else None

    def has(self, name: str) -> bool:
        return bool(self.all(name))

    def media_type(self) -> Optional[str]:
        value = self.header("content-type")
        return None if value is None else value.split(";")[0].strip().lower()

    def describe(self, limit: int = 300) -> str:
        """The response as text for assertion messages."""
        head = self.raw_head.decode("latin-1", "replace")
        body = self.body[:limit]
        more = "" if len(self.body) <= limit else f"... ({len(self.body)} bytes)"
        return f"{head}{body!r}{more}"


class Connection:
    """One client connection with a read buffer, so that pipelined responses can be read one by one."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = DEFAULT_TIMEOUT,
                 rcvbuf: Optional[int] = None, tls=None):
        """tls: an ssl.SSLContext, False for plain TCP, or None for TLS_CONTEXT (plain when unset)."""
        self.host = host
        self.port = port
        self.timeout = timeout
        self.buf = bytearray()
        self.eof = False
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.sock.connect((host, port))
        except socket.timeout:
            self.sock.close()
            raise ServerHang(f"connect to {host}:{port} timed out after {timeout}s") from None
        except OSError:
            self.sock.close()
            raise
        context = TLS_CONTEXT if tls is None else (tls or None)
        if context is not None:
            try:
                self.sock = context.wrap_socket(self.sock, server_hostname=host)
            except socket.timeout:
                self.sock.close()
                raise ServerHang(f"TLS handshake with {host}:{port} timed out after {timeout}s") from None
            except OSError:
                self.sock.close()
                raise
        self.h2 = None
        if H2 and context is not None:
            import h2client  # python3-h2, only for the HTTP/2 runs

            if self.sock.selected_alpn_protocol() != "h2":
                raise ProtocolError(f"the server did not negotiate h2 by ALPN: {self.sock.selected_alpn_protocol()}")
            self.h2 = h2client.Session(self.sock, f"{host}:{port}")

    # -- sending --------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        try:
            if self.h2 is not None:
                self.h2.send(data)
                return
            self.sock.sendall(data)
        except socket.timeout:
            raise ServerHang(f"sending {len(data)} bytes timed out after {self.timeout}s "
                             "(the server does not read)") from None

    def send_request(self, method: str, target: str, headers=(), body: bytes = b"",
                     version: str = "HTTP/1.1", host: bool = True) -> bytes:
        data = build_request(method, target, headers, body, version, host, self.port)
        self.send(data)
        return data

    def request(self, method: str, target: str, headers=(), body: bytes = b"",
                version: str = "HTTP/1.1", host: bool = True, **read_args) -> Response:
        self.send_request(method, target, headers, body, version, host)
        return self.read_response(method, what=f"{method} {target}", **read_args)

    # -- receiving ------------------------------------------------------------------------------------

    def _fill(self, what: str, deadline: Optional[float] = None) -> bool:
        """Reads more bytes into the buffer; False at end of stream."""
        if self.eof:
            return False
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ServerHang(f"timed out {what}")
            self.sock.settimeout(min(left, self.timeout))
        try:
            chunk = self.h2.fill() if self.h2 is not None else self.sock.recv(1 << 20)
        except socket.timeout:
            raise ServerHang(f"timed out after {self.timeout}s {what}; received so far: "
                             f"{bytes(self.buf[:200])!r}") from None
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            self.eof = True
            return False
        finally:
            if deadline is not None:
                self.sock.settimeout(self.timeout)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def read_exact(self, n: int, what: str = "reading") -> bytes:
        while len(self.buf) < n:
            if not self._fill(what):
                raise ConnectionClosed(f"connection closed after {len(self.buf)} of {n} bytes while {what}")
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def read_some(self, what: str = "reading") -> bytes:
        """Whatever is buffered, or the next bytes from the socket; b'' at end of stream."""
        if not self.buf:
            self._fill(what)
        data = bytes(self.buf)
        self.buf.clear()
        return data

    def read_at_least(self, n: int, what: str = "reading") -> bytes:
        """At least n bytes as they come (a client that reads the start of a stream, then leaves)."""
        got = bytearray()
        while len(got) < n:
            chunk = self.read_some(what)
            if not chunk:
                raise ConnectionClosed(f"connection closed after {len(got)} of at least {n} bytes while {what}")
            got += chunk
        return bytes(got)

    def _read_line(self, what: str) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(self.buf[:i])
                del self.buf[: i + 2]
                return line
            if len(self.buf) > MAX_HEAD:
                raise ProtocolError(f"response head longer than {MAX_HEAD} bytes while {what}")
            if not self._fill(what):
                raise ConnectionClosed(f"connection closed while {what}; partial line {bytes(self.buf[:200])!r}")

    def read_head(self, what: str = "reading the response head") -> Response:
        if not self.buf and not self._fill(what):
            raise ConnectionClosed(f"connection closed without a response while {what}")
        raw = bytearray()
        status_line = self._read_line(what)
        raw += status_line + b"\r\n"
        m = re.fullmatch(rb"(HTTP/\d\.\d) (\d{3}) ?(.*)", status_line)
        if not m:
            raise ProtocolError(f"bad status line {status_line!r} while {what}")
        headers = []
        while True:
            line = self._read_line(what)
            raw += line + b"\r\n"
            if not line:
                break
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError(f"obsolete line folding in response header {line!r} while {what}")
            name, sep, value = line.partition(b":")
            if not sep or not re.fullmatch(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+", name):
                raise ProtocolError(f"bad header line {line!r} while {what}")
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        return Response(version=m.group(1).decode(), status=int(m.group(2)),
                        reason=m.group(3).decode("latin-1"), headers=headers, raw_head=bytes(raw))

    def read_response(self, method: str = "GET", what: Optional[str] = None,
                      sink: Optional[Callable[[bytes], None]] = None) -> Response:
        """Reads one complete response. With `sink`, body bytes go to it instead of Response.body."""
        what = f"reading the response to {what or method}"
        while True:
            resp = self.read_head(what)
            if resp.status < 100 or resp.status > 599:
                raise ProtocolError(f"status {resp.status} out of range while {what}")
            if 100 <= resp.status < 200 and resp.status != 101:
                continue  # interim response: the final one follows
            break
        body = bytearray()

        def take(data: bytes) -> None:
            resp.body_length += len(data)
            if sink is not None:
                sink(data)
            else:
                body.extend(data)

        if method == "HEAD" or resp.status in (204, 304) or 100 <= resp.status < 200:
            pass
        elif resp.has("transfer-encoding"):
            resp.chunked = True
            codings = [c.strip().lower() for c in resp.header("transfer-encoding").split(",")]
            if codings[-1] != "chunked":
                raise ProtocolError(f"unsupported Transfer-Encoding {codings} while {what}")
            self._read_chunked(take, what)
        elif resp.has("content-length"):
            length = parse_content_length(resp)
            self._read_counted(length, take, what)
        else:
            resp.close_delimited = True
            while True:
                if self.buf:
                    take(bytes(self.buf))
                    self.buf.clear()
                if not self._fill(what + " (body delimited by close)"):
                    break
        resp.body = bytes(body)
        return resp

    def _read_counted(self, length: int, take: Callable[[bytes], None], what: str) -> None:
        left = length
        while left > 0:
            if not self.buf and not self._fill(what):
                raise ConnectionClosed(f"connection closed after {length - left} of {length} body bytes "
                                       f"(Content-Length) while {what}")
            n = min(left, len(self.buf))
            take(bytes(self.buf[:n]))
            del self.buf[:n]
            left -= n

    def _read_chunked(self, take: Callable[[bytes], None], what: str) -> None:
        while True:
            line = self._read_line(what)
            size_text = line.split(b";")[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]+", size_text):
                raise ProtocolError(f"bad chunk size line {line!r} while {what}")
            size = int(size_text, 16)
            if size == 0:
                while self._read_line(what):
                    pass  # trailer fields
                return
            self._read_counted(size, take, what)
            if self.read_exact(2, what) != b"\r\n":
                raise ProtocolError(f"chunk not followed by CRLF while {what}")

    def wait_for_close(self, timeout: float) -> tuple[bool, bytes]:
        """Reads until the server closes (True) or `timeout` passes (False); returns what arrived."""
        deadline = time.monotonic() + timeout
        got = bytearray(self.buf)
        self.buf.clear()
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False, bytes(got)
            self.sock.settimeout(left)
            try:
                chunk = self.h2.fill() if self.h2 is not None else self.sock.recv(1 << 16)
            except socket.timeout:
                return False, bytes(got)
            except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
                self.eof = True
                break
            finally:
                self.sock.settimeout(self.timeout)
            if not chunk:
                self.eof = True
                break
            got += chunk
        return True, bytes(got)

    def is_closed_by_peer(self, wait: float = 0.2) -> bool:
        closed, data = self.wait_for_close(wait)
        self.buf[:0] = data
        return closed

    def close(self, reset: bool = False) -> None:
        """Closes the socket; with reset=True the kernel sends RST (SO_LINGER 0) as an aborting client does."""
        try:
            if reset:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_request(method: str, target: str, headers=(), body: bytes = b"", version: str = "HTTP/1.1",
                  host: bool = True, port: int = 0) -> bytes:
    """The exact bytes of a request. `headers` is a list of (name, value) pairs or a dict."""
    if isinstance(headers, dict):
        headers = list(headers.items())
    lines = [f"{method} {target} {version}".encode("latin-1")]
    names = {name.lower() for name, _ in headers}
    if host and "host" not in names:
        lines.append(f"Host: 127.0.0.1:{port}".encode())
    for name, value in headers:
        lines.append(name.encode("latin-1") + b": " + (value if isinstance(value, bytes) else value.encode("latin-1")))
    if body and "content-length" not in names:
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parse_content_length(resp: Response) -> int:
    values = {v.strip() for line in resp.all("content-length") for v in line.split(",")}
    if len(values) != 1:
        raise ProtocolError(f"conflicting Content-Length values {resp.all('content-length')}")
    value = values.pop()
    if not re.fullmatch(r"[0-9]+", value):
        raise ProtocolError(f"bad Content-Length {value!r}")
    return int(value)


# -- field values ----------------------------------------------------------------------------------------

CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")
UNSATISFIED_RANGE = re.compile(r"bytes \*/(\d+)")
STRONG_ETAG = re.compile(r'"[\x21\x23-\x7e\x80-\xff]*"')
IMF_FIXDATE = re.compile(r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                         r"\d{4} \d\d:\d\d:\d\d GMT")


def parse_content_range(value: str) -> tuple[int, int, int]:
    m = CONTENT_RANGE.fullmatch(value or "")
    if not m:
        raise ProtocolError(f"bad Content-Range {value!r}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def http_date(timestamp: float) -> str:
    """IMF-fixdate (RFC 9110 §5.6.7)."""
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_http_date(value: str) -> float:
    if not IMF_FIXDATE.fullmatch(value or ""):
        raise ProtocolError(f"not an IMF-fixdate: {value!r}")
    return email.utils.parsedate_to_datetime(value).timestamp()


def media_type_params(value: str) -> tuple[str, dict[str, str]]:
    """Splits `type/subtype; a=b; c="d"` into the lower-cased type and its parameters."""
    parts = value.split(";")
    params = {}
    for p in parts[1:]:
        name, _, v = p.strip().partition("=")
        v = v.strip()
        if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[name.strip().lower()] = v
    return parts[0].strip().lower(), params


@dataclass
class Part:
    headers: list[tuple[str, str]]
    first: int
    last: int
    size: int
    data: bytes

    def header(self, name: str) -> Optional[str]:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


def parse_byteranges(content_type: str, body: bytes) -> list[Part]:
    """Parses a multipart/byteranges body (RFC 9110 §14.6, RFC 2046 §5.1.1), taking each part's length from
    its Content-Range so that boundary-like bytes inside the data cannot confuse it."""
    media_type, params = media_type_params(content_type)
    if media_type != "multipart/byteranges":
        raise ProtocolError(f"not multipart/byteranges: {content_type!r}")
    boundary = params.get("boundary")
    if not boundary or len(boundary) > 70:
        raise ProtocolError(f"missing or bad boundary in {content_type!r}")
    delimiter = b"--" + boundary.encode("latin-1")
    pos = body.find(delimiter)
    if pos < 0 or (pos != 0 and body[pos - 2:pos] != b"\r\n"):
        raise ProtocolError(f"no opening delimiter {delimiter!r} in {body[:200]!r}")
    pos += len(delimiter)
    parts = []
    while True:
        if body[pos:pos + 2] == b"--":
            break  # close delimiter; an epilogue may follow
        while body[pos:pos + 1] in (b" ", b"\t"):
            pos += 1  # transport padding
        if body[pos:pos + 2] != b"\r\n":
            raise ProtocolError(f"delimiter not followed by CRLF at {pos}: {body[pos:pos + 40]!r}")
        pos += 2
        end = body.find(b"\r\n\r\n", pos)
        if end < 0:
            raise ProtocolError(f"part headers not terminated at {pos}")
        headers = []
        for line in body[pos:end].split(b"\r\n"):
            name, sep, value = line.partition(b":")
            if not sep:
                raise ProtocolError(f"bad part header line {line!r}")
            headers.append((name.decode("latin-1").strip(), value.strip().decode("latin-1")))
        part_ranges = [v for k, v in headers if k.lower() == "content-range"]
        if len(part_ranges) != 1:
            raise ProtocolError(f"part without exactly one Content-Range: {headers}")
        first, last, size = parse_content_range(part_ranges[0])
        start = end + 4
        stop = start + (last - first + 1)
        if stop > len(body):
            raise ProtocolError(f"part {part_ranges[0]} runs past the end of the body")
        parts.append(Part(headers, first, last, size, body[start:stop]))
        pos = stop
        if body[pos:pos + 2 + len(delimiter)] != b"\r\n" + delimiter:
            raise ProtocolError(f"part {part_ranges[0]} not followed by CRLF{delimiter!r}: "
                                f"{body[pos:pos + 80]!r}")
        pos += 2 + len(delimiter)
    return parts
