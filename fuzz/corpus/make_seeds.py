#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target (fuzz/corpus/<target>/<name>): hand-picked inputs in the byte
layout each target reads with byte_reader.hpp (numbers big-endian from the front, strings ended by 0xFF).
Run again after changing a layout; libFuzzer grows its own corpus from these elsewhere."""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
END = b"\xff"


def u8(n): return struct.pack(">B", n)
def u16(n): return struct.pack(">H", n)
def u32(n): return struct.pack(">I", n)
def u64(n): return struct.pack(">Q", n & (2**64 - 1))
def s(text): return (text.encode() if isinstance(text, str) else text) + END


def write(target, seeds):
    d = os.path.join(HERE, target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)


# fuzz_byte_range: size class (0: u8, 1: u16, 2: u64, 3: 2^64-1-u8), size, max_ranges-1 (u8), header.
def rng(size, header, max_ranges=16):
    if size < 256: head = u8(0) + u8(size)
    elif size < 65536: head = u8(1) + u16(size)
    else: head = u8(2) + u64(size)
    return head + u8(max_ranges - 1) + header.encode()

write("fuzz_byte_range", {
    "first_last": rng(1000, "bytes=0-499"),
    "open_ended": rng(1000, "bytes=500-"),
    "suffix": rng(1000, "bytes=-500"),
    "suffix_longer_than_size": rng(100, "bytes=-5000"),
    "multi": rng(10000, "bytes=0-0, 100-199 ,-10"),
    "overlap": rng(1000, "bytes=0-499,400-999"),
    "unsatisfiable": rng(100, "bytes=100-200,300-"),
    "unit_case_ows": rng(100, "  BYTES = 1-2 ,, 5-6 "),
    "huge_numbers": rng(2**63, "bytes=18446744073709551615-,0-18446744073709551616"),
    "near_max": u8(3) + u8(0) + u8(15) + b"bytes=18446744073709551610-18446744073709551612,-1",
    "too_many": rng(1000, ",".join(f"{i*10}-{i*10+1}" for i in range(20)), 4),
    "last_before_first": rng(1000, "bytes=9-1"),
    "zero_size": rng(0, "bytes=0-0"),
})

# fuzz_response_plan: method (0 GET, 1 HEAD, 2 other), size flag (odd: u16, even: u64), size, Last-Modified
# (i64), ETag bytes, ETag mode (non-zero mod 4: quoted), Content-Type, range flag (odd) + range, five
# conditional fields (kind mod 6: 0 absent, 1 text, 2 ETag, 3 W/ETag, 4 text + ETag, 5 date near
# Last-Modified), max_ranges-1 (u8), then free text for the date and entity-tag checks.
LM = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
def plan(method=0, size=1000, etag="5f-1a2b", ctype="video/mp4", rng_=None, fields=((0, ""),) * 5, rest=""):
    out = u8(method) + u8(1) + u16(size) + u64(LM) + s(etag) + u8(1) + s(ctype)
    out += (u8(1) + s(rng_)) if rng_ is not None else u8(0)
    for kind, text in fields:
        out += u8(kind) + s(text)
    return out + u8(15) + rest.encode()

A = (0, "")
write("fuzz_response_plan", {
    "plain_get": plan(rest="Sun, 06 Nov 1994 08:49:37 GMT"),
    "head": plan(method=1, rng_="bytes=0-9"),
    "single_range": plan(rng_="bytes=10-19", rest="Sunday, 06-Nov-94 08:49:37 GMT"),
    "multi_range": plan(rng_="bytes=0-9,20-29,-5", rest="Sun Nov  6 08:49:37 1994"),
    "unsatisfiable": plan(rng_="bytes=5000-", rest='"a", W/"b", "c,d"'),
    "if_match_ok": plan(fields=((2, ""), A, A, A, A), rest="2009-10-12T17:50:30.000Z"),
    "if_match_fail": plan(fields=((1, '"other"'), A, A, A, A)),
    "if_match_star": plan(fields=((1, "*"), A, A, A, A)),
    "if_none_match_304": plan(fields=(A, (3, ""), A, A, A)),
    "if_none_match_put": plan(method=2, fields=(A, (4, '"x"'), A, A, A)),
    "if_modified_since": plan(fields=(A, A, (5, "\x00"), A, A)),
    "if_unmodified_since": plan(fields=(A, A, A, (5, "\x01"), A)),
    "if_range_etag": plan(rng_="bytes=0-0", fields=(A, A, A, A, (2, ""))),
    "if_range_weak": plan(rng_="bytes=0-0", fields=(A, A, A, A, (3, ""))),
    "if_range_date": plan(rng_="bytes=0-0", fields=(A, A, A, A, (5, "\x00"))),
    "empty_object": plan(size=0, rng_="bytes=0-0"),
})

# fuzz_media_key: the bytes are the encoded key / target (and the query name up to the first 0xFF).
write("fuzz_media_key", {
    "plain": b"movies/big buck bunny.mp4",
    "escaped": b"movies/caf%C3%A9%20%2B.mp4",
    "dotdot": b"a/%2e%2e/b",
    "dot_segment": b"a/./b",
    "leading_slash": b"%2Fetc/passwd",
    "nul": b"a%00b",
    "backslash": b"a%5C..%5Cb",
    "bad_escape": b"a%4",
    "overlong_utf8": b"%C0%AE%C0%AE/x",
    "surrogate": b"%ED%A0%80",
    "absolute_form": b"http://host:8080/media/x.mp4?download=1&name=a+b%21",
    "absolute_no_path": b"HTTPS://host?x=1",
    "query": b"/media/x?per_page=50&q=caf%C3%A9&type",
})

# fuzz_form_data: mode (odd: built from parts). Any body: boundary, header-limit flag (odd: 16 KiB, else a
# u16 limit), chunk sizes, body. Built: boundary, preamble, part count, per part name, filename flag
# (+ filename), type, bytes; epilogue; chunk sizes.
def any_body(boundary, body, splits=b"\x01", limit=None):
    lim = u8(1) if limit is None else u8(0) + u16(limit - 1)
    return u8(0) + s(boundary) + lim + s(splits) + body

def built(boundary, parts, preamble="", epilogue="", splits=b"\x03\x01\x07"):
    out = u8(1) + s(boundary) + s(preamble) + u8(len(parts))
    for name, filename, ctype, data in parts:
        out += s(name) + (u8(1) + s(filename) if filename is not None else u8(0)) + s(ctype) + s(data)
    return out + s(epilogue) + splits

FORM = (b"--XyZ\r\nContent-Disposition: form-data; name=\"title\"\r\n\r\nhello\r\n"
        b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a b.mp4\"\r\n"
        b"Content-Type: video/mp4\r\n\r\n\x00\x01\r\n--X\r\n--XyZ--\r\nepilogue")
write("fuzz_form_data", {
    "any_two_parts": any_body("XyZ", FORM),
    "any_bytewise": any_body("XyZ", FORM, b"\x01"),
    "any_small_header_limit": any_body("XyZ", FORM, b"\x05", limit=40),
    "any_padding": any_body("b", b"preamble\r\n--b \t \r\nContent-Disposition: form-data; name=x\r\n\r\n\r\n--b--"),
    "any_no_disposition": any_body("b", b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--"),
    "any_garbage_after_boundary": any_body("b", b"--bzzz\r\n\r\n"),
    "built_one_file": built("----WebKitFormBoundary7MA4YWxkTrZu0gW",
                            [("file", "movie.mp4", "video/mp4", b"\x00\x00\x00\x18ftypmp42\r\n--")]),
    "built_fields": built("b", [("title", None, "", "x"), ("q", None, "text/plain", ""),
                                ("f", "", "", "\r\n-\r\n--")], preamble="ignored", epilogue="also ignored"),
    "built_quotes": built("a'()+_,-./:=? z", [('na"me', 'file;name="x".txt', "application/octet-stream", "data")]),
    "built_backslash": built("b", [("a\\", "c:\\dir\\f.txt", "", "x")]),
    "built_empty": built("b", []),
})

# fuzz_sigv4: method (mod 5), seconds (u64, mod 9223372036), access key, secret, token flag (+ token),
# region, service, host, payload kind (0 empty, 1 unsigned, 2 sha256 of a string), path, query count +
# name/value pairs, header count + (token-only flag, name, value) triples.
def sig(path, query=(), headers=(), host="127.0.0.1:9000", token=None, payload=0, secs=1369353600):
    out = u8(0) + u64(secs) + s("AKIAIOSFODNN7EXAMPLE") + s("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    out += (u8(1) + s(token)) if token is not None else u8(0)
    out += s("us-east-1") + s("s3") + s(host) + u8(payload) + (s("body") if payload == 2 else b"") + s(path)
    out += u8(len(query)) + b"".join(s(n) + s(v) for n, v in query)
    out += u8(len(headers)) + b"".join(u8(f) + s(n) + s(v) for f, n, v in headers)
    return out

write("fuzz_sigv4", {
    "get_object": sig("/examplebucket/test.txt", headers=((1, "Range", "bytes=0-9"),)),
    "list": sig("/bucket", query=(("list-type", "2"), ("prefix", "a b/é"), ("continuation-token", "x=y&z"))),
    "encoded_key": sig("/b/my key+é~%2F.mp4", payload=1, token="FwoGZX"),
    "upload_part": sig("b/k", query=(("partNumber", "1"), ("uploadId", "a/b+c")), payload=2),
    "repeated_headers": sig("/", headers=((0, "X-Amz-Meta-A", "  one   two "), (0, "x-amz-meta-a", "three"),
                                          (0, " If-Match ", '"e"'))),
    "bad_header_name": sig("/", headers=((0, "bad name", "v"),)),
    "owned_header": sig("/", headers=((0, "Host", "evil"),)),
    "crlf_value": sig("/", headers=((0, "x-a", "a\r\nx-b: c"),)),
    "empty_path": sig("", host="s3.amazonaws.com"),
    "year_2262": sig("/k", secs=9223372035),
})

# fuzz_s3_xml: mode (odd: built). Any: status (u16, mod 500, +100), anonymous flag, body. Built: status
# (u8, mod 200, +400), Code, Message, RequestId, Resource, AccessKeyId, SecretAccessKey, SessionToken,
# expiry (u64 seconds).
def xml_any(status, body, anon=0): return u8(0) + u16(status - 100) + u8(anon) + body.encode()
def xml_built(status, code, msg, rid, res, key, secret, token, expires):
    return (u8(1) + u8(status - 400) + s(code) + s(msg) + s(rid) + s(res) + s(key) + s(secret) + s(token)
            + u64(expires))

write("fuzz_s3_xml", {
    "no_such_key": xml_any(404, '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>NoSuchKey</Code>'
                                '<Message>The resource you requested does not exist</Message>'
                                '<Resource>/mybucket/myfoto.jpg</Resource><RequestId>4442587FB7D0A2F9</RequestId></Error>'),
    "signature": xml_any(403, "<Error><Code>SignatureDoesNotMatch</Code><Message>x</Message>"
                              "<CanonicalRequest>GET\n/\n\nhost:a\n\nhost\nUNSIGNED-PAYLOAD</CanonicalRequest></Error>"),
    "anonymous_denied": xml_any(403, "<Error><Code>AccessDenied</Code></Error>", anon=1),
    "head_no_body": xml_any(412, ""),
    "not_xml": xml_any(503, "<html><body>Service Unavailable</body></html>"),
    "entities": xml_any(500, "<!DOCTYPE a [<!ENTITY x \"y\">]><Error><Code>&x;&amp;&#x41;</Code><![CDATA[<c>]]></Error>"),
    "sts_ok": xml_any(200, "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult><Credentials>"
                           "<AccessKeyId>ASIA</AccessKeyId><SecretAccessKey>s</SecretAccessKey>"
                           "<SessionToken>t</SessionToken><Expiration>2026-11-30T10:00:00Z</Expiration>"
                           "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"),
    "sts_error": xml_any(400, "<ErrorResponse><Error><Code>InvalidIdentityToken</Code><Message>m</Message>"
                              "</Error></ErrorResponse>"),
    "imds_json": xml_any(200, '{"Code":"Success","AccessKeyId":"ASIA","SecretAccessKey":"s","Token":"t",'
                              '"Expiration":"2026-11-30T10:00:00Z"}'),
    "utf16_bom": u8(0) + u16(400) + u8(0) + b"\xff\xfe<\x00E\x00r\x00r\x00o\x00r\x00/\x00>\x00",
    "built": xml_built(503, "SlowDown", "Please <reduce> your request rate & retry", "req-1 2",
                       "/b/k", "ASIA123", "secret/+=", "token \t with spaces", 1764496800),
    "built_whitespace": xml_built(400, "   ", "\n", "id", "", "k", "s", " ", 0),
})

# fuzz_request_head: chunk size (u8, 0: all at once), then the bytes of the request head.
def head(text, chunk=7): return u8(chunk) + text.encode()

write("fuzz_request_head", {
    "get_range": head("GET /media/movies/a%20b.mp4 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-99\r\n\r\n"),
    "head_if_none_match": head('HEAD /media/x.mp4 HTTP/1.1\r\nHost: x\r\nIf-None-Match: W/"5f-1a2b"\r\n\r\n'),
    "multi_if_match": head('GET /media/x HTTP/1.1\r\nHost: x\r\nIf-Match: "a"\r\nIf-Match: "5f-1a2b"\r\n'
                           "Range: bytes=0-0,-1\r\n\r\n", 1),
    "if_range_date": head("GET /media/x HTTP/1.1\r\nHost: x\r\nIf-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n"
                          "Range: bytes=10-\r\n\r\n", 3),
    "duplicate_range": head("GET /media/x HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\nRange: bytes=2-3\r\n\r\n"),
    "absolute_form": head("GET http://example.com:8080/media/x.mp4?a=b HTTP/1.1\r\nHost: example.com\r\n\r\n"),
    "http10": head("GET /media/x HTTP/1.0\r\nIf-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT\r\n\r\n", 0),
    "traversal": head("GET /media/a/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n"),
    "chunked_post": head("POST /api/media HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
    "obs_fold": head("GET /media/x HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1,\r\n 5-6\r\n\r\n"),
    "bare_lf": head("GET /media/x HTTP/1.1\nHost: x\n\n"),
    "pipelined": head("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /media/y HTTP/1.1\r\nHost: x\r\n\r\n", 5),
    "long_header": head("GET /media/x HTTP/1.1\r\nHost: x\r\nX-Pad: " + "a" * 16400 + "\r\n\r\n", 200),
})
