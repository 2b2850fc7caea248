"""registry.aci loads lazily, and computing an image ID loads only what hashing needs.

Computing an image ID is a whole process of its own (`pyrkt image`, bench/bench_image_id.py,
where the goal is 0.4x `gzip -dc | sha512sum`): at 128 MiB, typing, re, enum, threading and the
manifest model cost a tenth of the run. The checks run a fresh interpreter with `-I -S` (the
development venv's editable finder, a .pth file, loads re at start-up itself) whose path is
the checkout and the venv's site-packages (for ISA-L), so what it loads is what pyrkt loads.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path

import pytest

import registry.aci as aci
from registry.aci.pipeline import BackgroundFeed, Prefetch, _Channel, _Helper

REPO = Path(__file__).resolve().parents[2]
SITE = sysconfig.get_paths()["purelib"]

# What the image-ID path must not load, each for what it costs a fresh process (-X importtime):
# typing ~10 ms with re, enum and collections behind it; threading and queue ~4 ms with
# functools, collections and heapq; the rest is the parsing side (tar, manifests, JSON, paths)
# and the other compressions; zlib with ISA-L installed (a dependency: it inflates instead), and
# hashlib's wrapper around OpenSSL's digests (it loads blake2 besides).
NOT_ON_THE_IMAGE_ID_PATH = (
    "typing", "re", "enum", "json", "_json", "tarfile", "pathlib", "collections", "functools",
    "contextlib", "dataclasses", "threading", "queue", "heapq", "bz2", "lzma", "zlib", "hashlib",
    "concurrent.futures", "registry.records", "registry.aci.tarstream",
    "registry.aci.layout", "registry.aci.manifest", "registry.aci.info", "registry.jsontext",
)


def run_fresh(code: str) -> tuple[str, set[str]]:
    """Runs `code` in a fresh `-I -S` interpreter; returns what it printed and the modules it
    loaded beyond the interpreter's own."""
    prologue = (f"import sys; sys.path[:0] = [{str(REPO)!r}, {SITE!r}]; "
                "_before = set(sys.modules)\n")
    epilogue = "\nprint('MODULES', *sorted(set(sys.modules) - _before))\n"
    result = subprocess.run([sys.executable, "-I", "-S", "-c", prologue + code + epilogue],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    printed, modules = result.stdout.rsplit("MODULES", 1)
    return printed.strip(), set(modules.split())


def _modules_loaded_by(code: str) -> set[str]:
    return run_fresh(code)[1]


@pytest.fixture(scope="module")
def gzip_aci(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A gzip ACI of a few MiB (several decompressed chunks) and its ID from gzip + hashlib."""
    from registry.aci import ImageManifest, write_aci

    root = tmp_path_factory.mktemp("lean")
    rootfs = root / "rootfs"
    rootfs.mkdir()
    (rootfs / "text").write_bytes(b"".join(b"line %d of a compressible file\n" % i
                                           for i in range(200_000)))
    (rootfs / "noise").write_bytes(hashlib.sha512(b"seed").digest() * 40_000)
    manifest = ImageManifest.from_dict({"acKind": "ImageManifest", "acVersion": "0.8.11",
                                        "name": "example.com/lean"})
    path = root / "lean.aci"
    write_aci(manifest, rootfs, path, compression="gzip")
    expected = "sha512-" + hashlib.sha512(gzip.decompress(path.read_bytes())).hexdigest()
    return path, expected


def test_image_id_of_loads_only_what_hashing_needs(gzip_aci: tuple[Path, str]) -> None:
    path, expected = gzip_aci
    printed, loaded = run_fresh("from registry.aci import image_id_of\n"
                                f"print(image_id_of({str(path)!r}))")
    present = sorted(set(NOT_ON_THE_IMAGE_ID_PATH) & loaded)
    assert present == [], f"the image-ID path loads {present}"
    assert printed == expected
    # What it needs, it has: OpenSSL's SHA-512, ISA-L's inflate, the reader and its threads.
    assert {"_hashlib", "isal.isal_zlib", "registry.aci.reader", "registry.aci.pipeline"} <= loaded


def test_the_package_is_lazy_and_every_public_name_resolves() -> None:
    assert set(aci.__all__) == set(aci._EXPORTS)
    for name in aci.__all__:  # from the submodule the table names, as the same object
        module = importlib.import_module(f"registry.aci.{aci._EXPORTS[name]}")
        assert getattr(aci, name) is getattr(module, name), name
    assert set(aci.__all__) <= set(dir(aci))
    with pytest.raises(AttributeError):
        aci.no_such_name  # noqa: B018
    # A submodule is still importable through the package, and a bare import loads no submodule.
    assert importlib.import_module("registry.aci.names").__name__ == "registry.aci.names"
    assert not {m for m in _modules_loaded_by("import registry.aci")
                if m.startswith("registry.aci.")}
    assert "registry.aci.writer" not in _modules_loaded_by("from registry.aci import read_aci")


def test_read_aci_still_gets_what_it_needs(gzip_aci: tuple[Path, str]) -> None:
    path, expected = gzip_aci
    loaded = _modules_loaded_by("from registry.aci import read_aci\n"
                                f"info = read_aci({str(path)!r})\n"
                                f"assert info.image_id == {expected!r}, info.image_id\n"
                                "assert str(info.manifest.name) == 'example.com/lean'")
    assert {"registry.aci.tarstream", "registry.aci.layout", "registry.aci.manifest"} <= loaded


def test_the_lazy_helper_imports_nothing() -> None:
    loaded = _modules_loaded_by("import registry.lazy")
    assert loaded == {"registry", "registry.lazy", "__future__"}


def test_image_id_under_gevent_threads_are_greenlets(gzip_aci: tuple[Path, str]) -> None:
    """Where gevent has patched threading (the registry's workers), the pipeline's threads and
    locks are gevent's: computing an ID must finish, not deadlock one OS thread on itself."""
    path, expected = gzip_aci
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "from registry.aci import image_id_of, read_aci\n"
            f"print(image_id_of({str(path)!r}), read_aci({str(path)!r}).image_id)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [expected, expected]


# The pipeline's own primitives (made of _thread's, see pipeline.py).

def test_channel_is_fifo_bounded_and_times_out_when_full() -> None:
    channel = _Channel(3)
    assert all(channel.put(n, 0.01) for n in range(3))
    started = time.monotonic()
    assert channel.put("one too many", 0.05) is False  # full: waits its timeout, then says so
    assert time.monotonic() - started >= 0.04
    assert [channel.get() for _ in range(3)] == [0, 1, 2]
    assert channel.put("again", 0.01)
    assert channel.get() == "again"


def test_channel_hands_over_between_threads_in_order() -> None:
    channel = _Channel(2)
    received: list[int] = []

    def consume() -> None:
        while (item := channel.get()) is not None:
            received.append(item)

    helper = _Helper(consume, (), "consumer")
    assert helper.is_alive()
    for n in range(5000):  # far more than the ring holds: the producer waits its turns
        channel.put(n)
    channel.put(None)
    helper.join()
    assert not helper.is_alive()
    assert received == list(range(5000))
    assert "consumer ended" in repr(helper)


def test_helper_join_waits_for_the_thread() -> None:
    release = threading.Event()
    done: list[str] = []

    def work() -> None:
        release.wait(10)
        done.append("ran")

    helper = _Helper(work, (), "worker")
    time.sleep(0.02)
    assert helper.is_alive() and done == []  # still waiting
    release.set()
    helper.join()
    assert done == ["ran"] and not helper.is_alive()


def test_prefetch_reports_the_producers_error_and_close_stops_it() -> None:
    def failing() -> object:
        yield b"first"
        raise OSError("disk gone")

    prefetch = Prefetch(failing(), depth=1)  # type: ignore[arg-type]
    chunks = iter(prefetch)
    assert next(chunks) == b"first"
    with pytest.raises(OSError, match="disk gone"):
        next(chunks)
    prefetch.close()
    assert not prefetch._thread.is_alive()


def test_background_feed_close_after_close_is_a_no_op() -> None:
    seen: list[bytes] = []
    feed = BackgroundFeed(seen.append, depth=1)
    feed.put(b"a")
    feed.close()
    feed.close()
    assert seen == [b"a"] and not feed._thread.is_alive()
