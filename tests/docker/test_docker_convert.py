"""Converting local Docker/OCI images: squashed rootfs, manifest mapping, --nosquash chains."""

from __future__ import annotations

import gzip
import hashlib
import tarfile
from pathlib import Path

import oci_images
import pytest

from registry.docker.convert import ConvertOptions, convert


def test_oci_layout_squashes_whiteouts_opaque_dirs_and_hard_links(sample_image, out_dir,
                                                                   actool_validate):
    [result] = convert(str(sample_image.layout), out_dir)
    assert result.path == out_dir / "sample-v1.aci"
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS
    actool_validate(result.path)
    assert sorted(p.name for p in out_dir.iterdir()) == [result.path.name]


def test_docker_save_archive_converts_to_the_same_rootfs(sample_image, sample_archive, out_dir,
                                                         actool_validate):
    [from_layout] = convert(str(sample_image.layout), out_dir)
    [from_archive] = convert(str(sample_archive), out_dir)
    assert from_archive.path.name == "tests-sample-v1.aci"
    assert oci_images.rootfs_listing(from_archive.path) == oci_images.rootfs_listing(from_layout.path)
    actool_validate(from_archive.path)
    # docker2aci v0.17.2 names an archive's image by its repository alone (no registry), and
    # with --image by the reference given (registry included).
    assert from_archive.manifest["name"] == "tests/sample"
    assert from_archive.manifest["app"] == from_layout.manifest["app"]
    [named] = convert(str(sample_archive), out_dir,
                      ConvertOptions(image="example.com/tests/sample:v1"))
    assert named.manifest["name"] == "example.com/tests/sample"
    notes = {a["name"]: a["value"] for a in named.manifest["annotations"]}
    assert notes["appc.io/docker/registryurl"] == "example.com"
    assert notes["appc.io/docker/originalname"] == "example.com/tests/sample:v1"


def test_oci_layout_inside_a_tar(sample_image, tmp_path, out_dir):
    packed = tmp_path / "layout.tar"
    with tarfile.open(packed, "w") as tar:
        tar.add(sample_image.layout, arcname=".")
    [result] = convert(str(packed), out_dir)
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS


def test_manifest_is_mapped_field_by_field(sample_image, out_dir):
    [result] = convert(str(sample_image.layout), out_dir)
    manifest = oci_images.aci_manifest(result.path)
    assert manifest == result.manifest
    assert manifest["acKind"] == "ImageManifest"
    assert manifest["acVersion"] == "0.8.11"
    assert manifest["name"] == "sample"  # a local layout: no registry invented for it
    assert manifest["labels"] == [{"name": "version", "value": "v1"},
                                  {"name": "os", "value": "linux"},
                                  {"name": "arch", "value": "amd64"}]
    app = manifest["app"]
    assert app["exec"] == ["/bin/hello", "first", "second"]
    assert (app["user"], app["group"]) == ("1000", "100")
    assert app["workingDirectory"] == "/data"
    assert app["environment"] == [{"name": "PATH", "value": "/usr/local/bin:/usr/bin:/bin"},
                                  {"name": "GREETING", "value": "hello world"}]
    assert app["ports"] == [
        {"name": "53-udp", "protocol": "udp", "port": 53, "count": 1, "socketActivated": False},
        {"name": "80-tcp", "protocol": "tcp", "port": 80, "count": 1, "socketActivated": False}]
    assert app["mountPoints"] == [
        {"name": "volume-data", "path": "/data", "readOnly": False},
        {"name": "volume-var-cache-app", "path": "/var/cache/app", "readOnly": False}]
    assert app["userLabels"] == {"org.opencontainers.image.source": "https://example.com/src"}
    notes = {a["name"]: a["value"] for a in manifest["annotations"]}
    # docker2aci v0.17.2's v2.2 mapping (GenerateManifestV22), values included.
    assert notes == {
        "author": "pyrkt tests <tests@example.com>",
        "created": "2024-05-06T07:08:09.123456789Z",
        "appc.io/docker/originalname": "sample:v1",
        "appc.io/docker/repository": "sample",
        "appc.io/docker/imageid": sample_image.layers[-1].digest,
        "appc.io/docker/manifesthash": sample_image.manifest.digest,
        "appc.io/docker/entrypoint": '["/bin/hello"]',
        "appc.io/docker/cmd": '["first","second"]',
    }
    assert "dependencies" not in manifest and "pathWhitelist" not in manifest


def test_defaults_user_group_and_arch_names(tmp_path, out_dir, actool_validate):
    image = oci_images.write_oci_layout(
        tmp_path / "armimg", [[oci_images.file("x", "x")]], tag="latest",
        runtime={"Cmd": ["/x"]}, architecture="arm", variant="v7")
    [result] = convert(str(image.layout), out_dir)
    manifest = result.manifest
    assert manifest["app"] == {"exec": ["/x"], "user": "0", "group": "0"}
    assert {"name": "arch", "value": "armv7l"} in manifest["labels"]
    actool_validate(result.path)


def test_image_id_is_the_sha512_of_the_uncompressed_tar(sample_image, out_dir):
    [result] = convert(str(sample_image.layout), out_dir)
    with gzip.open(result.path, "rb") as stream:
        assert result.image_id == "sha512-" + hashlib.sha512(stream.read()).hexdigest()


@pytest.mark.parametrize("compression,magic", [("none", b"manifest"), ("xz", b"\xfd7zXZ"),
                                               ("bzip2", b"BZh")])
def test_compression_choices(sample_image, out_dir, compression, magic, actool_validate):
    [result] = convert(str(sample_image.layout), out_dir, ConvertOptions(compression=compression))
    assert result.path.read_bytes().startswith(magic)
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS
    actool_validate(result.path)


def test_nosquash_writes_a_dependency_chain(sample_image, out_dir, actool_validate):
    results = convert(str(sample_image.layout), out_dir, ConvertOptions(squash=False))
    assert len(results) == 2
    lower, upper = results
    for result, blob in zip(results, sample_image.layers, strict=True):
        hexpart = blob.digest.split(":")[1]
        # docker2aci v0.17.2's names: REPOSITORY-DIGEST-TAG-OS-ARCH.aci, sanitized name.
        assert result.path.name == f"sample-sha256:{hexpart}-v1-linux-amd64.aci"
        assert result.manifest["name"] == f"sample-sha256_{hexpart}"
        assert {"name": "layer", "value": hexpart} in result.manifest["labels"]
        actool_validate(result.path)
    assert "dependencies" not in lower.manifest and "app" not in lower.manifest
    [dependency] = upper.manifest["dependencies"]
    assert dependency["imageName"] == lower.manifest["name"]
    assert dependency["imageID"] == lower.image_id
    assert upper.manifest["app"]["exec"] == ["/bin/hello", "first", "second"]
    # appc has no whiteouts: the top image's whitelist says what survives rendering.
    whitelist = upper.manifest["pathWhitelist"]
    assert "/gone.txt" not in whitelist and "/opq/old1" not in whitelist
    assert "/data/a.txt" in whitelist and "/opq/new" in whitelist
    assert set(whitelist) == {"/" + p for p in oci_images.SAMPLE_ROOTFS}
    upper_files = oci_images.rootfs_listing(upper.path)
    assert not any(".wh." in path for path in upper_files)
    assert upper_files["data/c-link"] == ("hardlink", "data/c.txt")
    assert oci_images.rootfs_listing(lower.path)["opq/old1"] == ("file", "old 1\n")


def test_multi_platform_layout_picks_the_host_platform(sample_image, tmp_path, out_dir):
    layout = oci_images.multi_platform_copy(sample_image, tmp_path / "multi", tag="v1",
                                            other_architecture="s390x")
    [result] = convert(str(layout), out_dir, ConvertOptions(image="v1"))
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS


def test_output_is_readable_by_the_format_core(sample_image, out_dir):
    from registry.aci import read_aci

    [result] = convert(str(sample_image.layout), out_dir)
    with Path(result.path).open("rb") as stream:
        info = read_aci(stream)
    assert info.image_id == result.image_id
    assert info.manifest.name == "sample"


def test_image_from_stored_blobs_for_the_server(sample_image, out_dir, actool_validate):
    from registry.docker.convert import convert_squashed
    from registry.docker.reference import parse_reference
    from registry.docker.stored import image_from_blobs

    opened: list[str] = []

    def open_blob(digest: str):
        opened.append(digest)
        return sample_image.blob_path(digest).open("rb")

    manifest = sample_image.blob_path(sample_image.manifest.digest).read_bytes()
    image = image_from_blobs(parse_reference("127.0.0.1:5000/tests/sample:v1"), manifest, open_blob)
    assert image.manifest_digest == sample_image.manifest.digest
    result = convert_squashed(image, out_dir / "pushed.aci")
    assert oci_images.rootfs_listing(result.path) == oci_images.SAMPLE_ROOTFS
    assert result.manifest["name"] == "127.0.0.1_5000/tests/sample"  # docker2aci (Go) writes _
    actool_validate(result.path)
    assert sample_image.config.digest in opened


@pytest.mark.parametrize("ref_name,name,filename", [
    ("v1", "sample", "sample-v1.aci"),                     # a tag: the directory names it
    ("myapp:v2", "myapp", "myapp-v2.aci"),                 # a short name: no Docker Hub
    ("team/app:3", "team/app", "team-app-3.aci"),
    ("example.com/team/app:1", "example.com/team/app", "team-app-1.aci"),  # a full name
])
def test_local_layouts_are_named_without_inventing_a_registry(sample_image, tmp_path, out_dir,
                                                              ref_name, name, filename) -> None:
    import json
    import shutil

    layout = tmp_path / "sample"
    shutil.copytree(sample_image.layout, layout)
    index = json.loads((layout / "index.json").read_text())
    index["manifests"][0]["annotations"] = {"org.opencontainers.image.ref.name": ref_name}
    (layout / "index.json").write_text(json.dumps(index))
    [result] = convert(str(layout), out_dir)
    assert result.manifest["name"] == name
    assert result.path.name == filename
    assert "docker.io" not in json.dumps(result.manifest)


def test_an_unknown_image_lists_what_the_layout_and_archive_hold(sample_image, sample_archive,
                                                                 out_dir) -> None:
    from registry.docker.errors import DockerError

    with pytest.raises(DockerError) as caught:
        convert(str(sample_image.layout), out_dir, ConvertOptions(image="nosuch"))
    assert "no image named 'nosuch'; it holds v1" in str(caught.value)
    with pytest.raises(DockerError) as caught:
        convert(str(sample_archive), out_dir, ConvertOptions(image="nosuch"))
    assert "no image 'nosuch'; it holds example.com/tests/sample:v1" in str(caught.value)
