"""Where `mediagate ls s3://BUCKET` gets its S3 credentials from, against a real radosgw.

Starts its own radosgw (scripts/radosgw.sh) in a temporary directory, creates one bucket with one object and
runs the binary with a clean environment per case: keys in the environment, a profile in ~/.aws/credentials,
a half-given --s3-access-key/--s3-secret-key pair, web identity against a fake STS, IMDSv2 against a fake
instance metadata service, and nothing at all (AWS_EC2_METADATA_DISABLED=true). The fakes listen on
127.0.0.1 only and hand out the radosgw user's real keys with an EMPTY session token (radosgw would reject a
token it does not know). Nothing here talks to 169.254.169.254: every case that could reach IMDS either sets
AWS_EC2_METADATA_SERVICE_ENDPOINT to a local fake or AWS_EC2_METADATA_DISABLED=true.

    cd tests/integration && MEDIAGATE_BIN=../../build/mediagate /usr/bin/python3 -m unittest -v test_credentials
"""

import http.server
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RADOSGW = REPO / "scripts" / "radosgw.sh"
MEDIAGATE = Path(os.environ.get("MEDIAGATE_BIN", REPO / "build" / "mediagate"))
RUN_TIMEOUT = 20
OBJECT_KEY = "videos/credentials-check.mp4"
ROLE_ARN = "arn:aws:iam::123456789012:role/mediagate-test"
IMDS_ROLE = "mediagate-test-role"
EXPIRATION = "2099-01-01T00:00:00Z"


def radosgw(command, cluster, timeout=90.0):
    return subprocess.run([str(RADOSGW), command, str(cluster)], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, RGW_START_TIMEOUT="30"))


def read_env_file(path):
    env = {}
    for line in path.read_text().splitlines():
        words = shlex.split(line, comments=True)
        if words and words[0] == "export":
            words = words[1:]
        for word in words:
            name, sep, value = word.partition("=")
            if sep:
                env[name] = value
    return env


class FakeServer:
    """An http.server on 127.0.0.1:0 in a thread; `handler(req)` answers, `requests` records what came in."""

    def __init__(self, handler):
        self.requests = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            timeout = 10  # socket timeout per connection

            def _any(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                rec = {"method": self.command, "path": self.path, "headers": dict(self.headers.items()),
                       "body": body}
                outer.requests.append(rec)
                status, ctype, data = handler(rec)
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_PUT = do_POST = _any

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 10
        self.port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


class CredentialsTest(unittest.TestCase):
    maxDiff = 4000

    @classmethod
    def setUpClass(cls):
        if not MEDIAGATE.exists():
            raise RuntimeError(f"server binary {MEDIAGATE} does not exist: build it or set MEDIAGATE_BIN")
        cls.tmp = Path(tempfile.mkdtemp(prefix="mediagate-creds-it-"))
        cls.cluster = cls.tmp / "rgw"
        try:
            for attempt in (1, 2):
                r = radosgw("start", cls.cluster)
                if r.returncode == 0:
                    break
                print(f"test_credentials: radosgw start attempt {attempt} failed:\n{r.stdout}{r.stderr}",
                      file=sys.stderr)
                radosgw("stop", cls.cluster, timeout=120)
                shutil.rmtree(cls.cluster, ignore_errors=True)
            else:
                raise RuntimeError(f"scripts/radosgw.sh start failed twice:\n{r.stdout}{r.stderr}")
            env = read_env_file(cls.cluster / "env")
            cls.rgw = {k: env[k] for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "AWS_REGION")}
            os.environ.update(cls.rgw)  # s3util reads the environment
            sys.path.insert(0, str(Path(__file__).resolve().parent))
            import s3util

            client = s3util.client_from_env()
            if hasattr(s3util, "wait_until_ready"):
                s3util.wait_until_ready(client=client)
            cls.bucket = f"mediagate-creds-{uuid.uuid4().hex[:12]}"
            s3util.create_bucket(cls.bucket, client=client)
            s3util.put_object(cls.bucket, OBJECT_KEY, b"\0" * 1234, "video/mp4", client=client)
            if hasattr(client, "close"):
                client.close()
        except BaseException:
            cls._tear_down()
            raise

    @classmethod
    def tearDownClass(cls):
        cls._tear_down()

    @classmethod
    def _tear_down(cls):
        try:
            radosgw("stop", cls.cluster, timeout=120)
        finally:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    # -- helpers ------------------------------------------------------------------------------------------

    def setUp(self):
        self.home = Path(tempfile.mkdtemp(prefix="home-", dir=self.tmp))

    def ls(self, extra_env=None, args=()):
        """Runs `mediagate ls s3://BUCKET` with only PATH, HOME, the endpoint, the region and `extra_env`."""
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "AWS_ENDPOINT_URL": self.rgw["AWS_ENDPOINT_URL"], "AWS_REGION": self.rgw["AWS_REGION"]}
        env.update(extra_env or {})
        t0 = time.monotonic()
        r = subprocess.run([str(MEDIAGATE), "ls", f"s3://{self.bucket}", *args], env=env, capture_output=True,
                           text=True, timeout=RUN_TIMEOUT, stdin=subprocess.DEVNULL)
        r.elapsed = time.monotonic() - t0
        r.output = r.stdout + r.stderr
        import harness

        harness.assert_clean_exit(self, r)
        return r

    def assert_listed(self, r):
        self.assertEqual(r.returncode, 0, f"ls failed:\n{r.output}")
        self.assertIn(OBJECT_KEY, r.stdout)

    def assert_failed(self, r, *needles):
        if os.environ.get("MEDIAGATE_TEST_VERBOSE"):
            print(f"\n  [{self._testMethodName}] exit {r.returncode} in {r.elapsed:.2f} s: {r.output.strip()}",
                  file=sys.stderr)
        self.assertNotEqual(r.returncode, 0, f"ls succeeded unexpectedly:\n{r.output}")
        self.assertNotIn(OBJECT_KEY, r.stdout)
        for needle in needles:
            self.assertIn(needle.lower(), r.output.lower(), f"{needle!r} not in the output:\n{r.output}")

    def fake(self, handler):
        server = FakeServer(handler)
        self.addCleanup(server.close)
        return server

    def write_profile(self, secret):
        aws = self.home / ".aws"
        aws.mkdir()
        (aws / "credentials").write_text(
            "[default]\naws_access_key_id = nobody\naws_secret_access_key = nothing\n\n"
            f"[media]\naws_access_key_id = {self.rgw['AWS_ACCESS_KEY_ID']}\naws_secret_access_key = {secret}\n")

    # -- (1) environment, (2) profile, (3) options --------------------------------------------------------

    def test_environment_keys(self):
        self.assert_listed(self.ls({"AWS_ACCESS_KEY_ID": self.rgw["AWS_ACCESS_KEY_ID"],
                                    "AWS_SECRET_ACCESS_KEY": self.rgw["AWS_SECRET_ACCESS_KEY"],
                                    "AWS_EC2_METADATA_DISABLED": "true"}))

    def test_environment_keys_wrong_secret_fails(self):
        r = self.ls({"AWS_ACCESS_KEY_ID": self.rgw["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": "wrong-secret",
                     "AWS_EC2_METADATA_DISABLED": "true"})
        self.assert_failed(r, "credentials")

    def test_profile_in_shared_credentials_file(self):
        self.write_profile(self.rgw["AWS_SECRET_ACCESS_KEY"])
        self.assert_listed(self.ls({"AWS_PROFILE": "media", "AWS_EC2_METADATA_DISABLED": "true"}))

    def test_profile_with_wrong_secret_fails(self):
        self.write_profile("not-the-secret")
        r = self.ls({"AWS_PROFILE": "media", "AWS_EC2_METADATA_DISABLED": "true"})
        self.assert_failed(r, "credentials")

    def test_options_win_over_environment(self):
        r = self.ls({"AWS_ACCESS_KEY_ID": "nobody", "AWS_SECRET_ACCESS_KEY": "nothing",
                     "AWS_EC2_METADATA_DISABLED": "true"},
                    ["--s3-access-key", self.rgw["AWS_ACCESS_KEY_ID"],
                     "--s3-secret-key", self.rgw["AWS_SECRET_ACCESS_KEY"]])
        self.assert_listed(r)

    def test_secret_key_option_alone_is_an_error(self):
        r = self.ls({"AWS_ACCESS_KEY_ID": self.rgw["AWS_ACCESS_KEY_ID"],
                     "AWS_SECRET_ACCESS_KEY": self.rgw["AWS_SECRET_ACCESS_KEY"],
                     "AWS_EC2_METADATA_DISABLED": "true"},
                    ["--s3-secret-key", self.rgw["AWS_SECRET_ACCESS_KEY"]])
        self.assert_failed(r, "--s3-access-key", "--s3-secret-key")

    # -- (4) web identity ---------------------------------------------------------------------------------

    def sts_success(self, req):
        form = urllib.parse.parse_qs(req["body"].decode(), keep_blank_values=True)
        one = lambda name: (form.get(name) or [""])[0]  # noqa: E731
        if (req["method"] != "POST" or one("Action") != "AssumeRoleWithWebIdentity" or one("RoleArn") != ROLE_ARN
                or one("WebIdentityToken") != self.web_token):
            return 403, "text/xml", (
                b"<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code>"
                b"<Message>unexpected request</Message></Error></ErrorResponse>")
        return 200, "text/xml", (
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">"
            "<AssumeRoleWithWebIdentityResult><Credentials>"
            f"<AccessKeyId>{self.rgw['AWS_ACCESS_KEY_ID']}</AccessKeyId>"
            f"<SecretAccessKey>{self.rgw['AWS_SECRET_ACCESS_KEY']}</SecretAccessKey>"
            f"<SessionToken></SessionToken><Expiration>{EXPIRATION}</Expiration>"
            "</Credentials></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>").encode()

    def web_identity_env(self, sts):
        self.web_token = "eyJhbGciOi.test-token+/=." + uuid.uuid4().hex
        token_file = self.home / "token"
        token_file.write_text(self.web_token + "\n")
        return {"AWS_WEB_IDENTITY_TOKEN_FILE": str(token_file), "AWS_ROLE_ARN": ROLE_ARN,
                "AWS_ENDPOINT_URL_STS": sts.url, "AWS_EC2_METADATA_DISABLED": "true"}

    def test_web_identity(self):
        sts = self.fake(self.sts_success)
        r = self.ls(self.web_identity_env(sts))
        self.assert_listed(r)
        self.assertEqual(len(sts.requests), 1, sts.requests)
        req = sts.requests[0]
        self.assertEqual((req["method"], req["path"]), ("POST", "/"))
        form = urllib.parse.parse_qs(req["body"].decode(), keep_blank_values=True, strict_parsing=True)
        self.assertEqual(form["WebIdentityToken"], [self.web_token])
        self.assertEqual(form["Action"], ["AssumeRoleWithWebIdentity"])
        self.assertEqual(form["RoleArn"], [ROLE_ARN])

    def test_web_identity_sts_error(self):
        sts = self.fake(lambda req: (400, "text/xml", (
            b"<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type>"
            b"<Code>InvalidIdentityToken</Code><Message>The token is not valid</Message></Error>"
            b"<RequestId>1</RequestId></ErrorResponse>")))
        r = self.ls(self.web_identity_env(sts))
        self.assert_failed(r, "InvalidIdentityToken")
        self.assertEqual(len(sts.requests), 1, sts.requests)

    # -- (5) IMDSv2 ---------------------------------------------------------------------------------------

    def imds(self):
        tokens = set()

        def handler(req):
            h = {k.lower(): v for k, v in req["headers"].items()}
            if req["method"] == "PUT" and req["path"] == "/latest/api/token":
                if not h.get("x-aws-ec2-metadata-token-ttl-seconds", "").isdigit():
                    return 400, "text/plain", b"missing ttl"
                token = uuid.uuid4().hex
                tokens.add(token)
                return 200, "text/plain", token.encode()
            if h.get("x-aws-ec2-metadata-token") not in tokens:
                return 401, "text/plain", b"Unauthorized"
            if req["method"] != "GET":
                return 405, "text/plain", b""
            base = "/latest/meta-data/iam/security-credentials/"
            if req["path"] == base:
                return 200, "text/plain", IMDS_ROLE.encode()
            if req["path"] == base + IMDS_ROLE:
                return 200, "application/json", json.dumps({
                    "Code": "Success", "LastUpdated": "2024-01-01T00:00:00Z", "Type": "AWS-HMAC",
                    "AccessKeyId": self.rgw["AWS_ACCESS_KEY_ID"],
                    "SecretAccessKey": self.rgw["AWS_SECRET_ACCESS_KEY"],
                    "Token": "", "Expiration": EXPIRATION}).encode()
            return 404, "text/plain", b"Not Found"

        return self.fake(handler)

    def test_imdsv2(self):
        imds = self.imds()
        r = self.ls({"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        self.assert_listed(r)
        seen = [(q["method"], q["path"]) for q in imds.requests]
        self.assertGreaterEqual(len(seen), 3, seen)
        self.assertEqual(seen[0], ("PUT", "/latest/api/token"), seen)
        self.assertIn(("GET", "/latest/meta-data/iam/security-credentials/" + IMDS_ROLE), seen)

    def test_imds_without_token_is_refused(self):
        # The fake really is v2-only: IMDSv1-style access (no token) gets nowhere.
        imds = self.imds()
        with self.assertRaises(Exception) as ctx:
            import urllib.request
            urllib.request.urlopen(imds.url + "/latest/meta-data/iam/security-credentials/", timeout=5)
        self.assertIn("401", str(ctx.exception))

    def test_imds_refusing_tokens_fails(self):
        imds = self.fake(lambda req: (403, "text/plain", b"Forbidden"))
        r = self.ls({"AWS_EC2_METADATA_SERVICE_ENDPOINT": imds.url})
        self.assert_failed(r, "no S3 credentials")
        self.assertTrue(imds.requests, "mediagate never asked the metadata service")
        self.assertEqual((imds.requests[0]["method"], imds.requests[0]["path"]), ("PUT", "/latest/api/token"))

    # -- (6) nothing at all -------------------------------------------------------------------------------

    def test_no_credentials_with_imds_disabled(self):
        r = self.ls({"AWS_EC2_METADATA_DISABLED": "true"})
        self.assert_failed(r, "no S3 credentials")
        self.assertLess(r.elapsed, 3.0, r.output)

    # -- (7) anonymous requests (--s3-anonymous) ----------------------------------------------------------

    def test_anonymous_ls_of_a_private_bucket_is_denied(self):
        r = self.ls({"AWS_EC2_METADATA_DISABLED": "true"}, args=["--s3-anonymous"])
        self.assert_failed(r, "denied")

    def test_anonymous_with_keys_is_an_error(self):
        r = self.ls(args=["--s3-anonymous", "--s3-access-key", "a", "--s3-secret-key", "b"])
        self.assert_failed(r, "--s3-anonymous")

    def test_anonymous_serve_of_a_public_bucket(self):
        # A bucket that lets everyone GetObject (not ListBucket), as public media buckets do. With no
        # credentials anywhere, --s3-anonymous serves its objects, bytes and ranges exact; a private bucket's
        # objects get a clear 502.
        import s3util

        client = s3util.client_from_env()
        self.addCleanup(lambda: hasattr(client, "close") and client.close())
        public = f"mediagate-public-{uuid.uuid4().hex[:12]}"
        s3util.create_bucket(public, client=client)
        data = bytes(range(256)) * 4000  # 1,024,000 bytes
        s3util.put_object(public, "clip.mp4", data, "video/mp4", client=client)
        client.put_bucket_policy(Bucket=public, Policy=json.dumps({
            "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": "*", "Action": ["s3:GetObject"],
                "Resource": [f"arn:aws:s3:::{public}/*"]}]}))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
               "AWS_EC2_METADATA_DISABLED": "true"}
        import harness

        for bucket, readable in ((public, True), (self.bucket, False)):
            with self.subTest(bucket=bucket):
                fx = types.SimpleNamespace(tmp=self.home, storage_args=["--storage", f"s3://{bucket}"],
                                           server_env=env)
                server = harness.Server(fx, ["--s3-endpoint", self.rgw["AWS_ENDPOINT_URL"], "--s3-region",
                                             self.rgw["AWS_REGION"], "--s3-anonymous", "--catalog",
                                             f"sqlite:{self.home}/{bucket}.db", "--threads", "1"],
                                        name=f"anonymous-{bucket}", inherit_env=False)
                try:
                    self.assertIn("cannot be listed anonymously", server.output(0))
                    key = "clip.mp4" if readable else OBJECT_KEY
                    req = urllib.request.Request(f"http://127.0.0.1:{server.port}/media/{key}",
                                                 headers={"Range": "bytes=1000-70999"})
                    if readable:
                        with urllib.request.urlopen(req, timeout=RUN_TIMEOUT) as res:
                            self.assertEqual(res.status, 206)
                            self.assertEqual(res.headers["Content-Range"], f"bytes 1000-70999/{len(data)}")
                            self.assertEqual(res.read(), data[1000:71000])
                    else:
                        with self.assertRaises(urllib.error.HTTPError) as caught:
                            urllib.request.urlopen(req, timeout=RUN_TIMEOUT)
                        self.assertEqual(caught.exception.code, 502)
                        body = caught.exception.read()
                        self.assertIn(b"denied anonymous access", body)
                        self.assertIn(b"s3:GetObject", body)
                finally:
                    server.stop()

if __name__ == "__main__":
    unittest.main()
