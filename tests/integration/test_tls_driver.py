"""TLS driven on the non-blocking socket by mediagate's own code (issue 13, server/tls_io.hpp), over real sockets:
a client that sends a TLS 1.3 KeyUpdate (asking for one back) while a large response fills the socket and it does
not read, over h2 and over HTTP/1.1 (the server must wait for the socket, not spin: its CPU time over seconds is
the bound), then reads every byte exact; a ClientHello sent one byte at a time; a client that closes
mid-handshake; close_notify from the client answered with the server's; TLS record sizes on the wire (small
first, then full 16 KiB records: h2 DATA frames each one record, HTTP/1.1 bulk too).

Python's ssl module cannot send a KeyUpdate: the client here is libssl itself, called through ctypes."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import socket
import ssl
import struct
import time
import unittest
from typing import Optional

import h2.config
import h2.connection
import h2.events
import h2.settings

from harness import MIB, PatternCheck, media_target
from test_tls import TlsCase, client_hello

SSL_ERROR_WANT_READ = 2
SSL_ERROR_ZERO_RETURN = 6
SSL_KEY_UPDATE_REQUESTED = 1
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
TLS1_3_VERSION = 0x0304


def _libssl():
    lib = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
    p, i = ctypes.c_void_p, ctypes.c_int
    for name, res, args in (("TLS_client_method", p, []), ("SSL_CTX_new", p, [p]), ("SSL_CTX_free", None, [p]),
                            ("SSL_CTX_ctrl", ctypes.c_long, [p, i, ctypes.c_long, p]),
                            ("SSL_CTX_set_alpn_protos", i, [p, ctypes.c_char_p, ctypes.c_uint]),
                            ("SSL_new", p, [p]), ("SSL_free", None, [p]), ("SSL_set_fd", i, [p, i]),
                            ("SSL_connect", i, [p]), ("SSL_do_handshake", i, [p]), ("SSL_get_error", i, [p, i]),
                            ("SSL_write", i, [p, ctypes.c_char_p, i]), ("SSL_read", i, [p, p, i]),
                            ("SSL_key_update", i, [p, i]), ("SSL_shutdown", i, [p]),
                            ("SSL_get0_alpn_selected", None, [p, ctypes.POINTER(p), ctypes.POINTER(ctypes.c_uint)])):
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = res, args
    return lib


class OpenSslClient:
    """A TLS 1.3 client on a blocking socket (10 s timeouts), made with libssl's own calls."""

    def __init__(self, port: int, alpn: bytes, rcvbuf: int = 0) -> None:
        self.lib = lib = _libssl()
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        timeout = struct.pack("ll", 10, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeout)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeout)
        self.ctx = lib.SSL_CTX_new(lib.TLS_client_method())  # verifies nothing: the server is not under test here
        lib.SSL_CTX_ctrl(self.ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_3_VERSION, None)
        wire = bytes([len(alpn)]) + alpn
        lib.SSL_CTX_set_alpn_protos(self.ctx, wire, len(wire))
        self.ssl = lib.SSL_new(self.ctx)
        lib.SSL_set_fd(self.ssl, self.sock.fileno())
        if lib.SSL_connect(self.ssl) != 1:
            raise ssl.SSLError("handshake failed")
        name, length = ctypes.c_void_p(), ctypes.c_uint()
        lib.SSL_get0_alpn_selected(self.ssl, ctypes.byref(name), ctypes.byref(length))
        self.alpn = ctypes.string_at(name, length.value) if length.value else b""
        self.buf = ctypes.create_string_buffer(64 * 1024)

    def send(self, data: bytes) -> None:
        if data and self.lib.SSL_write(self.ssl, data, len(data)) != len(data):
            raise ssl.SSLError("SSL_write failed")

    def recv(self) -> bytes:
        """Some bytes; b"" at the server's close_notify."""
        n = self.lib.SSL_read(self.ssl, self.buf, len(self.buf))
        if n > 0:
            return self.buf.raw[:n]
        if self.lib.SSL_get_error(self.ssl, n) == SSL_ERROR_ZERO_RETURN:
            return b""
        raise ssl.SSLError(f"SSL_read failed ({self.lib.SSL_get_error(self.ssl, n)})")

    def key_update(self) -> None:
        """Sends a KeyUpdate that asks the server to update its keys too (RFC 8446 §4.6.3)."""
        if self.lib.SSL_key_update(self.ssl, SSL_KEY_UPDATE_REQUESTED) != 1 or \
                self.lib.SSL_do_handshake(self.ssl) != 1:
            raise ssl.SSLError("KeyUpdate not sent")

    def close_notify(self) -> None:
        self.lib.SSL_shutdown(self.ssl)

    def close(self) -> None:
        if self.ssl:
            self.lib.SSL_free(self.ssl)
            self.lib.SSL_CTX_free(self.ctx)
            self.ssl = None
        self.sock.close()


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process `pid` (all its threads)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Driver(TlsCase):
    extra_args = ["--threads", "1"]
    SIZE = 32 * MIB  # of big.bin: far more than the socket buffers of both sides hold

    def openssl_client(self, alpn: bytes, rcvbuf: int = 0) -> OpenSslClient:
        client = OpenSslClient(self.port, alpn, rcvbuf)
        self.addCleanup(client.close)
        self.assertEqual(client.alpn, alpn)
        return client

    def h2_get(self, client: OpenSslClient, range_header: bytes):
        """An h2 connection on `client` with the largest windows, and one GET of big.bin for `range_header`;
        returns the connection and the stream's id."""
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        conn.local_settings = h2.settings.Settings(client=True, initial_values={
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
        conn.initiate_connection()
        conn.increment_flow_control_window(2**31 - 1 - 65535)
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"127.0.0.1"),
                                (b":path", media_target("big.bin").encode()), (b"range", range_header)],
                          end_stream=True)
        return conn, sid

    def assert_waits_quietly(self, client: OpenSslClient) -> None:
        """The response has filled the socket (the client reads nothing): a KeyUpdate asking for one back, then
        the server's CPU time over 2 s stays far below what a retry loop would burn (2 s on one thread)."""
        time.sleep(1.0)
        client.key_update()
        time.sleep(0.3)
        before = cpu_seconds(self.server.proc.pid)
        time.sleep(2.0)
        spent = cpu_seconds(self.server.proc.pid) - before
        self.assertLess(spent, 0.5, f"the server used {spent:.2f} s of CPU in 2 s while its socket was full")

    def test_key_update_while_an_h2_response_fills_the_socket(self):
        client = self.openssl_client(b"h2", rcvbuf=16 * 1024)
        conn, sid = self.h2_get(client, f"bytes=0-{self.SIZE - 1}".encode())
        client.send(conn.data_to_send())
        self.assert_waits_quietly(client)
        conn.ping(b"12345678")  # the server must answer it too, once the socket takes bytes again
        client.send(conn.data_to_send())
        check, status, ended, pong = PatternCheck(), None, False, False
        while not (ended and pong):
            data = client.recv()
            self.assertTrue(data, f"the connection ended after {check.pos} body bytes")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = dict(event.headers)[b":status"]
                elif isinstance(event, h2.events.DataReceived):
                    check(event.data)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
                elif isinstance(event, h2.events.PingAckReceived):
                    pong = True
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    self.fail(f"{event} after {check.pos} body bytes")
            client.send(conn.data_to_send())
        self.assertEqual(status, b"206")
        self.assertIsNone(check.problem(), check.problem())
        self.assertEqual(check.pos, self.SIZE)

    def test_key_update_while_an_http11_response_fills_the_socket(self):
        client = self.openssl_client(b"http/1.1", rcvbuf=16 * 1024)
        client.send(f"GET {media_target('big.bin')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    f"Range: bytes=0-{self.SIZE - 1}\r\n\r\n".encode())
        self.assert_waits_quietly(client)
        head = b""
        while b"\r\n\r\n" not in head:
            data = client.recv()
            self.assertTrue(data, "the connection ended in the response head")
            head += data
        head, body = head.split(b"\r\n\r\n", 1)
        self.assertTrue(head.startswith(b"HTTP/1.1 206 "), head)
        self.assertIn(f"content-length: {self.SIZE}".encode(), head.lower())
        check = PatternCheck()
        check(body)
        while check.pos < self.SIZE:
            data = client.recv()
            self.assertTrue(data, f"the connection ended after {check.pos} body bytes")
            check(data)
        self.assertIsNone(check.problem(), check.problem())
        self.assertEqual(check.pos, self.SIZE)

    def record_sizes(self, client, at_least: int) -> list[int]:
        """The plaintext sizes of the TLS records waiting on the client's socket, read off their headers
        (MSG_PEEK, before libssl reads them), once at least `at_least` bytes of records have arrived."""
        sizes: list[int] = []
        deadline = time.monotonic() + 10
        while sum(sizes) < at_least:
            self.assertLess(time.monotonic(), deadline, f"only {sum(sizes)} bytes arrived: {sizes}")
            time.sleep(0.05)
            wire = client.sock.recv(4 << 20, socket.MSG_PEEK)
            sizes, pos = [], 0
            while pos + 5 <= len(wire):
                sizes.append(struct.unpack("!H", wire[pos + 3:pos + 5])[0])
                pos += 5 + sizes[-1]
        return sizes

    def test_small_records_first_then_16_kib(self):
        """A fresh h2 connection's first bytes come in records of one TCP segment each, bulk in 16 KiB records:
        the sizes are read off the TLS record headers on the wire (MSG_PEEK, before libssl reads them)."""
        client = self.openssl_client(b"h2")
        conn, sid = self.h2_get(client, b"bytes=0-262143")
        client.send(conn.data_to_send())
        sizes = self.record_sizes(client, 100 * 1024)  # within what the receive buffer holds unread
        # After the session tickets: small records up to 16 KiB of plaintext, then full ones (16 KiB + 17).
        self.assertTrue(all(n <= 1360 + 17 for n in sizes[2:10]), sizes[:20])
        self.assertIn(16384 + 17, sizes, sizes[:40])
        self.assertTrue(all(n <= 16384 + 17 for n in sizes), sizes)

    def test_http11_small_records_first_then_16_kib(self):
        """HTTP/1.1 over TLS is written by the same driver as h2 (no Asio BIO pair): the response's first bytes in
        records of one TCP segment each, the bulk in full 16 KiB records."""
        client = self.openssl_client(b"http/1.1", rcvbuf=4 * MIB)
        client.send(f"GET {media_target('big.bin')} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Range: bytes=0-1048575\r\n\r\n".encode())
        sizes = self.record_sizes(client, 900 * 1024)
        self.assertTrue(all(n <= 1360 + 17 for n in sizes[2:10]), sizes[:20])
        bulk = sizes[sizes.index(16384 + 17):-1]
        self.assertGreater(len(bulk), 40, sizes)
        # At most one short record: where the small ones ended, within the stream buffer being written.
        self.assertLessEqual(len([n for n in bulk if n != 16384 + 17]), 1, sizes)

    def test_bulk_h2_data_in_full_records(self):
        """After those first small records, a long h2 response goes in full 16 KiB records: each DATA frame is
        written from the stream's buffer as one whole record, and each refill of the buffer is a whole number of
        such frames (no short record after every buffer). Record sizes are read off the wire as above."""
        full = 16384 + 17
        client = self.openssl_client(b"h2", rcvbuf=4 * MIB)
        conn, sid = self.h2_get(client, b"bytes=0-1048575")
        client.send(conn.data_to_send())
        sizes = self.record_sizes(client, 900 * 1024)
        bulk = sizes[sizes.index(full):-1]  # from the first full record; the last one seen may be incomplete
        short = [n for n in bulk if n != full]
        # At most the end of the first buffer (its first frame shared a record with the response's HEADERS).
        self.assertLessEqual(len(short), 2, f"{len(short)} short records among {len(bulk)}: {sizes}")
        self.assertGreater(len(bulk), 40, sizes)

    def test_client_hello_one_byte_at_a_time(self):
        for alpn in ("h2", "http/1.1"):
            with self.subTest(alpn=alpn):
                ctx = self.ca.client_context()
                ctx.set_alpn_protocols([alpn])
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
                with self.assertRaises(ssl.SSLWantReadError):
                    tls.do_handshake()
                hello = outgoing.read()
                sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                self.addCleanup(sock.close)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(len(hello)):
                    sock.sendall(hello[i:i + 1])
                    time.sleep(0.001)
                while True:
                    try:
                        tls.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        sock.sendall(outgoing.read())
                        data = sock.recv(65536)
                        self.assertTrue(data, "the server closed during the handshake")
                        incoming.write(data)
                sock.sendall(outgoing.read())
                self.assertEqual(tls.selected_alpn_protocol(), alpn)
                if alpn == "http/1.1":
                    tls.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
                    sock.sendall(outgoing.read())
                    reply = b""
                    while b"\r\n" not in reply:
                        try:
                            reply += tls.read(65536)
                        except ssl.SSLWantReadError:
                            data = sock.recv(65536)
                            self.assertTrue(data, "the server closed before answering")
                            incoming.write(data)
                    self.assertTrue(reply.startswith(b"HTTP/1.1 200 "), reply[:100])
        self.assert_serves()

    def test_a_client_that_closes_mid_handshake(self):
        before = self.handshakes().get("failed", 0)
        hello = client_hello()
        for cut in (1, 5, 60, len(hello)):
            sock = socket.create_connection(("127.0.0.1", self.port), timeout=10)
            sock.sendall(hello[:cut])
            sock.close()
        deadline = time.monotonic() + 5
        while self.handshakes().get("failed", 0) < before + 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        self.assertGreaterEqual(self.handshakes().get("failed", 0), before + 4)
        self.assert_serves()

    def test_close_notify_is_answered_with_close_notify(self):
        for alpn in (b"h2", b"http/1.1"):
            with self.subTest(alpn=alpn):
                client = self.openssl_client(alpn)
                if alpn == b"h2":
                    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
                    conn.initiate_connection()
                    client.send(conn.data_to_send())
                    got: list = []
                    while not any(isinstance(e, h2.events.RemoteSettingsChanged) for e in got):
                        got += conn.receive_data(client.recv())
                client.close_notify()
                # The server answers with its own close_notify (SSL_read then reports a clean end, not an
                # error) and closes.
                while True:
                    data = client.recv()
                    if not data:
                        break
                self.assertEqual(client.sock.recv(1), b"")


if __name__ == "__main__":
    unittest.main()
