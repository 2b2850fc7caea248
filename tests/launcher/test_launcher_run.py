"""`pyrkt run` on the host with the builtin stage1: what the app sees and what is recorded."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from launcher_helpers import needs_root, status_of, write_image

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _uuid(path: Path) -> str:
    return path.read_text().strip()


def test_seed_hello_image_runs_and_is_recorded(tmp_path, static_hello, pyrkt, store) -> None:
    work = tmp_path / "seed"
    work.mkdir()
    shutil.copy2(static_hello, work / "hello")
    script = Path(__file__).resolve().parents[1] / "data" / "seed-acbuild.sh"
    subprocess.run(["bash", str(script)], cwd=work, check=True, capture_output=True, timeout=120)
    aci = work / "hello-latest-linux-amd64.aci"

    refused = pyrkt("run", str(aci))
    assert refused.returncode != 0 and "insecure-options=image" in refused.stderr
    assert not list((store / "pods").glob("*/*")) if (store / "pods").exists() else True

    uuid_file = tmp_path / "uuid"
    result = pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}", str(aci),
                   "--", "one", "two")
    assert result.returncode == 0, result.stderr
    assert "Hello from pyrkt\ncwd=/app\narg=one\narg=two\n" in result.stdout
    uuid = _uuid(uuid_file)
    status = status_of(pyrkt, uuid)
    assert status["state"] == "exited" and status["exited"] == "true"
    assert status["app-hello"] == "0"
    logs = pyrkt("logs", "--no-prefix", uuid, check=True).stdout
    assert logs.startswith("Hello from pyrkt\ncwd=/app\n")
    log_file = next((store / "pods").glob(f"*/{uuid}/apps/hello/log"))
    assert log_file.read_text() == logs


@pytest.mark.parametrize("overlay", [True, False], ids=["overlay", "copy"])
def test_exit_code_env_workdir_user(tmp_path, tool_image, pyrkt, overlay) -> None:
    image = tool_image(app={"environment": [{"name": "FROM_IMAGE", "value": "image"},
                                            {"name": "OVERRIDDEN", "value": "image"}],
                            "workingDirectory": "/etc"})
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nFROM_FILE=file\n")
    uuid_file = tmp_path / "uuid"
    args = ["run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
            "--set-env=OVERRIDDEN=flag", f"--set-env-file={env_file}"]
    if not overlay:
        args.append("--no-overlay")
    result = pyrkt(*args, str(image), "--user=worker", "--group=workers", "--",
                   "env", "FROM_IMAGE", "env", "OVERRIDDEN", "env", "FROM_FILE", "env", "PATH",
                   "cwd", "id", "exit", "7")
    assert result.returncode == 7, result.stderr
    assert "env FROM_IMAGE=image\nenv OVERRIDDEN=flag\nenv FROM_FILE=file\n" in result.stdout
    assert "env PATH=/usr/local/sbin:" in result.stdout
    assert "cwd=/etc\nuid=1234 gid=2345\n" in result.stdout
    uuid = _uuid(uuid_file)
    assert status_of(pyrkt, uuid)["app-tool"] == "7"
    mode = json.loads(next(tmp_path.glob(f"store/pods/*/{uuid}/runtime.json")).read_text())
    assert mode["rootfs"] == ("overlay" if overlay else "copy")

    numeric = pyrkt("run", "example.com/tool:1", "--user=42", "--group=43", "--working-dir=/tmp", "--",
                    "id", "cwd", check=True)
    assert "uid=42 gid=43\ncwd=/tmp\n" in numeric.stdout  # the image is in the store now

    unknown = pyrkt("run", "example.com/tool", "--user=nobody-here", "--", "id")
    assert unknown.returncode == 126
    assert 'user "nobody-here"' in unknown.stdout


def test_host_and_empty_volumes_read_only_enforced(tmp_path, tool_image, pyrkt) -> None:
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    os.chown(rw, 1234, 2345)  # the app runs as 1234:2345 and must be able to write there
    (ro / "given.txt").write_text("from the host")
    image = tool_image(app={"mountPoints": [{"name": "scratch", "path": "/scratch"}]})
    result = pyrkt(
        "run", "--insecure-options=image",
        f"--volume=rw,kind=host,source={rw}", f"--volume=ro,kind=host,source={ro},readOnly=true",
        "--volume=scratch,kind=empty,mode=0777",
        str(image), "--mount=volume=rw,target=/data/rw", "--mount=volume=ro,target=/data/ro",
        "--user=1234", "--group=2345", "--",
        "write", "/data/rw/out.txt", "written in the pod",
        "cat", "/data/ro/given.txt", "write", "/data/ro/evil.txt", "no",
        "write", "/scratch/tmp.txt", "scratch", "cat", "/scratch/tmp.txt")
    assert result.returncode == 0, result.stderr
    assert "write /data/rw/out.txt: ok" in result.stdout
    assert (rw / "out.txt").read_text() == "written in the pod"
    assert "cat /data/ro/given.txt: from the host" in result.stdout
    assert "write /data/ro/evil.txt: Read-only file system" in result.stdout
    assert not (ro / "evil.txt").exists()
    assert "write /scratch/tmp.txt: ok\ncat /scratch/tmp.txt: scratch" in result.stdout
    as_root = pyrkt("run", f"--volume=ro,kind=host,source={ro},readOnly=true", "example.com/tool",
                    "--mount=volume=ro,target=/data/ro", "--", "write", "/data/ro/evil.txt", "x")
    assert "Read-only file system" in as_root.stdout and not (ro / "evil.txt").exists()


def test_file_volume_on_an_image_symlink_lands_inside_the_root(tmp_path, tool_binary,
                                                               pyrkt) -> None:
    """A single-file volume whose mount point is a symlink in the image (/etc/app.conf ->
    an absolute path) is bound where the link points inside the app's root: the host's file
    of that name is neither created nor bound over."""
    conf = tmp_path / "app.conf"
    conf.write_text("from the volume")
    outside = tmp_path / "host-side" / "app.conf"  # what the link names, read as a host path
    outside.parent.mkdir()
    image = write_image(tmp_path / "linked.aci", "example.com/linked",
                        {"/bin/tool": tool_binary}, {"exec": ["/bin/tool"]},
                        extra_dirs=("/tmp",), links={"/etc/app.conf": str(outside)})
    result = pyrkt("run", "--insecure-options=image", f"--volume=conf,kind=host,source={conf}",
                   str(image), "--mount=volume=conf,target=/etc/app.conf", "--",
                   "cat", "/etc/app.conf", "cat", str(outside))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "cat /etc/app.conf: from the volume" in result.stdout
    assert f"cat {outside}: from the volume" in result.stdout  # (the link's target, inside)
    assert not outside.exists()  # nothing made on the host


def test_mount_points_come_from_the_stores_layer_not_the_apps_upper(tmp_path, tool_binary,
                                                                     pyrkt, store) -> None:
    """An image with nothing but its program (and an /etc/passwd) still gets /proc, /dev,
    /sys, /tmp and /etc/hosts, from the store's mount-point layer under its overlay, merged
    with its own directories: the app's upper layer holds only what the app wrote."""
    image = write_image(tmp_path / "bare.aci", "example.com/bare",
                        {"/bin/tool": tool_binary, "/etc/passwd": "root:x:0:0::/:/bin/sh\n"},
                        {"exec": ["/bin/tool"]})
    uuid_file = tmp_path / "uuid"
    result = pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                   str(image), "--", "ls", "/", "ls", "/etc", "cat", "/etc/hosts",
                   "exists", "/dev/null", "exists", "/proc/self", "write", "/tmp/x", "ok",
                   check=True)
    listed = {line.split(":", 1)[0]: sorted(line.split(":", 1)[1].split())
              for line in result.stdout.splitlines() if line.startswith("ls ")}
    assert listed == {"ls /": ["bin", "dev", "etc", "proc", "sys", "tmp"],
                      "ls /etc": ["hosts", "passwd"]}, result.stdout
    assert "localhost" in result.stdout and "exists /dev/null: yes" in result.stdout
    assert "exists /proc/self: yes" in result.stdout and "write /tmp/x: ok" in result.stdout
    uppers = list((store / "pods").glob(f"*/{_uuid(uuid_file)}/apps/*/upper"))
    assert len(uppers) == 1
    assert sorted(os.listdir(uppers[0])) == ["tmp"]  # (/tmp/x: the app's own write)
    layer = store / "mount-points"
    assert sorted(os.listdir(layer)) == ["dev", "etc", "proc", "sys", "tmp"]
    assert os.listdir(layer / "etc") == ["hosts"] and (layer / "etc" / "hosts").stat().st_size == 0


def test_app_cannot_see_or_write_host_paths(tmp_path, tool_image, pyrkt) -> None:
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host only")
    image = tool_image()
    uuid_file = tmp_path / "uuid"
    marker = f"/pyrkt-escape-{os.getpid()}"
    result = pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                   str(image), "--", "cat", str(secret), "exists", str(tmp_path),
                   "exists", "/work", "write", marker, "inside", "exists", marker,
                   "cat", "/proc/1/cmdline", "hostname", "exists", "/dev/null",
                   "write", "/dev/null", "x", "exists", "/dev/pts", check=True)
    assert f"cat {secret}: No such file or directory" in result.stdout
    assert f"exists {tmp_path}: no" in result.stdout and "exists /work: no" in result.stdout
    assert f"write {marker}: ok\nexists {marker}: yes" in result.stdout
    assert not Path(marker).exists()  # written into the pod's own root, not the host's
    assert "cat /proc/1/cmdline: " in result.stdout and "/sbin/init" not in result.stdout
    assert f"hostname=rkt-{_uuid(uuid_file)}" in result.stdout
    assert "exists /dev/null: yes\nwrite /dev/null: ok\nexists /dev/pts: yes" in result.stdout


def test_root_app_keeps_only_rkts_default_capabilities(tool_image, pyrkt) -> None:
    """Without CAP_SYS_ADMIN (mount) or CAP_SYS_RAWIO even a root app cannot reach the host."""
    image = tool_image(app={"isolators": [{"name": "os/linux/capabilities-remove-set",
                                           "value": {"set": ["CAP_NET_RAW"]}}]})
    result = pyrkt("run", "--insecure-options=image", str(image), "--", "cat",
                   "/proc/self/status", check=True)
    fields = dict(line.split(":\t", 1) for line in result.stdout.splitlines() if ":\t" in line)
    bounding = int(fields["CapBnd"], 16)
    assert bounding == 0xA80425FB & ~(1 << 13)  # Docker's/rkt's default set minus CAP_NET_RAW
    assert int(fields["CapEff"], 16) == bounding


def test_bad_inputs_leave_nothing_behind(tmp_path, tool_image, pyrkt, store) -> None:
    image = tool_image()
    served = tool_image("example.com/served",
                        app={"ports": [{"name": "http", "protocol": "tcp", "port": 80}]})
    cases = [
        (["run", str(tmp_path / "missing.aci")], ""),
        (["run", "--insecure-options=image", str(image), "--mount=volume=nope,target=/x"],
         "no such volume"),
        (["run", "--insecure-options=image", "--port=http:18080", str(image)],
         "no app in the pod declares a port named http"),
        (["run", "--insecure-options=image", "--net=host", "--port=http:18080", str(served)],
         "--port has no effect with --net=host"),
        (["run", "--insecure-options=image", "--net=nosuch", str(image)],
         'no network named "nosuch"'),
        (["run", "--insecure-options=image", "--memory=lots", str(image)], "not a quantity"),
        (["run-prepared", "00000000"], "no pod"),
    ]
    for args, message in cases:
        result = pyrkt(*args)
        assert result.returncode != 0, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not list(store.glob("pods/*/*"))
