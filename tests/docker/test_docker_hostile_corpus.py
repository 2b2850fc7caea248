"""The hostile ACI corpus (tests/hostile_archives.py) as Docker layers: each archive whose
entries or stream break a rule is put, byte for byte, as the layer of an OCI layout and of a
`docker save` archive; docker2aci refuses it with the reason code the format core gives the
ACI itself, names the rule in its message, and leaves no file behind."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest
from hostile_archives import LAYER_CASES, HostileCase, build_corpus, case_names

from registry.docker import ConvertOptions, DockerError, convert

CONFIG = {"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/true"]},
          "rootfs": {"type": "layers", "diff_ids": []}}  # diff_ids unknown: broken streams
LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HostileCase]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("hostile"))}


def _blob(layout: Path, data: bytes) -> dict[str, object]:
    digest = hashlib.sha256(data).hexdigest()
    target = layout / "blobs" / "sha256" / digest
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def oci_layout_with_layer(layout: Path, layer: bytes) -> Path:
    layout.mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    config = dict(_blob(layout, json.dumps(CONFIG).encode()),
                  mediaType="application/vnd.oci.image.config.v1+json")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config, "layers": [dict(_blob(layout, layer),
                                                  mediaType=LAYER_MEDIA_TYPE)]}
    descriptor = dict(_blob(layout, json.dumps(manifest).encode()),
                      mediaType="application/vnd.oci.image.manifest.v1+json",
                      annotations={"org.opencontainers.image.ref.name": "v1"})
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2,
                                                   "manifests": [descriptor]}))
    return layout


def docker_save_with_layer(archive: Path, layer: bytes) -> Path:
    members = {
        "manifest.json": json.dumps([{"Config": "config.json", "Layers": ["layer/layer.tar"],
                                      "RepoTags": ["example.com/hostile:v1"]}]).encode(),
        "config.json": json.dumps(CONFIG).encode(),
        "layer/layer.tar": layer,
    }
    with tarfile.open(archive, "w") as out:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    return archive


LAYER_CASE_NAMES = [name for name in case_names() if name in LAYER_CASES]


def test_the_layer_corpus_covers_every_rule_family() -> None:
    assert len(LAYER_CASE_NAMES) >= 20
    assert LAYER_CASES <= set(case_names())


@pytest.mark.parametrize("squash", [True, False], ids=["squash", "nosquash"])
@pytest.mark.parametrize("source", ["oci-layout", "docker-save"])
@pytest.mark.parametrize("name", LAYER_CASE_NAMES)
def test_hostile_layer_is_refused_with_the_aci_reason(corpus, tmp_path, name, source,
                                                      squash) -> None:
    case = corpus[name]
    layer = case.path.read_bytes()
    image = oci_layout_with_layer(tmp_path / "layout", layer) if source == "oci-layout" \
        else docker_save_with_layer(tmp_path / "saved.tar", layer)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(DockerError) as caught:
        convert(str(image), out, ConvertOptions(squash=squash))
    assert caught.value.reason == case.reason, (name, str(caught.value))
    assert case.message in str(caught.value)
    assert str(caught.value).startswith("layer "), "the message names the layer"
    assert list(out.iterdir()) == [], "a refused conversion left files behind"


def test_a_valid_layer_in_the_same_wrapping_converts(tmp_path) -> None:
    """The wrapping itself is sound: a well-formed layer in it converts."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as layer:
        info = tarfile.TarInfo("hello")
        info.size = 6
        layer.addfile(info, io.BytesIO(b"hello\n"))
    for image in (oci_layout_with_layer(tmp_path / "layout", buffer.getvalue()),
                  docker_save_with_layer(tmp_path / "saved.tar", buffer.getvalue())):
        out = tmp_path / f"out-{image.name}"
        out.mkdir()
        [result] = convert(str(image), out)
        assert result.path.exists()
