"""A tiny stand-in for an S3 endpoint that misbehaves on purpose (stdlib only).

It accepts any signature and serves one bucket, path style, on 127.0.0.1:<free port>:
  GET  /BUCKET?list-type=2...  a minimal valid ListObjectsV2 answer listing the objects
  HEAD /BUCKET/KEY             Content-Length, ETag, Last-Modified (and Content-Type when the object has one)
  GET  /BUCKET/KEY             depends on `mode`:
    "honest"         206 with exactly the asked range (or 200 without Range): a well-behaved store
    "ignore-range"   200 with the whole object whatever Range says (as s3rver does for bytes=0-0)
    "wrong-range"    206 with another range than asked: the asked one shifted by `shift` bytes, with a
                     Content-Range and Content-Length that describe what is sent (a consistent but wrong answer)
    "short-200"      200 ignoring Range, with a body shorter than the object HEAD described
    "late-body"      as "honest", but every body comes in one piece 20 ms after its head
    "trickle"        as "honest", but every answer arrives in pieces a few milliseconds apart (the status line,
                     each header line, the body in three parts; TCP_NODELAY, so each its own segment), with
                     4 KiB of extra x-amz-meta-* fields: a head longer than one read, read in many
Before that, object GETs consume `script`, a list of one-shot faults, in order:
    "slowdown"       503 with a SlowDown error (S3's "retry later")
    "drop"           the right status and headers, half the body, then the connection is closed
After each "drop", `on_drop(upstream)` runs (e.g. to replace the object before the reader resumes).
After each object GET is answered in full, `after_get(upstream, range_header)` runs (e.g. to replace the
object between two GETs of one read).
If-Match is honoured in every mode (412 PreconditionFailed when it does not match).
Anything else is 404 NoSuchKey / NoSuchBucket XML. Every request is recorded in `requests`.
"""

from __future__ import annotations

import email.utils
import hashlib
import http
import http.server
import re
import socket
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Optional

LAST_MODIFIED = 1700000000
MODES = ("honest", "ignore-range", "wrong-range", "short-200", "trickle", "late-body")


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 0
    fault: str = ""


class FakeUpstream:
    def __init__(self, bucket: str, objects: dict[str, tuple[bytes, Optional[str]]], mode: str = "honest",
                 shift: int = 1, script=(), on_drop=None, after_get=None) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        self.bucket = bucket
        self.objects = objects
        self.mode = mode
        self.shift = shift
        self.script = list(script)
        self.on_drop = on_drop
        self.after_get = after_get
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like S3
            timeout = 15  # every socket operation of the handler has a deadline

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                owner._handle(self, head=True)

            def do_GET(self) -> None:
                owner._handle(self, head=False)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        # mediagate drops connections whose answers it rejects or has read enough of: no tracebacks for that.
        self.httpd.handle_error = lambda request, client_address: None
        self.port = self.httpd.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "FakeUpstream":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def gets(self, key: str) -> list[Recorded]:
        """The object GETs received for `key`."""
        path = "/" + self.bucket + "/" + key
        with self._lock:
            return [r for r in self.requests if r.method == "GET" and r.path == path]

    @staticmethod
    def etag(data: bytes) -> str:
        return '"' + hashlib.md5(data).hexdigest() + '"'

    # -- request handling

    def _send(self, h, status: int, headers: dict[str, str], body: bytes, head: bool, rec: Recorded) -> None:
        rec.status = status
        if self.mode == "trickle":
            return self._trickle(h, status, headers, b"" if head else body, len(body))
        h.send_response(status)
        if self.mode == "late-body":
            h.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for name, value in headers.items():
            h.send_header(name, value)
        if "Content-Length" not in headers:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if not head and body:
            if self.mode == "late-body":
                h.wfile.flush()
                time.sleep(0.02)
            h.wfile.write(body)

    @staticmethod
    def _trickle(h, status: int, headers: dict[str, str], body: bytes, length: int) -> None:
        h.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lines = [f"HTTP/1.1 {status} {http.HTTPStatus(status).phrase}\r\n"]
        lines += [f"x-amz-meta-filler-{i}: {'f' * 90}\r\n" for i in range(40)]
        lines += [f"{name}: {value}\r\n" for name, value in headers.items()]
        if "Content-Length" not in headers:
            lines.append(f"Content-Length: {length}\r\n")
        lines.append("\r\n")
        third = max(1, len(body) // 3)
        pieces = [line.encode() for line in lines] + [body[i:i + third] for i in range(0, len(body), third)]
        for piece in pieces:
            h.wfile.write(piece)
            time.sleep(0.002)

    def _error(self, h, status: int, code: str, head: bool, rec: Recorded) -> None:
        body = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code><Message>{code}</Message>'
                f'<RequestId>fake</RequestId></Error>').encode()
        self._send(h, status, {"Content-Type": "application/xml"}, b"" if head else body, head, rec)

    def _handle(self, h, head: bool) -> None:
        split = urllib.parse.urlsplit(h.path)
        path = urllib.parse.unquote(split.path)
        rec = Recorded(h.command, path, split.query, {k.lower(): v for k, v in h.headers.items()})
        with self._lock:
            self.requests.append(rec)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        parts = path.lstrip("/").split("/", 1)
        if parts[0] != self.bucket:
            return self._error(h, 404, "NoSuchBucket", head, rec)
        if len(parts) == 1 or parts[1] == "":
            if head or query.get("list-type") != ["2"]:
                return self._error(h, 400, "InvalidRequest", head, rec)
            return self._list(h, query, rec)
        key = parts[1]
        if key not in self.objects:
            return self._error(h, 404, "NoSuchKey", head, rec)
        data, content_type = self.objects[key]
        headers = {"ETag": self.etag(data), "Last-Modified": email.utils.formatdate(LAST_MODIFIED, usegmt=True),
                   "Accept-Ranges": "bytes"}
        if content_type:
            headers["Content-Type"] = content_type
        if_match = h.headers.get("If-Match")
        if if_match is not None and if_match.strip() != headers["ETag"]:
            return self._error(h, 412, "PreconditionFailed", head, rec)
        if head:
            headers["Content-Length"] = str(len(data))
            return self._send(h, 200, headers, b"", True, rec)
        with self._lock:
            fault = self.script.pop(0) if self.script else None
        if fault == "slowdown":
            rec.fault = fault
            return self._error(h, 503, "SlowDown", head, rec)
        rng = self._parse_range(h.headers.get("Range"), len(data))
        if self.mode in ("ignore-range", "short-200") or rng is None:
            status, body = 200, (data[:len(data) // 2] if self.mode == "short-200" else data)
        else:
            first, last = rng
            if self.mode == "wrong-range":
                first = min(first + self.shift, len(data) - 1)
                last = min(last + self.shift, len(data) - 1)
            headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
            status, body = 206, data[first:last + 1]
        if fault == "drop":
            rec.fault = fault
            rec.status = status
            headers["Content-Length"] = str(len(body))
            h.send_response(status)
            for name, value in headers.items():
                h.send_header(name, value)
            h.end_headers()
            h.wfile.write(body[:len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            if self.on_drop is not None:
                self.on_drop(self)
            return
        self._send(h, status, headers, body, False, rec)
        if self.after_get is not None:
            self.after_get(self, h.headers.get("Range"))

    @staticmethod
    def _parse_range(value: Optional[str], size: int) -> Optional[tuple[int, int]]:
        m = re.fullmatch(r"bytes=(\d*)-(\d*)", (value or "").strip())
        if not m or size == 0 or (not m.group(1) and not m.group(2)):
            return None
        if not m.group(1):
            n = int(m.group(2))
            return max(0, size - n), size - 1
        first = int(m.group(1))
        last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
        return (first, last) if first <= last else None

    def _list(self, h, query: dict[str, list[str]], rec: Recorded) -> None:
        prefix = query.get("prefix", [""])[0]
        keys = sorted(k for k in self.objects if k.startswith(prefix))
        max_keys = int(query.get("max-keys", ["1000"])[0] or 1000)
        shown = keys[:max_keys]
        date = "2023-11-14T22:13:20.000Z"
        contents = "".join(
            f"<Contents><Key>{_xml(k)}</Key><LastModified>{date}</LastModified>"
            f"<ETag>{_xml(self.etag(self.objects[k][0]))}</ETag><Size>{len(self.objects[k][0])}</Size>"
            f"<StorageClass>STANDARD</StorageClass></Contents>" for k in shown)
        body = ('<?xml version="1.0" encoding="UTF-8"?>'
                '<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<Name>{_xml(self.bucket)}</Name><Prefix>{_xml(prefix)}</Prefix><KeyCount>{len(shown)}</KeyCount>"
                f"<MaxKeys>{max_keys}</MaxKeys><IsTruncated>false</IsTruncated>{contents}</ListBucketResult>")
        self._send(h, 200, {"Content-Type": "application/xml"}, body.encode(), False, rec)


def _xml(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
