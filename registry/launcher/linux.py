"""Thin wrappers for the Linux calls Python 3.11's `os` lacks, over ctypes' own C module.

Why in-process and not bubblewrap: the builtin stage1 needs to interleave namespace creation
with its own work (cgroup joins before pivot_root, per-app mount namespaces inside one shared
network/PID namespace, a port forwarder that `setns`es into the pod's network namespace from
the host side). Doing it in-process keeps one supervisor that knows every PID, needs no extra
binary on the host, and costs no extra exec per app — bwrap would still need a second tool for
`setns` and would hide the PIDs we must signal on `pyrkt stop`.

Why `_ctypes` and not `ctypes`: the package's Python layer defines some forty classes and
loads struct and types when imported, ~1.5 ms of every `pyrkt run` for the five C types and
one kind of function the launcher calls. `_ctypes` is the C module that layer is built on (the
same types, calls and errno handling); this module defines just those five types over it.
"""

from __future__ import annotations

import _ctypes
import fcntl
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import signal
else:
    # signal's functions with plain numbers, built into the interpreter: `signal` loads enum
    # (~2 ms of a start) for its IntEnum wrappers
    import _signal as signal


# C types, as ctypes names them (each is ctypes's own definition: a format code of `struct`)
class c_int(_ctypes._SimpleCData):
    _type_ = "i"


class c_ulong(_ctypes._SimpleCData):  # also size_t and a pointer's value on Linux's LP64
    _type_ = "L"


class c_long(_ctypes._SimpleCData):
    _type_ = "l"


class c_ushort(_ctypes._SimpleCData):
    _type_ = "H"


class c_char_p(_ctypes._SimpleCData):  # a bytes object's own buffer, passed by address
    _type_ = "z"


class _Function(_ctypes.CFuncPtr):
    """A C function returning int, errno saved after each call (ctypes.CDLL's use_errno)."""
    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _Library:
    """The C library's functions as attributes, each looked up once (like ctypes.CDLL)."""

    def __init__(self) -> None:
        # dlopen(NULL): the C library this Python already runs on. find_library("c") would run
        # `ldconfig -p` in a subprocess on every start of `pyrkt` (a few ms, and a fork).
        self._handle = _ctypes.dlopen(None, os.RTLD_LOCAL)  # type: ignore[arg-type]  # (NULL)

    def __getattr__(self, name: str) -> _Function:
        function = _Function(_ctypes.dlsym(self._handle, name))
        setattr(self, name, function)
        return function


# The one handle of the launcher's (capabilities, seccomp and podinit call through it too).
libc = _Library()
byref = _ctypes.byref
Structure = _ctypes.Structure


def errno() -> int:
    """The errno of this thread's last call through `libc`."""
    return _ctypes.get_errno()


def check(result: int, what: str) -> None:
    """OSError(errno, "what: strerror") if a call through `libc` failed (returned non-zero)."""
    if result != 0:
        err = _ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def write_memory(address: int, data: bytes) -> None:
    """Copy `data` into this process's memory at `address` (memmove: its result, the address,
    is not read)."""
    libc.memmove(c_ulong(address), data, c_ulong(len(data)))


def zero_memory(address: int, size: int) -> None:
    libc.memset(c_ulong(address), c_int(0), c_ulong(size))


CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19

MNT_DETACH = 2

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)


def unshare(flags: int) -> None:
    check(libc.unshare(c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    check(libc.setns(c_int(fd), c_int(nstype)), "setns")


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    def enc(value: str | None) -> bytes | None:
        return value.encode() if value is not None else None

    result = libc.mount(enc(source), enc(target), enc(fstype), c_ulong(flags), enc(data))
    check(result, f"mount {source or fstype} on {target}")


def umount(target: str, flags: int = 0) -> None:
    check(libc.umount2(target.encode(), c_int(flags)), f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    result = libc.syscall(c_long(_SYS_PIVOT_ROOT), new_root.encode(), put_old.encode())
    check(result, f"pivot_root {new_root}")


def sethostname(name: str) -> None:
    data = name.encode()
    check(libc.sethostname(data, c_ulong(len(data))), "sethostname")


def loopback_up() -> None:
    """Bring `lo` up in the current network namespace (SIOCGIFFLAGS / SIOCSIFFLAGS)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    # here, and the C module alone: `--net=host` pods never need it, and socket.py loads enum,
    # selectors and collections (~5 ms, in the holder of every --net=none pod after its fork)
    import _socket

    sock = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        # struct ifreq: the name in 16 bytes, then (the union) a short of flags, 24 bytes in all
        request = b"lo".ljust(16, b"\0") + bytes(24)
        flags = int.from_bytes(fcntl.ioctl(sock, siocgifflags, request)[16:18], sys.byteorder)
        fcntl.ioctl(sock, siocsifflags,
                    request[:16] + (flags | iff_up).to_bytes(2, sys.byteorder) + bytes(22))
    finally:
        sock.close()


def default_signals_for_exec() -> None:
    """Give a program about to be exec'd the signal state a shell would: nothing ignored or blocked.

    exec keeps a signal's disposition when it is SIG_IGN, and the signal mask. Python ignores
    SIGPIPE and SIGXFSZ for itself (and the launcher ignores SIGINT in places), so an app
    exec'd from here as-is would never die of a closed pipe: `pyrkt run IMAGE | head -1` would
    let it write forever. As systemd does for services (and so rkt's stage1 did for apps),
    every ignored signal goes back to SIG_DFL and the mask is emptied. Call it in the child,
    right before exec. (It runs after pivot_root, where no module of the host can be loaded any
    more: `_signal` is imported with this module, and is built into the interpreter anyway.)
    """
    for signum in signal.valid_signals():
        if signum in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            if signal.getsignal(signum) == signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
        except (OSError, ValueError):  # signals the C library keeps for itself
            continue
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
