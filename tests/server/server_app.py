"""An in-process registry on Flask's test client (fast tests; the e2e suite uses gunicorn)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from inprocess_registry import BASE_URL, initialise_with_admin_password, table_rows

from registry.server.app import create_app
from registry.server.config import RegistryConfig
from registry.server.context import state
from registry.server.services import tokens
from registry.server.services.actor import Actor


@dataclass
class TestRegistry:
    app: Flask
    client: FlaskClient
    token: str
    config: RegistryConfig

    def headers(self, token: str | None = "") -> dict[str, str]:
        chosen = self.token if token == "" else token
        return {"Authorization": f"Bearer {chosen}"} if chosen else {}

    def api(self, method: str, path: str, *, token: str | None = "", **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return self.client.open("/_api/v1" + path, method=method, headers=headers,
                                base_url=BASE_URL, **kwargs)

    def get(self, path: str, *, token: str | None = None, **kwargs: Any):  # type: ignore[no-untyped-def]
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return self.client.get(path, headers=headers, base_url=BASE_URL, **kwargs)

    def upload(self, name: str, aci: Path | bytes, *, token: str | None = "",
               signature: bytes | None = None, **params: str):  # type: ignore[no-untyped-def]
        import base64

        data = aci if isinstance(aci, bytes) else aci.read_bytes()
        headers = {"Content-Type": "application/octet-stream"}
        if signature is not None:
            headers["X-Pyrkt-Signature"] = base64.b64encode(signature).decode()
        return self.api("POST", f"/repositories/{name}/-/images", token=token, data=data,
                        headers=headers, query_string=params)

    def new_token(self, username: str) -> str:
        with self.app.app_context():
            session = state().sessions()
            try:
                return tokens.create_token(session, Actor.operator(), username)[1]
            finally:
                session.close()

    def session(self):  # type: ignore[no-untyped-def]
        return self.app.extensions["pyrkt"].sessions()

    def snapshot(self) -> dict[str, Any]:
        """Every row of every table and every stored object (temporaries included)."""
        return {"rows": table_rows(self.app.extensions["pyrkt"].engine),
                "objects": stored_objects(self)}


def stored_objects(registry: TestRegistry) -> list[str]:
    config = registry.config
    if config.storage == "local":
        assert config.storage_dir is not None
        found = []
        for root, _dirs, files in os.walk(config.storage_dir):
            found += [os.path.relpath(os.path.join(root, f), config.storage_dir) for f in files]
        tmp = [f"tmp/{f}" for f in os.listdir(config.tmp_dir)] if config.tmp_dir.exists() else []
        return sorted(found + tmp)
    import boto3
    from botocore.config import Config

    assert config.s3 is not None
    client = boto3.session.Session().client(
        "s3", endpoint_url=config.s3.endpoint_url, region_name=config.s3.region,
        aws_access_key_id=config.s3.access_key, aws_secret_access_key=config.s3.secret_key,
        config=Config(s3={"addressing_style": "path"}))
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=config.s3.bucket)
            for o in page.get("Contents", ())]
    uploads = [u["Key"] for u in client.list_multipart_uploads(Bucket=config.s3.bucket).get("Uploads", ())]
    spooled = [f"tmp/{f}" for f in os.listdir(config.tmp_dir)] if config.tmp_dir.exists() else []
    return sorted(keys + [f"multipart:{u}" for u in uploads] + spooled)


def make_test_registry(data_dir: Path, key_file: Path, **settings: Any) -> TestRegistry:
    environ = {"PYRKT_REGISTRY_BASE_URL": BASE_URL, "PYRKT_REGISTRY_SIGNING_KEY": str(key_file)}
    config = RegistryConfig.load(environ, data_dir=str(data_dir), **settings)
    initialise_with_admin_password(config)
    app = create_app(config, TESTING=True)
    registry = TestRegistry(app=app, client=app.test_client(), token="", config=config)
    registry.token = registry.new_token("admin")
    return registry
