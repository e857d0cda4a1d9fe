#!/usr/bin/python3
"""Differential test: mediagate's SigV4 signer (through sigv4_cli) against botocore's S3SigV4Auth.

Generates a few hundred requests (keys with spaces, UTF-8, + = ~ ! * ' ( ) % and friends, query strings with
empty values and repeated names, session tokens, several methods, signed and unsigned payloads), signs each
with both at a fixed clock, and requires identical Authorization headers, dates, payload hashes, tokens, paths
and query strings. A second part drives botocore's real S3 client (GetObject with Range, PutObject,
ListObjectsV2, ...) and captures what it would send, so that botocore's own key encoding is the reference.

Usage: /usr/bin/python3 tests/unit/sigv4_botocore_test.py PATH/TO/sigv4_cli [--count N] [--seed S] [-v]
Needs Debian's python3-botocore: run it with /usr/bin/python3.
"""

import argparse
import datetime
import hashlib
import json
import random
import subprocess
import sys
from unittest import mock
from urllib.parse import parse_qsl, urlsplit

import botocore.auth
import botocore.config
import botocore.credentials
import botocore.session
from botocore.awsrequest import AWSRequest
from botocore.utils import percent_encode, percent_encode_sequence

KEY_PIECES = [
    "video", "my key", "é", "日本語", "😀", "+", "=", "~", "!", "*", "'", "(", ")", "%", "%20", "&", "?", "#",
    "$", "@", ":", ",", ";", "[", "]", "{", "}", "^", "`", "|", "\\", "\"", "<", ">", " ", "  ", "a.b", "-_.",
    "/", "//", "./", "../", "ü", "\u00a0", "x" * 40, "mp4", ".webm",
]
QUERY_NAMES = [
    "prefix", "list-type", "continuation-token", "delimiter", "max-keys", "uploads", "partNumber", "uploadId",
    "versionId", "x-id", "encoding-type", "start-after", "a b", "é", "k=v", "~tilde", "Z", "a", "A",
]
QUERY_VALUES = ["", "", "2", "/", "a/b c", "+", "=", "&", "é", "~", "!*'()", "1000", "%41", "1/2/3 4", "AbC"]
HEADERS = [
    ("Range", ["bytes=0-9", "bytes=100-", "bytes=-500", "bytes=0-0,5-9"]),
    ("If-Match", ['"d41d8cd98f00b204e9800998ecf8427e"', "*"]),
    ("If-None-Match", ['W/"abc"', '"x", "y"']),
    ("Content-Type", ["video/mp4", "text/plain; charset=utf-8"]),
    ("x-amz-meta-title", ["  leading and trailing  ", "two  spaces\tand a tab", "plain"]),
    ("X-Amz-Storage-Class", ["STANDARD", "REDUCED_REDUNDANCY"]),
    ("Cache-Control", ["no-cache", "max-age=0,  must-revalidate"]),
    ("x-amz-meta-Mixed-Case", ["v"]),
    ("Content-MD5", ["1B2M2Y8AsgTpgAmY7PhCfw=="]),
]
HOSTS = ["127.0.0.1:9000", "localhost:7480", "examplebucket.s3.amazonaws.com", "s3.eu-west-1.amazonaws.com",
         "[::1]:8080"]
REGIONS = ["us-east-1", "eu-west-1", "ap-southeast-2", "default"]
METHODS = ["GET", "GET", "HEAD", "PUT", "POST", "DELETE"]
ALPHANUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


class FixedClock:
    """Patches botocore's clock (datetime.datetime.utcnow in botocore.auth) to a given time."""

    def __init__(self, unix_seconds):
        fixed = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=unix_seconds)

        class _Fixed(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return fixed

        self._patch = mock.patch.object(botocore.auth.datetime, "datetime", _Fixed)

    def __enter__(self):
        self._patch.__enter__()

    def __exit__(self, *exc):
        return self._patch.__exit__(*exc)


def random_key(rng):
    return "".join(rng.choice(KEY_PIECES) for _ in range(rng.randint(1, 6)))


def random_secret(rng):
    return "".join(rng.choice(ALPHANUM + "/+") for _ in range(40))


def generate_case(rng, index):
    method = rng.choice(METHODS)
    host = rng.choice(HOSTS)
    bucket = rng.choice(["bucket", "media-files", "b.with.dots"])
    key = random_key(rng)
    path_style = rng.random() < 0.6
    if index % 25 == 0:
        path = ""  # the service root, e.g. ListBuckets
    elif path_style:
        path = f"/{bucket}/{key}"
    else:
        path = f"/{key}"
    query = []
    for _ in range(rng.choice([0, 0, 1, 2, 4])):
        name = rng.choice(QUERY_NAMES)
        query.append((name, rng.choice(QUERY_VALUES)))
        if rng.random() < 0.15:
            query.append((name, rng.choice(QUERY_VALUES)))  # a repeated name
    headers = []
    for name, values in rng.sample(HEADERS, rng.choice([0, 0, 1, 2, 3])):
        headers.append((name, rng.choice(values)))
    if rng.random() < 0.1:
        headers.append(("x-amz-meta-dup", "one"))
        headers.append(("X-Amz-Meta-Dup", " two "))
    case = {
        "method": method,
        "host": host,
        "path": path,
        "query": query,
        "headers": headers,
        "access_key": "AKIA" + "".join(rng.choice(ALPHANUM.upper()) for _ in range(16)),
        "secret_key": random_secret(rng),
        "session_token": "".join(rng.choice(ALPHANUM + "/+=") for _ in range(rng.randint(20, 300)))
        if rng.random() < 0.3 else "",
        "region": rng.choice(REGIONS),
        "service": "s3",
        "time": rng.randint(946684800, 4102444799),  # 2000-01-01 .. 2099-12-31
    }
    payload = rng.random()
    if method in ("PUT", "POST") and payload < 0.6:
        case["body"] = "".join(rng.choice(KEY_PIECES) for _ in range(rng.randint(0, 50)))
    elif payload < 0.3:
        case["payload_sha256"] = "UNSIGNED-PAYLOAD"
    elif payload < 0.5:
        case["payload_sha256"] = hashlib.sha256(b"").hexdigest()
    return case


def botocore_sign(case):
    """Signs `case` with botocore's S3SigV4Auth; botocore encodes the path and query itself."""
    scheme = "https" if case["host"].endswith("amazonaws.com") else "http"
    url = f"{scheme}://{case['host']}{percent_encode(case['path'] or '/', safe='/~')}"
    body = case.get("body", "").encode("utf-8")
    request = AWSRequest(method=case["method"], url=url, data=body, params=list(case["query"]))
    for name, value in case["headers"]:
        request.headers[name] = value  # HTTPHeaders: a repeated name adds a second header
    payload_hash = case.get("payload_sha256")
    if payload_hash == "UNSIGNED-PAYLOAD":
        request.context["client_config"] = botocore.config.Config(s3={"payload_signing_enabled": False})
    creds = botocore.credentials.Credentials(case["access_key"], case["secret_key"], case["session_token"] or None)
    signer = botocore.auth.S3SigV4Auth(creds, case["service"], case["region"])
    with FixedClock(case["time"]):
        signer.add_auth(request)
    # botocore adds the encoded query to the URL only when it prepares the request.
    query = percent_encode_sequence(case["query"]) if case["query"] else ""
    return {
        "authorization": request.headers["Authorization"],
        "x-amz-date": request.headers["X-Amz-Date"],
        "x-amz-content-sha256": request.headers["X-Amz-Content-SHA256"],
        "x-amz-security-token": request.headers.get("X-Amz-Security-Token"),
        "wire_path": urlsplit(url).path or "/",
        "canonical_query": signer.canonical_query_string(request),
        "wire_query": query,
    }


def run_cli(cli, cases):
    lines = "".join(json.dumps(case) + "\n" for case in cases)
    result = subprocess.run([cli], input=lines.encode(), capture_output=True, check=True, timeout=60)
    outputs = [json.loads(line) for line in result.stdout.decode().splitlines()]
    if len(outputs) != len(cases):
        raise SystemExit(f"sigv4_cli answered {len(outputs)} lines for {len(cases)} requests")
    return outputs


def compare(case, ours, theirs, failures, verbose):
    if "error" in ours:
        failures.append((case, f"our signer failed: {ours['error']}"))
        return
    headers = dict(ours["headers"])
    problems = []
    for name in ("authorization", "x-amz-date", "x-amz-content-sha256"):
        if headers.get(name) != theirs[name]:
            problems.append(f"{name}: ours {headers.get(name)!r} botocore {theirs[name]!r}")
    if headers.get("x-amz-security-token") != theirs["x-amz-security-token"]:
        problems.append("x-amz-security-token differs")
    if ours["canonical_path"] != theirs["wire_path"]:
        problems.append(f"path: ours {ours['canonical_path']!r} botocore {theirs['wire_path']!r}")
    if ours["canonical_query"] != theirs["canonical_query"]:
        problems.append(f"canonical query: ours {ours['canonical_query']!r} botocore {theirs['canonical_query']!r}")
    # What we put on the wire must decode to the same parameters as what botocore puts there.
    if sorted(parse_qsl(ours["canonical_query"], keep_blank_values=True)) != sorted(
            parse_qsl(theirs["wire_query"], keep_blank_values=True)):
        problems.append("wire query decodes differently")
    if problems:
        failures.append((case, "; ".join(problems) + "\nour canonical request:\n" + ours["canonical_request"]))
    elif verbose:
        print(f"ok {case['method']} {ours['canonical_path']}?{ours['canonical_query']}")


# --- botocore's S3 client, end to end -----------------------------------------------------------------------

class _Captured(Exception):
    def __init__(self, request):
        super().__init__("captured")
        self.request = request


def _capture(request, **_):
    raise _Captured(request)


def client_cases(rng, count):
    """Calls botocore's S3 client with random keys and captures the signed requests it would send."""
    endpoint = "http://127.0.0.1:9000"
    secret = random_secret(rng)
    session = botocore.session.get_session()
    client = session.create_client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="AKIACLIENTEXAMPLE",
        aws_secret_access_key=secret, aws_session_token="client/session+token=",
        config=botocore.config.Config(signature_version="s3v4", s3={"addressing_style": "path"},
                                      retries={"max_attempts": 1}))
    client.meta.events.register("before-send.s3", _capture)
    cases = []
    for i in range(count):
        key = random_key(rng)
        when = rng.randint(946684800, 4102444799)
        body = None
        op = i % 5
        with FixedClock(when):
            try:
                if op == 0:
                    client.get_object(Bucket="media", Key=key, Range=f"bytes={rng.randint(0, 99)}-")
                elif op == 1:
                    client.head_object(Bucket="media", Key=key, IfMatch='"abc"')
                elif op == 2:
                    body = "".join(rng.choice(KEY_PIECES) for _ in range(20))
                    client.put_object(Bucket="media", Key=key, Body=body.encode(), ContentType="video/mp4")
                elif op == 3:
                    client.list_objects_v2(Bucket="media", Prefix=key, Delimiter="/", MaxKeys=rng.randint(1, 1000))
                else:
                    client.delete_object(Bucket="media", Key=key)
                raise SystemExit("botocore sent a request instead of raising _Captured")
            except _Captured as captured:
                sent = captured.request
        parts = urlsplit(sent.url)
        authorization = sent.headers["Authorization"].decode() if isinstance(
            sent.headers["Authorization"], bytes) else sent.headers["Authorization"]
        signed_names = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
        own = {"host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"}
        headers = []
        for name in signed_names:
            if name in own:
                continue
            value = sent.headers[name]
            headers.append((name, value.decode() if isinstance(value, bytes) else value))
        case = {
            "method": sent.method,
            "host": parts.netloc,
            "path": "/media" if op == 3 else f"/media/{key}",
            "query": parse_qsl(parts.query, keep_blank_values=True),
            "headers": headers,
            "access_key": "AKIACLIENTEXAMPLE",
            "secret_key": secret,
            "session_token": "client/session+token=",
            "region": "us-east-1",
            "service": "s3",
            "time": when,
        }
        if body is not None:
            case["body"] = body
        theirs = {
            "authorization": authorization,
            "x-amz-date": sent.headers["X-Amz-Date"],
            "x-amz-content-sha256": sent.headers["X-Amz-Content-SHA256"],
            "x-amz-security-token": sent.headers["X-Amz-Security-Token"],
            "wire_path": parts.path,
            "canonical_query": botocore.auth.SigV4Auth(None, "s3", "us-east-1")._canonical_query_string_url(parts),
            "wire_query": parts.query,
        }
        theirs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in theirs.items()}
        cases.append((case, theirs))
    return cases


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cli")
    parser.add_argument("--count", type=int, default=240)
    parser.add_argument("--client-count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=20130524)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    pairs = [(case, botocore_sign(case)) for case in (generate_case(rng, i) for i in range(args.count))]
    pairs += client_cases(rng, args.client_count)
    outputs = run_cli(args.cli, [case for case, _ in pairs])

    failures = []
    for (case, theirs), ours in zip(pairs, outputs):
        compare(case, ours, theirs, failures, args.verbose)
    for case, problem in failures[:10]:
        print(f"MISMATCH {json.dumps(case, ensure_ascii=False)}\n  {problem}\n", file=sys.stderr)
    print(f"sigv4 differential test: {len(pairs) - len(failures)}/{len(pairs)} requests signed identically "
          f"to botocore {botocore.__version__} (seed {args.seed})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
