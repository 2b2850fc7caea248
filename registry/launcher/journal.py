"""The apps' output of a systemd-stage1 pod, read from its machine's journal.

journald inside the machine writes `<pod>/machine/var/log/journal/<machine-id>/`: the files
`journalctl -M` reads while the machine runs, and `pyrkt logs` reads (with
`journalctl --directory`) while it runs and after it ended. An app's lines are the entries whose
`_SYSTEMD_UNIT` is the app's unit; journald stores a line without its newline (and without
trailing whitespace), so each line is given back with one newline.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from .logs import LogLine, select
from .machine import app_unit


def _command(directory: Path, apps: list[str], *extra: str) -> list[str]:
    return ["journalctl", f"--directory={directory}", "--quiet", "--no-pager", "-o", "json",
            "--output-fields=MESSAGE,_SYSTEMD_UNIT", *extra,
            *[f"_SYSTEMD_UNIT={app_unit(app)}" for app in apps]]


def _parse(row: bytes, units: dict[str, str]) -> tuple[LogLine, str] | None:
    try:
        entry = json.loads(row)
    except ValueError:
        return None
    message = entry.get("MESSAGE")
    if isinstance(message, list):  # journald's form of a message that is not UTF-8
        data = bytes(message)
    elif isinstance(message, str):
        data = message.encode()
    else:
        return None
    app = units.get(entry.get("_SYSTEMD_UNIT", ""))
    if app is None:
        return None
    when = int(entry.get("__REALTIME_TIMESTAMP", 0)) / 1e6
    return LogLine(when, app, data + b"\n"), str(entry.get("__CURSOR", ""))


def read(directory: Path, apps: list[str], *,
         after_cursor: str | None = None) -> tuple[list[LogLine], str | None]:
    """Every line so far (after `after_cursor`), and the cursor of the last one."""
    if not directory.is_dir():
        return [], after_cursor
    extra = [f"--after-cursor={after_cursor}"] if after_cursor else []
    result = subprocess.run(_command(directory, apps, *extra), capture_output=True)
    units = {app_unit(app): app for app in apps}
    lines, cursor = [], after_cursor
    for row in result.stdout.splitlines():
        parsed = _parse(row, units)
        if parsed is not None:
            lines.append(parsed[0])
            cursor = parsed[1] or cursor
    return lines, cursor


def follow(directory: Path, apps: list[str], running: Callable[[], bool], *,
           since: float | None = None, tail: int | None = None,
           interval: float = 0.1, ended_fd: int | None = None) -> Iterator[LogLine]:
    """What is there (after `since`, the last `tail`), then each line as journald stores it,
    until `running()` turns false (or `ended_fd`, a pidfd of the pod's supervisor, becomes
    readable: no polling delay at the end); a last read then takes what the end wrote."""
    first, cursor = read(directory, apps)
    yield from select(first, since=since, tail=tail)
    units = {app_unit(app): app for app in apps}
    state = {"running": True}

    def still() -> bool:
        state["running"] = state["running"] and running()
        return state["running"]

    while still():
        # journalctl gives up on a directory that holds no journal file yet (the machine's
        # journald is still starting): start it again from where we are
        start = cursor
        for line, last in _follow_once(directory, apps, units, start, still, interval,
                                       ended_fd, state):
            cursor = last
            if since is None or line.when >= since:
                yield line
        if state["running"]:
            time.sleep(interval)
    rest, _ = read(directory, apps, after_cursor=cursor)
    yield from select(rest, since=since, tail=None)


def _follow_once(directory: Path, apps: list[str], units: dict[str, str], cursor: str | None,
                 running: Callable[[], bool], interval: float, ended_fd: int | None,
                 state: dict[str, bool]) -> Iterator[tuple[LogLine, str | None]]:
    """`journalctl --follow` until it ends or `running()` is false with nothing left to read."""
    extra = [f"--after-cursor={cursor}"] if cursor else ["--lines=all"]
    process = subprocess.Popen(_command(directory, apps, "--follow", *extra),
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    if ended_fd is not None:
        selector.register(ended_fd, selectors.EVENT_READ)
    pending = b""
    try:
        while True:
            alive = running()
            ready = {key.fd for key, _ in selector.select(interval)}
            if ended_fd in ready:
                state["running"] = False  # the rest comes from the last read
                return
            if ready:
                chunk = os.read(process.stdout.fileno(), 65536)
                if not chunk:
                    return
                pending += chunk
                *rows, pending = pending.split(b"\n")
                for row in rows:
                    parsed = _parse(row, units)
                    if parsed is not None:
                        cursor = parsed[1] or cursor
                        yield parsed[0], cursor
            elif not alive:
                return
    finally:
        process.terminate()
        process.wait()
        selector.close()
