"""The test S3 server helper other test folders rely on (tests/s3server.py)."""

from __future__ import annotations

import pytest
import requests
from s3server import endpoint_from_environment, list_bucket, moto_server, temporary_bucket


def test_environment_selects_an_existing_server():
    assert endpoint_from_environment({}) is None
    endpoint = endpoint_from_environment(
        {"PYRKT_TEST_S3_ENDPOINT": "http://127.0.0.1:9000/", "AWS_ACCESS_KEY_ID": "minio",
         "AWS_SECRET_ACCESS_KEY": "minio-secret", "PYRKT_TEST_S3_REGION": "eu-west-1"}
    )
    assert endpoint is not None
    assert (endpoint.url, endpoint.access_key, endpoint.secret_key, endpoint.region) == (
        "http://127.0.0.1:9000", "minio", "minio-secret", "eu-west-1")
    specific = endpoint_from_environment(
        {"PYRKT_TEST_S3_ENDPOINT": "http://h:1", "AWS_ACCESS_KEY_ID": "generic",
         "PYRKT_TEST_S3_ACCESS_KEY": "specific"}
    )
    assert specific is not None and specific.access_key == "specific"


def test_moto_server_lives_for_the_block_only():
    with moto_server() as endpoint:
        assert endpoint.url.startswith("http://127.0.0.1:")
        with temporary_bucket(endpoint) as bucket:
            endpoint.client().put_object(Bucket=bucket, Key="k", Body=b"v")
            assert list_bucket(endpoint, bucket)["objects"] == ["k"]
        assert bucket not in [b["Name"] for b in endpoint.client().list_buckets()["Buckets"]]
    with pytest.raises(requests.ConnectionError):
        requests.get(endpoint.url, timeout=2)
