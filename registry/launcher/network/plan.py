"""Prepare time: which networks a pod will join and how each `--port` reaches it.

Decided when the pod is prepared (a bad `--net` fails before anything is made) and written to
the pod's runtime.json, so the pod runs with the configuration it was prepared with.
"""

from __future__ import annotations

from ..errors import LauncherError
from ..options import parse_net

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def plan(net_text: str, config_dirs: Any) -> dict[str, Any]:
    """runtime.json's network part: `net` (the flag), `networks` (in order), `cniPath`."""
    parsed = parse_net(net_text)
    if isinstance(parsed, str):  # host or none: no CNI at all
        return {"net": parsed, "networks": [], "cniPath": []}
    # here, not above: host and none pods load none of the CNI machinery (subprocess, ...)
    from .cni import plugin_path
    from .config import net_dirs, resolve

    chosen = resolve(parsed, config_dirs)
    return {
        "net": ",".join(network.name for network, _ in chosen),
        "networks": [{"name": network.name, "source": network.source, "conf": network.conf,
                      "args": request.cni_args()} for network, request in chosen],
        "cniPath": [str(d) for d in plugin_path(net_dirs(config_dirs))],
    }


def assign_ports(forwards: list[dict[str, Any]], planned: dict[str, Any]) -> None:
    """Mark each forward `via`: `portmap:<network>` (DNAT on the host) or `userspace`.

    As rkt chose the network for forwarded ports: the first network that masquerades, else the
    last one — among those the host routes to (ptp, a bridge that is the gateway). Where none
    is (`--net=none`, macvlan, ipvlan, ...) NAT cannot reach the pod and the userspace forwarder
    of `pyrkt run` carries TCP instead.
    """
    if not forwards:
        return
    if planned["net"] == "host":
        raise LauncherError("--port has no effect with --net=host: the apps already listen on "
                            "the host's own ports")
    from .config import Network  # here: as in `plan`, only pods with networks load it

    routable = [Network(n["name"], n["source"], n["conf"]) for n in planned["networks"]]
    routable = [n for n in routable if n.routes_from_host()]
    target = next((n for n in routable if n.masquerades()), routable[-1] if routable else None)
    for forward in forwards:
        if target is not None:
            forward["via"] = f"portmap:{target.name}"
            continue
        forward["via"] = "userspace"
        forward["why"] = ("--net=none: the pod has only loopback" if planned["net"] == "none"
                          else f"the host has no route into network(s) {planned['net']}")
        if forward.get("protocol", "tcp") != "tcp":
            raise LauncherError(f"--port {forward['name']}: only tcp ports can be forwarded "
                                f"without NAT ({forward['why']})")
