"""docker2aci reports each layer download through registry.progress (the protocol push, fetch
and builds use: tests/package/test_package_progress.py)."""

from __future__ import annotations

from pathlib import Path

from docker_v2_server import RegistryState, V2Registry

from registry.docker.convert import ConvertOptions, convert


class Recorder:
    def __init__(self) -> None:
        self.tasks: list[list] = []

    def __call__(self, label: str, total: int | None):  # type: ignore[no-untyped-def]
        task = [label, total, 0, 0]
        self.tasks.append(task)

        class Task:
            def update(self, count: int) -> None:
                task[2] += count

            def close(self) -> None:
                task[3] += 1

        return Task()


def test_layer_downloads_are_reported(sample_image, out_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "docker-config.json"
    config.write_text("{}")
    recorder = Recorder()
    with V2Registry(RegistryState({"tests/sample": sample_image.layout})) as registry:
        convert(f"docker://{registry.address}/tests/sample:v1", out_dir,
                ConvertOptions(docker_config=config, progress=recorder))
    expected = [[f"layer {blob.digest.split(':')[1][:12]}", blob.size, blob.size, 1]
                for blob in sample_image.layers]
    assert recorder.tasks == expected and len(expected) == 2
