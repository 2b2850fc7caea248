"""Private repositories: every endpoint, asked by an anonymous client, a wrong token or a user
without a role, answers exactly what it answers for a name that does not exist."""

from __future__ import annotations

import base64

import pytest
from server_app import make_test_registry
from server_images import build_aci

from registry.signing import generate_key

SECRET = "127.0.0.1/hidden/secret"
MISSING = "127.0.0.1/hidden/nothing"
OWNER_KEY = generate_key("owner <owner@example.com>", cipher="cv25519")


@pytest.fixture(scope="module")
def registry(tmp_path_factory, registry_key_file):  # type: ignore[no-untyped-def]
    # Hundreds of wrong credentials from one address: brute-force delays (tested in
    # test_server_throttle.py) would answer 429 long before every endpoint is probed.
    registry = make_test_registry(tmp_path_factory.mktemp("private"), registry_key_file,
                                  login_free_attempts=100_000)
    created = registry.api("POST", "/repositories", json={"name": SECRET, "public": False,
                                                          "description": "top secret"})
    assert created.status_code == 201, created.json
    image = build_aci(tmp_path_factory.mktemp("img"), SECRET, version="1.0")
    assert registry.upload(SECRET, image).status_code == 201
    assert registry.api("POST", f"/repositories/{SECRET}/-/keys",
                        data=OWNER_KEY.armored_public()).status_code == 201
    for user in ("outsider", "insider"):
        assert registry.api("POST", "/users", json={"username": user,
                                                    "password": "password-123"}).status_code == 201
    assert registry.api("PUT", f"/repositories/{SECRET}/-/roles/insider",
                        json={"role": "read"}).status_code == 200
    registry.outsider = registry.new_token("outsider")
    registry.insider = registry.new_token("insider")
    return registry


def endpoints(name: str) -> list[tuple[str, str, dict]]:
    """(method, path, kwargs) of every route that takes a repository name."""
    short = name.split("/", 1)[1]
    files = f"/_aci/{name}"
    api = f"/_api/v1/repositories/{name}"
    return [
        ("GET", f"/{short}", {}),
        ("HEAD", f"/{short}", {}),
        ("GET", f"/{short}?ac-discovery=1", {}),
        ("GET", f"{files}/1.0/linux/amd64/image.aci", {}),
        ("HEAD", f"{files}/1.0/linux/amd64/image.aci", {}),
        ("GET", f"{files}/1.0/linux/amd64/image.aci.asc", {}),
        ("GET", f"{files}/latest/linux/amd64/image.aci", {}),
        ("GET", f"{files}/latest/linux/amd64/image.aci.asc", {}),
        ("GET", f"/_aci/pubkeys/{name}/pubkeys.gpg", {}),
        ("GET", api, {}),
        ("GET", f"{api}/-/images", {}),
        ("GET", f"{api}/-/keys", {}),
        ("GET", f"{api}/-/roles", {}),
        ("GET", f"{api}/-/upload?size=10", {}),
        ("POST", f"{api}/-/images", {"data": b"not an aci"}),
        ("DELETE", f"{api}/-/versions/1.0", {}),
        ("PUT", f"{api}/-/latest", {"json": {"version": "1.0"}}),
        ("PATCH", api, {"json": {"public": True}}),
        ("DELETE", api, {}),
        ("POST", f"{api}/-/keys", {"data": OWNER_KEY.armored_public()}),
        ("PUT", f"{api}/-/roles/outsider", {"json": {"role": "admin"}}),
    ]


def _auth(who: str, registry) -> dict[str, str]:  # type: ignore[no-untyped-def]
    if who == "anonymous":
        return {}
    if who == "wrong token":
        return {"Authorization": "Bearer pyrkt_wrong"}
    if who == "wrong password":
        return {"Authorization": "Basic " + base64.b64encode(b"insider:nope").decode()}
    return {"Authorization": f"Bearer {registry.outsider}"}


def _normalise(body: bytes, name: str) -> bytes:
    return body.replace(name.encode(), b"NAME").replace(name.split("/", 1)[1].encode(), b"SHORT")


@pytest.mark.parametrize("who", ["anonymous", "wrong token", "wrong password", "user without role"])
def test_outsiders_learn_nothing_beyond_404(registry, who):
    before = registry.snapshot()
    headers = _auth(who, registry)
    for (method, path, kwargs), (_, missing_path, missing_kwargs) in zip(
            endpoints(SECRET), endpoints(MISSING), strict=True):
        secret = registry.client.open(path, method=method, headers=headers,
                                      base_url="http://127.0.0.1:8080", **kwargs)
        missing = registry.client.open(missing_path, method=method, headers=headers,
                                       base_url="http://127.0.0.1:8080", **missing_kwargs)
        where = f"{who}: {method} {path}"
        assert secret.status_code == missing.status_code, where
        assert secret.status_code in (200, 401, 404), where
        if secret.status_code == 200:
            # Only discovery answers and the registry's public keys: the same for any name.
            assert "ac-discovery" in path or "pubkeys" in path, where
        assert _normalise(secret.data, SECRET) == _normalise(missing.data, MISSING), where
        assert b"top secret" not in secret.data and OWNER_KEY.fingerprint.encode() not in secret.data
    # Listings and the pages above it do not mention it either.
    listing = registry.client.get("/_api/v1/repositories", headers=headers,
                                  base_url="http://127.0.0.1:8080")
    assert SECRET.encode() not in listing.data
    for page in ("/", "/hidden"):
        assert b"secret" not in registry.client.get(page, headers=headers,
                                                    base_url="http://127.0.0.1:8080").data
    assert registry.snapshot() == before


@pytest.mark.parametrize("scheme", ["bearer", "basic-token", "basic-password"])
def test_readers_see_it(registry, scheme):
    if scheme == "bearer":
        headers = {"Authorization": f"Bearer {registry.insider}"}
    elif scheme == "basic-token":
        headers = {"Authorization": "Basic " + base64.b64encode(f"insider:{registry.insider}".encode()).decode()}
    else:
        headers = {"Authorization": "Basic " + base64.b64encode(b"insider:password-123").decode()}
    base = "http://127.0.0.1:8080"
    image = registry.client.get(f"/_aci/{SECRET}/1.0/linux/amd64/image.aci", headers=headers, base_url=base)
    assert image.status_code == 200 and image.headers["Cache-Control"].startswith("private")
    assert registry.client.get(f"/_aci/{SECRET}/latest/linux/amd64/image.aci.asc", headers=headers,
                               base_url=base).status_code == 200
    page = registry.client.get("/hidden/secret", headers=headers, base_url=base)
    assert page.status_code == 200 and b"top secret" in page.data
    keys = registry.client.get(f"/_aci/pubkeys/{SECRET}/pubkeys.gpg", headers=headers, base_url=base)
    from registry.signing import read_public_keys

    assert OWNER_KEY.fingerprint in {k.fingerprint for k in read_public_keys(keys.data)}
    # Reading is not writing.
    denied = registry.client.delete(f"/_api/v1/repositories/{SECRET}/-/versions/1.0",
                                    headers=headers, base_url=base)
    assert denied.status_code == 403
