"""The image store: imports, lookups, rendering with dependencies, removal, gc, concurrency."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from client_kit import ClientEnv, build_aci, sign
from hostile_archives import build_corpus

from registry.client import ImageNotFound, ImageStore, StoreError

BASE = "example.com/base"


def _layers(tmp_path: Path) -> dict[str, str]:
    """base (v1, v2) <- middle <- app, with overlapping files and a whitelist on app."""
    ids = {
        "base1": build_aci(tmp_path / "base1.aci", BASE, {"version": "1"},
                           {"etc/os": "base1", "bin/sh": "sh1", "bin/ls": "ls1", "etc/passwd": "p"}),
        "base2": build_aci(tmp_path / "base2.aci", BASE, {"version": "2"},
                           {"etc/os": "base2", "bin/sh": "sh2"}),
        "extra": build_aci(tmp_path / "extra.aci", "example.com/extra", {"version": "1"},
                           {"etc/os": "extra", "opt/tool": "tool"}),
    }
    ids["middle"] = build_aci(
        tmp_path / "middle.aci", "example.com/middle", {"version": "1"}, {"etc/middle": "m"},
        dependencies=[{"imageName": BASE, "labels": [{"name": "version", "value": "1"}]},
                      {"imageName": "example.com/extra", "imageID": ids["extra"]}])
    ids["app"] = build_aci(
        tmp_path / "app.aci", "example.com/app", {"version": "1"},
        {"bin/sh": "app-sh", "app": "binary", "junk": "dropped by the whitelist"},
        dependencies=[{"imageName": "example.com/middle"}],
        path_whitelist=["/app", "/bin/sh", "/bin/ls", "/etc/os", "/etc/middle", "/opt/tool"])
    return ids


def _import_all(store: ImageStore, tmp_path: Path, names: list[str]) -> None:
    for name in names:
        store.import_aci(tmp_path / f"{name}.aci")


def test_import_get_find_list(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    first = store.import_aci(tmp_path / "base1.aci")
    assert first.id == ids["base1"] and first.name == BASE and first.labels == {"version": "1"}
    assert first.path.read_bytes() == (tmp_path / "base1.aci").read_bytes()
    assert first.size == (tmp_path / "base1.aci").stat().st_size
    store.import_aci(tmp_path / "base2.aci")
    assert store.get(ids["base1"][:20]).id == ids["base1"]
    assert store.get(ids["base1"][7:30]).id == ids["base1"]  # bare hex works too
    assert store.find(BASE, {"version": "1"}).id == ids["base1"]
    assert store.find(BASE).id == ids["base2"]  # the newest
    assert store.find(BASE, {"version": "3"}) is None
    assert [i.id for i in store.list()] == [ids["base1"], ids["base2"]]
    assert store.aci_path(ids["base2"]) == store.get(ids["base2"]).file == str(
        store.get(ids["base2"]).path) == str(tmp_path / "store" / "images" / f"{ids['base2']}.aci")
    with pytest.raises(ImageNotFound, match="no image with ID"):
        store.get("sha512-" + "0" * 20)
    with pytest.raises(ImageNotFound, match="is not an image ID"):
        store.get("sha512-xyz")
    # importing again is a no-op that keeps the first import time
    again = store.import_aci(tmp_path / "base1.aci")
    assert again.import_time == first.import_time and len(store.list()) == 2


def test_render_applies_dependencies_and_the_whitelist(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    _import_all(store, tmp_path, ["base1", "base2", "extra", "middle", "app"])
    chain = [img.name for img, _ in store.dependency_chain(ids["app"])]
    assert chain == ["example.com/app", "example.com/middle", "example.com/extra", BASE]
    out = store.render(ids["app"], tmp_path / "rendered")
    assert out == str(tmp_path / "rendered")
    rootfs = Path(out) / "rootfs"
    files = sorted(p.relative_to(rootfs).as_posix() for p in rootfs.rglob("*") if p.is_file())
    assert files == ["app", "bin/ls", "bin/sh", "etc/middle", "etc/os", "opt/tool"]
    assert (rootfs / "bin/sh").read_text() == "app-sh"  # the image wins over its dependencies
    assert (rootfs / "etc/os").read_text() == "extra"  # a later dependency wins over an earlier
    assert (rootfs / "bin/ls").read_text() == "ls1"  # base v1, as the label asked
    assert (Path(out) / "manifest").read_bytes() == store.get(ids["app"]).manifest_bytes
    with pytest.raises(StoreError, match="not an empty directory"):
        store.render(ids["app"], tmp_path / "rendered")


def test_render_overlay_tree_is_shared_and_a_missing_dependency_is_named(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    _import_all(store, tmp_path, ["base1", "middle", "app"])
    with pytest.raises(StoreError, match="depends on example.com/extra"):
        store.render(ids["app"], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    store.import_aci(tmp_path / "extra.aci")
    tree = Path(store.render(ids["app"], overlay=True))
    assert tree == tmp_path / "store" / "trees" / ids["app"]
    assert (tree / "rootfs" / "app").read_text() == "binary"
    assert store.render(ids["app"], overlay=True) == str(tree)
    store.remove(ids["app"])
    assert not tree.exists()


def test_extract_export_verify_remove(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    store.import_aci(tmp_path / "base1.aci")
    store.extract(ids["base1"], tmp_path / "x")
    assert (tmp_path / "x" / "rootfs" / "bin" / "sh").read_text() == "sh1"
    store.extract(ids["base1"], tmp_path / "r", rootfs_only=True)
    assert (tmp_path / "r" / "bin" / "sh").read_text() == "sh1"
    exported = Path(store.export(ids["base1"], tmp_path / "out.aci"))
    assert exported == tmp_path / "out.aci" and exported.read_bytes() == (tmp_path / "base1.aci").read_bytes()
    assert store.verify(ids["base1"]).image_id == ids["base1"]
    # damage the stored file: verify notices
    path = Path(store.aci_path(ids["base1"]))
    os.chmod(path, 0o644)
    path.write_bytes((tmp_path / "base2.aci").read_bytes())
    with pytest.raises(StoreError, match="damaged"):
        store.verify(ids["base1"])
    removed = store.remove(ids["base1"][:30])
    assert removed.id == ids["base1"] and not path.exists() and store.list() == []


def test_gc_respects_the_grace_period_and_images_in_use(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    _import_all(store, tmp_path, ["base1", "base2", "extra", "middle", "app"])
    assert store.gc(timedelta(hours=1)) == []
    later = datetime.now(UTC) + timedelta(hours=2)
    removed = store.gc(timedelta(hours=1), in_use={ids["app"]}, now=later)
    # app is in use: it and its whole dependency chain stay; only base v2 goes
    assert [i.id for i in removed] == [ids["base2"]]
    assert {i.id for i in store.list()} == {ids["app"], ids["middle"], ids["extra"], ids["base1"]}


def _import_in_process(args: tuple[str, str]) -> str:
    store_dir, aci = args
    return ImageStore(store_dir).import_aci(aci).id


def test_concurrent_imports_of_one_image_end_with_one_copy(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    jobs = [(str(tmp_path / "store"), str(tmp_path / "base1.aci"))] * 6
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        results = pool.map(_import_in_process, jobs)
    assert results == [ids["base1"]] * 6
    store = ImageStore(tmp_path / "store")
    assert [i.id for i in store.list()] == [ids["base1"]]
    assert len(list((tmp_path / "store" / "images").iterdir())) == 1
    assert not list((tmp_path / "store" / "tmp").iterdir())


@pytest.mark.parametrize("case", [c for c in build_corpus(Path("/tmp/pyrkt-hostile-client"))
                                  if c.stage == "read"], ids=lambda c: c.name)
def test_hostile_archives_are_refused_by_fetch(case, env: ClientEnv, trusted_key) -> None:
    env.trust_key(trusted_key, None)
    aci = env.root / f"{case.name}.aci"
    aci.write_bytes(case.path.read_bytes())
    sign(trusted_key, aci)
    env.store()
    before = env.snapshot()
    result = env.run(["fetch"], str(aci))
    assert result.exit_code != 0
    assert "not a valid ACI" in result.output and case.message in result.output
    assert env.snapshot() == before
    assert not list((env.store_dir / "tmp").iterdir())


# -- the run path: summary, a rendered tree and last-use stamps without the index -------------

def _set_index_times(store: ImageStore, image_id: str, imported: float, used: float) -> None:
    import sqlite3

    with sqlite3.connect(os.path.join(store.directory, "index.db")) as db:
        db.execute("UPDATE images SET import_time = ?, last_used = ? WHERE id = ?",
                   (imported, used, image_id))


def test_a_use_is_stamped_and_read_back_as_last_used(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    _import_all(store, tmp_path, ["base1", "base2"])
    old = time.time() - 3 * 86400
    for image_id in ids["base1"], ids["base2"]:
        _set_index_times(store, image_id, old, old)
    stamp = tmp_path / "store" / "used" / ids["base1"]
    assert not stamp.parent.exists()  # made by the first use
    assert store.get(ids["base1"]).last_used_stamp == old
    assert store.gc(timedelta(days=30)) == []  # no stamps yet: nothing to read or clean

    before = time.time()
    tree = store.render(ids["base1"], overlay=True)  # renders, and stamps the use
    assert stamp.exists() and stamp.stat().st_size == 0
    used = store.get(ids["base1"][:30]).last_used_stamp
    assert before - 1 <= used <= time.time() + 1
    assert store.get(ids["base1"]).import_stamp == old  # only the use moved
    assert store.render(ids["base1"], overlay=True) == tree  # a rendered tree: stamped again
    assert {i.id: i.last_used_stamp for i in store.list()}[ids["base2"]] == old
    assert store.find(BASE, {"version": "1"}).last_used_stamp >= used

    store.touch(ids["base2"][:20])  # by prefix, as before
    assert store.get(ids["base2"]).last_used_stamp >= before
    # the later of the index's time and the stamp's is the last use
    os.utime(stamp, (old - 100, old - 100))
    assert store.get(ids["base1"]).last_used_stamp == old

    # gc goes by it: kept while used within the grace period, removed once it is over
    assert [i.id for i in store.gc(timedelta(hours=1))] == [ids["base1"]]  # used 3 days ago
    store.import_aci(tmp_path / "base1.aci")
    store.render(ids["base1"], overlay=True)
    assert store.gc(timedelta(hours=1)) == []  # both used just now
    later = datetime.now(UTC) + timedelta(hours=2)
    removed = store.gc(timedelta(hours=1), now=later)
    assert sorted(i.id for i in removed) == sorted([ids["base1"], ids["base2"]])
    assert os.listdir(tmp_path / "store" / "used") == []


def test_gc_drops_the_stamps_of_images_no_longer_stored(tmp_path: Path) -> None:
    store = ImageStore(tmp_path / "store")
    orphan = tmp_path / "store" / "used" / ("sha512-" + "0" * 128)
    orphan.parent.mkdir()
    orphan.touch()  # a run stamping an image while it was removed
    assert store.gc() == [] and not orphan.exists()


def _summary_in_a_fresh_process(store_dir: Path, ref: str) -> dict:
    code = (
        "import json, os, sys\n"
        "from registry.client.store import ImageStore\n"
        f"store = ImageStore({str(store_dir)!r})\n"
        f"found = store.summary({ref!r})\n"
        "tree = store.render(found.id, overlay=True)\n"
        "store.close()\n"
        "print(json.dumps({'id': found.id, 'name': found.name, 'labels': found.labels,\n"
        "                  'manifest': found.manifest_bytes.decode(), 'tree': tree,\n"
        "                  'sqlite': sorted(m for m in sys.modules if 'sqlite' in m)}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_run_of_a_rendered_image_by_id_needs_no_index(tmp_path: Path) -> None:
    """`pyrkt run ID`'s questions (summary, the shared tree, the stamp) answered from files:
    sqlite3 is not loaded, and the answers are the index's."""
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    _import_all(store, tmp_path, ["base1", "base2", "extra", "middle", "app"])
    tree = store.render(ids["app"], overlay=True)  # the first run renders (index and all)
    stamp = tmp_path / "store" / "used" / ids["app"]
    os.utime(stamp, (1, 1))
    stored = store.get(ids["app"])
    for ref in (ids["app"], ids["app"][:20], ids["app"][7:30].upper()):
        got = _summary_in_a_fresh_process(tmp_path / "store", ref)
        assert got == {"id": stored.id, "name": stored.name, "labels": stored.labels,
                       "manifest": stored.manifest_bytes.decode(), "tree": tree, "sqlite": []}
    assert stamp.stat().st_mtime > time.time() - 60  # the use was stamped
    # an image whose tree is not rendered yet: the index answers (and the tree is made)
    got = _summary_in_a_fresh_process(tmp_path / "store", ids["base2"])
    assert got["id"] == ids["base2"] and got["labels"] == {"version": "2"}
    assert got["sqlite"] == ["_sqlite3"]
    assert os.path.isdir(os.path.join(got["tree"], "rootfs"))


def test_summary_answers_and_words_as_get_does(tmp_path: Path) -> None:
    ids = _layers(tmp_path)
    store = ImageStore(tmp_path / "store")
    _import_all(store, tmp_path, ["base1", "base2", "extra"])
    for image_id in ids["base1"], ids["base2"], ids["extra"]:
        store.render(image_id, overlay=True)
    first = store.get(ids["base1"])
    summary = store.summary(ids["base1"][:25])
    assert (summary.id, summary.name, summary.labels, summary.manifest_bytes) == (
        first.id, first.name, first.labels, first.manifest_bytes)

    # a file that shares the prefix but has no row (an import's instant): the index decides
    images = tmp_path / "store" / "images"
    twin = ids["base1"][:25] + "f" * (135 - 25)
    (images / f"{twin}.aci").write_bytes(b"")
    assert store.summary(ids["base1"][:25]).id == ids["base1"]
    (images / f"{twin}.aci").unlink()

    # a prefix that two stored images share: get's ambiguity error, word for word
    def stored_ids() -> list[str]:
        return [p.name[:-len(".aci")] for p in images.glob("*.aci")]

    n = 0
    while len({i[7] for i in stored_ids()}) == len(stored_ids()):  # 17 images at most
        build_aci(tmp_path / f"more{n}.aci", f"example.com/more{n}")
        store.import_aci(tmp_path / f"more{n}.aci")
        n += 1
    digit = next(d for d in "0123456789abcdef" if sum(i[7] == d for i in stored_ids()) > 1)
    for image_id in stored_ids():
        if image_id[7] == digit:
            store.render(image_id, overlay=True)  # rendered: the files alone could answer
    with pytest.raises(ImageNotFound) as from_get:
        store.get(digit)
    with pytest.raises(ImageNotFound) as from_summary:
        store.summary(digit)
    assert "is ambiguous" in str(from_get.value) and str(from_summary.value) == str(from_get.value)

    for bad, words in (("sha512-" + "0" * 20, "no image with ID"), ("sha512-xyz", "not an image ID")):
        with pytest.raises(ImageNotFound, match=words):
            store.summary(bad)

    # a removal takes the tree and the files before the row: nothing left to answer from
    tree = os.path.join(store.directory, "trees", ids["extra"])
    store.remove(ids["extra"])
    assert not os.path.exists(tree)
    assert not os.path.exists(os.path.join(store.directory, "used", ids["extra"]))
    with pytest.raises(ImageNotFound, match="no image with ID"):
        store.summary(ids["extra"])
