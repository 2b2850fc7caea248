"""`--port NAME:[HOSTIP:]HOSTPORT` where NAT cannot reach the pod: a userspace TCP forwarder.

On the default network and other networks the host routes to, ports are DNATed by the CNI
portmap plugin (see `network.plan.assign_ports`). This forwarder serves the rest: a pod with
only loopback (`--net=none`) or on networks that bypass the host (macvlan, ipvlan), where it
still reaches an app listening on 127.0.0.1 or 0.0.0.0 alike. The listening socket is bound on the host
before the pod starts (a busy port fails the run early); for each connection a thread switches
*itself* into the pod's network namespace with setns(2) (network namespaces are per thread, so
the rest of the supervisor stays on the host) and connects to the app's port on the pod's
loopback, then both directions are relayed.
"""

from __future__ import annotations

import select
import socket
import threading
from typing import Any

from registry.records import record

from . import linux
from .errors import LauncherError


@record
class Forward:
    listener: socket.socket
    pod_port: int
    name: str


def userspace_forwards(runtime: dict[str, Any]) -> list[dict[str, Any]]:
    """The pod's forwards this forwarder carries (a pod prepared before portmap: all of them)."""
    return [f for f in runtime.get("forwards") or [] if f.get("via", "userspace") == "userspace"]


def bind_listeners(forwards: list[dict[str, Any]]) -> list[Forward]:
    bound: list[Forward] = []
    try:
        for item in forwards:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((item["hostIP"], int(item["hostPort"])))
            except OSError as error:
                sock.close()
                raise LauncherError(f"--port {item['name']}: cannot listen on "
                                    f"{item['hostIP']}:{item['hostPort']}: "
                                    f"{error.strerror or error}") from None
            sock.listen(64)
            bound.append(Forward(sock, int(item["podPort"]), item["name"]))
    except BaseException:
        for forward in bound:
            forward.listener.close()
        raise
    return bound


def _relay(a: socket.socket, b: socket.socket) -> None:
    pairs = {a: b, b: a}
    open_ends = {a, b}
    try:
        while open_ends:
            readable, _, _ = select.select(list(open_ends), [], [], 1.0)
            for sock in readable:
                data = sock.recv(65536)
                if not data:
                    open_ends.discard(sock)
                    try:
                        pairs[sock].shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    continue
                pairs[sock].sendall(data)
    except OSError:
        pass
    finally:
        a.close()
        b.close()


def _serve_connection(client: socket.socket, netns_fd: int, port: int) -> None:
    try:
        linux.setns(netns_fd, linux.CLONE_NEWNET)  # this thread only
        upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    _relay(client, upstream)


class Forwarder:
    """Accept loops for every forward, until `close()`."""

    def __init__(self, forwards: list[Forward], netns_fd: int) -> None:
        self.forwards = forwards
        self.netns_fd = netns_fd  # kept open by the supervisor for the pod's whole life
        self._closed = threading.Event()

    def start(self) -> None:
        for forward in self.forwards:
            threading.Thread(target=self._accept_loop, args=(forward,), daemon=True,
                             name=f"port-{forward.name}").start()

    def _accept_loop(self, forward: Forward) -> None:
        while not self._closed.is_set():
            try:
                readable, _, _ = select.select([forward.listener], [], [], 0.5)
                if not readable:
                    continue
                client, _ = forward.listener.accept()
            except OSError:
                return
            threading.Thread(target=_serve_connection, daemon=True,
                             args=(client, self.netns_fd, forward.pod_port)).start()

    def close(self) -> None:
        self._closed.set()
        for forward in self.forwards:
            forward.listener.close()
