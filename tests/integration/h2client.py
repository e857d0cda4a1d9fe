"""HTTP/2 under rawhttp's HTTP/1.1 interface, so that the same test cases run over h2 (run_suite.py --scheme h2).

The tests write HTTP/1.1 request bytes and read HTTP/1.1 response bytes. Session takes those request bytes,
sends each request as an HTTP/2 stream (Python's h2, Debian's python3-h2), and renders each response back as
HTTP/1.1 bytes ("HTTP/2.0 206 Partial Content", the fields as the server sent them, the body), in the order the
requests were sent, so rawhttp's parser reads them unchanged. A request body is streamed as it is written, within
the server's flow-control windows; chunked coding is undone (an h2 body ends with END_STREAM). Header fields that
HTTP/2 forbids (Connection, Transfer-Encoding, Keep-Alive, ...) are dropped, Host becomes :authority. A stream the
server resets ends the connection for the reader (as a closed HTTP/1.1 connection would).

Bytes that are not an HTTP/1.1 request (malformed heads, tests of the HTTP/1.1 parser) cannot be translated:
Session raises Untranslatable, and such tests belong to the HTTP/1.1 suites.
"""

from __future__ import annotations

import re
import socket
from typing import Optional

import h2.config
import h2.connection
import h2.events
import h2.exceptions

HOP_BY_HOP = {b"connection", b"transfer-encoding", b"keep-alive", b"proxy-connection", b"upgrade", b"te", b"host"}
REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified", 400: "Bad Request", 404: "Not Found",
           412: "Precondition Failed", 416: "Range Not Satisfiable"}


class Untranslatable(AssertionError):
    """The test wrote bytes that are not an HTTP/1.1 request; it cannot run over HTTP/2."""


class _Outgoing:
    """The request being written: its stream and how its body is framed."""

    def __init__(self, stream_id: int, length: Optional[int], chunked: bool):
        self.stream_id = stream_id
        self.left = length  # body bytes still to come (Content-Length)
        self.chunked = chunked
        self.chunk_left = 0  # bytes left in the current chunk
        self.chunk_state = "size"  # size, data, data-crlf, trailer


class _Incoming:
    def __init__(self):
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.head_rendered = False
        self.body = bytearray()
        self.ended = False
        self.reset: Optional[int] = None


class Session:
    def __init__(self, sock: socket.socket, authority: str, scheme: str = "https"):
        self.sock = sock
        self.authority = authority
        self.scheme = scheme
        config = h2.config.H2Configuration(client_side=True, header_encoding=None, validate_outbound_headers=False,
                                           normalize_outbound_headers=False)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        self.pending = bytearray()  # request bytes not yet translated
        self.current: Optional[_Outgoing] = None
        self.order: list[int] = []  # streams in the order their requests were sent
        self.responses: dict[int, _Incoming] = {}
        self.terminated = False
        self.flush()

    # -- writing ------------------------------------------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send(self, data: bytes) -> None:
        self.pending += data
        while self.pending:
            if self.current is None:
                if not self._start_request():
                    break
            elif not self._send_body():
                break
        self.flush()

    def _start_request(self) -> bool:
        end = self.pending.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.pending[:end]).split(b"\r\n")
        del self.pending[:end + 4]
        m = re.fullmatch(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\S+) HTTP/1\.[01]", head[0])
        if not m:
            raise Untranslatable(f"not an HTTP/1.1 request line: {head[0]!r}")
        fields = []
        for line in head[1:]:
            name, sep, value = line.partition(b":")
            if not sep or not name or name != name.strip():
                raise Untranslatable(f"not a header line: {line!r}")
            fields.append((name.lower(), value.strip(b" \t")))
        names = [n for n, _ in fields]
        host = next((v for n, v in fields if n == b"host"), self.authority.encode())
        length = None
        if b"content-length" in names:
            length = int(next(v for n, v in fields if n == b"content-length"))
        chunked = any(n == b"transfer-encoding" and v.lower().endswith(b"chunked") for n, v in fields)
        headers = [(b":method", m.group(1)), (b":scheme", self.scheme.encode()), (b":authority", host),
                   (b":path", m.group(2))]
        headers += [(n, v) for n, v in fields if n not in HOP_BY_HOP]
        stream_id = self.conn.get_next_available_stream_id()
        has_body = chunked or (length or 0) > 0
        self.conn.send_headers(stream_id, headers, end_stream=not has_body)
        self.order.append(stream_id)
        self.responses[stream_id] = _Incoming()
        self.current = _Outgoing(stream_id, length, chunked) if has_body else None
        return True

    def _send_body(self) -> bool:
        """Sends what `pending` holds of the current body; False when it needs more bytes."""
        out = self.current
        if not out.chunked:
            n = min(out.left, len(self.pending))
            self._send_data(out.stream_id, bytes(self.pending[:n]), end=(n == out.left))
            del self.pending[:n]
            out.left -= n
            if out.left == 0:
                self.current = None
            return out.left == 0
        while self.pending:
            if out.chunk_state == "size":
                i = self.pending.find(b"\r\n")
                if i < 0:
                    return False
                size = int(bytes(self.pending[:i]).split(b";")[0].strip() or b"x", 16)
                del self.pending[:i + 2]
                out.chunk_left = size
                out.chunk_state = "data" if size else "trailer"
            elif out.chunk_state == "data":
                n = min(out.chunk_left, len(self.pending))
                self._send_data(out.stream_id, bytes(self.pending[:n]), end=False)
                del self.pending[:n]
                out.chunk_left -= n
                if out.chunk_left == 0:
                    out.chunk_state = "data-crlf"
            elif out.chunk_state == "data-crlf":
                if len(self.pending) < 2:
                    return False
                del self.pending[:2]
                out.chunk_state = "size"
            else:  # trailer section up to the empty line
                i = self.pending.find(b"\r\n")
                if i < 0:
                    return False
                line = bytes(self.pending[:i])
                del self.pending[:i + 2]
                if not line:
                    self._send_data(out.stream_id, b"", end=True)
                    self.current = None
                    return True
        return False

    def _send_data(self, stream_id: int, data: bytes, end: bool) -> None:
        """DATA frames within the windows, reading the server's frames while a window is shut."""
        view = memoryview(data)
        while True:
            if self._stream_closed(stream_id):
                return  # the server answered and reset the stream: the rest is not wanted
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if not view and end:
                self.conn.end_stream(stream_id)
                return
            if not view:
                return
            if window <= 0:
                self.flush()
                if not self._receive():
                    raise ConnectionResetError("the server closed the connection while the body was sent")
                continue
            n = min(window, len(view))
            self.conn.send_data(stream_id, bytes(view[:n]), end_stream=end and n == len(view))
            view = view[n:]
            if not view:
                return
            self.flush()

    def _stream_closed(self, stream_id: int) -> bool:
        r = self.responses.get(stream_id)
        return r is not None and (r.reset is not None or r.ended) or self.terminated

    # -- reading ------------------------------------------------------------------------------------------

    def _receive(self) -> bool:
        """Reads once from the socket and handles the events; False at end of stream."""
        data = self.sock.recv(1 << 20)
        if not data:
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            raise AssertionError(f"the server broke HTTP/2: {e}") from None
        for e in events:
            r = self.responses.get(getattr(e, "stream_id", 0) or 0)
            if isinstance(e, h2.events.ResponseReceived):
                status = dict(e.headers)[b":status"]
                if status.startswith(b"1"):
                    continue  # interim response
                r.status = int(status)
                r.headers = [(n, v) for n, v in e.headers if not n.startswith(b":")]
            elif isinstance(e, h2.events.DataReceived):
                r.body += e.data
                self.conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
            elif isinstance(e, h2.events.StreamEnded):
                r.ended = True
            elif isinstance(e, h2.events.StreamReset):
                if r is not None:
                    r.reset = e.error_code
            elif isinstance(e, h2.events.ConnectionTerminated):
                self.terminated = True
        self.flush()
        return True

    def fill(self) -> bytes:
        """The next response bytes in HTTP/1.1 form, in request order; b'' when the server ended the connection
        (or reset the stream being read)."""
        while True:
            out = self._render()
            if out is not None:
                return out
            if not self._receive():
                return b""

    def _render(self) -> Optional[bytes]:
        while self.order:
            sid = self.order[0]
            r = self.responses[sid]
            out = bytearray()
            if r.status and not r.head_rendered:
                r.head_rendered = True
                reason = REASONS.get(r.status, "")
                out += f"HTTP/2.0 {r.status} {reason}\r\n".encode()
                for n, v in r.headers:
                    out += n + b": " + v + b"\r\n"
                out += b"\r\n"
            if r.head_rendered and r.body:
                out += r.body
                r.body.clear()
            if r.ended or r.reset is not None:
                self.order.pop(0)
                del self.responses[sid]
                if r.reset is not None and r.reset != 0 and not r.ended:
                    self.terminated = True
                    return bytes(out) if out else b""
                if out:
                    return bytes(out)
                continue
            return bytes(out) if out else None
        return b"" if self.terminated else None
