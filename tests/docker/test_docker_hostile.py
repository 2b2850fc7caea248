"""Hostile or broken images: clear errors, and nothing left in the output directory."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import oci_images
import pytest

from registry.docker.convert import ConvertOptions, convert
from registry.docker.errors import DockerError


def _convert_fails(source: Path, out_dir: Path, reason: str, match: str,
                   options: ConvertOptions | None = None) -> None:
    with pytest.raises(DockerError, match=match) as caught:
        convert(str(source), out_dir, options)
    assert caught.value.reason == reason
    assert list(out_dir.iterdir()) == [], "a failed conversion left files behind"


@pytest.mark.parametrize("squash", [True, False])
@pytest.mark.parametrize("entries,reason,match", [
    # The format core's rules and reason codes, as for an ACI's rootfs/ (registry.aci.paths).
    ([oci_images.file("../escape", "x")], "path-traversal", r"path traversal \('..'\)"),
    ([oci_images.file("a/../../escape", "x")], "path-traversal", r"path traversal \('..'\)"),
    ([oci_images.file("ok", "x"), oci_images.hardlink("link", "../../etc/shadow")],
     "link-escape", "hard link to '../../etc/shadow' points outside"),
    ([oci_images.file("dir/.wh...", "")], "path-traversal", "whiteout"),
])
def test_paths_escaping_the_root_are_refused(tmp_path, out_dir, entries, reason, match, squash):
    image = oci_images.write_oci_layout(tmp_path / "evil", [[oci_images.file("base", "b")], entries])
    _convert_fails(image.layout, out_dir, reason, match, ConvertOptions(squash=squash))


def test_layer_digest_mismatch(sample_image, tmp_path, out_dir):
    layout = tmp_path / "tampered"
    shutil.copytree(sample_image.layout, layout)
    blob = layout / "blobs" / "sha256" / sample_image.layers[1].digest.split(":")[1]
    # Same uncompressed content, different compressed bytes: the blob digest must catch it.
    import gzip

    raw = gzip.decompress(blob.read_bytes())
    blob.write_bytes(gzip.compress(raw, compresslevel=9, mtime=1))
    _convert_fails(layout, out_dir, "digest-mismatch", "digest mismatch")


def test_uncompressed_content_not_matching_the_config_diff_id(sample_image, tmp_path, out_dir):
    layout = tmp_path / "tampered"
    shutil.copytree(sample_image.layout, layout)
    config_path = layout / "blobs" / "sha256" / sample_image.config.digest.split(":")[1]
    config = json.loads(config_path.read_text())
    config["rootfs"]["diff_ids"][0] = "sha256:" + "1" * 64
    body = json.dumps(config).encode()
    import hashlib

    new_digest = hashlib.sha256(body).hexdigest()
    (layout / "blobs" / "sha256" / new_digest).write_bytes(body)
    manifest_path = layout / "blobs" / "sha256" / sample_image.manifest.digest.split(":")[1]
    manifest = json.loads(manifest_path.read_text())
    manifest["config"]["digest"] = f"sha256:{new_digest}"
    manifest_body = json.dumps(manifest).encode()
    manifest_digest = hashlib.sha256(manifest_body).hexdigest()
    (layout / "blobs" / "sha256" / manifest_digest).write_bytes(manifest_body)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["digest"] = f"sha256:{manifest_digest}"
    (layout / "index.json").write_text(json.dumps(index))
    _convert_fails(layout, out_dir, "digest-mismatch", r"\(uncompressed\): digest mismatch")


def test_tampered_manifest_blob(sample_image, tmp_path, out_dir):
    layout = tmp_path / "tampered"
    shutil.copytree(sample_image.layout, layout)
    manifest_path = layout / "blobs" / "sha256" / sample_image.manifest.digest.split(":")[1]
    manifest_path.write_text(manifest_path.read_text() + " ")
    _convert_fails(layout, out_dir, "digest-mismatch", "digest mismatch")


def test_manifest_over_the_size_limit(sample_image, tmp_path, out_dir):
    layout = tmp_path / "huge"
    shutil.copytree(sample_image.layout, layout)
    index = json.loads((layout / "index.json").read_text())
    index["padding"] = "x" * (5 * 1024 * 1024)
    (layout / "index.json").write_text(json.dumps(index))
    _convert_fails(layout, out_dir, "too-large", "larger than")


def test_truncated_layer(sample_image, tmp_path, out_dir):
    layout = tmp_path / "truncated"
    shutil.copytree(sample_image.layout, layout)
    blob = layout / "blobs" / "sha256" / sample_image.layers[0].digest.split(":")[1]
    blob.write_bytes(blob.read_bytes()[:100])
    with pytest.raises(DockerError) as caught:
        convert(str(layout), out_dir)
    # The format core's stream error (registry.aci), or the digest of what was read.
    assert caught.value.reason in ("truncated", "digest-mismatch")
    assert list(out_dir.iterdir()) == []


def test_docker_save_layer_path_escaping_the_archive(sample_archive, tmp_path, out_dir):
    import tarfile

    hostile = tmp_path / "hostile.tar"
    with tarfile.open(sample_archive) as src, tarfile.open(hostile, "w") as dst:
        for member in src:
            data = src.extractfile(member) if member.isfile() else None
            if member.name == "manifest.json":
                assert data is not None
                entries = json.loads(data.read())
                entries[0]["Layers"][0] = "../../../etc/passwd"
                body = json.dumps(entries).encode()
                member.size = len(body)
                import io

                data = io.BytesIO(body)
            dst.addfile(member, data)
    _convert_fails(hostile, out_dir, "path-traversal", "escapes the archive")


def test_not_an_image(tmp_path, out_dir):
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"not a tar at all" * 100)
    _convert_fails(junk, out_dir, "bad-manifest", "not a tar archive")
    _convert_fails(tmp_path / "missing", out_dir, "not-found", "no such file")


def test_cross_layer_hard_link_is_refused(tmp_path, out_dir):
    image = oci_images.write_oci_layout(tmp_path / "x", [[oci_images.file("a", "a")],
                                                         [oci_images.hardlink("b", "a")]])
    # As in an ACI: a hard link must name an earlier file of the same archive (layer).
    _convert_fails(image.layout, out_dir, "link-escape", "hard link to 'a', which is not an"
                   " earlier file")
