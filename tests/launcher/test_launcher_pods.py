"""Pod directories and states: renames under a lock, what other commands see meanwhile, gc rules."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from launcher_helpers import needs_root

from registry.launcher import manage
from registry.launcher.errors import LauncherError, PodNotFound
from registry.launcher.pods import PodLock, find_pod, list_pods, new_embryo, write_atomic


def _prepared(store: Path, image_id: str = "sha512-" + "a" * 128) -> str:
    pod, lock = new_embryo(store)
    with lock:
        pod.move("prepare")
        (Path(pod.path) / "apps" / "app").mkdir(parents=True)
        write_atomic(Path(pod.path) / "pod", json.dumps({"acKind": "PodManifest", "apps": [
            {"name": "app", "image": {"id": image_id, "name": "example.com/app"}}]}))
        pod.move("prepared")
    return pod.uuid


def test_states_follow_directory_and_lock(tmp_path) -> None:
    pod, lock = new_embryo(tmp_path)
    assert find_pod(tmp_path, pod.uuid).state == "embryo"
    pod.move("prepare")
    assert find_pod(tmp_path, pod.uuid).state == "preparing"
    lock.close()
    assert find_pod(tmp_path, pod.uuid).state == "aborted-prepare"
    uuid = _prepared(tmp_path)
    assert find_pod(tmp_path, uuid).state == "prepared"
    assert manage.images_in_use(tmp_path) == {"sha512-" + "a" * 128}
    running = find_pod(tmp_path, uuid)
    with PodLock(running.path) as held:
        assert held.try_exclusive()
        running.move("run")
        assert find_pod(tmp_path, uuid).state == "running"
        with pytest.raises(LauncherError, match="stop it first"):
            manage.rm(tmp_path, uuid)
        assert manage.gc(tmp_path, grace_period=0, expire_prepared=0) == [pod.uuid]
    assert find_pod(tmp_path, uuid).state == "exited"
    assert manage.images_in_use(tmp_path) == set()


def test_find_by_prefix_and_ambiguity(tmp_path) -> None:
    first, second = _prepared(tmp_path), _prepared(tmp_path)
    assert find_pod(tmp_path, first[:8]).uuid == first
    common = os.path.commonprefix([first, second])
    with pytest.raises(PodNotFound, match="ambiguous" if common else "no pod"):
        find_pod(tmp_path, common or "zzzz")
    with pytest.raises(PodNotFound):
        find_pod(tmp_path, "")


def test_gc_grace_period_and_expiry(tmp_path) -> None:
    old = _prepared(tmp_path)
    find_pod(tmp_path, old).write_timestamp("created", time.time() - 3 * 86400)
    fresh = _prepared(tmp_path)
    assert manage.gc(tmp_path) == [old]  # prepared for more than a day: garbage
    assert [p.uuid for p in list_pods(tmp_path)] == [fresh]
    exited = find_pod(tmp_path, fresh)
    exited.move("run")  # never locked: an exited pod
    assert manage.gc(tmp_path, mark_only=True) == []
    assert find_pod(tmp_path, fresh).state == "exited-garbage"
    assert manage.gc(tmp_path, grace_period=1800) == []  # marked just now: kept
    assert manage.gc(tmp_path, now=time.time() + 1801) == [fresh]
    assert list_pods(tmp_path) == []


def test_gc_removes_mounts_left_under_a_pod(tmp_path) -> None:
    needs_root()
    uuid = _prepared(tmp_path)
    pod = find_pod(tmp_path, uuid)
    pod.move("run")
    target = Path(pod.path) / "apps" / "app" / "rootfs"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "leftover", str(target)], check=True)
    try:
        assert manage.gc(tmp_path, grace_period=0) == [uuid]
        assert str(target) not in Path("/proc/self/mountinfo").read_text()
        assert not os.path.exists(pod.path)
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)
