"""Which networks a pod joins: rkt's two built-in networks and the CNI files in `net.d`.

rkt read `/etc/rkt/net.d`; pyrkt reads `net.d/` in each of its configuration layers (system
`/usr/lib/pyrkt`, local `/etc/pyrkt`, the user's), later layers winning for a network of the
same name, files of one directory in lexicographic order (the first file naming a network wins
there, as in rkt and libcni). A file is a CNI network configuration (`*.conf`, `*.json`: one
plugin) or a configuration list (`*.conflist`: a chain of plugins). A file naming `default` or
`default-restricted` overrides the built-in one, as in rkt.

Every network is kept in one shape, a configuration list: `{"cniVersion", "name", "plugins"}`.
"""

from __future__ import annotations

import os

from registry import jsontext
from registry.records import record

from ..errors import LauncherError
from ..options import NET_NAME, NetRequest
from .cni import version_tuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# rkt's default network: a veth pair per pod (`ptp`), addresses from 172.16.28.0/24, a default
# route via the host side and IP masquerading for traffic leaving the pod.
DEFAULT = {
    "cniVersion": "1.0.0", "name": "default",
    "plugins": [{"type": "ptp", "ipMasq": True,
                 "ipam": {"type": "host-local", "subnet": "172.16.28.0/24",
                          "routes": [{"dst": "0.0.0.0/0"}]}}],
}
# rkt's default-restricted: the host side only (no default route, no masquerading). Its own
# subnet: two pods of the two networks must never get the same address (each network keeps its
# own leases, and both would route that address to a different veth on the host).
DEFAULT_RESTRICTED = {
    "cniVersion": "1.0.0", "name": "default-restricted",
    "plugins": [{"type": "ptp", "ipMasq": False,
                 "ipam": {"type": "host-local", "subnet": "172.16.29.0/24"}}],
}
BUILTIN = {"default": DEFAULT, "default-restricted": DEFAULT_RESTRICTED}
# What a file without `cniVersion` is taken to be: the oldest version that chains plugins
# (portmap needs `prevResult`); CNI itself would read it as 0.1.0.
ASSUMED_VERSION = "0.4.0"
PLUGIN_TYPE = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # a file name in CNI_PATH, no path (for re)
SUFFIXES = (".conf", ".json", ".conflist")


@record
class Network:
    name: str
    source: str  # the file it came from, or "builtin"
    conf: dict[str, Any]  # a configuration list

    @property
    def plugins(self) -> list[dict[str, Any]]:
        return list(self.conf["plugins"])

    @property
    def main(self) -> dict[str, Any]:
        return self.conf["plugins"][0]

    def routes_from_host(self) -> bool:
        """Does the host get a route to the pod's address (so DNAT on the host can reach it)?

        `ptp` puts the pod's address behind a host-side veth; `bridge` does when the bridge is
        the gateway (it holds an address of the subnet). macvlan, ipvlan and the like bypass
        the host by design.
        """
        kind = self.main.get("type")
        return kind == "ptp" or (kind == "bridge" and bool(self.main.get("isGateway")))

    def masquerades(self) -> bool:
        return bool(self.main.get("ipMasq"))


def _normalise(data: Any, where: str) -> dict[str, Any]:
    """A file's JSON as a configuration list, or an error naming the file and the rule."""
    import re  # here: only the files of net.d need checking, not the built-in networks

    if not isinstance(data, dict):
        raise LauncherError(f"{where}: a network configuration is a JSON object")
    name = data.get("name")
    if not isinstance(name, str) or not re.match(NET_NAME, name):
        raise LauncherError(f'{where}: "name" must be a network name (letters, digits, . _ -)')
    if name in ("host", "none", "all"):
        raise LauncherError(f'{where}: "{name}" is reserved (--net={name} has its own meaning)')
    version = data.get("cniVersion") or ASSUMED_VERSION
    if not isinstance(version, str):
        raise LauncherError(f'{where}: "cniVersion" must be a string')
    if "plugins" in data:
        plugins = data["plugins"]
        if not isinstance(plugins, list) or not plugins:
            raise LauncherError(f'{where}: "plugins" must be a non-empty list')
    else:
        plugins = [{k: v for k, v in data.items() if k not in ("name", "cniVersion")}]
    for plugin in plugins:
        if not isinstance(plugin, dict) or not isinstance(plugin.get("type"), str) \
                or not re.match(PLUGIN_TYPE, plugin["type"]):
            raise LauncherError(f'{where}: every plugin needs a "type" naming a CNI plugin '
                                f"binary (a file name such as ptp or bridge)")
    if len(plugins) > 1 and version_tuple(version) < (0, 3, 0):
        raise LauncherError(f"{where}: chaining plugins needs cniVersion 0.3.0 or later")
    return {"cniVersion": version, "name": name, "plugins": plugins}


def net_dirs(config_dirs: Any) -> list[str]:
    """`net.d` of every configuration layer, lowest precedence first."""
    if config_dirs is None:
        # the client's layers, loaded only when no front end passed them in
        from registry.client.dirs import ConfigDirs

        config_dirs = ConfigDirs.from_env()
    return [os.path.join(layer, "net.d") for layer in config_dirs.layers()]


def load_networks(config_dirs: Any) -> dict[str, Network]:
    """Every network known: the built-in ones, then each layer's `net.d` on top."""
    found = {name: Network(name, "builtin", conf) for name, conf in BUILTIN.items()}
    for directory in net_dirs(config_dirs):
        try:
            names = sorted(name for name in os.listdir(directory) if name.endswith(SUFFIXES))
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            raise LauncherError(f"{directory}: {error.strerror or error}") from None
        in_this_dir: set[str] = set()
        for file_name in names:
            path = os.path.join(directory, file_name)
            try:
                with open(path) as handle:
                    data = jsontext.loads(handle.read())
            except OSError as error:
                raise LauncherError(f"{path}: {error.strerror or error}") from None
            except ValueError as error:
                raise LauncherError(f"{path}: not valid JSON ({error})") from None
            conf = _normalise(data, path)
            if conf["name"] in in_this_dir:
                continue
            in_this_dir.add(conf["name"])
            found[conf["name"]] = Network(conf["name"], path, conf)
    return found


def resolve(requests: list[NetRequest], config_dirs: Any) -> list[tuple[Network, NetRequest]]:
    """The networks `--net` names, in the order given (`all`: default, then every file's)."""
    known = load_networks(config_dirs)
    chosen: list[tuple[Network, NetRequest]] = []
    for request in requests:
        if request.name == "all":
            names = ["default"] + sorted(n for n, net in known.items()
                                         if net.source != "builtin" and n != "default")
            for name in names:
                if not any(net.name == name for net, _ in chosen):
                    chosen.append((known[name], NetRequest(name)))
            continue
        network = known.get(request.name)
        if network is None:
            dirs = ", ".join(str(d) for d in net_dirs(config_dirs))
            raise LauncherError(f'--net: no network named "{request.name}" (known: '
                                f"{', '.join(sorted(known))}; define one in a NAME.conf file "
                                f"in {dirs})")
        if any(net.name == request.name for net, _ in chosen):
            continue  # `all,mynet`: already joined
        chosen.append((network, request))
    return chosen
