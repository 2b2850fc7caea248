"""The test agent inside the virtual machine of tests/vm (baked into its image, run by systemd as
pyrkt-vm-agent.service): it runs the host's commands and answers with their results.

It talks over the virtio-serial port named pyrkt.agent, which reaches only QEMU on the host (the
machine has no network device). One JSON object per line each way:
    request  {"id": N, "argv": [...], "env": {...}, "cwd": str, "timeout": s, "stdin": base64}
    answer   {"id": N, "rc": int | null, "stdout": base64, "stderr": base64, "timeout": bool,
              "error": str | null}
A request without argv is a ping (the host's way of knowing the agent is up). Requests run
concurrently, each in a thread, so a test can run `machinectl kill` while a `pyrkt run` waits.
Only the Python standard library: this runs under the machine's own /usr/bin/python3.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

PORT_NAME = "pyrkt.agent"


def find_port() -> str:
    """/dev/vportNpM of the pyrkt.agent port (no udev here to make /dev/virtio-ports links)."""
    while True:
        for name_file in Path("/sys/class/virtio-ports").glob("*/name"):
            try:
                if name_file.read_text().strip() == PORT_NAME:
                    return f"/dev/{name_file.parent.name}"
            except OSError:
                pass
        time.sleep(0.1)


class Channel:
    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_RDWR)
        self.lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\n"
        with self.lock:
            while data:
                data = data[os.write(self.fd, data):]

    def lines(self):  # type: ignore[no-untyped-def]
        buffer = b""
        while True:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:  # the host is not connected (yet, or any more): wait for it
                time.sleep(0.1)
                continue
            buffer += chunk
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                if line.strip():
                    yield line


def drain(stream: Any, chunks: list[bytes]) -> None:
    for chunk in iter(lambda: stream.read1(1 << 16), b""):
        chunks.append(chunk)


def feed(stream: Any, data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except OSError:  # the command did not read it all
        pass


def run(request: dict[str, Any]) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": request.get("id"), "rc": None, "stdout": "", "stderr": "",
                              "timeout": False, "error": None}
    argv = request.get("argv")
    if not argv:
        answer["pong"] = True
        return answer
    env = dict(os.environ, LANG="C.UTF-8")
    env.update(request.get("env") or {})
    stdin = request.get("stdin")
    try:
        process = subprocess.Popen(
            argv, env=env, cwd=request.get("cwd") or "/",
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except OSError as error:
        answer["error"] = f"cannot run {argv[0]}: {error}"
        return answer
    # The answer comes when the command exits, not when its pipes close: a daemon it leaves
    # behind (a pod's supervisor, say) may hold them open for as long as it lives.
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    readers = [threading.Thread(target=drain, args=(stream, chunks[name]), daemon=True)
               for name, stream in (("stdout", process.stdout), ("stderr", process.stderr))]
    for reader in readers:
        reader.start()
    if stdin is not None:
        threading.Thread(target=feed, args=(process.stdin, base64.b64decode(stdin)),
                         daemon=True).start()
    try:
        answer["rc"] = process.wait(timeout=request.get("timeout"))
    except subprocess.TimeoutExpired:
        try:  # the whole session: a shell's children too
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()
        answer["timeout"] = True
    for reader in readers:
        reader.join(timeout=2)
    answer["pipes_left_open"] = any(reader.is_alive() for reader in readers)
    answer["stdout"] = base64.b64encode(b"".join(chunks["stdout"])).decode()
    answer["stderr"] = base64.b64encode(b"".join(chunks["stderr"])).decode()
    return answer


def serve(channel: Channel, line: bytes) -> None:
    try:
        request = json.loads(line)
        answer = run(request)
    except Exception as error:  # noqa: BLE001 - the host must get an answer, whatever failed
        answer = {"id": None, "rc": None, "stdout": "", "stderr": "", "timeout": False,
                  "error": f"agent: {type(error).__name__}: {error}"}
        try:
            answer["id"] = json.loads(line).get("id")
        except Exception:  # noqa: BLE001
            pass
    channel.send(answer)


def main() -> None:
    channel = Channel(find_port())
    for line in channel.lines():
        threading.Thread(target=serve, args=(channel, line), daemon=True).start()


if __name__ == "__main__":
    main()
