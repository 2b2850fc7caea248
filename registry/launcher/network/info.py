"""What a pod's networks are, as `network.pod` recorded them in `<pod>/net/net-info.json`.

Read without the machinery that made them (namespaces through ctypes, CNI, sockets): `pyrkt
list` and `pyrkt status` describe every pod with it, and a pod without networks of its own
(host, none) loads nothing more.
"""

from __future__ import annotations

import os

from registry import jsontext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from _typeshed import StrPath

NET_DIR = "net"
INFO = "net-info.json"


def load(pod_dir: StrPath) -> dict[str, Any] | None:
    """The pod's record of its networks (None: none written, or unreadable)."""
    try:
        with open(os.path.join(pod_dir, NET_DIR, INFO)) as handle:
            return jsontext.loads(handle.read())
    except (OSError, ValueError):
        return None


def info(pod_dir: StrPath) -> list[dict[str, Any]]:
    """Each network of the pod as rkt's net-info described it (netName, ifName, ip, ...)."""
    state = load(pod_dir)
    shown = []
    records = (state or {}).get("networks") or []
    if records:
        from . import cni  # here: pods without networks (host, none) never load the CNI machinery
    for record in records:
        found = cni.addresses(record.get("result"))
        v4 = next((a for a in found if a.interface.version == 4), None)
        v6 = next((a for a in found if a.interface.version == 6), None)
        first = v4 or v6
        shown.append({
            "netName": record["netName"], "netConf": record["netConf"],
            "pluginPath": record["conf"]["plugins"][0]["type"], "ifName": record["ifName"],
            "ip": str(first.interface.ip) if first else None,
            "mask": str(first.interface.netmask) if first else None,
            "hostIP": first.gateway if first else None,
            "ip4": str(v4.interface.ip) if v4 else None,
            "ip6": str(v6.interface.ip) if v6 else None,
            "args": record.get("args", ""),
        })
    return shown


def summary(entry: dict[str, Any]) -> str:
    """`default:ip4=172.16.28.2`, as rkt's list and status print a network."""
    if entry.get("ip4"):
        return f"{entry['netName']}:ip4={entry['ip4']}"
    if entry.get("ip6"):
        return f"{entry['netName']}:ip6={entry['ip6']}"
    return str(entry["netName"])
