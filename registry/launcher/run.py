"""Stage0 of a run: take a prepared pod into `run/`, pick a stage1 flavour, record the end."""

from __future__ import annotations

import gc
import os

from registry.records import replace

from .errors import LauncherError
from .pods import Pod, PodLock, find_pod, remove_tree, write_atomic
from .prepare import prepare_pod

TYPE_CHECKING = False  # typing and pathlib stay out of the start (see pods)
if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

    from .options import PodOptions

# Function-local imports keep start-up fast: a pod command loads only what it runs.


def systemd_is_pid1() -> bool:
    return os.path.isdir("/run/systemd/system")


def choose_stage1(requested: str, *, interactive: bool = False) -> str:
    """`auto`: systemd when it is PID 1 and systemd-nspawn exists, the builtin flavour otherwise
    (and for --interactive, which only the builtin flavour gives a terminal)."""
    if requested == "builtin" or (requested == "auto" and (interactive or
                                                           not systemd_is_pid1())):
        return "builtin"
    import shutil  # here: only where systemd is PID 1 (bz2, lzma: ~2 ms of every start)

    has_nspawn = shutil.which("systemd-nspawn") is not None
    if requested == "systemd":
        if not has_nspawn:
            raise LauncherError("--stage1=systemd needs systemd-nspawn (package systemd-container)")
        if interactive:
            raise LauncherError("--interactive needs --stage1=builtin (the systemd stage1 gives "
                                "its apps no terminal)")
        return "systemd"
    return "systemd" if has_nspawn and shutil.which("systemd-run") else "builtin"


def run_prepared(store_dir: StrPath, uuid: str, *, echo: bool = True,
                 stage1: str | None = None,
                 log: Any = lambda message: None) -> tuple[Pod, int]:
    """Run a prepared pod to its end; returns the pod and its exit code.

    Stage0 owns the pod's networks: they are set up before the stage1 starts (it joins the
    prepared namespace) and torn down when the pod is over, whichever flavour ran it.
    """
    return _run_found(find_pod(store_dir, uuid), echo=echo, stage1=stage1, log=log)


def _run_found(pod: Pod, *, echo: bool, stage1: str | None, log: Any,
               reap: bool = True) -> tuple[Pod, int]:
    if pod.state != "prepared":
        raise LauncherError(f"pod {pod.uuid} is {pod.state}, not prepared")
    try:
        lock = PodLock(pod.path)
    except FileNotFoundError:  # moved on (started, or removed) since it was found
        pod = pod.refresh()
        raise LauncherError(f"pod {pod.uuid} is {pod.state}, not prepared") from None
    try:
        if not lock.try_exclusive():
            raise LauncherError(f"pod {pod.uuid} is being started by another command")
        if not os.path.isdir(pod.path):  # it moved after we opened it (a rename keeps the lock)
            pod = pod.refresh()
            raise LauncherError(f"pod {pod.uuid} is {pod.state}, not prepared")
        pod.locked = True
        runtime = pod.runtime()
        flavour = choose_stage1(stage1 or runtime.get("stage1", "auto"),
                                interactive=bool(runtime.get("interactive")))
        # a machine (systemd is PID 1) outlives this process: its supervisor tears the
        # networks down when it ends, not we
        machine = flavour == "systemd" and systemd_is_pid1()
        from . import limits

        handed = False  # to a stage1 that records the pod's end itself, however it ends
        # a limit this host cannot enforce fails the run here, before anything is made
        enforced = limits.plan(pod.manifest()["apps"], runtime.get("insecure") or (),
                               lambda message: log(f"warning: {message}"))
        pod.move("run")
        pod.write_timestamp("started")
        write_atomic(os.path.join(pod.path, "stage1"), flavour + "\n")
        limits.record(pod, enforced)
        # Imported here to keep start-up fast: only the chosen flavour's modules load (and the
        # network package's plugin machinery only for a pod that runs).
        from .network import pod as network

        try:
            network.setup(pod, runtime, log=log)
            try:
                if flavour == "systemd":
                    from . import stage1_systemd

                    _start_is_over()
                    handed = machine  # (its supervisor: see stage1_systemd.supervise)
                    return pod, stage1_systemd.run(pod, lock, as_unit=machine, echo=echo)
                from . import stage1_builtin

                _start_is_over()
                return pod, stage1_builtin.run(pod, echo=echo, reap=reap)
            finally:
                if not machine:
                    try:
                        network.teardown(pod.path, pod.uuid)
                    except LauncherError as error:
                        log(f"{error}; pyrkt gc will try again")
        except BaseException:
            # The end of a run that failed, recorded here only if nothing of the pod runs:
            # `finished` makes a pod exited whoever holds its lock (see pods), and a pod that
            # outlives our error (a machine we detached from, a failure of ours after the
            # holder started) records its own end when it has one.
            if not handed and not pod.end_recorded() and \
                    not replace(pod, _alive=None).processes_alive():
                pod.write_timestamp("finished")
            raise
    finally:
        lock.close()


def _start_is_over() -> None:
    """The garbage collector back on, for the processes that live as long as the pod.

    The lean entry (registry.cli.entry) starts with it off. Everything made until now is
    frozen first: no collection in this process or in the stage1's forks (holder, pod init)
    walks those objects, so no page of them is copied into a child for the collector's sake.
    A caller that runs with the collector on (a test, the click commands) is left as it is.
    """
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def run_pod(store_dir: StrPath, options: PodOptions, *, uuid_file: str | None = None,
            echo: bool = True, log: Any = lambda message: None,
            reap: bool = True) -> tuple[Pod, int]:
    """`pyrkt run`: prepare, then run in the foreground.

    `reap=False` is for a caller that exits as soon as this returns (the lean `pyrkt run`): it
    gets the pod's code the moment the pod's end is recorded, while the builtin stage1's last
    two processes are still exiting (the init process reaps them once we are gone). A
    long-lived caller keeps the default, which waits for them: no zombie is left behind."""
    pod = prepare_pod(store_dir, options, log=log)
    if uuid_file:
        save_uuid(pod, uuid_file)
    try:
        # (not looked up again)
        return _run_found(pod, echo=echo, stage1=None, log=log, reap=reap)
    except LauncherError:
        _discard_unstarted(pod)  # refused before it started (e.g. a limit): nothing is left
        raise


def _discard_unstarted(pod: Pod) -> None:
    """Remove a pod `pyrkt run` prepared for itself if it never left `prepared`."""
    lock = PodLock(pod.path) if os.path.exists(pod.path) else None
    if lock is None:
        return
    try:
        if lock.try_exclusive() and pod.refresh().state_dir == "prepared":
            remove_tree(pod.path)
    except LauncherError:
        pass
    finally:
        lock.close()


def save_uuid(pod: Pod, path: str) -> None:
    try:
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(pod.uuid + "\n")
    except OSError as error:
        raise LauncherError(f"--uuid-file-save {path}: {error.strerror or error}") from None
