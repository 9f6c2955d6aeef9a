"""Fixtures the batch tests share: a moto S3 with the test module's bucket, the penguins service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from onnxlambda.serving.runtime import ModelRuntime
from onnxlambda.serving.service import Service
from onnxlambda.settings import Settings


@pytest.fixture
def s3(request: pytest.FixtureRequest) -> Iterator[Any]:
    """S3 under moto with the bucket named by the requesting module's BUCKET."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=request.module.BUCKET)
        yield client


@pytest.fixture(scope="module")
def penguins(penguins_dir: Path) -> Service:
    return Service(ModelRuntime.load(penguins_dir), Settings.from_env())
