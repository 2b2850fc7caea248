"""The end of a builtin pod: `pyrkt run` returns the pod's code once its end is recorded, while
the stage1's last processes (the holder, the init) are still exiting, and the pod is exited for
every other command from that moment (see registry/launcher/pods.py and stage1_builtin.py)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from launcher_helpers import needs_root, status_of

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _locked(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _wait_for(what: str, ready, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_run_returns_while_the_stage1_still_exits_and_the_pod_reads_exited(
        tmp_path, shell_image, start_pyrkt, pyrkt, store) -> None:
    """A process in the pod's PID namespace that is not the init's child (as `pyrkt enter`
    puts there) whose parent does not reap it holds the init's exit in the kernel (a namespace's
    init exits once every process of it is reaped), and with it the holder, which waits for the
    init: `pyrkt run` must still return the pod's code, the pod must read as exited (lock held,
    cgroup populated), and `rm` must wait for those last processes and then leave nothing."""
    volume = tmp_path / "vol"
    volume.mkdir()
    image = shell_image("echo ready; while [ ! -e /vol/go ]; do sleep 0.02; done; echo bye; "
                        "exit 3")
    uuid_file = tmp_path / "uuid"
    run = start_pyrkt("run", "--insecure-options=image", "--net=host",
                      f"--uuid-file-save={uuid_file}", f"--volume=vol,kind=host,source={volume}",
                      str(image), "--mount=volume=vol,target=/vol")
    assert run.stdout is not None
    assert run.stdout.readline() == "ready\n"
    uuid = uuid_file.read_text().strip()
    pod_dir = store / "pods" / "run" / uuid
    init = int(_wait_for("the pod's init", lambda: (pod_dir / "pid").exists() and
                         (pod_dir / "pid").read_text().strip()))
    cgroups = [Path(d) for d in json.loads((pod_dir / "cgroups").read_text())]
    assert cgroups and all(d.is_dir() for d in cgroups)
    # nsenter forks `sleep` into the pod's PID namespace and is its parent; stopped, it cannot
    # reap it once the init's end kills it
    entered = subprocess.Popen(["nsenter", f"--target={init}", "--pid", "--", "sleep", "600"])
    sleeper = _wait_for("the entered process", lambda: _children(entered.pid))[0]
    assert os.readlink(f"/proc/{sleeper}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    os.kill(entered.pid, signal.SIGSTOP)
    remover = None
    try:
        (volume / "go").write_text("")
        try:
            assert run.wait(timeout=30) == 3, run.stderr.read() if run.stderr else ""
        except subprocess.TimeoutExpired:
            pytest.fail("pyrkt run waited for the stage1's exit, not for the pod's end")
        assert run.stdout.read() == "bye\n"  # every byte of output came before the code
        # the early path was taken: the stage1 is still there, held by the unreaped process
        assert os.path.exists(f"/proc/{init}") and _locked(pod_dir)
        assert Path(f"/proc/{sleeper}/status").read_text().count("zombie") == 1
        status = status_of(pyrkt, uuid)
        assert status["state"] == "exited" and status["exited"] == "true"
        assert status["app-shell"] == "3" and status["pid"] == "-1" and "finished" in status
        listed = pyrkt("list", "--no-legend", check=True).stdout
        assert uuid[:8] in listed and "exited" in listed
        stop = pyrkt("stop", uuid)
        assert stop.returncode != 0 and "exited, not running" in stop.stderr
        enter = pyrkt("enter", uuid, "/bin/true")
        assert enter.returncode != 0 and "not running" in enter.stderr
        assert pyrkt("logs", "--no-prefix", uuid, check=True).stdout == "ready\nbye\n"
        env = dict(os.environ, PYRKT_DIR=str(store))
        remover = subprocess.Popen([sys.executable, "-m", "registry.cli.entry", "rm", uuid],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        time.sleep(0.5)
        assert remover.poll() is None, "rm did not wait for the stage1's last processes"
        assert _locked(pod_dir)
    finally:
        os.kill(entered.pid, signal.SIGCONT)  # it reaps `sleep`: the init, then the holder end
        entered.wait(timeout=30)
    assert remover is not None
    out, err = remover.communicate(timeout=30)
    assert remover.returncode == 0, err
    assert not pod_dir.exists() and not list((store / "pods").glob(f"*/{uuid}"))
    assert not any(d.exists() for d in cgroups)


LOOP = r"""
import json, os, sys
from registry.cli.entry import _lean
from registry.launcher import manage, pods

store, image, uuid_file, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
for round in range(rounds):
    # the lean `pyrkt run` (it returns without waiting for the stage1's last processes), and
    # at once, in the same process, what another command would see and do
    code = _lean(["run", "--insecure-options=image", "--net=host",
                  f"--uuid-file-save={uuid_file}", image])()
    uuid = open(uuid_file).read().strip()
    pod = pods.find_pod(store, uuid)
    seen = {"code": code, "state": pod.state, "locked": pod.locked,
            "status": manage.status_lines(pod), "cgroups": pod.pod_cgroup_dirs()}
    if round % 2:
        seen["removed"] = [manage.rm(store, uuid).uuid]
    else:
        seen["removed"] = manage.gc(store, grace_period=0.0)
    seen["left"] = sorted(os.listdir(os.path.join(store, "pods", "run")))
    print(json.dumps(seen), flush=True)
"""


def test_run_then_at_once_status_rm_and_gc(tmp_path, shell_image, store) -> None:
    """`pyrkt run`, then in the same instant (no process start between them) `status` and `rm`
    or `gc --grace-period=0s` of that pod, many times: each sees an exited pod with its code,
    and each removes it without an error, leaving nothing (pod directory, cgroups)."""
    image = shell_image("echo out; exit 7")
    rounds = 12
    result = subprocess.run(
        [sys.executable, "-c", LOOP, str(store), str(image), str(tmp_path / "uuid"),
         str(rounds)], env=dict(os.environ, PYRKT_DIR=str(store)), capture_output=True,
        text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    seen = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(seen) == rounds, result.stdout
    for entry in seen:
        assert entry["code"] == 7
        assert entry["state"] == "exited", entry
        assert "state=exited" in entry["status"] and "exited=true" in entry["status"]
        assert "app-shell=7" in entry["status"] and "pid=-1" in entry["status"]
        assert len(entry["removed"]) == 1 and entry["left"] == []
        assert not any(os.path.exists(d) for d in entry["cgroups"])
    assert not list((store / "pods").glob("*/*"))


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def _start_waiting_pod(tmp_path: Path, shell_image, start_pyrkt, store: Path):
    """A pod whose app says `ready`, then exits 3 once `go` appears in its volume (printing
    nothing more: it may have no reader left)."""
    volume = tmp_path / "vol"
    volume.mkdir()
    image = shell_image("echo ready; while [ ! -e /vol/go ]; do sleep 0.02; done; exit 3")
    uuid_file = tmp_path / "uuid"
    run = start_pyrkt("run", "--insecure-options=image", "--net=host",
                      f"--uuid-file-save={uuid_file}", f"--volume=vol,kind=host,source={volume}",
                      str(image), "--mount=volume=vol,target=/vol")
    assert run.stdout is not None and run.stdout.readline() == "ready\n"
    uuid = uuid_file.read_text().strip()
    pod_dir = store / "pods" / "run" / uuid
    init = int(_wait_for("the pod's init", lambda: (pod_dir / "pid").exists() and
                         (pod_dir / "pid").read_text().strip()))
    return run, uuid, init, volume / "go"


def test_a_killed_init_ends_the_run_as_before(tmp_path, shell_image, start_pyrkt, pyrkt,
                                              store) -> None:
    """No word from the init (SIGKILLed): the holder takes the end from its wait status, as
    without the early return: 137 for the pod, its app killed with it."""
    run, uuid, init, _go = _start_waiting_pod(tmp_path, shell_image, start_pyrkt, store)
    os.kill(init, signal.SIGKILL)
    assert run.wait(timeout=30) == 137
    status = status_of(pyrkt, uuid)
    assert status["state"] == "exited" and status["app-shell"] == "137"
    pyrkt("rm", uuid, check=True)
    assert not list((store / "pods").glob(f"*/{uuid}"))


def test_a_killed_holder_leaves_the_end_to_the_pods_init(tmp_path, shell_image, start_pyrkt,
                                                        pyrkt, store) -> None:
    """The holder SIGKILLed while the app runs on: `pyrkt run` records nothing while the pod
    runs (a `finished` stamp would make it exited, see pods); it waits for the pod's init and
    returns the app's own code, which the init recorded."""
    run, uuid, init, go = _start_waiting_pod(tmp_path, shell_image, start_pyrkt, store)
    holder = _parent(init)
    assert _parent(holder) == run.pid
    os.kill(holder, signal.SIGKILL)
    _wait_for("the holder's end", lambda: not Path(f"/proc/{holder}/stat").exists() or
              "zombie" in Path(f"/proc/{holder}/status").read_text())
    status = status_of(pyrkt, uuid)
    assert status["state"] == "running" and "finished" not in status
    assert run.poll() is None  # it waits for the pod, whose app still runs
    go.write_text("")
    assert run.wait(timeout=30) == 3
    status = status_of(pyrkt, uuid)
    assert status["state"] == "exited" and status["app-shell"] == "3" and "finished" in status
    pyrkt("rm", uuid, check=True)
    assert not list((store / "pods").glob(f"*/{uuid}"))


def _held_mount_namespaces(pid: int) -> set[str]:
    held = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("mnt:["):
            held.add(target)
    return held


def test_the_init_holds_each_apps_mount_namespace_until_the_app_ends(
        tmp_path, shell_image, start_pyrkt, pyrkt, store) -> None:
    """The init keeps each app's mount namespace (its teardown is then not in the app's exit,
    before the pod's end can be recorded); an app that ends while another runs has its own let
    go of at once, the last one's goes with the init."""
    volume = tmp_path / "vol"
    volume.mkdir()
    first = shell_image("echo first; while [ ! -e /vol/go-first ]; do sleep 0.02; done; exit 4",
                        name="example.com/first")
    second = shell_image("echo second; while [ ! -e /vol/go-second ]; do sleep 0.02; done",
                         name="example.com/second")
    uuid_file = tmp_path / "uuid"
    run = start_pyrkt("run", "--insecure-options=image", "--net=host",
                      f"--uuid-file-save={uuid_file}", f"--volume=vol,kind=host,source={volume}",
                      str(first), "--mount=volume=vol,target=/vol", "---",
                      str(second), "--mount=volume=vol,target=/vol")
    assert run.stdout is not None
    assert {run.stdout.readline(), run.stdout.readline()} == {"first\n", "second\n"}
    pod_dir = store / "pods" / "run" / uuid_file.read_text().strip()
    init = int(_wait_for("the pod's init", lambda: (pod_dir / "pid").exists() and
                         (pod_dir / "pid").read_text().strip()))
    apps = {}
    for name in ("first", "second"):
        app_pid = int(_wait_for(f"{name}'s PID", lambda n=name: (
            pod_dir / "apps" / n / "pid").exists() and (pod_dir / "apps" / n / "pid")
            .read_text().strip()))
        apps[name] = os.readlink(f"/proc/{app_pid}/ns/mnt")
    assert apps["first"] != apps["second"]
    assert _held_mount_namespaces(init) == set(apps.values())
    (volume / "go-first").write_text("")
    _wait_for("first's exit code", lambda: (pod_dir / "apps" / "first" / "exit").exists())
    _wait_for("first's namespace let go",
              lambda: _held_mount_namespaces(init) == {apps["second"]})
    (volume / "go-second").write_text("")
    assert run.wait(timeout=30) == 4
    status = status_of(pyrkt, uuid_file.read_text().strip())
    assert status["app-first"] == "4" and status["app-second"] == "0"


FAILING_RUN = r"""
import sys
from registry.cli import entry
from registry.launcher import stage1_builtin
from registry.launcher.errors import LauncherError

def fail_after_the_start(pod):
    # after the holder said `ok`: the pod's processes are alive, its end is not recorded
    raise LauncherError("injected failure after the pod started")

stage1_builtin._forward_signals_to = fail_after_the_start
sys.argv = ["pyrkt", *sys.argv[1:]]
entry.main()
"""


def test_a_failure_of_pyrkt_run_after_the_start_leaves_the_end_to_the_pod(
        tmp_path, shell_image, pyrkt, store) -> None:
    """`pyrkt run` failing once its pod runs (here: an error injected where it would start
    forwarding signals) reports the error and stamps nothing: a `finished` stamp would make a
    live pod exited (see pods). The pod runs on, and records its own end with its app's code."""
    volume = tmp_path / "vol"
    volume.mkdir()
    image = shell_image("while [ ! -e /vol/go ]; do sleep 0.02; done; exit 3")
    uuid_file = tmp_path / "uuid"
    # output to a file: the pod's processes keep their copies of it open while the pod runs
    with open(tmp_path / "said", "w+") as said:
        failed = subprocess.Popen(
            [sys.executable, "-c", FAILING_RUN, "run", "--insecure-options=image",
             "--net=host", f"--uuid-file-save={uuid_file}",
             f"--volume=vol,kind=host,source={volume}", str(image),
             "--mount=volume=vol,target=/vol"],
            env=dict(os.environ, PYRKT_DIR=str(store)), stdout=said, stderr=said, text=True)
        assert failed.wait(timeout=60) != 0
        said.seek(0)
        text = said.read()
    assert "injected failure after the pod started" in text and "Traceback" not in text, text
    uuid = uuid_file.read_text().strip()
    pod_dir = store / "pods" / "run" / uuid
    assert not (pod_dir / "finished").exists()
    status = status_of(pyrkt, uuid)
    assert status["state"] == "running" and "finished" not in status, status
    (volume / "go").write_text("")
    _wait_for("the pod's own end", lambda: status_of(pyrkt, uuid)["state"] == "exited")
    status = status_of(pyrkt, uuid)
    assert status["app-shell"] == "3" and "finished" in status, status
    pyrkt("rm", uuid, check=True)
    assert not list((store / "pods").glob(f"*/{uuid}"))


def test_stop_ends_an_exited_pod_that_runs_on(tmp_path, shell_image, start_pyrkt, pyrkt, store,
                                              monkeypatch) -> None:
    """A pod whose end was recorded while its init runs on (what a stage1 failing at its end
    could leave; here the `finished` stamp is written by hand while the app waits) reads as
    exited, and is no dead end: `rm` refuses it and says to stop it, `stop` ends it (once the
    stage1's own last processes had their wait), and `rm` then removes it. (An exited pod whose
    init is in its exit is another matter: no signal helps it, and `stop` says it is not
    running, see the first test.)"""
    from registry.launcher import manage
    from registry.launcher.errors import LauncherError
    from registry.launcher.pods import find_pod

    monkeypatch.setattr(manage, "LAST_PROCESSES_WAIT", 0.5)  # (rm, gc and stop alike)
    run, uuid, init, _go = _start_waiting_pod(tmp_path, shell_image, start_pyrkt, store)
    find_pod(store, uuid).write_timestamp("finished")
    assert status_of(pyrkt, uuid)["state"] == "exited"
    with pytest.raises(LauncherError, match="still has live processes; stop it first"):
        manage.rm(store, uuid)
    assert manage.stop(store, uuid).uuid == uuid
    assert run.wait(timeout=30) != 0  # its app was stopped (SIGTERM)
    _wait_for("the init's end", lambda: not Path(f"/proc/{init}").exists())  # (its reaping)
    assert status_of(pyrkt, uuid)["state"] == "exited"
    pyrkt("rm", uuid, check=True)
    assert not list((store / "pods").glob(f"*/{uuid}"))
