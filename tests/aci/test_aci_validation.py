"""The one validation path (registry.aci): manifest shape bounds before any JSON parser, the
hostable name and version rules, Linux's path limits."""

from __future__ import annotations

import json
import time

import pytest
from hostile_archives import NESTED_MANIFEST, aci_bytes

from registry.aci import (
    MAX_MANIFEST_DEPTH,
    ArchiveError,
    ImageManifest,
    ManifestError,
    PodManifest,
    check_hostable,
    check_image_name,
    check_length,
    check_version,
    decode_json,
    extract_aci,
    read_aci,
)

BASE = {"acKind": "ImageManifest", "acVersion": "0.8.11", "name": "example.com/app"}


def _nested(depth: int) -> bytes:
    """A manifest (an object: level 1) whose key `x` holds arrays, `depth` levels in all."""
    inner = "1"
    for _ in range(depth - 1):
        inner = f"[{inner}]"
    return json.dumps(BASE)[:-1].encode() + f', "x": {inner}}}'.encode()


@pytest.mark.parametrize("parse", [ImageManifest.from_json, PodManifest.from_json,
                                   lambda data: decode_json(data, "manifest")])
def test_deep_json_is_refused_before_the_parser(parse) -> None:
    started = time.monotonic()
    with pytest.raises(ManifestError) as caught:
        parse(NESTED_MANIFEST)
    assert caught.value.reason == "manifest-too-deep"
    assert f"nested deeper than {MAX_MANIFEST_DEPTH} levels" in str(caught.value)
    assert time.monotonic() - started < 1.0


def test_the_depth_bound_is_exact_and_strings_do_not_count() -> None:
    assert decode_json(_nested(MAX_MANIFEST_DEPTH), "m")["x"]
    with pytest.raises(ManifestError, match="nested deeper"):
        decode_json(_nested(MAX_MANIFEST_DEPTH + 1), "m")
    # Brackets and escaped quotes inside strings are text, not nesting.
    text = json.dumps(dict(BASE, notes='[[[{{{ \\" ' * 1000)).encode()
    assert decode_json(text, "m")["notes"].startswith("[[[{{{")


def test_hostile_shapes_stay_linear() -> None:
    for data in (b'"\\"' * 300_000, b'"' + b"a" * 900_000 + b"\\", b"[" * 900_000):
        started = time.monotonic()
        with pytest.raises(ManifestError):
            decode_json(data, "m")
        assert time.monotonic() - started < 2.0


def test_oversized_json_is_refused_by_size() -> None:
    big = json.dumps(dict(BASE, pad="x" * (1 << 20))).encode()
    with pytest.raises(ManifestError) as caught:
        ImageManifest.from_json(big)
    assert caught.value.reason == "manifest-too-large"


def test_read_and_extract_refuse_a_deep_manifest_with_a_clear_error(tmp_path) -> None:
    aci = tmp_path / "deep.aci"
    aci.write_bytes(aci_bytes(NESTED_MANIFEST))
    for action in (lambda: read_aci(aci), lambda: extract_aci(aci, tmp_path / "out")):
        with pytest.raises(ManifestError) as caught:
            action()
        assert caught.value.reason == "manifest-too-deep"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", ["127.0.0.1/../../etc", "example.com//app", "../etc",
                                  "Example.com/app", "a" * 513, ""])
def test_names_a_registry_cannot_host(name: str) -> None:
    with pytest.raises(ManifestError) as caught:
        check_image_name(name)
    assert caught.value.reason == "bad-name"


@pytest.mark.parametrize("version", ["../../../x", "1.0/../x", ".hidden", "-1", "a" * 129, "",
                                     "1 0", "v1\n"])
def test_versions_a_registry_cannot_serve(version: str) -> None:
    with pytest.raises(ManifestError) as caught:
        check_version(version)
    assert caught.value.reason == "bad-version"


def test_hostable_images() -> None:
    check_hostable("example.com/team/app", {"version": "1.2.3-rc.1+build_7", "os": "linux"})
    check_hostable("example.com/app", {})  # no version label: nothing to check
    with pytest.raises(ManifestError, match="version label"):
        check_hostable("example.com/app", {"version": "../../../x"})


def test_linux_path_limits() -> None:
    check_length("rootfs/" + "n" * 255)
    check_length("rootfs/" + "/".join(["d" * 200] * 20))  # 4,026 bytes
    with pytest.raises(ArchiveError, match="component of 256 bytes") as caught:
        check_length("rootfs/" + "n" * 256)
    assert caught.value.reason == "path-too-long"
    with pytest.raises(ArchiveError, match="longer than the 4095") as caught:
        check_length("rootfs/" + "/".join(["d" * 200] * 21))
    assert caught.value.reason == "path-too-long"
    # Bytes, not characters: 128 two-byte characters are 256 bytes.
    with pytest.raises(ArchiveError, match="component of 256 bytes"):
        check_length("rootfs/" + "é" * 128)
