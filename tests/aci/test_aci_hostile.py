"""The hostile corpus (tests/hostile_archives.py): each archive gets its own error from
read_aci and extract_aci, the input is read to EOF, and extraction leaves nothing behind."""

from __future__ import annotations

import io
import os
import subprocess
from pathlib import Path

import pytest
from hostile_archives import HostileCase, build_corpus, case_names

from registry.aci import ACIError, extract_aci, read_aci

ESCAPE_MARKERS = ["/tmp/pyrkt-escaped", "/tmp/pyrkt-absolute", "/etc/pyrkt-owned"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, HostileCase]:
    return {case.name: case for case in build_corpus(tmp_path_factory.mktemp("hostile"))}


CASE_NAMES = case_names()


def test_corpus_is_broad(corpus: dict[str, HostileCase]) -> None:
    assert len(corpus) >= 20
    reasons = {case.reason for case in corpus.values()}
    for needed in ["path-traversal", "absolute-path", "link-escape", "device-node",
                   "duplicate-entry", "missing-manifest", "missing-rootfs", "extra-entry",
                   "truncated", "invalid-json", "invalid-manifest", "manifest-too-large",
                   "bomb", "not-tar", "empty"]:
        assert needed in reasons
    assert max(case.path.stat().st_size for case in corpus.values()) < 4 << 20


class CountingFile(io.RawIOBase):
    def __init__(self, path: Path) -> None:
        self._handle = open(path, "rb")
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.consumed += len(data)
        return data

    def close(self) -> None:
        self._handle.close()
        super().close()


@pytest.mark.parametrize("name", CASE_NAMES)
def test_read_aci_refuses_with_its_reason(corpus: dict[str, HostileCase], name: str) -> None:
    case = corpus[name]
    stream = CountingFile(case.path)
    try:
        if case.stage == "extract":
            assert read_aci(stream).image_id.startswith("sha512-")
        else:
            with pytest.raises(ACIError) as caught:
                read_aci(stream)
            assert caught.value.reason == case.reason, str(caught.value)
            assert case.message in str(caught.value)
        assert stream.consumed == case.path.stat().st_size  # read to EOF, even when refused
    finally:
        stream.close()


@pytest.mark.parametrize("name", CASE_NAMES)
@pytest.mark.parametrize("dest_state", ["absent", "empty-directory"])
def test_extraction_refuses_and_leaves_nothing(corpus: dict[str, HostileCase], name: str,
                                               dest_state: str, tmp_path: Path) -> None:
    case = corpus[name]
    dest = tmp_path / "dest"
    if dest_state == "empty-directory":
        dest.mkdir()
    with pytest.raises(ACIError) as caught:
        extract_aci(case.path, dest)
    assert caught.value.reason == case.reason, str(caught.value)
    assert case.message in str(caught.value)
    if dest_state == "absent":
        assert not dest.exists()
    else:
        assert list(dest.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir()] == ([] if dest_state == "absent" else ["dest"])
    for marker in ESCAPE_MARKERS:
        assert not os.path.lexists(marker)


def test_device_cases_extract_when_allowed(corpus: dict[str, HostileCase],
                                           tmp_path: Path) -> None:
    """The "extract" cases are well-formed: only the device rule refuses them."""
    fifo = corpus["fifo"]
    extract_aci(fifo.path, tmp_path / "fifo", allow_devices=True)
    assert (tmp_path / "fifo" / "rootfs" / "pipe").exists()


# Layout rules actool itself enforces: the reference tool must refuse these too.
ACTOOL_REFUSES = ["duplicate-entry", "missing-manifest", "missing-rootfs", "rootfs-is-file",
                  "extra-top-level", "invalid-json", "invalid-manifest", "truncated-gzip",
                  "not-tar", "empty-file"]


@pytest.mark.parametrize("name", ACTOOL_REFUSES)
def test_actool_agrees(corpus: dict[str, HostileCase], name: str, actool: str) -> None:
    result = subprocess.run([actool, "validate", str(corpus[name].path)], capture_output=True)
    assert result.returncode != 0
