"""What an app can reach of the host: the pod init, capabilities, seccomp, masked paths, enter.

Each escape attempt is made by the static test tool (`try ATTEMPT`, in a child process) and is
run four ways, so the test says *what* refuses it: everything on (rkt's defaults), without the
seccomp filter (the capability set alone), without the capability limits (the filter alone),
and with both off, where the attempts that only these two stop succeed (the test can fail).
"""

from __future__ import annotations

import pytest
from launcher_helpers import needs_root, wait_for_app_pid, wait_for_file

pytestmark = [pytest.mark.root, pytest.mark.e2e]

ATTEMPTS = ("mount", "ptrace-init", "module", "unshare-user", "clone-user", "keyctl",
            "read-root", "read-environ")


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _outcomes(stdout: str) -> dict[str, str]:
    """{"mount": "killed by SIGSYS", ...} from the tool's `try` lines."""
    found = {}
    for line in stdout.splitlines():
        if line.startswith("try "):
            name, _, outcome = line[4:].partition(": ")
            found[name] = outcome
    return found


def _status(stdout: str) -> dict[str, str]:
    """/proc/self/status as the tool's `cat` printed it."""
    fields = {}
    for line in stdout.splitlines():
        key, sep, value = line.rpartition(":\t") if ":\t" in line else ("", "", "")
        if sep:
            fields[key.rsplit(": ", 1)[-1]] = value.strip()
    return fields


def _attempts(pyrkt, image, *flags: str) -> dict[str, str]:
    args = []
    for attempt in ATTEMPTS:
        args += ["try", attempt]
    result = pyrkt("run", "--insecure-options=image" + "".join(f",{f}" for f in flags),
                   str(image), "--", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    outcomes = _outcomes(result.stdout)
    assert set(outcomes) == set(ATTEMPTS), result.stdout
    return outcomes


KILLED = "killed by SIGSYS"  # the seccomp filter's answer (rkt's default action)


def test_escape_attempts_are_refused_and_the_test_says_by_what(tool_image, pyrkt) -> None:
    image = tool_image()
    both = _attempts(pyrkt, image)
    caps_only = _attempts(pyrkt, image, "seccomp")
    seccomp_only = _attempts(pyrkt, image, "capabilities")
    neither = _attempts(pyrkt, image, "capabilities", "seccomp")

    # By the seccomp filter: none of these is in rkt's whitelist, whatever the capabilities;
    # clone with namespace flags is refused unless the app keeps CAP_SYS_ADMIN (Docker's rule).
    for attempt in ("mount", "ptrace-init", "module", "unshare-user", "clone-user", "keyctl"):
        assert both[attempt] == KILLED, (attempt, both)
        if attempt != "clone-user":
            assert seccomp_only[attempt] == KILLED, (attempt, seccomp_only)
    assert seccomp_only["clone-user"] == "ok"
    # By the capability set (no CAP_SYS_ADMIN, CAP_SYS_PTRACE, CAP_SYS_MODULE) and the init
    # being non-dumpable: EPERM/EACCES even without the filter. (A kernel built without module
    # support says ENOSYS to init_module before it checks CAP_SYS_MODULE.)
    assert caps_only["mount"] == "EPERM"
    assert caps_only["ptrace-init"] == "EPERM"
    assert caps_only["module"] in ("EPERM", "ENOSYS")
    for name in ("read-root", "read-environ"):
        assert both[name] == caps_only[name] == "EACCES", (name, both, caps_only)
    # What only the filter stops: user namespaces and the kernel keyring need no capability.
    assert caps_only["unshare-user"] == caps_only["clone-user"] == caps_only["keyctl"] == "ok"
    # With both lifted the same attempts go through: the refusals above are real.
    assert neither["mount"] == neither["ptrace-init"] == neither["unshare-user"] == "ok"
    assert neither["keyctl"] == neither["clone-user"] == "ok"
    assert neither["module"] not in ("EPERM", KILLED)  # only the kernel's own answer is left
    # With CAP_SYS_PTRACE the init's /proc entries open, but show nothing (next test).
    assert seccomp_only["read-root"] == neither["read-root"] == neither["read-environ"] == "ok"


def test_pod_init_shows_no_host_command_line_environment_or_root(tool_image, pyrkt) -> None:
    image = tool_image()
    result = pyrkt("run", "--insecure-options=image", str(image), "--", "cat", "/proc/1/cmdline",
                   "cat", "/proc/1/comm", "ls", "/proc/1/root", "ls", "/proc",
                   "cat", "/proc/1/mountinfo", check=True)
    out = result.stdout
    assert "cat /proc/1/cmdline: pyrkt-init\n" in out  # the whole command line, nothing more
    assert "cat /proc/1/comm: pyrkt-init\n" in out
    assert "ls /proc/1/root: EACCES" in out  # non-dumpable init: needs CAP_SYS_PTRACE
    pids = [n for n in out.split("ls /proc:", 1)[1].splitlines()[0].split() if n.isdigit()]
    assert sorted(pids, key=int)[0] == "1" and len(pids) <= 3  # the init, the tool (and cat)
    for host_thing in ("registry", "python", ".venv", "PYRKT_DIR", "/work", "/tmp/pytest"):
        assert host_thing not in out, host_thing
    # Even an app given CAP_SYS_PTRACE finds nothing: the init's root is an empty tmpfs, its
    # environment block is wiped.
    lifted = pyrkt("run", "--insecure-options=image,capabilities", "example.com/tool", "--",
                   "ls", "/proc/1/root", "cat", "/proc/1/environ", "cat", "/proc/1/mountinfo",
                   check=True).stdout
    assert "ls /proc/1/root:\n" in lifted  # empty
    assert "cat /proc/1/environ: \n" in lifted
    mounts = lifted.split("cat /proc/1/mountinfo: ", 1)[1].strip().splitlines()
    assert len(mounts) == 1 and " / / " in mounts[0] and "tmpfs" in mounts[0], mounts


def test_init_reaps_orphans(shell_image, pyrkt) -> None:
    image = shell_image("( sleep 0.2 & ); sleep 1; "
                        "for s in /proc/[0-9]*/stat; do cat $s; echo; done; exit 5")
    result = pyrkt("run", "--insecure-options=image", str(image))
    assert result.returncode == 5, result.stderr
    states = [line.rsplit(")", 1)[1].split()[0] for line in result.stdout.splitlines()
              if ")" in line]
    assert states and "Z" not in states  # the sleep was an orphan: the init reaped it


def test_capabilities_isolators_and_flags(tool_image, pyrkt) -> None:
    image = tool_image()
    default = _status(pyrkt("run", "--insecure-options=image", str(image), "--", "cat",
                            "/proc/self/status", check=True).stdout)
    rkt_default = 0xA80425FB  # CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID SETPCAP
    # NET_BIND_SERVICE NET_RAW SYS_CHROOT MKNOD AUDIT_WRITE SETFCAP
    assert int(default["CapBnd"], 16) == int(default["CapEff"], 16) == rkt_default
    assert default["NoNewPrivs"] == "0" and default["Seccomp"] == "2"

    retained = _status(pyrkt("run", "example.com/tool", "--caps-retain=CAP_NET_ADMIN,cap_chown",
                             "--", "cat", "/proc/self/status", check=True).stdout)
    assert int(retained["CapEff"], 16) == (1 << 12) | (1 << 0)
    removed = pyrkt("run", "example.com/tool", "--caps-remove=CAP_NET_RAW", "--",
                    "try", "raw-socket", "cat", "/proc/self/status", check=True).stdout
    assert "try raw-socket: EPERM" in removed  # refused by the capability set alone
    assert int(_status(removed)["CapEff"], 16) == rkt_default & ~(1 << 13)
    kept = pyrkt("run", "example.com/tool", "--", "try", "raw-socket", check=True).stdout
    assert "try raw-socket: ok" in kept  # CAP_NET_RAW is in rkt's default set

    nnp = tool_image(name="example.com/nnp", app={"isolators": [
        {"name": "os/linux/no-new-privileges", "value": True}]})
    assert _status(pyrkt("run", "--insecure-options=image", str(nnp), "--", "cat",
                         "/proc/self/status", check=True).stdout)["NoNewPrivs"] == "1"
    # a non-root app gets no_new_privs with its filter, as in rkt, and no capabilities
    user = _status(pyrkt("run", "example.com/tool", "--user=1234", "--", "cat",
                         "/proc/self/status", check=True).stdout)
    assert user["NoNewPrivs"] == "1" and int(user["CapEff"], 16) == 0
    everything = _status(pyrkt("run", "--insecure-options=capabilities", "example.com/tool", "--",
                               "cat", "/proc/self/status", check=True).stdout)
    assert int(everything["CapBnd"], 16) > rkt_default

    bad = pyrkt("run", "example.com/tool", "--caps-retain=CAP_FLY")
    assert bad.returncode == 254 and "unknown capability CAP_FLY" in bad.stderr


def test_seccomp_isolators_flag_errno_and_insecure_option(tool_image, pyrkt, store) -> None:
    image = tool_image()
    flagged = pyrkt("run", "--insecure-options=image", str(image),
                    "--seccomp=mode=remove,errno=ENOTSUP,socket,keyctl", "--",
                    "try", "raw-socket", "try", "keyctl", "try", "unshare-user", check=True)
    assert _outcomes(flagged.stdout) == {"raw-socket": "ENOTSUP", "keyctl": "ENOTSUP",
                                         "unshare-user": "ok"}  # a remove-set removes only those
    retain = tool_image(name="example.com/retain", app={"isolators": [{
        "name": "os/linux/seccomp-retain-set",
        "value": {"set": ["@rkt/default-whitelist"], "errno": "ENOSYS"}}]})
    retained = pyrkt("run", "--insecure-options=image", str(retain), "--", "try", "mount",
                     "try", "keyctl", check=True)
    assert _outcomes(retained.stdout) == {"mount": "ENOSYS", "keyctl": "ENOSYS"}
    blacklist = pyrkt("run", "example.com/tool", "--seccomp=mode=remove,@rkt/default-blacklist",
                      "--", "try", "mount", "try", "raw-socket", check=True).stdout
    assert _outcomes(blacklist) == {"mount": KILLED, "raw-socket": "ok"}
    unfiltered = pyrkt("run", "example.com/tool", "--seccomp=mode=retain,@appc.io/all", "--",
                       "cat", "/proc/self/status", "try", "keyctl", check=True).stdout
    assert _status(unfiltered)["Seccomp"] == "0" and "try keyctl: ok" in unfiltered
    insecure = pyrkt("run", "--insecure-options=seccomp", "example.com/tool", "--", "cat",
                     "/proc/self/status", check=True).stdout
    assert _status(insecure)["Seccomp"] == "0"
    assert list((store / "seccomp").glob("*.bpf"))  # compiled once, then read from the cache

    for args, message in (
            (["example.com/tool", "--seccomp=mode=sometimes,read"], "mode=retain or mode=remove"),
            (["example.com/tool", "--seccomp=mode=retain,errno=EWHATEVER,read"], "errno name"),
            (["example.com/tool", "--seccomp=mode=retain,@rkt/nothing"], "unknown syscall group"),
            (["example.com/tool", "--seccomp=mode=remove"], "name the syscalls")):
        refused = pyrkt("run", *args)
        assert refused.returncode == 254 and message in refused.stderr, (args, refused.stderr)
        assert "Traceback" not in refused.stderr
    assert len(list(store.glob("pods/*/*"))) == 5  # the refused ones left nothing


def test_kernel_paths_masked_and_read_only_unless_lifted(tool_image, pyrkt) -> None:
    image = tool_image()
    # (kernels differ in what they offer: these exist on CI's; /proc/kcore and
    # /proc/sysrq-trigger are masked the same way where they exist)
    commands = ["cat", "/proc/kallsyms", "cat", "/proc/timer_list", "ls", "/sys/firmware",
                "write", "/proc/irq/default_smp_affinity", "1", "write", "/proc/sys/kernel/hostname",
                "changed", "write", "/sys/kernel/uevent_helper", "x", "exists", "/sys/class/net/lo",
                "hostname"]
    masked = pyrkt("run", "--insecure-options=image", str(image), "--", *commands,
                   check=True).stdout
    assert "cat /proc/kallsyms: \n" in masked and "cat /proc/timer_list: \n" in masked
    assert "ls /sys/firmware:\n" in masked
    assert "write /proc/irq/default_smp_affinity: Read-only file system" in masked
    assert "write /proc/sys/kernel/hostname: Read-only file system" in masked
    assert "write /sys/kernel/uevent_helper: Read-only file system" in masked
    assert "exists /sys/class/net/lo: yes" in masked  # the pod's own network, read-only

    ran = pyrkt("run", "--insecure-options=paths", "--hostname=before", "example.com/tool",
                "--", "cat", "/proc/timer_list", "write", "/proc/sys/kernel/hostname",
                "after", "hostname", check=True)
    assert "warning: the kernel's files in /proc and /sys are neither hidden" in ran.stderr
    lifted = ran.stdout
    assert "cat /proc/timer_list: Timer List" in lifted
    # the UTS namespace is the pod's own: the write changes the pod's name, not the host's
    assert "write /proc/sys/kernel/hostname: ok\nhostname=after" in lifted


def test_enter_runs_confined_as_the_app(tmp_path, tool_image, start_pyrkt, pyrkt, store) -> None:
    image = tool_image(app={"environment": [{"name": "FROM_IMAGE", "value": "yes"}]})
    uuid_file = tmp_path / "uuid"
    start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", str(image),
                "--caps-remove=CAP_NET_RAW", "--", "sleep", "60")
    uuid = wait_for_file(uuid_file)
    wait_for_app_pid(store, uuid, "tool")
    entered = pyrkt("enter", uuid, "/bin/tool", "cat", "/proc/self/status", "env", "FROM_IMAGE",
                    "env", "PYRKT_DIR", "try", "mount", "try", "raw-socket", "ls", "/proc/1/root",
                    "cat", "/proc/self/cgroup", check=True).stdout
    status = _status(entered)
    assert int(status["CapEff"], 16) == 0xA80425FB & ~(1 << 13)  # the app's set
    assert status["Seccomp"] == "2"
    assert "env FROM_IMAGE=yes" in entered and "env PYRKT_DIR=(unset)" in entered
    assert "try mount: killed by SIGSYS" in entered and "try raw-socket: EPERM" in entered
    assert "ls /proc/1/root: EACCES" in entered
    assert f"/pyrkt/{uuid}/tool" in entered  # in the app's cgroup: stop reaches it too
    pyrkt("stop", "--force", uuid, check=True)
