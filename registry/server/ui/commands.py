"""The exact client commands a repository page shows, per version, with the flags this
registry needs and no others.

Everything is derived from the base URL clients reach and the certificate served: insecure
options only when it is plain HTTP, the CA bundle when the certificate comes from the
registry's own CA (`tls init`), a port option only when it is not the scheme's default (an AC name cannot carry a
port, so appc clients take it as a flag; rkt has none, so its command fetches the ACI's URL
directly, which rkt accepts with the signature next to it). OCI names carry the port
(`HOST:PORT/team/app`), so docker and skopeo need no flag for it; docker treats loopback
registries as insecure by itself and has no per-command switch for others, so its line
says what the daemon needs instead of inventing a flag.
"""

from __future__ import annotations

import ipaddress
import shlex
from dataclasses import dataclass
from urllib.parse import urlsplit

from registry.discovery import aci_template

DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class ClientCommand:
    tool: str
    line: str
    note: str = ""


@dataclass(frozen=True)
class Endpoint:
    """What the commands need to know about how clients reach the registry."""

    scheme: str
    host: str
    port: int | None  # None: the scheme's default
    # The CA clients must trust (the registry's own, from `tls init`); None: a public one.
    ca_bundle: str | None = None

    @classmethod
    def of(cls, base_url: str, ca_bundle: str | None = None) -> Endpoint:
        parts = urlsplit(base_url)
        port = parts.port if parts.port and parts.port != DEFAULT_PORTS.get(parts.scheme) else None
        return cls(parts.scheme, parts.hostname or "",
                   port, ca_bundle if parts.scheme == "https" else None)

    @property
    def plain_http(self) -> bool:
        return self.scheme == "http"

    @property
    def netloc(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}" if self.port else host

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


def _appc_flags(endpoint: Endpoint, name: str, *, insecure_flag: str,
                with_port: bool = True) -> str:
    flags = []
    if endpoint.plain_http:
        flags.append(insecure_flag)
    if endpoint.ca_bundle:
        flags.append(f"--ca-bundle {shlex.quote(endpoint.ca_bundle)}")
    # The port applies only when the names' domain is the host the registry answers on.
    if with_port and endpoint.port and endpoint.host == name.split("/", 1)[0]:
        flags.append(f"--port={endpoint.port}")
    return "".join(f" {flag}" for flag in flags)


def _app_string(name: str, version: str | None, os_name: str | None = None,
                arch: str | None = None) -> str:
    text = name + (f":{version}" if version else "")
    # pyrkt and rkt pick the host's os/arch; another platform is asked for by label.
    if os_name and arch and (os_name, arch) != ("linux", "amd64"):
        text += f",os={os_name},arch={arch}"
    return text


def trust_command(base_url: str, name: str, ca_bundle: str | None = None) -> str:
    flags = _appc_flags(Endpoint.of(base_url, ca_bundle), name,
                        insecure_flag="--insecure-allow-http")
    return f"pyrkt trust --prefix {name}{flags}"


def fetch_command(base_url: str, name: str, version: str | None, os_name: str | None = None,
                  arch: str | None = None, ca_bundle: str | None = None) -> str:
    flags = _appc_flags(Endpoint.of(base_url, ca_bundle), name,
                        insecure_flag="--insecure-options=http")
    return f"pyrkt fetch{flags} {_app_string(name, version, os_name, arch)}"


def run_command(base_url: str, name: str, version: str, os_name: str, arch: str,
                ca_bundle: str | None = None) -> str:
    """`pyrkt run` has no registry port flag (its --port forwards ports to the app), so on a
    non-default port it runs what `pyrkt fetch` stored (pull policy "new" finds it)."""
    endpoint = Endpoint.of(base_url, ca_bundle)
    app = _app_string(name, version, os_name, arch)
    insecure = " --insecure-options=http" if endpoint.plain_http else ""
    if endpoint.port and endpoint.host == name.split("/", 1)[0]:
        fetch = fetch_command(base_url, name, version, os_name, arch, ca_bundle)
        return f"{fetch} && pyrkt run{insecure} {app}"
    if endpoint.ca_bundle:
        fetch = fetch_command(base_url, name, version, os_name, arch, ca_bundle)
        return f"{fetch} && pyrkt run {app}"
    return f"pyrkt run{insecure} {app}"


def rkt_fetch_command(base_url: str, name: str, version: str, os_name: str, arch: str) -> str:
    endpoint = Endpoint.of(base_url)
    insecure = " --insecure-options=http" if endpoint.plain_http else ""
    if endpoint.port or endpoint.host != name.split("/", 1)[0]:
        # rkt's discovery cannot take a port: fetch the ACI by URL (rkt gets .asc beside it).
        url = aci_template(base_url).format(name=name, version=version, os=os_name, arch=arch,
                                            ext="aci")
        return f"rkt fetch{insecure} {url}"
    return f"rkt fetch{insecure} {_app_string(name, version, os_name, arch)}"


def oci_reference(base_url: str, oci_name: str, tag: str) -> str:
    return f"{Endpoint.of(base_url).netloc}/{oci_name}:{tag}"


def skopeo_command(base_url: str, oci_name: str, tag: str) -> str:
    endpoint = Endpoint.of(base_url)
    # skopeo speaks plain HTTP to a registry only with TLS verification off.
    flags = " --src-tls-verify=false" if endpoint.plain_http else ""
    target = f"oci:{oci_name.rsplit('/', 1)[-1]}:{tag}"
    return f"skopeo copy{flags} docker://{oci_reference(base_url, oci_name, tag)} {target}"


def docker_command(base_url: str, oci_name: str, tag: str) -> ClientCommand:
    endpoint = Endpoint.of(base_url)
    note = ""
    if endpoint.plain_http and not endpoint.loopback:
        note = (f'plain HTTP: the docker daemon needs "insecure-registries": '
                f'["{endpoint.netloc}"] in /etc/docker/daemon.json')
    return ClientCommand("docker", f"docker pull {oci_reference(base_url, oci_name, tag)}", note)


def version_commands(base_url: str, name: str, version: str, os_name: str, arch: str,
                     oci_name: str | None, ca_bundle: str | None = None) -> list[ClientCommand]:
    """The commands for one version; docker and skopeo only for OCI tags (`oci_name`)."""
    endpoint = Endpoint.of(base_url, ca_bundle)
    # rkt, skopeo and docker take a registry's CA from the system's or their own certs.d.
    ca_note = (f"trusting the registry's CA ({endpoint.ca_bundle}) as " if endpoint.ca_bundle
               else "")
    rkt_note = "after rkt trust of the registry's key" + (
        f"; the system must trust the registry's CA ({endpoint.ca_bundle})"
        if endpoint.ca_bundle else "")
    commands = [
        ClientCommand("pyrkt fetch", fetch_command(base_url, name, version, os_name, arch,
                                                   ca_bundle)),
        ClientCommand("pyrkt run", run_command(base_url, name, version, os_name, arch, ca_bundle)),
        ClientCommand("rkt fetch", rkt_fetch_command(base_url, name, version, os_name, arch),
                      rkt_note),
    ]
    if oci_name is not None:
        skopeo_note = (f"{ca_note}/etc/containers/certs.d/{endpoint.netloc}/ca.crt"
                       if ca_note else "")
        commands.append(ClientCommand("skopeo", skopeo_command(base_url, oci_name, version),
                                      skopeo_note))
        docker = docker_command(base_url, oci_name, version)
        if ca_note:
            docker = ClientCommand("docker", docker.line,
                                   f"{ca_note}/etc/docker/certs.d/{endpoint.netloc}/ca.crt")
        commands.append(docker)
    return commands
