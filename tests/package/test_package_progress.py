"""One progress protocol (registry.progress) reported by push, fetch and builds, and one
renderer that draws a bar only on a terminal. (docker2aci's layer downloads:
tests/docker/test_docker_progress.py.)"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from live_registry import LiveRegistry

from registry.aci import ImageManifest, read_aci, write_aci
from registry.client.dirs import ConfigDirs
from registry.client.fetch import FetchOptions, fetch_image
from registry.client.insecure import InsecureOptions
from registry.client.push import push_image
from registry.client.store import ImageStore


@dataclass
class Task:
    label: str
    total: int | None
    done: int = 0
    closed: int = 0

    def update(self, count: int) -> None:
        assert not self.closed and count > 0
        self.done += count

    def close(self) -> None:
        self.closed += 1


@dataclass
class Recorder:
    tasks: list[Task] = field(default_factory=list)

    def __call__(self, label: str, total: int | None) -> Task:
        self.tasks.append(Task(label, total))
        return self.tasks[-1]


def _image(tmp_path: Path, program: Path) -> Path:
    rootfs = tmp_path / "rootfs"
    (rootfs / "app").mkdir(parents=True)
    (rootfs / "app/hello").write_bytes(program.read_bytes())
    (rootfs / "app/data").write_bytes(os.urandom(300_000))
    manifest = ImageManifest.from_dict({
        "acKind": "ImageManifest", "acVersion": "0.8.11", "name": "127.0.0.1/demo/progress",
        "labels": [{"name": "version", "value": "1"}, {"name": "os", "value": "linux"},
                   {"name": "arch", "value": "amd64"}],
        "app": {"exec": ["/app/hello"], "user": "0", "group": "0"}})
    recorder = Recorder()
    out = tmp_path / "progress.aci"
    write_aci(manifest, rootfs, out, progress=recorder)
    [task] = recorder.tasks
    assert task.label == "progress.aci" and task.total is None and task.closed == 1
    assert task.done == program.stat().st_size + 300_000  # every file byte, once
    return out


def test_build_push_and_fetch_report_through_one_protocol(tmp_path: Path,
                                                          static_hello: Path) -> None:
    aci = _image(tmp_path, static_hello)
    size = aci.stat().st_size
    with LiveRegistry(tmp_path / "registry") as registry:
        pushing = Recorder()
        result = push_image(aci, registry_url=registry.base_url, token=registry.token,
                            progress=pushing)
        [task] = pushing.tasks
        assert (task.label, task.total, task.done, task.closed) == ("progress.aci", size, size, 1)

        fetching = Recorder()
        store = ImageStore(tmp_path / "store")
        options = FetchOptions(insecure=InsecureOptions.parse("http,image"), progress=fetching,
                               config_dirs=ConfigDirs(tmp_path / "sys", tmp_path / "etc"))
        stored = fetch_image(result.aci_url(), store, options)
    assert stored.id == read_aci(aci).image_id
    [task] = fetching.tasks
    assert (task.label, task.total, task.done, task.closed) == ("image.aci", size, size, 1)


def _renderer_in(stdout: int, stderr: int, *args: str) -> None:
    probe = ("import sys; from registry.cli.progress import renderer; "
             "p = renderer(json_output=sys.argv[1] == 'json'); "
             "t = p('layer', 2048) if p else None; t and t.update(1024); t and t.close(); "
             "print('drawn' if p else 'silent', file=sys.stderr)")
    subprocess.run([sys.executable, "-c", probe, *args], stdout=stdout, stderr=stderr,
                   timeout=60, check=True)


def test_renderer_draws_only_on_a_terminal_and_never_for_json(tmp_path: Path) -> None:
    primary, secondary = os.openpty()
    try:
        _renderer_in(subprocess.DEVNULL, secondary, "text")  # stdout captured: still drawn
        _renderer_in(secondary, secondary, "json")
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # EIO: every writer has gone
                break
            if not chunk:
                break
            seen += chunk
    finally:
        os.close(primary)
    text = seen.decode()
    assert "\rlayer [===============               ] 1.0 KiB / 2.0 KiB" in text
    assert text.count("drawn") == 1 and text.count("silent") == 1  # json: no bar
    # stderr into a file or a pipe: nothing drawn.
    with (tmp_path / "err").open("wb") as err:
        _renderer_in(subprocess.DEVNULL, err.fileno(), "text")
    assert (tmp_path / "err").read_text() == "silent\n"
