"""`pyrkt push` refusals that need no registry: bad URLs, no server, non-ACIs, plain HTTP."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from client_kit import build_aci

from registry.cli.main import pyrkt


@pytest.fixture()
def aci(tmp_path: Path) -> Path:
    path = tmp_path / "hello.aci"
    build_aci(path, "127.0.0.1/demo/hello", {"version": "1.0"})
    return path


def _push(*args: str) -> Result:
    env = {"PYRKT_TOKEN": "pyrkt_not_a_real_token", "PYRKT_REGISTRY_URL": None,
           "PYRKT_LOCAL_CONFIG": "/nonexistent", "PYRKT_SYSTEM_CONFIG": "/nonexistent"}
    return CliRunner().invoke(pyrkt, ["push", *args], env=env, catch_exceptions=False)


def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_registry_without_a_scheme_is_refused_clearly(aci: Path) -> None:
    result = _push(str(aci), "--registry", "127.0.0.1:8080")
    assert result.exit_code == 254
    assert result.output.startswith("pyrkt: --registry needs a URL with a scheme, e.g. "
                                    "https://HOST or http://127.0.0.1:8080")


def test_a_registry_that_is_down_is_one_short_line(aci: Path) -> None:
    port = _closed_port()
    result = _push(str(aci), "--registry", f"http://127.0.0.1:{port}")
    assert result.exit_code == 254
    assert (f"pyrkt: cannot reach the registry at http://127.0.0.1:{port}: connection refused"
            in result.output)
    assert "HTTPConnectionPool" not in result.output and "Traceback" not in result.output
    # loopback over plain HTTP is allowed, with a warning
    assert "pyrkt: warning: sending credentials over plain HTTP" in result.output


@pytest.mark.parametrize("content,expected", [
    (b"#include <stdio.h>\nint main(void) { return 0; }\n",
     "is not an ACI (not a tar archive, nor gzip/bzip2/xz-compressed)"),
    # mtime=0: the same bytes, so the same test id, in every pytest-xdist worker
    (gzip.compress(b"int main(void) { return 0; }\n" * 40, mtime=0),
     "is not an ACI (gzip-compressed, but not a tar archive inside)"),
    (b"", "is not an ACI (an empty file)"),
])
def test_a_file_that_is_not_an_aci(tmp_path: Path, content: bytes, expected: str) -> None:
    source = tmp_path / "hello.c"
    source.write_bytes(content)
    result = _push(str(source), "--registry", f"http://127.0.0.1:{_closed_port()}")
    assert result.exit_code == 254
    assert f"pyrkt: {source} {expected}" in result.output


def test_the_token_goes_over_plain_http_to_other_hosts_only_when_asked(aci: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: the refusal must come before any connection attempt
    result = _push(str(aci), "--registry", "http://192.0.2.1:8080")
    assert result.exit_code == 254
    assert "refusing to send credentials over plain HTTP to 192.0.2.1" in result.output
    assert "--insecure-allow-http" in result.output


def test_push_help_has_examples() -> None:
    result = CliRunner().invoke(pyrkt, ["push", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and "--insecure-allow-http" in result.output
