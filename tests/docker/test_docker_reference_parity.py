"""docker2aci as the reference tool (v0.17.2): its flags in both spellings, its names, its
annotations with its values, its --nosquash file names (read from its main.go, lib/docker2aci.go,
lib/common/common.go and lib/internal/internal.go)."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner
from docker_v2_server import RegistryState, V2Registry

from registry.cli.docker import docker2aci
from registry.docker import parse_reference
from registry.docker.convert import ConvertOptions, convert
from registry.docker.reference import appc_name, reference_identifier


@pytest.fixture
def docker_config(tmp_path: Path) -> Path:
    """An empty Docker config: no credentials of the machine's user are read."""
    path = tmp_path / "docker-config.json"
    path.write_text("{}")
    return path


def _v1_ids(archive: Path) -> list[str]:
    """The archive's v1 layer IDs, bottom first, read with tarfile (not the code under test)."""
    with tarfile.open(archive) as tar:
        repositories = json.load(tar.extractfile("repositories"))  # type: ignore[arg-type]
        [tags] = repositories.values()
        top = tags["v1"]
        ids = []
        while top:
            ids.append(top)
            top = json.load(tar.extractfile(f"{top}/json")).get("parent")  # type: ignore[arg-type]
    return list(reversed(ids))


def _notes(manifest: dict) -> dict[str, str]:
    return {a["name"]: a["value"] for a in manifest["annotations"]}


@pytest.mark.parametrize(("reference", "name"), [
    ("127.0.0.1:5000/team/app:1.0", "127.0.0.1_5000/team/app"),
    ("busybox", "registry-1.docker.io/library/busybox"),
    ("example.com/team/my_app:2", "example.com/team/my_app"),
    ("localhost:5000/a/b", "localhost_5000/a/b"),
])
def test_names_as_the_reference_sanitizes_them(reference: str, name: str) -> None:
    assert appc_name(parse_reference(reference)) == name


def test_a_name_pyrkts_stricter_rule_refuses_falls_back() -> None:
    # Go would keep "a__b"; pyrkt's AC Identifier allows no doubled separator.
    assert reference_identifier("example.com/a__b") == "example.com/a-b"


def test_docker_save_archive_names_and_annotations(sample_archive: Path, out_dir: Path) -> None:
    ids = _v1_ids(sample_archive)
    assert len(ids) == 2
    [result] = convert(str(sample_archive), out_dir)
    manifest = result.manifest
    assert manifest["name"] == "tests/sample"  # not example.com/..., nor registry-1.docker.io/...
    assert result.path.name == "tests-sample-v1.aci"
    notes = _notes(manifest)
    # docker2aci v0.17.2's v1 mapping (GenerateManifest) of the top layer, squashed.
    assert notes == {
        "authors": "pyrkt tests <tests@example.com>",
        "created": "2024-05-06T07:08:09Z",
        "appc.io/docker/repository": "tests/sample",
        "appc.io/docker/imageid": ids[1],
        "appc.io/docker/parentimageid": ids[0],
        "appc.io/docker/manifesthash": ids[1],
        "appc.io/docker/entrypoint": '["/bin/hello"]',
        "appc.io/docker/cmd": '["first","second"]',
        "appc.io/docker/tag": "v1",
    }
    assert "appc.io/docker/registryurl" not in notes
    assert manifest["app"]["userLabels"] == {"org.opencontainers.image.source":
                                             "https://example.com/src"}


def test_nosquash_layer_files_of_an_archive(sample_archive: Path, out_dir: Path,
                                            actool_validate) -> None:
    ids = _v1_ids(sample_archive)
    lower, upper = convert(str(sample_archive), out_dir, ConvertOptions(squash=False))
    # IMAGENAME-TAG-OS-ARCH-N.aci, N counted from the top layer.
    assert lower.path.name == "tests-sample-v1-linux-amd64-1.aci"
    assert upper.path.name == "tests-sample-v1-linux-amd64-0.aci"
    assert lower.manifest["name"] == f"tests/sample-{ids[0]}"
    assert upper.manifest["name"] == f"tests/sample-{ids[1]}"
    # pyrkt's dependency names the layer below with labels it carries (the reference put the
    # depending layer's own `layer` label there, which no image has).
    [dependency] = upper.manifest["dependencies"]
    assert dependency["imageName"] == lower.manifest["name"]
    assert dependency["imageID"] == lower.image_id
    lower_labels = {label["name"]: label["value"] for label in lower.manifest["labels"]}
    assert all(lower_labels.get(label["name"]) == label["value"]
               for label in dependency["labels"])
    for result in (lower, upper):
        actool_validate(result.path)


def test_nosquash_layer_files_from_a_registry(sample_image, out_dir: Path, docker_config) -> None:
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        results = convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                          ConvertOptions(squash=False, docker_config=docker_config))
    host = registry.address
    for result, blob in zip(results, sample_image.layers, strict=True):
        # REGISTRY/REPOSITORY-DIGEST-TAG-OS-ARCH.aci, in subdirectories, as docker2aci wrote.
        assert result.path == out_dir / host / "tests" / f"sample-{blob.digest}-v1-linux-amd64.aci"
        assert result.manifest["name"] == (f"{host.replace(':', '_')}/tests/sample-"
                                           f"{blob.digest.replace(':', '_')}")


def test_the_reference_flags_in_both_spellings(sample_archive: Path, tmp_path: Path) -> None:
    single = tmp_path / "single" / "made"  # -o creates a missing directory
    result = CliRunner().invoke(docker2aci, ["-nosquash", "-compression=none", "-debug",
                                             "-image", "example.com/tests/sample:v1",
                                             "-insecure-skip-verify", "-insecure-allow-http",
                                             "-o", str(single), str(sample_archive)])
    assert result.exit_code == 0, result.output
    assert "Getting image info..." in result.stderr
    names = sorted(p.name for p in single.iterdir())
    assert names == ["tests-sample-v1-linux-amd64-0.aci", "tests-sample-v1-linux-amd64-1.aci"]
    assert not (single / names[0]).read_bytes().startswith(b"\x1f\x8b")  # -compression=none
    double = tmp_path / "double"
    again = CliRunner().invoke(docker2aci, ["--nosquash", "--compression", "none", "--debug",
                                            "--image", "example.com/tests/sample:v1",
                                            "--insecure-skip-verify", "--insecure-allow-http",
                                            "--output", str(double), str(sample_archive)])
    assert again.exit_code == 0, again.output
    assert sorted(p.name for p in double.iterdir()) == names
    assert (single / names[0]).read_bytes() == (double / names[0]).read_bytes()
    for flag in ("-version", "--version"):
        shown = CliRunner().invoke(docker2aci, [flag])
        assert shown.output.startswith("docker2aci version ") and "appc version" in shown.output


def test_image_is_for_files_only(out_dir: Path) -> None:
    result = CliRunner().invoke(docker2aci, ["-image", "x", "docker://busybox", "-o", str(out_dir)])
    assert result.exit_code == 1 and "--image works only with files" in result.output


def test_an_output_path_that_is_a_file_is_refused(sample_archive: Path, tmp_path: Path) -> None:
    taken = tmp_path / "taken"
    taken.write_text("x")
    result = CliRunner().invoke(docker2aci, [str(sample_archive), "-o", str(taken)])
    assert result.exit_code == 1 and "is not a directory" in result.output


def _pyrkt_fetch(tmp_path: Path, image: Path):  # type: ignore[no-untyped-def]
    from registry.cli.main import pyrkt

    dirs = ["--dir", str(tmp_path / "store"), "--local-config", str(tmp_path / "etc"),
            "--user-config", str(tmp_path / "user"), "--system-config", str(tmp_path / "sys")]
    return CliRunner().invoke(pyrkt, [*dirs, "--insecure-options=image", "fetch", str(image)])


def test_a_top_layer_without_its_base_says_which_file_to_fetch(sample_archive: Path,
                                                               out_dir: Path,
                                                               tmp_path: Path) -> None:
    lower, upper = convert(str(sample_archive), out_dir, ConvertOptions(squash=False))
    refused = _pyrkt_fetch(tmp_path, upper.path)
    assert refused.exit_code == 254
    assert f"needs the layer {lower.manifest['name']}" in refused.output
    assert f"pyrkt fetch --insecure-options=image {lower.path}" in refused.output
    assert "Traceback" not in refused.output
    assert _pyrkt_fetch(tmp_path, lower.path).exit_code == 0
    fetched = _pyrkt_fetch(tmp_path, upper.path)
    assert fetched.exit_code == 0, fetched.output


def test_the_hint_finds_registry_layer_files_too(sample_image, out_dir: Path, docker_config,
                                                 tmp_path: Path) -> None:
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        lower, upper = convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                               ConvertOptions(squash=False, docker_config=docker_config))
    refused = _pyrkt_fetch(tmp_path, upper.path)
    assert refused.exit_code == 254
    assert f"pyrkt fetch --insecure-options=image {lower.path}" in refused.output
