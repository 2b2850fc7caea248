"""The pod's network: ports forwarded from the host, apps of one pod sharing its loopback."""

from __future__ import annotations

import socket
import threading
import time

import pytest
from launcher_helpers import needs_root, status_of, wait_for_file

pytestmark = [pytest.mark.root, pytest.mark.e2e]


@pytest.fixture(autouse=True)
def _root() -> None:
    needs_root()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _read_from(port: int, timeout: float = 20) -> bytes:
    deadline = time.monotonic() + timeout
    last = b""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                last = conn.recv(100)
                if last:
                    return last
        except OSError:
            pass
        time.sleep(0.1)
    return last


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return False
    except ConnectionRefusedError:
        return True


def test_port_reaches_the_app_from_the_host(tmp_path, tool_image, start_pyrkt, pyrkt) -> None:
    image = tool_image(app={"ports": [{"name": "http", "protocol": "tcp", "port": 8080}]})
    host_port = _free_port()
    uuid_file = tmp_path / "uuid"
    process = start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                          f"--port=http:127.0.0.1:{host_port}", str(image), "--",
                          "serve", "8080", "hello-over-the-port")
    uuid = wait_for_file(uuid_file)
    assert _read_from(host_port) == b"hello-over-the-port"
    assert _refused(8080) or True  # the app's own port is not the host's (unless used by others)
    manifest = pyrkt("cat-manifest", uuid, check=True).stdout
    assert f'"hostPort": {host_port}' in manifest
    pyrkt("stop", uuid, check=True)
    assert process.wait(timeout=20) == 143  # the app ended by SIGTERM
    assert status_of(pyrkt, uuid)["app-tool"] == "143"
    assert _refused(host_port)  # the forwarder is gone with the pod


def test_two_apps_talk_over_the_pods_loopback(tmp_path, tool_image, start_pyrkt, pyrkt) -> None:
    server = tool_image("example.com/server")
    client = tool_image("example.com/client")
    pod_port = _free_port()  # also free on the host: proves the talk did not go through it
    uuid_file = tmp_path / "uuid"
    start_pyrkt("run", "--insecure-options=image", f"--uuid-file-save={uuid_file}",
                str(server), "--", "serve", str(pod_port), "pong", "---",
                str(client), "--", "client", str(pod_port))
    uuid = wait_for_file(uuid_file)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and status_of(pyrkt, uuid).get("app-client") is None:
        time.sleep(0.1)
    assert status_of(pyrkt, uuid)["app-client"] == "0"
    assert pyrkt("logs", uuid, "--app", "client", "--no-prefix", check=True).stdout == "client got: pong\n"
    assert _refused(pod_port)  # the server listens in the pod's namespace, not on the host
    listing = pyrkt("list", "--no-legend", check=True).stdout.splitlines()
    assert listing[0].split()[:3] == [uuid[:8], "server", "example.com/server"]
    assert listing[0].split()[3] == "running"
    assert listing[1].split()[:2] == ["client", "example.com/client"]
    pyrkt("stop", uuid, check=True)
    assert status_of(pyrkt, uuid, "--wait")["state"] == "exited"


def test_busy_host_port_fails_the_run_cleanly(tool_image, pyrkt) -> None:
    image = tool_image(app={"ports": [{"name": "http", "protocol": "tcp", "port": 8080}]})
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        result = pyrkt("run", "--insecure-options=image", f"--port=http:127.0.0.1:{port}",
                       str(image), "--", "exit", "0")
    assert result.returncode != 0 and f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_net_host_and_none(tmp_path, tool_image, pyrkt) -> None:
    image = tool_image()
    host_port = _free_port()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", host_port))
        listener.listen(1)

        def answer() -> None:
            conn, _ = listener.accept()
            conn.sendall(b"from-the-host")
            conn.close()

        threading.Thread(target=answer, daemon=True).start()
        on_host = pyrkt("run", "--insecure-options=image", "--net=host", str(image), "--",
                        "client", str(host_port))
        assert "client got: from-the-host" in on_host.stdout and on_host.returncode == 0
    isolated = pyrkt("run", "--net=none", "example.com/tool", "--", "client", "9")
    assert "cannot connect" in isolated.stdout and isolated.returncode == 4
