"""Parsing of rkt's run flags: good values become data, bad ones give messages naming the flag."""

from __future__ import annotations

import pytest

from registry.launcher.errors import LauncherError
from registry.launcher.options import (
    AppOptions,
    parse_image_list,
    parse_insecure,
    parse_mount,
    parse_port,
    parse_volume,
)
from registry.launcher.quantities import cpu_millis, memory_bytes


def test_volume_kinds(tmp_path) -> None:
    host = parse_volume(f"data,kind=host,source={tmp_path},readOnly=true")
    assert (host.name, host.kind, host.source, host.read_only) == ("data", "host", str(tmp_path), True)
    empty = parse_volume("scratch,kind=empty,mode=0700,uid=5")
    assert (empty.kind, empty.mode, empty.uid, empty.read_only) == ("empty", "0700", 5, False)


@pytest.mark.parametrize("text, fragment", [
    ("data,kind=nfs", "kind must be host or empty"),
    ("data,kind=host", "source=ABSOLUTE-PATH"),
    ("data,kind=host,source=/no/such/dir", "does not exist"),
    ("Data,kind=empty", "AC Name"),
    ("data,kind=empty,colour=red", "unknown key"),
    ("data,kind=empty,readOnly=maybe", "true or false"),
])
def test_bad_volumes(text: str, fragment: str) -> None:
    with pytest.raises(LauncherError, match=fragment):
        parse_volume(text)


def test_ports_and_mounts() -> None:
    assert parse_port("http:8080").host_ip == "0.0.0.0"
    port = parse_port("http:127.0.0.1:18080")
    assert (port.name, port.host_ip, port.host_port) == ("http", "127.0.0.1", 18080)
    for bad in ("http", "http:0", "http:host:80", "http:1.2.3.4:99999"):
        with pytest.raises(LauncherError, match="--port"):
            parse_port(bad)
    mount = parse_mount("volume=data,target=/var/data")
    assert (mount.volume, mount.target) == ("data", "/var/data")
    with pytest.raises(LauncherError, match="absolute"):
        parse_mount("volume=data,target=relative")


def test_quantities() -> None:
    assert cpu_millis("500m") == 500 and cpu_millis("2") == 2000 and cpu_millis("0.25") == 250
    assert memory_bytes("512M") == 512_000_000 and memory_bytes("1Gi") == 2**30
    with pytest.raises(LauncherError, match="not a quantity"):
        memory_bytes("lots")
    with pytest.raises(LauncherError, match="below one page"):
        memory_bytes("12")


def test_image_list_with_args_and_separators() -> None:
    defaults = AppOptions(memory_bytes=1 << 26)
    apps = parse_image_list(["a.aci", "--memory=32M", "--", "x", "--y", "---", "b", "--exec",
                             "/bin/b", "--name", "second"], defaults)
    assert [a.image for a in apps] == ["a.aci", "b"]
    assert apps[0].args == ["x", "--y"] and apps[0].memory_bytes == 32_000_000
    assert apps[1].args is None and apps[1].exec_ == "/bin/b" and apps[1].name == "second"
    assert apps[1].memory_bytes == 1 << 26  # a leading flag is every app's default


@pytest.mark.parametrize("tokens, fragment", [
    ([], "no image given"),
    (["a", "--volume", "x"], "pod-wide flags go before"),
    (["a", "--memory"], "needs a value"),
])
def test_bad_image_lists(tokens: list[str], fragment: str) -> None:
    with pytest.raises(LauncherError, match=fragment):
        parse_image_list(tokens, AppOptions())


def test_insecure_options() -> None:
    assert parse_insecure(["image,tls", "http"]) == {"image", "tls", "http"}
    with pytest.raises(LauncherError, match="unknown value"):
        parse_insecure(["everything"])
