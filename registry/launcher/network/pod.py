"""A pod's networks: its network namespace, CNI ADD when it starts, CNI DEL when it is done.

Stage0 makes the pod's network namespace before the stage1 starts anything and keeps a handle
on it, a bind mount at `<pod>/netns`, so the plugins can still find the pod's interfaces after
every process of the pod died (DEL needs them: ptp reads the addresses to remove its
masquerading rules from the pod's interface). The stage1 joins that namespace (`join_netns`).

What was done is written down before and after every step in `<pod>/net/net-info.json`, so
whoever finds the pod exited — the `pyrkt run` that started it, `pyrkt stop`, or `pyrkt gc` for
a pod whose `pyrkt run` was killed — can DEL exactly what was ADDed, with the configuration
and result of that time. Teardown is idempotent and serialised by a lock in `<pod>/net/`.

Host-local address leases live in `<store>/networks/<network>/` (rkt kept them under
`/var/lib/rkt/networks`), so each store manages its own.
"""

from __future__ import annotations

import fcntl
import os

from registry import jsontext

from .. import linux
from ..errors import LauncherError
from ..pods import Pod, list_pods, write_atomic
from . import dns
from .info import INFO, NET_DIR
from .info import load as _load

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from _typeshed import StrPath

    from . import cni

NETNS = "netns"

# Paths are plain strings and os.path (pathlib costs every start ~6 ms of imports); a pod's
# directory may come as a str or an os.PathLike.


def _unlink_quietly(path: StrPath) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# -- the network namespace ----------------------------------------------------------------------

def _netns_id() -> int:
    """The network namespace this process runs in (plugins act on the host side from here)."""
    return os.stat("/proc/self/ns/net").st_ino


def _is_netns(path: StrPath) -> bool:
    """Is `path` a live namespace handle (a bind mount of an nsfs file), not a bare file?"""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def create_netns(target: StrPath) -> None:
    """A new network namespace with loopback up, pinned by a bind mount on `target`.

    A thread unshares itself (network namespaces are per thread), binds its namespace onto the
    file and ends: no process has to stay in it, and the rest of pyrkt stays on the host.
    """
    os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    failure: list[BaseException] = []

    def make() -> None:
        try:
            linux.unshare(linux.CLONE_NEWNET)
            linux.loopback_up()
            linux.mount("/proc/thread-self/ns/net", os.fspath(target), None, linux.MS_BIND)
        except BaseException as error:  # noqa: BLE001 - reported by the caller
            failure.append(error)

    import threading  # here: only pods with a network namespace of their own need the thread

    thread = threading.Thread(target=make, name="netns")
    thread.start()
    thread.join()
    if failure:
        _unlink_quietly(target)
        raise LauncherError(f"cannot create the pod's network namespace: {failure[0]}")


def remove_netns(target: StrPath) -> None:
    if _is_netns(target):
        try:
            linux.umount(os.fspath(target), linux.MNT_DETACH)
        except OSError:
            pass
    _unlink_quietly(target)


def join_netns(pod_dir: StrPath) -> bool:
    """For the stage1: move this process into the pod's prepared namespace, if it has one."""
    path = os.path.join(pod_dir, NETNS)
    if not os.path.exists(path):
        return False
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        linux.setns(fd, linux.CLONE_NEWNET)
    finally:
        os.close(fd)
    return True


# -- what was done, on disk ---------------------------------------------------------------------



def _save(pod_dir: StrPath, state: dict[str, Any]) -> None:
    # compact: read by pyrkt (list, status, teardown), not by people; indented text loads json
    write_atomic(os.path.join(pod_dir, NET_DIR, INFO), jsontext.dumps(state, compact=True))


class _NetLock:
    def __init__(self, pod_dir: StrPath) -> None:
        self.fd = os.open(os.path.join(pod_dir, NET_DIR, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def __enter__(self) -> _NetLock:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


# -- setup and teardown -------------------------------------------------------------------------

def effective_conf(network: dict[str, Any], leases_dir: StrPath, with_portmap: bool
                   ) -> dict[str, Any]:
    """The configuration list as it is run: leases under the store, portmap chained if asked."""
    import copy  # here: only pods with networks need it

    conf = copy.deepcopy(network)
    for plugin in conf["plugins"]:
        ipam = plugin.get("ipam")
        if isinstance(ipam, dict) and ipam.get("type") == "host-local" and "dataDir" not in ipam:
            ipam["dataDir"] = os.fspath(leases_dir)
    if with_portmap and not any((p.get("capabilities") or {}).get("portMappings")
                                for p in conf["plugins"]):
        # `snat`: connections from the host itself (127.0.0.1 included: the plugin sets
        # route_localnet on the host side) and hairpin ones are masqueraded so replies return.
        conf["plugins"].append({"type": "portmap", "capabilities": {"portMappings": True},
                                "snat": True})
    return conf


def check_host_ports(pod: Pod, forwards: list[dict[str, Any]]) -> None:
    """Fail early, as a listening forwarder would, when a host port is taken.

    DNAT needs no socket, so nothing else would notice a host program listening on the port or
    another pod forwarding it: the rule would silently win over the first, or lose to it.
    """
    mine = [f for f in forwards if str(f.get("via", "")).startswith("portmap:")]
    if not mine:
        return
    for other in list_pods(pod.store_dir):
        if other.uuid == pod.uuid or not other.is_running:
            continue
        for theirs in other.runtime().get("forwards") or []:
            for forward in mine:
                if int(theirs["hostPort"]) == int(forward["hostPort"]) and \
                        theirs.get("protocol", "tcp") == forward.get("protocol", "tcp"):
                    raise LauncherError(f"--port {forward['name']}: host port "
                                        f"{forward['hostPort']} is already forwarded to pod "
                                        f"{other.uuid}")
    import socket  # here: only pods with ports load it (~2 ms of every other run)

    for forward in mine:
        kind = socket.SOCK_DGRAM if forward.get("protocol") == "udp" else socket.SOCK_STREAM
        with socket.socket(socket.AF_INET, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a listener would
            try:
                probe.bind((forward.get("hostIP") or "0.0.0.0", int(forward["hostPort"])))
            except OSError as error:
                raise LauncherError(f"--port {forward['name']}: cannot listen on "
                                    f"{forward['hostIP']}:{forward['hostPort']}: "
                                    f"{error.strerror or error}") from None


def port_mappings(forwards: list[dict[str, Any]], network: str) -> list[dict[str, Any]]:
    mappings = []
    for forward in forwards:
        if forward.get("via") != f"portmap:{network}":
            continue
        mapping: dict[str, Any] = {"hostPort": int(forward["hostPort"]),
                                   "containerPort": int(forward["podPort"]),
                                   "protocol": forward.get("protocol", "tcp")}
        if forward.get("hostIP") not in (None, "", "0.0.0.0"):
            mapping["hostIP"] = forward["hostIP"]
        mappings.append(mapping)
    return mappings


def setup(pod: Pod, runtime: dict[str, Any], *, log: Callable[[str], None]) -> None:
    """Before the stage1 starts: namespace, CNI ADD for every network, the DNS files."""
    networks = runtime.get("networks") or []
    net_dir = os.path.join(pod.path, NET_DIR)
    try:
        os.mkdir(net_dir)
    except FileExistsError:
        if not os.path.isdir(net_dir):
            raise
    state: dict[str, Any] | None = None  # (what was set up: for pods with networks alone)
    results: list[dict[str, Any]] = []
    if networks:
        state = {"hostNetns": _netns_id(), "tornDown": False, "networks": []}
        from . import cni  # here: pods without networks (host, none) never load the CNI machinery

        check_host_ports(pod, runtime.get("forwards") or [])
        _save(pod.path, state)  # written first: a crash from here on is cleaned up by gc
        netns = os.path.join(pod.path, NETNS)
        create_netns(netns)
        search = cni.plugin_path(runtime.get("cniPath") or [])
        leases = os.path.join(pod.store_dir, "networks")
        forwards = runtime.get("forwards") or []
        try:
            for index, item in enumerate(networks):
                mappings = port_mappings(forwards, item["name"])
                record = {"netName": item["name"], "netConf": item["source"],
                          "ifName": f"eth{index}", "args": item.get("args", ""),
                          "conf": effective_conf(item["conf"], leases, bool(mappings)),
                          "runtimeConfig": {"portMappings": mappings} if mappings else {},
                          "path": search, "result": None}
                state["networks"].append(record)
                _save(pod.path, state)
                try:
                    record["result"] = cni.add_network(record["conf"],
                                                       _request(pod.uuid, record, netns),
                                                       record["runtimeConfig"])
                except cni.CNIError as error:
                    raise LauncherError(f"network {item['name']}: {error}") from None
                _save(pod.path, state)
                results.append(record["result"])
        except BaseException:
            try:
                teardown(pod.path, pod.uuid)
            except LauncherError as error:
                log(f"while undoing the pod's networks: {error}")
            raise
    for forward in runtime.get("forwards") or []:
        log(describe_forward(forward, state))
    first = None
    if results:
        first = next((str(a.interface.ip) for r in results for a in cni.addresses(r)), None)
    dns.write_pod_files(net_dir, runtime.get("dns") or {}, runtime["hostname"], results, first)


def _request(uuid: str, record: dict[str, Any], netns: str) -> cni.Request:
    from . import cni  # here: pods without networks (host, none) never load the CNI machinery

    return cni.Request(container_id=uuid, netns=netns, ifname=record["ifName"],
                       args=record["args"], path=list(record["path"]))


def describe_forward(forward: dict[str, Any], state: dict[str, Any] | None) -> str:
    host = f"{forward.get('hostIP') or '0.0.0.0'}:{forward['hostPort']}"
    via = str(forward.get("via", "userspace"))
    if via.startswith("portmap:"):
        from . import cni  # here: pods without networks (host, none) never load the CNI machinery

        network = via.split(":", 1)[1]
        record = next((r for r in (state or {}).get("networks", []) if r["netName"] == network),
                      None)
        address = next((str(a.interface.ip) for a in cni.addresses(record and record["result"])),
                       "the pod")
        return (f"port {forward['name']}: {host} -> {address}:{forward['podPort']} "
                f"(DNAT by the CNI portmap plugin on network {network})")
    return (f"port {forward['name']}: {host} -> pod port {forward['podPort']} (userspace "
            f"forwarder in pyrkt run: {forward.get('why', 'no network the host routes to')})")


def teardown(pod_dir: StrPath, uuid: str) -> None:
    """CNI DEL for everything ADDed (or being ADDed), then drop the namespace. Idempotent."""
    netns = os.path.join(pod_dir, NETNS)
    if not os.path.exists(os.path.join(pod_dir, NET_DIR, INFO)):
        if os.path.exists(netns):
            remove_netns(netns)
        return
    with _NetLock(pod_dir):
        state = _load(pod_dir)
        if state is None or state.get("tornDown"):
            return
        if state.get("hostNetns") != _netns_id():
            raise LauncherError(f"pod {uuid}: its networks were set up from another network "
                                f"namespace (net:[{state.get('hostNetns')}]); run pyrkt gc "
                                f"there")
        # A namespace that is gone (a reboot) cannot be entered: the plugins still release
        # what lives on the host side (leases) when given none.
        netns_arg = netns if _is_netns(netns) else ""
        errors = []
        from . import cni  # here: pods without networks (host, none) never load the CNI machinery

        for record in reversed(state.get("networks") or []):
            problems = cni.del_network(record["conf"], _request(uuid, record, netns_arg),
                                       record.get("runtimeConfig") or {}, record.get("result"))
            errors += [f"network {record['netName']}: {p}" for p in problems]
        if errors:
            raise LauncherError(f"pod {uuid}: network teardown failed: {'; '.join(errors)}")
        remove_netns(netns)
        state["tornDown"] = True
        _save(pod_dir, state)


# -- what list and status show ------------------------------------------------------------------
