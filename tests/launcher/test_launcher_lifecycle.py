"""Pod states seen through the CLI: prepare, run-prepared, list, status, logs, stop, enter, gc."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import pytest
from launcher_helpers import needs_root, pod_json, status_of, wait_for_app_pid, wait_for_file

from registry.aci import PodManifest
from registry.launcher import images_in_use
from registry.launcher.pods import find_pod

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _wait_state(pyrkt, uuid: str, state: str, timeout: float = 20,
                ready: Callable[[dict[str, str]], bool] = lambda status: True) -> dict[str, str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = status_of(pyrkt, uuid)
        if status["state"] == state and ready(status):
            return status
        time.sleep(0.1)
    raise AssertionError(f"pod {uuid} never became {state}: {status}")


def test_list_status_logs_stop_gc_round_trip(tmp_path, tool_image, start_pyrkt, pyrkt,
                                             store) -> None:
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    process = start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                          str(image), "--", "hostname", "sleep", "60")
    uuid = wait_for_file(uuid_file)
    # running from the moment its supervisor holds it; its init writes the pid a moment later
    running = _wait_state(pyrkt, uuid, "running", ready=lambda status: int(status["pid"]) > 1)
    assert running["exited"] == "false"
    assert "app-tool" not in running

    [entry] = pod_json(pyrkt)
    assert entry["name"] == uuid and entry["state"] == "running" and entry["app_names"] == ["tool"]
    full = pyrkt("list", "--full", check=True).stdout.splitlines()
    assert full[0].split() == ["UUID", "APP", "IMAGE", "NAME", "IMAGE", "ID", "STATE", "CREATED",
                               "STARTED", "NETWORKS"]
    assert full[1].startswith(uuid)

    deadline = time.monotonic() + 10
    while "hostname=" not in pyrkt("logs", uuid).stdout and time.monotonic() < deadline:
        time.sleep(0.1)
    assert pyrkt("logs", uuid, check=True).stdout == f"tool | hostname=rkt-{uuid}\n"
    entered = pyrkt("enter", uuid, "/bin/tool", "hostname", "id", check=True)
    assert entered.stdout == f"hostname=rkt-{uuid}\nuid=0 gid=0\n"
    image_id = find_pod(store, uuid).manifest()["apps"][0]["image"]["id"]
    assert image_id in images_in_use(store)
    assert full[1].split()[3] == image_id  # --full: the whole image ID, not a prefix
    pyrkt("image", "gc", "--grace-period=0s", check=True)  # the client asks the launcher
    assert image_id[:39] in pyrkt("image", "list", "--full", check=True).stdout

    gc_running = pyrkt("gc", "--grace-period=0s", check=True)
    assert uuid not in gc_running.stdout and status_of(pyrkt, uuid)["state"] == "running"
    assert pyrkt("rm", uuid).returncode != 0

    pyrkt("stop", uuid, check=True)
    assert process.wait(timeout=20) == 143
    exited = status_of(pyrkt, uuid, "--wait")
    assert exited["state"] == "exited" and exited["app-tool"] == "143" and exited["pid"] == "-1"
    assert "finished" in exited
    assert pyrkt("stop", uuid).returncode != 0
    assert images_in_use(store) == set()

    cgroup_dirs = find_pod(store, uuid).cgroup_dirs()
    assert cgroup_dirs and all(os.path.exists(d) for d in cgroup_dirs)  # kept for statistics until gc
    marked = pyrkt("gc", "--mark-only", check=True)
    assert uuid in marked.stdout
    assert status_of(pyrkt, uuid)["state"] == "exited-garbage"
    kept = pyrkt("gc", check=True)  # still inside the default 30m grace period
    assert f"Garbage collecting pod {uuid}" not in kept.stdout
    collected = pyrkt("gc", "--grace-period=0s", check=True)
    assert f"Garbage collecting pod {uuid}" in collected.stdout
    assert not any(os.path.exists(d) for d in cgroup_dirs)
    assert pyrkt("status", uuid).returncode != 0 and pod_json(pyrkt) == []


def test_every_kind_of_flag_makes_a_pod_manifest_the_format_core_and_actool_accept(
        tmp_path, tool_image, pyrkt, actool_validate) -> None:
    """prepare writes the manifest it builds without asking the format core (each part was
    checked where it came from): pods made with every kind of flag are judged here instead."""
    image = tool_image(app={"ports": [{"name": "http", "port": 80, "protocol": "tcp"}],
                            "mountPoints": [{"name": "data", "path": "/data"}],
                            "environment": [{"name": "FROM_IMAGE", "value": "x"}]})
    prepared = pyrkt(
        "prepare", "-q", "--insecure-options=image", "--net=none", "--hostname=box.example",
        "--volume=v,kind=empty,mode=0700,uid=1,gid=2",
        f"--volume=h,kind=host,source={tmp_path},readOnly=true", "--set-env=A=1",
        "--port=http:18080", "--caps-retain=CAP_NET_BIND_SERVICE,CAP_CHOWN",
        "--seccomp=mode=remove,errno=ENOTSUP,socket", "--dns=10.0.0.1", "--hosts-entry=10.0.0.2=db",
        str(image), "--name=web", "--mount=volume=v,target=/v", "--mount=volume=h,target=/h",
        "--environment=B=2", "--user=worker", "--group=workers", "--working-dir=/tmp",
        "--readonly-rootfs=true", "--memory=64M", "--cpu=500m", "--", "echo", "hi", check=True)
    manifest = json.loads(pyrkt("cat-manifest", prepared.stdout.strip(), check=True).stdout)
    parsed = PodManifest.from_dict(manifest)
    assert [app.name for app in parsed.apps] == ["web"]
    assert {v["name"] for v in manifest["volumes"]} == {"v", "h", "data"}
    pod_file = tmp_path / "pod-manifest.json"
    pod_file.write_text(json.dumps(manifest))
    actool_validate(pod_file)


def test_prepare_then_run_prepared_and_cat_manifest(tmp_path, tool_image, pyrkt, store,
                                                    actool_validate) -> None:
    image = tool_image()
    prepared = pyrkt("prepare", "--quiet", "--insecure-options=image", "--volume=v,kind=empty",
                     str(image), "--mount=volume=v,target=/v", "--memory=64M", "--cpu=1",
                     "--", "write", "/v/x", "y", check=True)
    uuid = prepared.stdout.strip()
    assert status_of(pyrkt, uuid)["state"] == "prepared"
    manifest = json.loads(pyrkt("cat-manifest", uuid, check=True).stdout)
    assert manifest["acKind"] == "PodManifest" and manifest["apps"][0]["name"] == "tool"
    isolators = {i["name"]: i["value"] for i in manifest["apps"][0]["app"]["isolators"]}
    assert isolators == {"resource/memory": {"limit": "64000000"},
                         "resource/cpu": {"limit": "1000m"}}
    pod_file = tmp_path / "pod-manifest.json"
    pod_file.write_text(json.dumps(manifest))
    actool_validate(pod_file)
    PodManifest.from_dict(manifest)  # the format core's judgement too (prepare does not ask it)
    assert manifest["apps"][0]["image"]["id"] in images_in_use(store)

    ran = pyrkt("run-prepared", uuid[:8])
    assert ran.returncode == 0 and "write /v/x: ok" in ran.stdout
    assert pyrkt("run-prepared", uuid).returncode != 0  # it is no longer prepared

    again = pyrkt("prepare", "-q", "example.com/tool", check=True).stdout.strip()
    pyrkt("gc", "--expire-prepared=0s", "--grace-period=0s", check=True)
    assert pyrkt("status", again).returncode != 0 and pyrkt("status", uuid).returncode != 0


def test_concurrent_prepares_never_show_half_made_pods(tool_image, pyrkt, store) -> None:
    import subprocess
    import sys

    image = tool_image()
    pyrkt("prepare", "-q", "--insecure-options=image", str(image), check=True)
    env = {"PYRKT_DIR": str(store)}
    import os

    procs = [subprocess.Popen([sys.executable, "-m", "registry.cli.main", "prepare", "-q",
                               "example.com/tool"], env={**os.environ, **env},
                              stdout=subprocess.PIPE, text=True) for _ in range(4)]
    seen_states: set[str] = set()
    while any(p.poll() is None for p in procs):
        for entry in pod_json(pyrkt):
            seen_states.add(entry["state"])
            if entry["state"] == "prepared":
                assert entry["apps"][0]["image_id"].startswith("sha512-")
    uuids = {p.stdout.read().strip() for p in procs}
    assert len(uuids) == 4 and all(p.returncode == 0 for p in procs)
    assert seen_states <= {"embryo", "preparing", "prepared"}


def test_logs_follow_streams_until_the_pod_ends(tmp_path, tool_image, start_pyrkt, pyrkt) -> None:
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    start_pyrkt("run", "--insecure-options=image", "--inherit-env", f"--uuid-file-save={uuid_file}",
                str(image), "--", "env", "PYRKT_DIR", "sleep", "2", "cwd")
    uuid = wait_for_file(uuid_file)
    followed = pyrkt("logs", "-f", "--app", "tool", "--no-prefix", uuid, check=True, timeout=30)
    assert followed.stdout.startswith("env PYRKT_DIR=")  # inherited from pyrkt's environment
    assert followed.stdout.endswith("cwd=/\n")  # written after the follow began
    assert status_of(pyrkt, uuid)["state"] == "exited"


def test_pod_outlives_its_killed_launcher_and_stays_managed(tmp_path, tool_image, start_pyrkt,
                                                            pyrkt, store) -> None:
    """kill -9 of `pyrkt run`: the pod runs on (its holder and init keep the lock, the logs and
    the end), `status` says running, gc and rm leave it alone, enter/logs/stop work, and the
    app's code is recorded when `stop` ends it."""
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    process = start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                          str(image), "--", "hostname", "sleep", "2", "cwd", "sleep", "60")
    uuid = wait_for_file(uuid_file)
    _wait_state(pyrkt, uuid, "running")
    # the pod's processes exist (a pod reads running from its lock on, before its stage1 has
    # forked anything: a kill then leaves nothing to outlive it)
    wait_for_app_pid(store, uuid, "tool")
    process.kill()
    assert process.wait(timeout=10) == -9

    pod = find_pod(store, uuid)
    assert pod.processes_alive() and pod.pod_cgroup_dirs()
    status = status_of(pyrkt, uuid)
    assert status["state"] == "running" and "app-tool" not in status
    assert int(status["pid"]) == pod.live_pid()
    gc = pyrkt("gc", "--grace-period=0s", check=True)
    assert uuid not in gc.stdout and os.path.isdir(find_pod(store, uuid).path)
    refused = pyrkt("rm", uuid)
    assert refused.returncode == 254 and "running" in refused.stderr
    entered = pyrkt("enter", uuid, "/bin/tool", "hostname", check=True)
    assert entered.stdout == f"hostname=rkt-{uuid}\n"
    # output written after the launcher died still reaches the log (the holder pumps it)
    deadline = time.monotonic() + 20
    while "cwd=/" not in pyrkt("logs", uuid).stdout and time.monotonic() < deadline:
        time.sleep(0.2)
    assert pyrkt("logs", uuid, check=True).stdout == f"tool | hostname=rkt-{uuid}\ntool | cwd=/\n"

    pyrkt("stop", uuid, check=True)
    exited = status_of(pyrkt, uuid)
    assert exited["state"] == "exited" and exited["app-tool"] == "143" and "finished" in exited
    assert not find_pod(store, uuid).processes_alive()
    pyrkt("gc", "--grace-period=0s", check=True)
    assert pyrkt("status", uuid).returncode != 0  # collected once it is over
