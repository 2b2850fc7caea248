"""Fixtures of the /v2/ tests: one live gunicorn registry per module, a sample OCI layout."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import oci_images
import pytest
from live_registry import LiveRegistry
from v2_client import V2


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveRegistry]:
    with LiveRegistry(tmp_path_factory.mktemp("oci-registry"), workers=2) as live:
        yield live


@pytest.fixture(scope="module")
def v2(registry: LiveRegistry) -> V2:
    return V2(registry, registry.token)


@pytest.fixture(scope="module")
def anonymous(registry: LiveRegistry) -> V2:
    return V2(registry, None)


@pytest.fixture(scope="session")
def sample_image(tmp_path_factory: pytest.TempPathFactory) -> oci_images.OCIImage:
    """Two layers with whiteouts, an opaque directory and hard links (tests/oci_images.py)."""
    layout: Path = tmp_path_factory.mktemp("oci-layout") / "layout"
    return oci_images.write_oci_layout(layout, oci_images.sample_layers(), tag="v1")
