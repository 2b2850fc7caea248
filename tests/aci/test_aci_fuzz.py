"""Robustness properties: damaged archives only ever raise ACIError (never a stray
IndexError or UnicodeError), extraction of them leaves nothing, and any tree written is
extracted back identically."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

from acitrees import MANIFEST, describe
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from registry.aci import ACIError, ImageManifest, extract_aci, read_aci, write_aci

SETTINGS = settings(deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate,
                                           Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.function_scoped_fixture])


def _sample_image(compression: str) -> bytes:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "rootfs"
        (root / "etc").mkdir(parents=True)
        (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n" * 20)
        (root / "bin").mkdir()
        (root / "bin" / "tool").write_bytes(bytes(range(256)) * 8)
        (root / "bin" / "link").symlink_to("tool")
        (root / ("long-" + "n" * 120)).write_text("x")
        buffer = io.BytesIO()
        write_aci(ImageManifest.from_dict(MANIFEST), root, buffer, compression=compression)
        return buffer.getvalue()


SAMPLES = {compression: _sample_image(compression) for compression in ("none", "gzip")}


@st.composite
def damaged(draw: st.DrawFn) -> bytes:
    data = bytearray(SAMPLES[draw(st.sampled_from(sorted(SAMPLES)))])
    for _ in range(draw(st.integers(1, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]
    return bytes(data)


@SETTINGS
@given(damaged())
def test_damaged_archives_raise_only_aci_errors(data: bytes) -> None:
    try:
        read_aci(io.BytesIO(data))
    except ACIError:
        pass
    with tempfile.TemporaryDirectory() as scratch:
        dest = Path(scratch) / "dest"
        try:
            extract_aci(io.BytesIO(data), dest)
        except ACIError:
            assert list(Path(scratch).iterdir()) == []
        else:
            shutil.rmtree(dest)


names = st.from_regex(r"[a-zA-Z0-9._ é-]{1,20}", fullmatch=True).filter(
    lambda n: n not in (".", ".."))
trees = st.recursive(
    st.binary(max_size=2000),
    lambda children: st.dictionaries(names, children, max_size=4),
    max_leaves=12,
)


def _materialize(root: Path, tree: dict) -> None:
    for name, node in tree.items():
        if isinstance(node, dict):
            (root / name).mkdir()
            _materialize(root / name, node)
        else:
            (root / name).write_bytes(node)


@settings(SETTINGS, max_examples=25)
@given(st.dictionaries(names, trees, max_size=5), st.sampled_from(["gzip", "none", "xz"]))
def test_written_trees_extract_identically(tree: dict, compression: str) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "rootfs"
        root.mkdir()
        _materialize(root, tree)
        image = Path(scratch) / "image.aci"
        image_id = write_aci(MANIFEST, root, image, compression=compression)
        info = extract_aci(image, Path(scratch) / "out")
        assert info.image_id == image_id
        assert describe(Path(scratch) / "out" / "rootfs") == describe(root)
