"""Running CNI plugins as the CNI specification says, and reading what they answer.

A plugin is an executable named by the configuration's `type`, found in CNI_PATH. It gets its
configuration as JSON on stdin and the request in the environment (CNI_COMMAND, CNI_CONTAINERID,
CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH); ADD answers a result on stdout, a failure answers
`{"code", "msg", "details"}` with a non-zero exit. A configuration list is run as a chain: ADD
in order, each plugin given the previous result as `prevResult`; DEL in reverse order, each given
the chain's final result. Plugins that declare `capabilities` get the matching `runtimeConfig`
(here: `portMappings` for portmap).
"""

from __future__ import annotations

import ipaddress
import os

from registry import jsontext
from registry.records import record

from ..errors import LauncherError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from _typeshed import StrPath

# Light to load: `pyrkt list` and `status` read the addresses of every pod with networks from
# here (`addresses`), so subprocess (signal, threading, selectors) loads only to run a plugin,
# and paths are strings (no pathlib), records no dataclasses (inspect, ast: ~20 ms).

SYSTEM_PLUGIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")  # Debian's, then upstream's
PLUGIN_TIMEOUT = 120  # seconds; dhcp waits for a lease, the others answer in milliseconds
# The plugins run iptables, ip6tables and modprobe by name.
SBIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class CNIError(LauncherError):
    """A plugin failed or could not run; the message names the plugin and what it said."""


def version_tuple(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        return (0,)


@record
class Request:
    container_id: str
    netns: str
    ifname: str
    args: str
    path: list[str]


def plugin_path(extra_dirs: Sequence[StrPath]) -> list[str]:
    """CNI_PATH: plugins in the configuration layers' `net.d` (as rkt), then the system's."""
    dirs = [os.fspath(d) for d in extra_dirs]
    return [d for d in (*dirs, *SYSTEM_PLUGIN_DIRS) if os.path.isdir(d)]


def find_plugin(kind: str, path: list[str]) -> str:
    for directory in path:
        candidate = os.path.join(directory, kind)
        if os.access(candidate, os.X_OK) and os.path.isfile(candidate):
            return candidate
    where = ":".join(path) or ", ".join(SYSTEM_PLUGIN_DIRS)
    raise CNIError(f'CNI plugin "{kind}" not found in {where} (Debian ships the standard ones in '
                   f"containernetworking-plugins; --net=none runs the pod without a network)")


def exec_plugin(conf: dict[str, Any], command: str, request: Request) -> dict[str, Any] | None:
    """One plugin call; ADD returns the plugin's result."""
    import subprocess  # here: see the top (reading results needs none of it)

    kind = conf["type"]
    binary = find_plugin(kind, request.path)
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": request.container_id,
           "CNI_NETNS": request.netns, "CNI_IFNAME": request.ifname, "CNI_ARGS": request.args,
           "CNI_PATH": ":".join(request.path), "PATH": SBIN_PATH}
    try:
        done = subprocess.run([binary], input=jsontext.dumps(conf).encode(), env=env,
                              capture_output=True, timeout=PLUGIN_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise CNIError(f"{kind} {command}: no answer within {PLUGIN_TIMEOUT} s") from None
    except OSError as error:
        raise CNIError(f"{kind} {command}: cannot run {binary}: {error.strerror}") from None
    if done.returncode != 0:
        raise CNIError(f"{kind} {command}: {_error_text(done.stdout, done.stderr)}")
    if command != "ADD":
        return None
    try:
        result = jsontext.loads(done.stdout)
    except ValueError:
        raise CNIError(f"{kind} ADD: the plugin's answer is not JSON: "
                       f"{done.stdout[:200]!r}") from None
    if not isinstance(result, dict):
        raise CNIError(f"{kind} ADD: the plugin's answer is not a JSON object")
    return result


def _error_text(stdout: bytes, stderr: bytes) -> str:
    try:
        answer = jsontext.loads(stdout)
        message = str(answer.get("msg") or "failed")
        if answer.get("details"):
            message += f": {answer['details']}"
        return message
    except (ValueError, AttributeError):
        text = (stderr or stdout).decode(errors="replace").strip().splitlines()
        return text[-1] if text else "failed without saying why"


def _plugin_conf(network: dict[str, Any], plugin: dict[str, Any],
                 runtime_config: dict[str, Any]) -> dict[str, Any]:
    conf = {"cniVersion": network["cniVersion"], "name": network["name"], **plugin}
    wanted = {key: value for key, value in runtime_config.items()
              if (plugin.get("capabilities") or {}).get(key)}
    if wanted:
        conf["runtimeConfig"] = wanted
    return conf


def add_network(network: dict[str, Any], request: Request,
                runtime_config: dict[str, Any]) -> dict[str, Any]:
    """ADD every plugin of a configuration list in order; returns the final result."""
    chained = version_tuple(network["cniVersion"]) >= (0, 3, 0)
    result: dict[str, Any] | None = None
    for plugin in network["plugins"]:
        conf = _plugin_conf(network, plugin, runtime_config)
        if result is not None and chained:
            conf["prevResult"] = result
        result = exec_plugin(conf, "ADD", request) or result
    assert result is not None
    return result


def del_network(network: dict[str, Any], request: Request, runtime_config: dict[str, Any],
                result: dict[str, Any] | None) -> list[str]:
    """DEL every plugin in reverse order, all of them even when one fails; returns the errors."""
    chained = version_tuple(network["cniVersion"]) >= (0, 3, 0)
    errors = []
    for plugin in reversed(network["plugins"]):
        conf = _plugin_conf(network, plugin, runtime_config)
        if result is not None and chained:
            conf["prevResult"] = result
        try:
            exec_plugin(conf, "DEL", request)
        except CNIError as error:
            errors.append(str(error))
    return errors


@record
class Address:
    interface: ipaddress.IPv4Interface | ipaddress.IPv6Interface
    gateway: str | None


def addresses(result: dict[str, Any] | None) -> list[Address]:
    """The pod's addresses in a result of any CNI version (0.1/0.2: ip4, ip6; later: ips)."""
    if not result:
        return []
    found = []
    entries: list[tuple[Any, Any]] = []
    if isinstance(result.get("ips"), list):
        entries = [(ip.get("address"), ip.get("gateway")) for ip in result["ips"]
                   if isinstance(ip, dict)]
    else:
        for key in ("ip4", "ip6"):
            if isinstance(result.get(key), dict):
                entries.append((result[key].get("ip"), result[key].get("gateway")))
    for address, gateway in entries:
        try:
            found.append(Address(ipaddress.ip_interface(str(address)),
                                 str(gateway) if gateway else None))
        except ValueError:
            continue
    return found


def dns_of(result: dict[str, Any] | None) -> dict[str, Any]:
    dns = (result or {}).get("dns")
    return dns if isinstance(dns, dict) else {}
