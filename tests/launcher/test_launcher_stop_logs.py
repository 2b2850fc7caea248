"""`pyrkt stop` (the whole process tree, a grace period, returns once the pod is gone), and
`pyrkt logs`/`status`/`list` for people and scripts."""

from __future__ import annotations

import json
import socket
import time

import pytest
from launcher_helpers import needs_root, status_of, wait_for_file

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_logged(pyrkt, uuid: str, text: str, timeout: float = 10) -> None:
    """Until the pod's logs hold `text` (the app says it has set its traps), or the timeout;
    the assertions after it say what went wrong."""
    deadline = time.monotonic() + timeout
    while text not in pyrkt("logs", uuid).stdout and time.monotonic() < deadline:
        time.sleep(0.05)


def _wait_running(pyrkt, store, uuid: str, processes: int, timeout: float = 20) -> None:
    """Until the pod runs and its app's cgroup holds `processes` processes."""
    from registry.launcher.cgroups import pids_in
    from registry.launcher.pods import find_pod

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pod = find_pod(store, uuid)
        if pod.is_running and len(pids_in(pod.cgroup_dirs())) >= processes:
            return
        time.sleep(0.05)
    raise AssertionError(f"pod {uuid} did not start {processes} processes")


def _start(start_pyrkt, tmp_path, *args: str) -> str:
    uuid_file = tmp_path / "uuid"
    uuid_file.unlink(missing_ok=True)
    start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", *args)
    return wait_for_file(uuid_file)


def test_stop_ends_the_whole_tree_at_once_and_frees_the_port(tmp_path, shell_image, start_pyrkt,
                                                             pyrkt, store) -> None:
    port = _free_port()
    image = shell_image("sleep 1000; echo done",
                        app={"ports": [{"name": "http", "port": 8080, "protocol": "tcp"}]})
    # --net=none: the port goes through pyrkt run's userspace forwarder, which must end too
    uuid = _start(start_pyrkt, tmp_path, "--net=none", f"--port=http:127.0.0.1:{port}",
                  str(image))
    _wait_running(pyrkt, store, uuid, processes=2)  # sh and its sleep
    with pytest.raises(OSError), socket.socket() as busy:
        busy.bind(("127.0.0.1", port))  # the forwarder holds it while the pod runs

    # Timed in this process: what `pyrkt stop` does (signal, wait for the pod's end and its
    # ports), without the interpreter start-up of a CLI command on a busy machine.
    from registry.launcher import manage

    started = time.monotonic()
    manage.stop(store, uuid)
    elapsed = time.monotonic() - started
    print(f"stop of sh -c 'sleep 1000; echo done': {elapsed * 1000:.0f} ms (goal < 1000)")
    assert elapsed < 1.0
    # When stop returns the pod is over: exited, the app's own code (killed by SIGTERM), the
    # sleep did not outlive it (no "done"), and the host port can be bound again.
    status = status_of(pyrkt, uuid)
    assert status["state"] == "exited" and status["app-shell"] == "143"
    assert "done" not in pyrkt("logs", uuid, check=True).stdout
    with socket.socket() as again:
        again.bind(("127.0.0.1", port))
    refused = pyrkt("stop", uuid)  # the CLI says so when there is nothing to stop
    assert refused.returncode == 254 and "is exited, not running" in refused.stderr


def test_stop_gives_the_app_its_grace_period_and_keeps_its_exit_code(tmp_path, shell_image,
                                                                     start_pyrkt, pyrkt,
                                                                     store) -> None:
    image = shell_image("trap 'echo got TERM; exit 3' TERM; echo ready; "
                        "while true; do sleep 0.1; done")
    uuid = _start(start_pyrkt, tmp_path, str(image))
    _wait_running(pyrkt, store, uuid, processes=1)
    _wait_logged(pyrkt, uuid, "ready")
    pyrkt("stop", "--grace-period=20s", uuid, check=True)
    assert status_of(pyrkt, uuid)["app-shell"] == "3"  # its own exit code, not a kill
    assert "shell | got TERM\n" in pyrkt("logs", uuid, check=True).stdout


def test_stop_kills_after_the_grace_period_or_at_once_with_force(tmp_path, shell_image,
                                                                 start_pyrkt, pyrkt,
                                                                 store) -> None:
    image = shell_image("trap '' TERM; sleep 1000; echo never")  # sleep inherits the ignore
    uuid = _start(start_pyrkt, tmp_path, str(image))
    _wait_running(pyrkt, store, uuid, processes=2)
    started = time.monotonic()
    pyrkt("stop", "--grace-period=1s", uuid, check=True)
    elapsed = time.monotonic() - started
    assert 1.0 <= elapsed < 8.0  # the grace period, then SIGKILL (and a CLI's start-up)
    assert status_of(pyrkt, uuid)["app-shell"] == "137"  # 128 + SIGKILL

    uuid = _start(start_pyrkt, tmp_path, str(image))
    _wait_running(pyrkt, store, uuid, processes=2)
    from registry.launcher import manage

    started = time.monotonic()
    manage.stop(store, uuid, force=True)
    assert time.monotonic() - started < 1.0
    status = status_of(pyrkt, uuid)
    assert status["state"] == "exited" and status["app-shell"] == "137"

    refused = pyrkt("stop", uuid)
    assert refused.returncode == 254 and "not running" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert pyrkt("stop").returncode != 0
    assert pyrkt("stop", "--grace-period=soon", uuid).returncode != 0


def _two_app_pod(tmp_path, shell_image, pyrkt) -> str:
    first = shell_image("echo a1; sleep 0.4; echo a2", name="example.com/alpha")
    second = shell_image("sleep 0.2; echo b1; sleep 0.4; echo b2; echo oops >&2",
                         name="example.com/beta")
    uuid_file = tmp_path / "uuid"
    pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", str(first),
          "---", str(second), check=True)
    return uuid_file.read_text().strip()


def test_logs_merge_apps_in_time_order_with_prefix_timestamps_tail_since(
        tmp_path, shell_image, pyrkt) -> None:
    uuid = _two_app_pod(tmp_path, shell_image, pyrkt)
    merged = pyrkt("logs", uuid, check=True).stdout
    assert merged == ("alpha | a1\nbeta  | b1\nalpha | a2\nbeta  | b2\nbeta  | oops\n")
    assert pyrkt("logs", "--app=beta", "--no-prefix", uuid, check=True).stdout == \
        "b1\nb2\noops\n"
    assert pyrkt("logs", "--tail=2", uuid, check=True).stdout == "beta  | b2\nbeta  | oops\n"
    assert pyrkt("logs", "-n", "0", uuid, check=True).stdout == ""

    stamped = pyrkt("logs", "-t", uuid, check=True).stdout.splitlines()
    times = [line.split(" ", 1)[0] for line in stamped]
    assert [line.split(" ", 1)[1] for line in stamped][:2] == ["alpha | a1", "beta  | b1"]
    from datetime import datetime

    moments = [datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() for t in times]
    assert moments == sorted(moments) and abs(moments[0] - time.time()) < 120
    assert 0.15 < moments[1] - moments[0] < 2  # b1 came about 0.2 s after a1
    # --since: a moment between b1 and a2 keeps the later lines only
    middle = datetime.fromtimestamp((moments[1] + moments[2]) / 2).isoformat()
    assert pyrkt("logs", f"--since={middle}", uuid, check=True).stdout == \
        "alpha | a2\nbeta  | b2\nbeta  | oops\n"
    assert pyrkt("logs", "--since=1h", uuid, check=True).stdout == merged
    bad = pyrkt("logs", "--since=yesterday-ish", uuid)
    assert bad.returncode != 0 and "neither a duration" in bad.stderr
    unknown = pyrkt("logs", "--app=gamma", uuid)
    assert unknown.returncode == 254 and "no app named gamma" in unknown.stderr


def test_logs_follow_all_apps_until_the_pod_ends(tmp_path, shell_image, start_pyrkt,
                                                 pyrkt) -> None:
    first = shell_image("echo a1; sleep 1; echo a2", name="example.com/alpha")
    second = shell_image("sleep 0.5; echo b1; sleep 1; echo b2", name="example.com/beta")
    uuid = _start(start_pyrkt, tmp_path, str(first), "---", str(second))
    followed = pyrkt("logs", "-f", "--tail=10", uuid, check=True, timeout=30)
    assert followed.stdout == "alpha | a1\nbeta  | b1\nalpha | a2\nbeta  | b2\n"


def test_status_and_list_for_scripts(tmp_path, shell_image, start_pyrkt, pyrkt, store) -> None:
    image = shell_image("sleep 1000")
    uuid = _start(start_pyrkt, tmp_path, str(image))
    _wait_running(pyrkt, store, uuid, processes=1)
    running = json.loads(pyrkt("status", "--format=json", uuid, check=True).stdout)
    assert running["name"] == uuid and running["state"] == "running"
    assert running["pid"] > 1 and running["exited"] is False
    assert running["apps"][0]["name"] == "shell" and running["apps"][0]["state"] == "running"
    assert running["apps"][0]["exit_code"] is None and running["started_at"] > 0

    listed = json.loads(pyrkt("list", "--format=json", check=True).stdout)
    assert [entry["name"] for entry in listed] == [uuid]
    pretty = pyrkt("list", "--format=json-pretty", check=True).stdout
    assert pretty.startswith("[\n  {") and json.loads(pretty) == listed
    table = pyrkt("list", "--fields=state,uuid,app", "--no-legend", check=True).stdout
    assert table.split() == ["running", uuid[:8], "shell"]
    full = pyrkt("list", "--full", "--fields=uuid,imageid", check=True).stdout.splitlines()
    assert full[0].split() == ["UUID", "IMAGE", "ID"] and full[1].split()[0] == uuid
    assert full[1].split()[1].startswith("sha512-") and len(full[1].split()[1]) > 100
    bad = pyrkt("list", "--fields=uuid,colour")
    assert bad.returncode != 0 and "unknown field(s) colour" in bad.stderr

    assert pyrkt("stop", uuid, check=True).stdout == f'"{uuid}"\n'  # rkt's output
    exited = json.loads(pyrkt("status", "--format=json-pretty", uuid, check=True).stdout)
    assert exited["state"] == "exited" and exited["exited"] is True and exited["pid"] == -1
    assert exited["apps"][0] | {"image_id": None} == {
        "name": "shell", "image_name": "example.com/shell", "image_id": None,
        "exit_code": 143, "state": "exited"}
    assert exited["finished_at"] >= exited["started_at"]


def test_the_pod_init_passes_reload_signals_on_to_the_apps(tmp_path, shell_image, start_pyrkt,
                                                           pyrkt, store) -> None:
    import os
    import signal

    from registry.launcher.pods import find_pod

    image = shell_image("trap 'echo got HUP' HUP; trap 'echo got USR1' USR1; echo ready; "
                        "while true; do sleep 0.1; done")
    uuid = _start(start_pyrkt, tmp_path, str(image))
    _wait_running(pyrkt, store, uuid, processes=1)
    _wait_logged(pyrkt, uuid, "ready")
    init = find_pod(store, uuid).pid()
    assert init
    for signum in (signal.SIGHUP, signal.SIGUSR1):
        os.kill(init, signum)  # what `kill -HUP $(cat <pod>/pid)` does
    deadline = time.monotonic() + 10
    while "got USR1" not in pyrkt("logs", uuid).stdout and time.monotonic() < deadline:
        time.sleep(0.05)
    logs = pyrkt("logs", "--no-prefix", uuid, check=True).stdout
    assert "got HUP\n" in logs and "got USR1\n" in logs
    assert find_pod(store, uuid).is_running  # passed on, not taken as a stop
    pyrkt("stop", uuid, check=True)
