"""Reference parsing and the small mapping rules docker2aci defined."""

from __future__ import annotations

import pytest

from registry.docker.credentials import credentials_for
from registry.docker.errors import DockerError
from registry.docker.manifest import appc_os_arch, parse_user
from registry.docker.reference import (
    appc_name,
    output_filename,
    parse_reference,
    sanitize_identifier,
)


@pytest.mark.parametrize("text,registry,repository,tag,digest", [
    ("docker://busybox", "registry-1.docker.io", "library/busybox", "latest", None),
    ("busybox:1.36", "registry-1.docker.io", "library/busybox", "1.36", None),
    ("docker.io/user/app", "registry-1.docker.io", "user/app", "latest", None),
    ("quay.io/coreos/etcd:v3.5", "quay.io", "coreos/etcd", "v3.5", None),
    ("localhost:5000/a/b", "localhost:5000", "a/b", "latest", None),
    ("127.0.0.1:5000/app@sha256:" + "a" * 64, "127.0.0.1:5000", "app", None, "sha256:" + "a" * 64),
])
def test_parse_reference(text, registry, repository, tag, digest):
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)


@pytest.mark.parametrize("text", ["", "UPPER/case", "app:bad tag", "app@sha256:short",
                                  "a//b", "app:" + "x" * 200])
def test_bad_references(text):
    with pytest.raises(DockerError) as caught:
        parse_reference(text)
    assert caught.value.reason == "bad-reference"


def test_names_and_file_names():
    ref = parse_reference("docker://busybox")
    assert appc_name(ref) == "registry-1.docker.io/library/busybox"
    assert output_filename(ref) == "library-busybox-latest.aci"
    local = parse_reference("127.0.0.1:5000/my__app/x:v1")
    assert appc_name(local) == "127.0.0.1-5000/my-app/x"
    assert sanitize_identifier("Foo_Bar..baz/") == "foo-bar.baz"


@pytest.mark.parametrize("platform,expected", [
    (("linux", "amd64", ""), ("linux", "amd64")),
    (("linux", "arm64", "v8"), ("linux", "aarch64")),
    (("linux", "arm", "v7"), ("linux", "armv7l")),
    (("linux", "arm", "v6"), ("linux", "armv6l")),
    (("linux", "386", ""), ("linux", "i386")),
    (("linux", "ppc64le", ""), ("linux", "ppc64le")),
    (("linux", "s390x", ""), ("linux", "s390x")),
])
def test_os_arch_mapping(platform, expected):
    assert appc_os_arch(*platform) == expected


def test_unknown_platform_is_an_error():
    with pytest.raises(DockerError, match="no appc name"):
        appc_os_arch("windows", "amd64")


@pytest.mark.parametrize("user,expected", [("", ("0", "0")), ("nobody", ("nobody", "0")),
                                           ("1000:100", ("1000", "100")), (":5", ("0", "5"))])
def test_user_and_group(user, expected):
    assert parse_user(user) == expected


def test_docker_config_credentials(tmp_path):
    import base64
    import json

    config = tmp_path / "config.json"
    config.write_text(json.dumps({"auths": {
        "https://index.docker.io/v1/": {"auth": base64.b64encode(b"hub:pw").decode()},
        "registry.example.com:5000": {"username": "u", "password": "p"}}}))
    assert credentials_for("registry-1.docker.io", config) == ("hub", "pw")
    assert credentials_for("registry.example.com:5000", config) == ("u", "p")
    assert credentials_for("other.example.com", config) is None
    assert credentials_for("x", tmp_path / "missing.json") is None
