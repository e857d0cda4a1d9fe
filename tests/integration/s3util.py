"""Small S3 helpers for integration tests and benchmarks (stdlib + botocore only).

Run with /usr/bin/python3 (Debian's python3-botocore). Settings come from the environment, as written to
DIR/env by `scripts/radosgw.sh start DIR`:

    AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION (default us-east-1),
    AWS_SESSION_TOKEN (optional)

Every function takes an optional `client`; without one, a client built once from the environment is used.
"""

import os
import time

import botocore.config
import botocore.exceptions
import botocore.session

_WARMUP_KEY = ".mediagate-warmup"
_default_client = None


def client_from_env(endpoint_url=None, access_key=None, secret_key=None, region=None, session_token=None):
    """A botocore S3 client with path-style addressing (radosgw has no `rgw dns name` set) and SigV4.

    Arguments override the environment, e.g. `client_from_env(secret_key="wrong")` for negative tests.
    """
    endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint_url:
        raise RuntimeError("AWS_ENDPOINT_URL is not set: source DIR/env after `scripts/radosgw.sh start DIR`")
    config = botocore.config.Config(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 3, "mode": "standard"},
        connect_timeout=5,
        read_timeout=60,
    )
    return botocore.session.get_session().create_client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region or os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id=access_key or os.environ["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=secret_key or os.environ["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=session_token or os.environ.get("AWS_SESSION_TOKEN") or None,
        config=config,
    )


def _client(client):
    global _default_client
    if client is not None:
        return client
    if _default_client is None:
        _default_client = client_from_env()
    return _default_client


def warm_up_bucket(bucket, client=None):
    """Writes and deletes a throwaway object.

    radosgw creates its index and data pools lazily, so the first write to a new bucket is slow (seconds on a
    fresh cluster); doing it here keeps that out of timed tests and benchmarks.
    """
    c = _client(client)
    c.put_object(Bucket=bucket, Key=_WARMUP_KEY, Body=b"warm-up")
    c.delete_object(Bucket=bucket, Key=_WARMUP_KEY)


def create_bucket(name, client=None, warm_up=True):
    """Creates bucket `name` (an existing bucket of ours is fine) and warms it up."""
    c = _client(client)
    try:
        c.create_bucket(Bucket=name)
    except botocore.exceptions.ClientError as e:
        if e.response["Error"]["Code"] != "BucketAlreadyOwnedByYou":
            raise
    if warm_up:
        warm_up_bucket(name, client=c)


def put_object(bucket, key, data: bytes, content_type=None, client=None):
    """Uploads `data` in one PUT (no aws-chunked framing); returns the ETag without quotes."""
    args = {"Bucket": bucket, "Key": key, "Body": data}
    if content_type is not None:
        args["ContentType"] = content_type
    return _client(client).put_object(**args)["ETag"].strip('"')


def get_object(bucket, key, range_header=None, client=None):
    """Returns (status, headers, body) of a GET, optionally with a Range header like "bytes=0-9"."""
    args = {"Bucket": bucket, "Key": key}
    if range_header is not None:
        args["Range"] = range_header
    r = _client(client).get_object(**args)
    meta = r["ResponseMetadata"]
    return meta["HTTPStatusCode"], meta["HTTPHeaders"], r["Body"].read()


def delete_object(bucket, key, client=None):
    _client(client).delete_object(Bucket=bucket, Key=key)


def delete_bucket(bucket, client=None):
    """Deletes every object in `bucket`, then the bucket."""
    c = _client(client)
    for page in c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            c.delete_object(Bucket=bucket, Key=obj["Key"])
    c.delete_bucket(Bucket=bucket)


def wait_until_ready(timeout=30.0, client=None):
    """Polls ListBuckets until the endpoint answers with our credentials accepted."""
    c = _client(client)
    deadline = time.monotonic() + timeout
    while True:
        try:
            c.list_buckets()
            return
        except (botocore.exceptions.EndpointConnectionError, botocore.exceptions.ClientError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
