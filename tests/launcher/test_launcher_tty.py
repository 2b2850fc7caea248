"""`pyrkt run --interactive` from a real terminal (a pty from Python's `pty` module, as a
terminal emulator would give): the app has a terminal of its own, its size follows the
caller's, Ctrl-C reaches the app, and the caller's terminal is given back as it was."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import sys
import termios
import time

import pytest
from launcher_helpers import needs_root

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _set_size(fd: int, rows: int, columns: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))


def _read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        left = deadline - time.monotonic()
        assert left > 0, f"no {marker!r} in {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the child side closed
                break
            if not chunk:
                break
            seen += chunk
    assert marker in seen, bytes(seen)


def _spawn(store, *args: str) -> tuple[int, int]:
    """`pyrkt ARGS` with a new pty as its controlling terminal; (pid, master)."""
    pid, master = pty.fork()
    if pid == 0:  # the child: becomes pyrkt, on the pty's slave side
        os.environ["PYRKT_DIR"] = str(store)
        os.execv(sys.executable, [sys.executable, "-m", "registry.cli.entry", *args])
    return pid, master


def test_interactive_app_gets_a_terminal_that_follows_the_callers(tool_image, pyrkt,
                                                                  store) -> None:
    image = tool_image()
    pyrkt("fetch", "--insecure-options=image", str(image), check=True)
    pid, master = _spawn(store, "run", "--interactive", "example.com/tool", "--",
                         "tty", "winsize", "wait-int", "winsize", "exit", "42")
    try:
        _set_size(master, 24, 80)  # what the terminal emulator says before the app starts
        seen = bytearray()
        _read_until(master, b"waiting for SIGINT", seen)
        assert b"tty=/dev/pts/0" in seen  # a terminal of the pod's own devpts
        assert b"winsize=24x80" in seen
        _set_size(master, 50, 132)  # the user resizes the window: SIGWINCH to pyrkt
        time.sleep(0.5)
        os.write(master, b"\x03")  # Ctrl-C, as a byte: the app's terminal makes it SIGINT
        _read_until(master, b"winsize=50x132", seen)
        assert b"got SIGINT" in seen
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 42  # the app's own exit code
        # pyrkt gave the terminal back as it found it (canonical mode, echo)
        attributes = termios.tcgetattr(master)
        assert attributes[3] & termios.ICANON and attributes[3] & termios.ECHO
    finally:
        os.close(master)


def test_interactive_without_a_terminal_and_ctrl_c_ends_the_app(tool_image, pyrkt,
                                                                store) -> None:
    image = tool_image()
    pyrkt("fetch", "--insecure-options=image", str(image), check=True)
    # stdin is not a terminal: the app still gets one, its input ends with an end-of-file
    piped = pyrkt("run", "--interactive", "example.com/tool", "--", "tty", "exit", "3",
                  stdin=open(os.devnull))  # noqa: SIM115
    assert piped.returncode == 3 and "tty=/dev/pts/0" in piped.stdout
    # Ctrl-C with the app's default SIGINT action: it dies of it, and says so in its code
    pid, master = _spawn(store, "run", "--interactive", "example.com/tool", "--",
                         "hostname", "sleep", "30")
    try:
        seen = bytearray()
        _read_until(master, b"hostname=", seen)
        started = time.monotonic()
        os.write(master, b"\x03")
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 130 and time.monotonic() - started < 10
    finally:
        os.close(master)


def test_enter_from_a_terminal_gets_a_terminal_of_the_pod(tmp_path, tool_image, pyrkt,
                                                          start_pyrkt, store) -> None:
    from launcher_helpers import wait_for_app_pid, wait_for_file

    image = tool_image()
    uuid_file = tmp_path / "uuid"
    start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", str(image),
                "--", "sleep", "60")
    uuid = wait_for_file(uuid_file)
    wait_for_app_pid(store, uuid, "tool")
    pid, master = _spawn(store, "enter", uuid, "/bin/tool", "tty", "winsize", "exit", "4")
    try:
        _set_size(master, 33, 99)
        seen = bytearray()
        _read_until(master, b"winsize=", seen)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 4
        assert b"tty=/dev/pts/" in seen and b"not a tty" not in seen
    finally:
        os.close(master)
    pyrkt("stop", "--force", uuid, check=True)
