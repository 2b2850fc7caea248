"""Fixtures of the docker2aci tests: a sample OCI image and the same image as `docker save`."""

from __future__ import annotations

import shutil
from pathlib import Path

import oci_images
import pytest


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory: pytest.TempPathFactory) -> oci_images.OCIImage:
    """Two layers with a whiteout, an opaque dir and hard links; tagged v1."""
    layout = tmp_path_factory.mktemp("oci") / "sample"
    return oci_images.write_oci_layout(layout, oci_images.sample_layers(), tag="v1")


@pytest.fixture(scope="session")
def sample_archive(sample_image: oci_images.OCIImage,
                   tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same image written by skopeo as a `docker save` tarball."""
    if shutil.which("skopeo") is None:
        pytest.fail("skopeo missing: apt-get install skopeo")
    target = tmp_path_factory.mktemp("archive") / "sample.tar"
    return oci_images.to_docker_archive(sample_image, target, "example.com/tests/sample:v1")


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    target = tmp_path / "out"
    target.mkdir()
    return target
