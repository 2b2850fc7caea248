"""`--interactive`: the app gets a pseudo-terminal of its own pod, relayed to the caller's.

The pty is made *inside* the app's root, from the pod's own devpts instance (mounted with
`newinstance`): a terminal passed in from the host would not be found there, so `tty` would
say "not a tty" and programs would lose job control. The app opens /dev/pts/ptmx, sends the
master side to the supervisor over a socket (SCM_RIGHTS), waits until the supervisor has given
it the caller's window size, then makes the slave its controlling terminal and its stdio.

The supervisor puts the caller's terminal in raw mode (so Ctrl-C, Ctrl-Z... travel as bytes
to the app's terminal, whose line discipline turns them into signals for the app), relays
both ways (and into the app's log), copies the window size on every SIGWINCH, and restores
the caller's terminal at the end.
"""

from __future__ import annotations

import fcntl
import os
import select
import signal
import socket
import struct
import termios
import threading
from typing import Any

from .logs import LogWriter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from _typeshed import StrPath

TIOCGPTN = 0x80045430
TIOCSPTLCK = 0x40045431
WINSIZE = struct.Struct("HHHH")


def attach_app(channel: socket.socket, uid: int, gid: int) -> None:
    """In the app, after its root is entered: a pty of the pod's devpts as controlling terminal
    and stdio; the master goes to the supervisor through `channel`."""
    master = os.open("/dev/pts/ptmx", os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, TIOCSPTLCK, struct.pack("i", 0))  # unlockpt
    number = struct.unpack("I", fcntl.ioctl(master, TIOCGPTN, struct.pack("I", 0)))[0]
    slave_path = f"/dev/pts/{number}"
    slave = os.open(slave_path, os.O_RDWR | os.O_NOCTTY)
    os.chown(slave_path, uid, gid)  # the app's own terminal, as login(1) hands one over
    socket.send_fds(channel, [b"m"], [master])
    os.close(master)
    if channel.recv(1) != b"g":  # the supervisor has set the window size
        raise OSError("the supervisor did not take the terminal")
    channel.close()
    os.setsid()
    fcntl.ioctl(slave, termios.TIOCSCTTY, 0)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)


def _copy_size(source: int, target: int) -> None:
    try:
        size = fcntl.ioctl(source, termios.TIOCGWINSZ, WINSIZE.pack(0, 0, 0, 0))
        fcntl.ioctl(target, termios.TIOCSWINSZ, size)
    except OSError:
        pass  # the caller's stdin is not a terminal: the pty keeps its default size


class Relay:
    """The supervisor's side: caller's terminal <-> the app's pty master."""

    def __init__(self, channel: socket.socket, log_path: StrPath | None, echo: bool) -> None:
        self.channel, self.log_path, self.echo = channel, log_path, echo
        self.master = -1
        self.saved: list[Any] | None = None
        self.previous_winch: Any = None
        self.thread: threading.Thread | None = None

    def start(self, *, threaded: bool = True) -> bool:
        """Take the master from the app, size it, raw-mode our terminal, start relaying.
        False when the app ended before it had a terminal (its error is on our stderr)."""
        try:
            _, fds, _, _ = socket.recv_fds(self.channel, 1, 1)
        except OSError:
            fds = []
        if not fds:
            self.channel.close()
            return False
        self.master = fds[0]
        _copy_size(0, self.master)
        if os.isatty(0):
            self.saved = termios.tcgetattr(0)
            new = termios.tcgetattr(0)
            # raw (cfmakeraw): bytes go through untouched, no local echo, no signals here
            new[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP |
                        termios.INLCR | termios.IGNCR | termios.ICRNL | termios.IXON)
            new[1] &= ~termios.OPOST
            new[2] &= ~(termios.CSIZE | termios.PARENB)
            new[2] |= termios.CS8
            new[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG |
                        termios.IEXTEN)
            new[6][termios.VMIN], new[6][termios.VTIME] = 1, 0
            termios.tcsetattr(0, termios.TCSANOW, new)
        if threading.current_thread() is threading.main_thread():
            self.previous_winch = signal.signal(
                signal.SIGWINCH, lambda _s, _f: _copy_size(0, self.master))
        self.channel.send(b"g")
        self.channel.close()
        if threaded:
            self.thread = threading.Thread(target=self.pump, daemon=True, name="tty-relay")
            self.thread.start()
        return True

    def pump(self) -> None:
        """Relay until the app's side of the terminal is closed (called by `start`'s thread,
        or by the caller itself after `start(threaded=False)`)."""
        log = LogWriter(self.log_path) if self.log_path is not None else None
        inputs = [0, self.master]
        try:
            while True:
                try:
                    ready, _, _ = select.select(inputs, [], [])
                except (OSError, ValueError):
                    return
                if self.master in ready:
                    try:
                        data = os.read(self.master, 65536)
                    except OSError:  # EIO: every slave side is closed, the app is gone
                        return
                    if not data:
                        return
                    if log is not None:
                        log.write(data)
                    if self.echo and not self._out(data):
                        self._reader_gone()
                if 0 in ready:
                    data = os.read(0, 65536)
                    if not data:  # end of our input: an end-of-file keystroke for the app
                        inputs.remove(0)
                        data = b"\x04"
                    os.write(self.master, data)
        finally:
            if log is not None:
                log.close()

    def _out(self, data: bytes) -> bool:
        try:
            while data:
                data = data[os.write(1, data):]
            return True
        except BrokenPipeError:
            return False
        except OSError:
            self.echo = False
            return True

    def _reader_gone(self) -> None:
        """Whoever read our output went away (`pyrkt run -i IMAGE | head -1`): end the app's
        foreground job with SIGPIPE, as its writes would have in a pipeline (on a terminal they
        would block forever)."""
        self.echo = False
        try:
            os.killpg(os.tcgetpgrp(self.master), signal.SIGPIPE)
        except OSError:
            pass

    def finish(self) -> None:
        """After the pod ended: drain the last output, give the caller its terminal back."""
        if self.thread is not None:
            self.thread.join(timeout=2)
        if self.saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, self.saved)
        if self.previous_winch is not None:
            signal.signal(signal.SIGWINCH, self.previous_winch)
        if self.master >= 0:
            os.close(self.master)
            self.master = -1
