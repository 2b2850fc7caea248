"""`pyrkt-registry`: every operator mistake ends in one `Error: ...` line, never a traceback,
and nothing is initialised or printed for a server that cannot start."""

from __future__ import annotations

import os
import socket

import pytest
from click.testing import CliRunner

from registry import __version__
from registry.cli.registry import main


@pytest.fixture
def cli(tmp_path, registry_key_file, monkeypatch):  # type: ignore[no-untyped-def]
    for name in list(os.environ):
        if name.startswith("PYRKT_REGISTRY_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("PYRKT_REGISTRY_SIGNING_KEY", str(registry_key_file))
    monkeypatch.setenv("PYRKT_REGISTRY_DB_WAIT", "0")
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()

    def invoke(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, list(args))

    # `serve` hands its settings to the workers through os.environ (execvp is patched out
    # here): put the environment back, or later tests would read this registry's settings.
    saved = dict(os.environ)
    yield invoke
    os.environ.clear()
    os.environ.update(saved)


def _one_error_line(result) -> str:  # type: ignore[no-untyped-def]
    assert result.exit_code != 0, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.output.strip() == f"pyrkt-registry {__version__}"


def test_port_out_of_range_is_a_bad_parameter(cli, tmp_path):
    line = _one_error_line(cli("--data-dir", "data", "serve", "--bind", "127.0.0.1:99999"))
    assert "--bind" in line and "out of range" in line
    assert not (tmp_path / "data").exists()


def test_unusable_data_dir(cli):
    line = _one_error_line(cli("--data-dir", "/proc/nope", "token", "list", "admin"))
    assert line == ("Error: no registry in /proc/nope: run "
                    "`pyrkt-registry --data-dir /proc/nope init` (or serve)")
    line = _one_error_line(cli("--data-dir", "/proc/nope", "init"))
    assert "/proc/nope" in line


def test_commands_never_create_a_database_in_a_fresh_data_dir(cli, tmp_path):
    line = _one_error_line(cli("--data-dir", "fresh", "token", "create", "admin"))
    assert "no registry in" in line and "`pyrkt-registry --data-dir fresh init` (or serve)" in line
    assert not (tmp_path / "fresh").exists()


@pytest.mark.parametrize("command", [("token", "list", "admin"), ("init",), ("user", "list")])
def test_bogus_database_url(cli, command):
    line = _one_error_line(cli("--data-dir", "data", "--database-url", "bogus", *command))
    assert line.startswith("Error: cannot open the database at bogus: ")


@pytest.mark.parametrize("command", [("token", "list", "admin"), ("init",)])
def test_unreachable_postgresql(cli, command):
    with socket.socket() as closed:  # a port nobody listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    url = f"postgresql+psycopg://user:secret@127.0.0.1:{port}/registry"
    line = _one_error_line(cli("--data-dir", "data", "--database-url", url, *command))
    assert line.startswith(f"Error: cannot open the database at postgresql+psycopg://user:***@127.0.0.1:{port}/registry: ")
    assert "secret" not in line


def test_busy_port_fails_before_initialising(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "execvp", lambda *a: pytest.fail("gunicorn must not start"))
    with socket.socket() as busy:
        busy.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = cli("--data-dir", "data", "serve", "--bind", f"127.0.0.1:{port}")
    line = _one_error_line(result)
    assert line == f"Error: 127.0.0.1:{port} is in use; choose another --bind"
    assert "password" not in result.output
    assert not (tmp_path / "data").exists()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_howto_repeats_the_global_options(cli, tmp_path, monkeypatch):
    started = []
    monkeypatch.setattr(os, "execvp", lambda *a: started.append(a))
    port = _free_port()
    result = cli("--data-dir", "data", "serve", "--bind", f"127.0.0.1:{port}")
    assert result.exit_code == 0, result.output
    assert started, "gunicorn is started"
    assert "  pyrkt-registry --data-dir data token create admin " in result.output
    # ... and the command printed works as printed.
    token = cli("--data-dir", "data", "token", "create", "admin")
    assert token.exit_code == 0 and token.output.strip().splitlines()[-1].startswith("pyrkt_")


def test_howto_names_a_non_default_database(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(os, "execvp", lambda *a: None)
    url = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    result = cli("--data-dir", "data", "--database-url", url, "serve", "--bind",
                 f"127.0.0.1:{_free_port()}")
    assert result.exit_code == 0, result.output
    assert f"  pyrkt-registry --data-dir data --database-url {url} token create admin " in result.output


def test_howto_without_options_for_the_defaults(cli, monkeypatch):
    monkeypatch.setattr(os, "execvp", lambda *a: None)
    result = cli("serve", "--bind", f"127.0.0.1:{_free_port()}")
    assert result.exit_code == 0, result.output
    assert "  pyrkt-registry token create admin " in result.output


def test_key_list_prints_user_ids_plainly(cli):
    assert cli("--data-dir", "data", "init").exit_code == 0
    listed = cli("--data-dir", "data", "key", "list").output.strip()
    fingerprint, status, user_ids, readable = listed.split("\t")
    assert status == "active" and "[" not in user_ids and "'" not in user_ids and user_ids
    assert readable == "rkt 1.x: ok"


def test_gunicorn_shares_no_control_socket():
    import importlib

    from gunicorn.config import Config

    conf = importlib.import_module("registry.server.gunicorn_conf")
    config = Config()
    for name, value in vars(conf).items():
        if name in config.settings:
            config.set(name, value)
    assert config.control_socket_disable is True
