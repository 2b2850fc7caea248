"""What the user asked for, parsed: rkt's `run`/`prepare` flags as plain data.

The CLI collects the flags; this module turns their strings into checked values with messages
that name the flag, so every front end (the `pyrkt` CLI, `acbuild run`, tests) shares one parser.
"""

from __future__ import annotations

import os

from registry.records import field, record

from .capabilities import check_names
from .errors import LauncherError
from .quantities import cpu_millis, memory_bytes
from .seccomp import parse_flag as parse_seccomp_flag

# `re` is imported by the parsers that take a flag's text (the default `pyrkt run IMAGE` reads
# none), and typing and pathlib not at all: each costs every start milliseconds (see pods).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Patterns as text, matched with re's functions: compiled (and cached by re) on first use, so a
# run that gives none of these flags does not compile them at every start (~0.1 ms each).
ENV_NAME = r"^[A-Za-z_][A-Za-z_0-9.-]*$"
NET_MODES = ("default", "host", "none")  # the shortcuts; --net also takes network names
NET_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"  # CNI's rule for network names
CNI_ARG_KEY = r"^[A-Za-z0-9_]+$"
HOST_NAME = (r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?"
             r"(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$")
PULL_POLICIES = ("new", "update", "never")
STAGE1S = ("auto", "builtin", "systemd")
INSECURE_OPTIONS = {"none", "image", "tls", "http", "pubkey", "ondisk", "capabilities", "paths",
                    "seccomp", "limits", "all-fetch", "all-run", "all"}


@record
class Volume:
    name: str
    kind: str  # host | empty
    source: str | None = None
    read_only: bool = False
    mode: str = "0755"
    uid: int = 0
    gid: int = 0

    def to_manifest(self) -> dict[str, object]:
        entry: dict[str, object] = {"name": self.name, "kind": self.kind,
                                    "readOnly": self.read_only}
        if self.kind == "host":
            entry["source"] = self.source
        else:
            entry.update({"mode": self.mode, "uid": self.uid, "gid": self.gid})
        return entry


@record
class Mount:
    volume: str
    target: str


@record
class PortMap:
    name: str
    host_port: int
    host_ip: str = "0.0.0.0"


@record
class NetRequest:
    """One network of `--net=NAME[:KEY=VALUE;...]`; `args` become the plugins' CNI_ARGS."""

    name: str
    args: dict[str, str] = field(default_factory=dict)

    def cni_args(self) -> str:
        """CNI_ARGS; `IgnoreUnknown=1` (CNI's convention) lets plugins of the chain that do not
        take an argument (bridge does not take IP, its IPAM plugin does) pass it by."""
        if not self.args:
            return ""
        pairs = {"IgnoreUnknown": "1", **self.args}
        return ";".join(f"{key}={value}" for key, value in pairs.items())


@record
class DnsOptions:
    """rkt's --dns, --dns-search, --dns-opt, --dns-domain and --hosts-entry."""

    servers: list[str] = field(default_factory=list)  # addresses, or ["host"] / ["none"]
    search: list[str] = field(default_factory=list)
    options: list[str] = field(default_factory=list)
    domain: str | None = None
    hosts: list[tuple[str, str]] = field(default_factory=list)  # (IP, HOST) pairs
    hosts_from_host: bool = False  # --hosts-entry=host

    def to_json(self) -> dict[str, Any]:
        return {"servers": self.servers, "search": self.search, "options": self.options,
                "domain": self.domain, "hosts": [list(pair) for pair in self.hosts],
                "hostsFromHost": self.hosts_from_host}


@record
class AppOptions:
    """Per-app flags: given before the first image they apply to every app."""

    image: str = ""
    args: list[str] | None = None  # None: keep the image's; [] after `--`: no arguments
    exec_: str | None = None
    name: str | None = None
    user: str | None = None
    group: str | None = None
    working_dir: str | None = None
    cpu_millis: int | None = None
    memory_bytes: int | None = None
    mounts: list[Mount] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    readonly_rootfs: bool = False
    caps_retain: list[str] | None = None  # --caps-retain: the app's whole capability set
    caps_remove: list[str] | None = None  # --caps-remove: taken from the default set
    seccomp: dict[str, Any] | None = None  # --seccomp: {"name": isolator name, "value": ...}


# the run-time checks --insecure-options lifts (limits: run although --memory/--cpu cannot be
# enforced here, with a warning naming each one left out; see `limits.plan`)
RUN_INSECURE = ("capabilities", "paths", "seccomp", "limits")


@record
class PodOptions:
    apps: list[AppOptions] = field(default_factory=list)
    volumes: list[Volume] = field(default_factory=list)
    ports: list[PortMap] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    inherit_env: bool = False
    net: str = "default"  # `--net` as given: default, host, none, all or NAME[:ARGS],...
    dns: DnsOptions = field(default_factory=DnsOptions)
    hostname: str | None = None
    interactive: bool = False
    insecure: set[str] = field(default_factory=set)
    pull_policy: str = "new"
    stage1: str = "auto"
    overlay: bool | None = None  # None: use overlayfs when the kernel allows it
    # The client's configuration directories (a `registry.client.dirs.ConfigDirs`; None: the
    # defaults and PYRKT_*_CONFIG): trust, auth.d and domains.d (port, CA, insecure options)
    # for the images that must be fetched.
    config_dirs: Any = None
    trust_keys_from_https: bool = False  # rkt's global flag, handed to the client's fetch
    ca_bundle: str | None = None  # --ca-bundle: a CA trusted for fetching over HTTPS

    def run_insecure(self) -> list[str]:
        """The run-time protections switched off: capabilities, paths, seccomp, limits."""
        if self.insecure & {"all-run", "all"}:
            return list(RUN_INSECURE)
        return [name for name in RUN_INSECURE if name in self.insecure]


def _key_values(text: str, flag: str) -> tuple[str, dict[str, str]]:
    """`NAME,k=v,k=v` -> (NAME, {k: v}); a leading `name=` key is accepted too."""
    head, *rest = [part.strip() for part in text.split(",")]
    pairs: dict[str, str] = {}
    for part in rest:
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise LauncherError(f'{flag} "{text}": "{part}" is not key=value')
        if key in pairs:
            raise LauncherError(f'{flag} "{text}": "{key}" given twice')
        pairs[key] = value
    if head.startswith("name="):
        head = head[len("name="):]
    return head, pairs


def _check_name(name: str, flag: str, what: str) -> str:
    # here: only a flag naming an app or volume needs the format core's rule (loading it costs
    # every `pyrkt run` ~1.5 ms)
    from registry.aci.names import AC_NAME

    if not AC_NAME.fullmatch(name):
        raise LauncherError(f'{flag}: {what} "{name}" is not an AC Name (lower-case letters, '
                            f"digits and -, starting and ending with a letter or digit)")
    return name


def _bool(value: str, flag: str, key: str) -> bool:
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise LauncherError(f"{flag}: {key}={value} must be true or false")


def parse_volume(text: str) -> Volume:
    flag = "--volume"
    name, pairs = _key_values(text, flag)
    _check_name(name, flag, "volume name")
    kind = pairs.pop("kind", None)
    if kind not in ("host", "empty"):
        raise LauncherError(f'{flag} "{text}": kind must be host or empty')
    volume = Volume(name, kind)
    if "readOnly" in pairs:
        volume.read_only = _bool(pairs.pop("readOnly"), flag, "readOnly")
    if kind == "host":
        source = pairs.pop("source", None)
        if not source or not source.startswith("/"):
            raise LauncherError(f'{flag} "{text}": kind=host needs source=ABSOLUTE-PATH')
        if not os.path.exists(source):
            raise LauncherError(f'{flag} "{text}": source {source} does not exist')
        volume.source = source
        pairs.pop("recursive", None)
    else:
        if "mode" in pairs:
            import re  # here: see the imports above

            volume.mode = pairs.pop("mode")
            if not re.fullmatch(r"0?[0-7]{3,4}", volume.mode):
                raise LauncherError(f'{flag} "{text}": mode must be octal, e.g. 0755')
        for key in ("uid", "gid"):
            if key in pairs:
                value = pairs.pop(key)
                if not value.isdigit():
                    raise LauncherError(f'{flag} "{text}": {key} must be a number')
                setattr(volume, key, int(value))
    if pairs:
        raise LauncherError(f'{flag} "{text}": unknown key(s) {", ".join(sorted(pairs))}')
    return volume


def parse_mount(text: str) -> Mount:
    flag = "--mount"
    pairs: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise LauncherError(f'{flag} "{text}": expected volume=NAME,target=PATH')
        pairs[key] = value
    volume, target = pairs.pop("volume", ""), pairs.pop("target", "")
    if pairs:
        raise LauncherError(f'{flag} "{text}": unknown key(s) {", ".join(sorted(pairs))}')
    _check_name(volume, flag, "volume")
    if not target.startswith("/"):
        raise LauncherError(f'{flag} "{text}": target must be an absolute path')
    return Mount(volume, target)


def parse_port(text: str) -> PortMap:
    """`NAME:[HOSTIP:]HOSTPORT`."""
    if text.strip().isdigit():
        # `--port=8080` is how `pyrkt fetch` and `trust` reach a registry; in `run` (as in rkt)
        # --port forwards a host port to an app's named port.
        raise LauncherError(
            f'--port "{text}": in run, --port forwards a host port to a port the image names '
            f"(NAME:[HOSTIP:]HOSTPORT, e.g. http:{text.strip()}). To reach a registry on port "
            f'{text.strip()}, put "port": {text.strip()} in a domains.d file of the config '
            f"directory, or fetch first: pyrkt fetch --port={text.strip()} IMAGE")
    parts = text.split(":")
    if len(parts) not in (2, 3):
        raise LauncherError(f'--port "{text}": expected NAME:[HOSTIP:]HOSTPORT')
    name = _check_name(parts[0], "--port", "port name")
    host_ip = parts[1] if len(parts) == 3 else "0.0.0.0"
    import ipaddress  # here: only flags that hold addresses need it (~1 ms of every start)

    try:
        ipaddress.IPv4Address(host_ip)
    except ValueError:
        raise LauncherError(f'--port "{text}": {host_ip} is not an IPv4 address') from None
    if not parts[-1].isdigit() or not 1 <= int(parts[-1]) <= 65535:
        raise LauncherError(f'--port "{text}": host port must be a number in 1..65535')
    return PortMap(name, int(parts[-1]), host_ip)


def parse_net(text: str) -> list[NetRequest] | str:
    """`--net`: "host" or "none" (returned as is), or the networks to join, in order.

    `default,mynet:IP=10.1.0.9` joins rkt's default network and `mynet` asking it for an
    address; several CNI arguments for one network are separated by `;` (as in CNI_ARGS).
    """
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        return [NetRequest("default")]
    if any(item in ("host", "none") for item in items):
        if len(items) > 1:
            raise LauncherError(f'--net={text}: "host" and "none" cannot be combined with '
                                f"other networks")
        return items[0]
    import re  # here: see the imports above

    requests: list[NetRequest] = []
    for item in items:
        name, sep, arg_text = item.partition(":")
        if not re.match(NET_NAME, name):
            raise LauncherError(f'--net={text}: "{name}" is not a network name (letters, digits, '
                                f"and . _ - after the first character)")
        args: dict[str, str] = {}
        for part in arg_text.split(";") if sep else []:
            key, eq, value = part.strip().partition("=")
            if not eq or not re.match(CNI_ARG_KEY, key) or not value:
                raise LauncherError(f'--net={text}: "{part}" is not KEY=VALUE (e.g. '
                                    f"{name}:IP=172.16.28.42)")
            if key == "IP":
                import ipaddress  # here: only flags that hold addresses need it

                try:
                    ipaddress.ip_address(value)
                except ValueError:
                    raise LauncherError(f"--net={text}: IP={value} is not an IP address") from None
            args[key] = value
        if any(r.name == name for r in requests):
            raise LauncherError(f"--net={text}: network {name} is given twice")
        if name == "all" and args:
            raise LauncherError(f"--net={text}: all takes no arguments")
        requests.append(NetRequest(name, args))
    return requests


def parse_dns(servers: list[str], search: list[str], options: list[str], domain: str | None,
              hosts_entries: list[str]) -> DnsOptions:
    """Check rkt's DNS flags; `--dns=host`/`none` stand alone, the rest are addresses."""
    dns = DnsOptions(search=[], options=[], domain=domain)
    if not (servers or search or options or domain is not None or hosts_entries):
        return dns  # (the default run: none of ipaddress and re, ~2 ms, is needed)
    import ipaddress  # here: only flags that hold addresses need it
    import re  # here: see the imports above

    for value in servers:
        for item in (part.strip() for part in value.split(",")):
            if item in ("host", "none"):
                dns.servers.append(item)
                continue
            try:
                dns.servers.append(str(ipaddress.ip_address(item)))
            except ValueError:
                raise LauncherError(f'--dns "{item}": not an IP address (or "host" to use the '
                                    f'host\'s resolv.conf, "none" to ignore the networks\' DNS)') \
                    from None
    if any(s in ("host", "none") for s in dns.servers) and len(dns.servers) > 1:
        raise LauncherError("--dns=host and --dns=none cannot be combined with other --dns values")
    for flag, values, target in (("--dns-search", search, dns.search),
                                 ("--dns-opt", options, dns.options)):
        for value in values:
            for item in value.split(","):
                item = item.strip()
                if not item or any(c.isspace() for c in item):
                    raise LauncherError(f'{flag} "{value}": one word per value')
                if flag == "--dns-search" and not re.match(HOST_NAME, item.rstrip(".")):
                    raise LauncherError(f'{flag} "{item}" is not a domain name')
                target.append(item)
    if domain is not None and not re.match(HOST_NAME, domain.rstrip(".")):
        raise LauncherError(f'--dns-domain "{domain}" is not a domain name')
    for value in hosts_entries:
        if value == "host":
            dns.hosts_from_host = True
            continue
        for item in value.split(","):
            address, eq, host = item.strip().partition("=")
            try:
                address = str(ipaddress.ip_address(address))
            except ValueError:
                raise LauncherError(f'--hosts-entry "{item}": expected IP=HOST (or "host" to use '
                                    f"the host's /etc/hosts)") from None
            if not eq or not re.match(HOST_NAME, host):
                raise LauncherError(f'--hosts-entry "{item}": "{host}" is not a host name')
            dns.hosts.append((address, host))
    if dns.hosts_from_host and dns.hosts:
        raise LauncherError("--hosts-entry=host cannot be combined with IP=HOST entries")
    return dns


def parse_env(text: str, flag: str = "--set-env") -> tuple[str, str]:
    import re  # here: see the imports above

    name, sep, value = text.partition("=")
    if not sep or not re.match(ENV_NAME, name):
        raise LauncherError(f'{flag} "{text}": expected NAME=VALUE with a valid variable name')
    return name, value


def parse_env_file(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
    except OSError as error:
        raise LauncherError(f"--set-env-file {path}: {error.strerror or error}") from None
    env: dict[str, str] = {}
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            name, value = parse_env(line, f"--set-env-file {path}")
            env[name] = value
    return env


def parse_insecure(values: list[str]) -> set[str]:
    chosen: set[str] = set()
    for value in values:
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            if item not in INSECURE_OPTIONS:
                raise LauncherError(f'--insecure-options: unknown value "{item}" (known: '
                                    f'{", ".join(sorted(INSECURE_OPTIONS))})')
            chosen.add(item)
    return chosen


def _with_value(tokens: list[str], index: int) -> tuple[str, str, int]:
    """(flag, value, next index) for `--flag=value` or `--flag value`."""
    token = tokens[index]
    if "=" in token:
        flag, value = token.split("=", 1)
        return flag, value, index + 1
    if index + 1 >= len(tokens):
        raise LauncherError(f"{token} needs a value")
    return token, tokens[index + 1], index + 2


def apply_app_flag(app: AppOptions, flag: str, value: str) -> None:
    """Set one per-app flag on `app` (shared by the CLI's leading flags and the image list)."""
    if flag == "--exec":
        app.exec_ = value
    elif flag == "--name":
        app.name = _check_name(value, flag, "app name")
    elif flag == "--user":
        app.user = value
    elif flag == "--group":
        app.group = value
    elif flag == "--working-dir":
        if not value.startswith("/"):
            raise LauncherError(f"--working-dir {value}: must be an absolute path")
        app.working_dir = value
    elif flag == "--cpu":
        app.cpu_millis = cpu_millis(value, flag)
    elif flag == "--memory":
        app.memory_bytes = memory_bytes(value, flag)
    elif flag == "--mount":
        app.mounts.append(parse_mount(value))
    elif flag in ("--environment", "--set-env"):
        name, text = parse_env(value, flag)
        app.env[name] = text
    elif flag == "--readonly-rootfs":
        app.readonly_rootfs = _bool(value, flag, "value")
    elif flag in ("--caps-retain", "--caps-remove"):
        try:
            names = check_names(value.split(","), flag)
        except ValueError as error:
            raise LauncherError(str(error)) from None
        if flag == "--caps-retain":
            app.caps_retain, app.caps_remove = names, None
        else:
            app.caps_remove, app.caps_retain = names, None
    elif flag == "--seccomp":
        app.seccomp = parse_seccomp_flag(value)
    else:
        raise LauncherError(f"{flag} is not a per-app flag; give pod-wide flags before the first "
                            f"image")


# rkt's: --set-env is for every app wherever it stands; --environment is the per-app one.
PER_APP_FLAGS = ("--exec", "--name", "--user", "--group", "--working-dir", "--cpu", "--memory",
                 "--mount", "--environment", "--readonly-rootfs", "--caps-retain", "--caps-remove",
                 "--seccomp")


def parse_image_list(tokens: list[str], defaults: AppOptions) -> list[AppOptions]:
    """`IMAGE [per-app flags] [-- ARGS...] [--- IMAGE ...]` -> one AppOptions per image."""
    apps: list[AppOptions] = []
    index = 0

    def fresh(image: str) -> AppOptions:
        return AppOptions(image=image, args=None, exec_=defaults.exec_, name=None,
                          user=defaults.user, group=defaults.group,
                          working_dir=defaults.working_dir, cpu_millis=defaults.cpu_millis,
                          memory_bytes=defaults.memory_bytes, mounts=list(defaults.mounts),
                          env=dict(defaults.env), readonly_rootfs=defaults.readonly_rootfs,
                          caps_retain=defaults.caps_retain, caps_remove=defaults.caps_remove,
                          seccomp=defaults.seccomp)

    current: AppOptions | None = None
    while index < len(tokens):
        token = tokens[index]
        if token == "---":
            current = None
            index += 1
        elif token == "--":
            if current is None:
                raise LauncherError('"--" must follow an image: IMAGE -- ARGS')
            end = tokens.index("---", index + 1) if "---" in tokens[index + 1:] else len(tokens)
            current.args = tokens[index + 1:end]
            index = end
        elif token.startswith("--") and token.split("=", 1)[0] in PER_APP_FLAGS:
            if current is None:
                raise LauncherError(f"{token} must follow an image (or come before the first one)")
            flag, value, index = _with_value(tokens, index)
            if flag == "--readonly-rootfs" and "=" not in token:
                value, index = "true", index - 1
            apply_app_flag(current, flag, value)
        elif token.startswith("-"):
            raise LauncherError(f"{token}: unknown flag here; pod-wide flags go before the first "
                                f"image, per-app flags ({', '.join(PER_APP_FLAGS)}) after it")
        else:
            current = fresh(token)
            apps.append(current)
            index += 1
    if not apps:
        raise LauncherError("no image given: pyrkt run IMAGE... [-- ARGS] [--- IMAGE ...]")
    return apps
