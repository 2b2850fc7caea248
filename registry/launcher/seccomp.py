"""Seccomp filters for apps, as rkt's: a default whitelist, the appc seccomp isolators, `--seccomp`.

What an app gets (rkt's rules, from its stage1):
- no seccomp isolator: only the syscalls of `@rkt/default-whitelist`; any other kills the app
  with SIGSYS;
- `os/linux/seccomp-retain-set` {"set": [...], "errno": "ENAME"}: only those; `@appc.io/all`
  in the set means no filter at all;
- `os/linux/seccomp-remove-set`: all but those; `@appc.io/empty` means the default whitelist;
- `errno`: a refused syscall fails with that error instead of killing the app;
- `--insecure-options=seccomp` (or all-run): no filter;
- an app that does not run as root gets no_new_privs with its filter (the kernel's rule for
  installing one without CAP_SYS_ADMIN; rkt sets it for the same reason).

Two things differ from rkt's 2016 lists, for today's kernels and C libraries: the syscalls
added since that ordinary programs make at start (rseq, statx, faccessat2, close_range...; a
binary built against glibc >= 2.35 registers rseq before main and would be killed at once) are
in the whitelist, and, as Docker's profile does, clone is allowed only without namespace flags
(unless the app keeps CAP_SYS_ADMIN) and clone3, whose flags a filter cannot read, fails with
ENOSYS so the C library falls back to clone. Without that, clone(CLONE_NEWUSER) would hand an
app the user namespace that unshare is refused for.

The filter is compiled by libseccomp (through the `pyseccomp` binding: ctypes over Debian's
libseccomp2, so nothing to build) into BPF, which is cached under the store by a hash of what
was asked: importing the binding costs ~10 ms (it runs `ldconfig -p` to find the library) and
compiling ~300 rules a few more, on every start otherwise. The app loads the cached program
itself with prctl(PR_SET_SECCOMP) just before exec.
"""

from __future__ import annotations

import errno as errnos
import os

from registry import jsontext
from registry.records import record

from . import linux
from .errors import LauncherError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

RETAIN, REMOVE = "os/linux/seccomp-retain-set", "os/linux/seccomp-remove-set"

# rkt's @rkt/default-whitelist (the same as its @docker/default-whitelist).
RKT_WHITELIST = (
    "accept accept4 access alarm bind brk capget capset chdir chmod chown chown32 clock_getres "
    "clock_gettime clock_nanosleep close connect copy_file_range creat dup dup2 dup3 "
    "epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait epoll_wait epoll_wait_old "
    "eventfd eventfd2 execve execveat exit exit_group faccessat fadvise64 fadvise64_64 "
    "fallocate fanotify_mark fchdir fchmod fchmodat fchown fchown32 fchownat fcntl fcntl64 "
    "fdatasync fgetxattr flistxattr flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 "
    "fstatfs fstatfs64 fsync ftruncate ftruncate64 futex futimesat getcpu getcwd getdents "
    "getdents64 getegid getegid32 geteuid geteuid32 getgid getgid32 getgroups getgroups32 "
    "getitimer getpeername getpgid getpgrp getpid getppid getpriority getrandom getresgid "
    "getresgid32 getresuid getresuid32 getrlimit get_robust_list getrusage getsid getsockname "
    "getsockopt get_thread_area gettid gettimeofday getuid getuid32 getxattr inotify_add_watch "
    "inotify_init inotify_init1 inotify_rm_watch io_cancel ioctl io_destroy io_getevents "
    "ioprio_get ioprio_set io_setup io_submit ipc kill lchown lchown32 lgetxattr link linkat "
    "listen listxattr llistxattr _llseek lremovexattr lseek lsetxattr lstat lstat64 madvise "
    "memfd_create mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 "
    "mprotect mq_getsetattr mq_notify mq_open mq_timedreceive mq_timedsend mq_unlink mremap "
    "msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep newfstatat "
    "_newselect open openat pause personality pipe pipe2 poll ppoll prctl pread64 preadv "
    "prlimit64 pselect6 pwrite64 pwritev read readahead readlink readlinkat readv recv "
    "recvfrom recvmmsg recvmsg remap_file_pages removexattr rename renameat renameat2 "
    "restart_syscall rmdir rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo "
    "rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo sched_getaffinity "
    "sched_getattr sched_getparam sched_get_priority_max sched_get_priority_min "
    "sched_getscheduler sched_rr_get_interval sched_setaffinity sched_setattr sched_setparam "
    "sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop send "
    "sendfile sendfile64 sendmmsg sendmsg sendto setfsgid setfsgid32 setfsuid setfsuid32 "
    "setgid setgid32 setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 "
    "setresgid setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit "
    "set_robust_list setsid setsockopt set_thread_area set_tid_address setuid setuid32 "
    "setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4 sigreturn "
    "socket socketcall socketpair splice stat stat64 statfs statfs64 symlink symlinkat sync "
    "sync_file_range syncfs sysinfo syslog tee tgkill time timer_create timer_delete "
    "timerfd_create timerfd_gettime timerfd_settime timer_getoverrun timer_gettime "
    "timer_settime times tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat "
    "utime utimensat utimes vfork vmsplice wait4 waitid waitpid write writev arch_prctl "
    "modify_ldt chroot clone"
).split()
# Added since rkt's list, made by ordinary programs of today (see the module's docstring).
MODERN_WHITELIST = (
    "rseq statx faccessat2 close_range openat2 pidfd_open pidfd_send_signal epoll_pwait2 "
    "membarrier preadv2 pwritev2 futex_waitv io_pgetevents clock_nanosleep_time64 "
    "clock_gettime64 futex_time64 ppoll_time64 pselect6_time64 getrandom"
).split()
DEFAULT_WHITELIST = tuple(dict.fromkeys(RKT_WHITELIST + MODERN_WHITELIST))

# rkt's @rkt/default-blacklist (the same as its @docker/default-blacklist).
DEFAULT_BLACKLIST = tuple((
    "acct add_key adjtimex bpf clock_adjtime clock_settime create_module delete_module "
    "finit_module get_kernel_syms get_mempolicy init_module ioperm iopl kcmp kexec_file_load "
    "kexec_load keyctl lookup_dcookie mbind mount move_pages name_to_handle_at nfsservctl "
    "open_by_handle_at perf_event_open pivot_root process_vm_readv process_vm_writev ptrace "
    "query_module quotactl reboot request_key set_mempolicy setns settimeofday stime swapon "
    "swapoff sysfs _sysctl umount umount2 unshare uselib userfaultfd ustat vm86 vm86old"
).split())

GROUPS = {
    "@rkt/default-whitelist": DEFAULT_WHITELIST, "@docker/default-whitelist": DEFAULT_WHITELIST,
    "@rkt/default-blacklist": DEFAULT_BLACKLIST, "@docker/default-blacklist": DEFAULT_BLACKLIST,
}
ALL, EMPTY = "@appc.io/all", "@appc.io/empty"

# clone(2) flags that make namespaces (CLONE_NEWNS ... CLONE_NEWCGROUP, CLONE_NEWTIME)
NAMESPACE_FLAGS = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | \
    0x20000000 | 0x40000000 | 0x00000080
CACHE_FORMAT = "3"  # bump when the compiled program for the same spec would change


@record(frozen=True)
class FilterSpec:
    mode: str  # "retain": only `syscalls`; "remove": all but `syscalls`
    syscalls: tuple[str, ...]
    errno: int | None  # None: a refused syscall kills the app (SIGSYS)
    namespaces: bool = False  # retain mode: clone may make namespaces (CAP_SYS_ADMIN kept)

    def text(self) -> bytes:
        """What the compiled program depends on, as the line its cache file starts with."""
        return jsontext.dumps([CACHE_FORMAT, os.uname().machine, self.mode, sorted(self.syscalls),
                           self.errno, self.namespaces]).encode()


def _errno(name: str, where: str) -> int:
    number = getattr(errnos, name.strip().upper(), None)
    if not isinstance(number, int) or name.strip().upper() not in errnos.errorcode.values():
        raise LauncherError(f'{where}: errno "{name}" is not an errno name (e.g. EPERM, '
                            f"ENOSYS, ENOTSUP; see errno(3))")
    return number


def _expand(items: list[str], where: str) -> tuple[str, ...]:
    names: list[str] = []
    for item in items:
        item = str(item).strip()
        if item.startswith("@"):
            if item in (ALL, EMPTY):
                continue
            if item not in GROUPS:
                raise LauncherError(f'{where}: unknown syscall group "{item}" (known: '
                                    f"{', '.join([ALL, EMPTY, *GROUPS])})")
            names += GROUPS[item]
        elif item:
            names.append(item)
    return tuple(dict.fromkeys(names))


def spec_for(section: dict[str, Any], insecure: set[str], keeps_sys_admin: bool,
             where: str = "") -> FilterSpec | None:
    """The filter an app gets (None: none), from its isolators and rkt's defaults."""
    if "seccomp" in insecure:
        return None
    found = [i for i in section.get("isolators") or [] if i.get("name") in (RETAIN, REMOVE)]
    label = where or "seccomp"
    if len(found) > 1:
        raise LauncherError(f"{label}: an app may have one seccomp isolator, not {len(found)} "
                            f"(retain-set or remove-set)")
    if not found:
        return FilterSpec("retain", DEFAULT_WHITELIST, None, keeps_sys_admin)
    value = found[0].get("value") or {}
    items = [str(s) for s in value.get("set") or []]
    number = _errno(value["errno"], label) if value.get("errno") else None
    if found[0]["name"] == RETAIN:
        if ALL in items:
            return None
        return FilterSpec("retain", _expand(items, label), number, keeps_sys_admin)
    if EMPTY in items:
        return FilterSpec("retain", DEFAULT_WHITELIST, number, keeps_sys_admin)
    return FilterSpec("remove", _expand(items, label), number)


def parse_flag(text: str) -> dict[str, Any]:
    """rkt's `--seccomp mode=retain|remove[,errno=ENAME],SYSCALL,...` -> the isolator it means."""
    mode = None
    errno_name = None
    syscalls: list[str] = []
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        key, sep, value = part.partition("=")
        if sep and key == "mode":
            mode = value
        elif sep and key == "errno":
            errno_name = value
        elif sep:
            raise LauncherError(f'--seccomp "{text}": unknown key "{key}" (mode, errno)')
        else:
            syscalls.append(part)
    if mode not in ("retain", "remove"):
        raise LauncherError(f'--seccomp "{text}": start with mode=retain or mode=remove, e.g. '
                            f"--seccomp=mode=remove,errno=ENOTSUP,socket")
    if not syscalls:
        raise LauncherError(f'--seccomp "{text}": name the syscalls (or @groups) to {mode}')
    if errno_name is not None:
        _errno(errno_name, "--seccomp")
    _expand(syscalls, "--seccomp")
    isolator: dict[str, Any] = {"set": syscalls}
    if errno_name:
        isolator["errno"] = errno_name.upper()
    return {"name": RETAIN if mode == "retain" else REMOVE, "value": isolator}


def compile_filter(spec: FilterSpec) -> bytes:
    """The BPF program libseccomp makes for `spec`, for this machine's architecture."""
    try:
        import pyseccomp as sc
    except (ImportError, OSError, RuntimeError, AttributeError) as error:
        raise LauncherError(f"seccomp needs libseccomp (apt-get install libseccomp2) and the "
                            f"pyseccomp module ({error}); --insecure-options=seccomp runs "
                            f"without a filter") from None
    refuse = sc.ERRNO(spec.errno) if spec.errno is not None else sc.KILL_PROCESS
    native = sc.system_arch()
    if spec.mode == "retain":
        program = sc.SyscallFilter(refuse)
        for name in spec.syscalls:
            if name in ("clone", "clone3") or sc.resolve_syscall(native, name) < 0:
                continue  # clone below; a name this libseccomp does not know: nothing to allow
            program.add_rule(sc.ALLOW, name)
        if spec.namespaces:
            program.add_rule(sc.ALLOW, "clone")
        else:
            program.add_rule(sc.ALLOW, "clone", sc.Arg(0, sc.MASKED_EQ, NAMESPACE_FLAGS, 0))
        if refuse != sc.ERRNO(errnos.ENOSYS):  # libseccomp refuses a rule that is the default
            program.add_rule(sc.ERRNO(errnos.ENOSYS), "clone3")
    else:
        program = sc.SyscallFilter(sc.ALLOW)
        for name in spec.syscalls:
            if sc.resolve_syscall(native, name) < 0:
                continue
            program.add_rule(refuse, name)
    _as_binary_tree(sc, program)
    import tempfile

    with tempfile.TemporaryFile() as out:
        program.export_bpf(out)
        out.seek(0)
        return out.read()


def _as_binary_tree(sc: Any, program: Any) -> None:
    """Have libseccomp sort the rules into a binary tree by syscall number (its optimisation
    level 2, libseccomp >= 2.5), rather than the list it writes by default.

    The kernel decides the same either way, but loading the list costs the app's start twice
    as much (~0.5 ms against ~0.25 ms for rkt's whitelist here): at load, the kernel runs the
    program once for every syscall number to find the ones it may allow without running it
    (seccomp's action cache), and the list makes each of those runs walk up to ~300 compares,
    the tree ~9. A syscall outside that cache (one with an argument rule) is decided in ~9
    compares too. An older libseccomp keeps its list."""
    try:
        program.set_attr(sc.Attr.CTL_OPTIMIZE, 2)
    except (OSError, AttributeError):
        pass


def cache_dir(store_dir: StrPath) -> str:
    return os.path.join(store_dir, "seccomp")


_MERSENNE_61 = (1 << 61) - 1


def cached_filter(spec: FilterSpec, cache_dir: StrPath) -> bytes:
    """`compile_filter(spec)`, from `cache_dir` when it was compiled before.

    A cache file is the spec's text, a newline, then the program; it is named by a checksum of
    the text and used only when the text it holds is the spec's own, so two specs that share a
    checksum cost a compile, never a wrong filter. The checksum is the text read as one number,
    modulo the prime 2**61 - 1: arithmetic of the interpreter's own (~20 µs), where a hash or
    CRC module would be loaded at every start (~2 ms for OpenSSL's, 0.3 ms for zlib)."""
    text = spec.text()
    name = f"{int.from_bytes(text, 'big') % _MERSENNE_61:016x}-{len(text)}.bpf"
    path = os.path.join(cache_dir, name)
    try:
        with open(path, "rb") as handle:
            saved, _, data = handle.read().partition(b"\n")
        if saved == text and data and len(data) % 8 == 0:
            return data
    except OSError:
        pass
    data = compile_filter(spec)
    os.makedirs(cache_dir, mode=0o700, exist_ok=True)
    temp = os.path.join(cache_dir, f".{name}.{os.getpid()}")
    with open(temp, "wb") as handle:
        handle.write(text + b"\n" + data)
    os.replace(temp, path)
    return data


class _SockFprog(linux.Structure):
    """struct sock_fprog: the number of 8-byte instructions, and where they are."""
    _fields_ = [("len", linux.c_ushort), ("filter", linux.c_char_p)]


PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2


def load(program: bytes) -> None:
    """Install a BPF seccomp program on the calling thread (needs CAP_SYS_ADMIN or
    no_new_privs); it stays across exec and is inherited by every child."""
    prog = _SockFprog(len(program) // 8, program)  # (points into `program`, which it keeps)
    linux.check(linux.libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, linux.byref(prog), 0, 0),
                "cannot install the seccomp filter")
