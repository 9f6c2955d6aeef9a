"""moto's S3 in server mode on loopback: what built functions under the emulator talk to.

The emulated function is another process, so `mock_aws` cannot reach it; it gets the server's
endpoint (AWS_ENDPOINT_URL_S3) and moto's fake credentials through its environment instead.
Used by the integration tests and the batch load tool.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from devtools.rie import free_port

REGION = "us-east-1"
# moto's fake credentials: the emulated function signs its requests with these.
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}


def function_env(endpoint: str, **extra: str) -> dict[str, str]:
    """Environment for an emulated function that should use this server for AWS calls."""
    return {**CREDENTIALS, "AWS_ENDPOINT_URL_S3": endpoint, "AWS_ENDPOINT_URL": endpoint, **extra}


@contextmanager
def moto_s3(bucket: str, *, versioned: bool = False) -> Iterator[tuple[str, Any]]:
    """Start moto on a free loopback port with `bucket` created; yield (endpoint, S3 client)."""
    from moto.server import ThreadedMotoServer  # dev-only dependency, imported when used

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        )
        client.create_bucket(Bucket=bucket)
        if versioned:
            client.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
        yield endpoint, client
    finally:
        server.stop()
