"""The `docker2aci` command (also `pyrkt docker2aci`): arguments in, files and messages out."""

from __future__ import annotations

import subprocess
import sys

import oci_images
from click.testing import CliRunner

from registry.cli.docker import docker2aci
from registry.cli.main import pyrkt


def test_converts_into_the_output_directory(sample_image, out_dir, actool_validate):
    result = CliRunner().invoke(docker2aci, [str(sample_image.layout), "-o", str(out_dir),
                                             "--compression", "none"])
    assert result.exit_code == 0, result.output
    aci = out_dir / "sample-v1.aci"
    # docker2aci's report: converted volumes and ports, then the files, one a line.
    assert result.output.endswith(f"\nGenerated ACI(s):\n{aci}\n"), result.output
    assert '\tname: "volume-data", path: "/data", readOnly: false' in result.output
    assert '\tname: "80-tcp", protocol: "tcp", port: 80, count: 1, socketActivated: false' \
        in result.output
    assert oci_images.rootfs_listing(aci) == oci_images.SAMPLE_ROOTFS
    actool_validate(aci)


def test_pyrkt_subcommand_and_nosquash(sample_archive, out_dir):
    result = CliRunner().invoke(pyrkt, ["docker2aci", "--nosquash", str(sample_archive),
                                        "--output", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert len(list(out_dir.glob("tests-sample-*.aci"))) == 2


def test_errors_are_one_clear_line(tmp_path, out_dir):
    result = CliRunner().invoke(docker2aci, [str(tmp_path / "missing"), "-o", str(out_dir)])
    assert result.exit_code == 1
    assert "Error: " in result.output and "no such file" in result.output
    bad = CliRunner().invoke(docker2aci, ["docker://UPPER", "-o", str(out_dir)])
    assert bad.exit_code == 1 and "bad repository name" in bad.output


def test_console_script_runs(sample_image, out_dir):
    process = subprocess.run([sys.executable, "-c", "from registry.cli.docker import docker2aci;"
                              " docker2aci()", str(sample_image.layout), "-o", str(out_dir)],
                             capture_output=True, text=True)
    assert process.returncode == 0, process.stderr
    assert (out_dir / "sample-v1.aci").exists()


def test_version_and_examples():
    for flag in ("--version", "-version"):
        version = CliRunner().invoke(docker2aci, [flag])
        assert version.exit_code == 0 and version.output.startswith("docker2aci version ")
        assert "\nappc version 0.8.11\n" in version.output
    helped = CliRunner().invoke(docker2aci, ["--help"])
    assert "Examples:" in helped.output and "docker2aci docker://" in helped.output
