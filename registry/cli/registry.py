"""`pyrkt-registry`: set up, run and administer the registry server (parses, then delegates)."""

from __future__ import annotations

import errno
import os
import shlex
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
from sqlalchemy.orm import Session

from registry import __version__
from registry.errors import PyrktError
from registry.server.config import (
    COMMAND_LINE,
    DEFAULT,
    DEFAULT_DATA_DIR,
    RegistryConfig,
)

# Function-local imports keep start-up fast: each command loads only the parts it runs.


class Context:
    def __init__(self, overrides: dict[str, Any]) -> None:
        self.overrides = overrides

    def config(self, **extra: object) -> RegistryConfig:
        return RegistryConfig.load(**{**self.overrides, **extra})

    def command(self, config: RegistryConfig, *args: str) -> str:
        """`pyrkt-registry` with the global options that select this registry (data dir,
        database URL) whenever they are not the defaults, followed by `args`."""
        words = ["pyrkt-registry"]
        if config.sources["config"] == COMMAND_LINE:
            words += ["--config", str(config.values["config"])]
        if config.data_dir != Path(DEFAULT_DATA_DIR).absolute():
            words += ["--data-dir", str(self.overrides.get("data_dir") or config.data_dir)]
        if config.database_url != _default_database_url(config):
            words += ["--database-url", _safe_url(config.database_url)]
        return shlex.join([*words, *args])


def _default_database_url(config: RegistryConfig) -> str:
    return f"sqlite:///{config.data_dir / 'registry.db'}"


pass_context = click.make_pass_decorator(Context)


class RegistryGroup(click.Group):
    """The one place a PyrktError (a bad setting, a service's refusal, ...) becomes the
    `Error: <message>` line and exit status 1 of every other refusal, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PyrktError as error:
            raise click.ClickException(str(error)) from None


@click.group(cls=RegistryGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="pyrkt-registry",
                      message="%(prog)s %(version)s")
@click.option("--config", "config_file", type=click.Path(dir_okay=False),
              help="TOML file of settings, keys named as in `pyrkt-registry config` "
                   "(env PYRKT_REGISTRY_CONFIG) [DATA_DIR/registry.toml if it exists].")
@click.option("--data-dir", type=click.Path(file_okay=False),
              help="Where SQLite, local storage and secrets live (env PYRKT_REGISTRY_DATA_DIR) "
                   "[./pyrkt-data].")
@click.option("--domain", "domains", multiple=True,
              help="A domain whose names are hosted here (repeatable; env "
                   "PYRKT_REGISTRY_DOMAINS, comma-separated) [host of the base URL].")
@click.option("--base-url", help="External URL clients use, port included "
                                 "(env PYRKT_REGISTRY_BASE_URL) [http://127.0.0.1:8080].")
@click.option("--database-url", help="SQLAlchemy URL (env PYRKT_REGISTRY_DATABASE_URL) "
                                     "[sqlite in the data dir].")
@click.pass_context
def main(ctx: click.Context, config_file: str | None, data_dir: str | None,
         domains: tuple[str, ...], base_url: str | None, database_url: str | None) -> None:
    """Run and administer a pyrkt registry. Every setting also has an environment variable
    (PYRKT_REGISTRY_*) and a config-file key: `pyrkt-registry config --explain` lists them
    all; with none at all it runs on SQLite and local storage under ./pyrkt-data."""
    ctx.obj = Context({"config": config_file, "data_dir": data_dir, "domains": domains or None,
                       "base_url": base_url, "database_url": database_url})


@contextmanager
def _session(obj: Context, config: RegistryConfig | None = None) -> Iterator[Session]:
    """A session on an initialised registry; never creates a database (only init/serve do)."""
    from sqlalchemy.exc import SQLAlchemyError

    from registry.server.db import make_engine, make_session_factory, schema_is_current, sqlite_file

    config = config or obj.config()
    init_command = obj.command(config, "init")
    path = sqlite_file(config.database_url)
    if path is not None and not path.is_file():
        where = (f"no registry in {config.data_dir}"
                 if config.database_url == _default_database_url(config)
                 else f"no registry database at {path}")
        raise click.ClickException(f"{where}: run `{init_command}` (or serve)")
    with _database_errors(config):
        engine = make_engine(config.database_url)
        try:
            current = schema_is_current(engine)
        except BaseException:
            engine.dispose()
            raise
    try:
        if not current:
            raise click.ClickException("the database is not initialised or is out of date: "
                                       f"run `{init_command}` first")
        with make_session_factory(engine)() as session:
            try:
                yield session
            except SQLAlchemyError as error:
                raise click.ClickException(
                    f"database error ({_safe_url(config.database_url)}): {_reason(error)}"
                ) from None
    finally:
        engine.dispose()


@contextmanager
def _database_errors(config: RegistryConfig) -> Iterator[None]:
    """Unusable database URLs, unreachable servers and unwritable directories: one line."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except (SQLAlchemyError, ImportError) as error:
        raise click.ClickException(f"cannot open the database at "
                                   f"{_safe_url(config.database_url)}: {_reason(error)}") from None
    except OSError as error:
        raise click.ClickException(f"cannot set up the registry in {config.data_dir}: "
                                   f"{_reason(error)}") from None


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    orig = getattr(error, "orig", None)  # a DBAPI error wrapped by SQLAlchemy
    text = str(orig if orig is not None else error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _operator():  # type: ignore[no-untyped-def]
    from registry.server.services.actor import Actor

    return Actor.operator()


# -- config / init / serve ---------------------------------------------------------------------
@main.command("config")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: one object per setting, for scripts.")
@click.option("--explain", is_flag=True, help="Also print each setting's type, default and "
                                              "meaning.")
@pass_context
def config_command(obj: Context, output_format: str, explain: bool) -> None:
    """Print the effective settings (secrets masked) and where each value came from: default,
    config file, environment or command line.

    \b
    Examples:
      pyrkt-registry config
      PYRKT_REGISTRY_STORAGE=s3 pyrkt-registry config --explain
      pyrkt-registry --config /etc/pyrkt-registry.toml config --format json
    """
    import json

    rows = obj.config().report()
    if output_format == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(row["variable"]) for row in rows)
    for row in rows:
        value = row["value"]
        shown = ("(unset)" if value is None or value == "" else
                 ",".join(value) if isinstance(value, list) else
                 ("1" if value else "0") if isinstance(value, bool) else str(value))
        click.echo(f"{row['variable']:<{width}}  {shown}  [{row['source']}]")
        if explain:
            click.echo(f"{'':<{width}}  {row['help']} ({row['type']}; default: "
                       f"{row['default']})")


@main.command()
@click.option("--admin", "admin_username", default=None,
              help="Name of the first administrator (created only if there are no users) "
                   "[env PYRKT_REGISTRY_ADMIN_USERNAME, else admin].")
@pass_context
def init(obj: Context, admin_username: str | None) -> None:
    """Create or upgrade the schema, the signing key and a first administrator."""
    config = obj.config(admin_username=admin_username)
    _initialise(config)


def _initialise(config: RegistryConfig) -> None:
    from registry.server.bootstrap import initialise

    click.echo(f"data dir: {config.data_dir}", err=True)
    if config.signing_key_file is None:
        click.echo("checking the signing key (generating RSA 4096 takes a few seconds the "
                   "first time)...", err=True)
    with _database_errors(config):
        report = initialise(config)
    click.echo(f"schema: up to date ({_safe_url(config.database_url)})")
    click.echo(f"signing key: {report.key_fingerprint}" + (" (new)" if report.key_created else ""))
    if report.key_problems:
        click.echo(f"warning: rkt 1.x and appc clients of its time cannot read this key "
                   f"({report.key_problems[0]}); `pyrkt-registry key rotate` then "
                   f"`pyrkt-registry key resign` replace it (see `key list`)", err=True)
    if report.admin_username:
        click.echo(f"administrator: {report.admin_username}")
        if report.admin_password:
            click.echo(f"  password (shown only now): {report.admin_password}")


SERVE_EPILOG = """\b
Examples:
  pyrkt-registry serve                                   # http://127.0.0.1:8080
  pyrkt-registry tls init                                # a local CA and a certificate
  sudo pyrkt-registry serve --tls-cert pyrkt-data/tls/cert.pem --tls-key pyrkt-data/tls/key.pem
  sudo pyrkt-registry --domain registry.example.com serve --bind 0.0.0.0:443 \\
       --http-bind 0.0.0.0:80 --acme --acme-email ops@example.com

\b
With a certificate it serves HTTPS (on 127.0.0.1:443 unless --bind says otherwise; the base
URL becomes https://). A certificate replaced on disk is served from the next connection on;
open connections keep theirs (SIGHUP works too). --acme gets one from Let's Encrypt (or
--acme-directory) for every --domain and renews it 30 days before it expires; the CA checks
http://DOMAIN/.well-known/acme-challenge/, so give --http-bind on port 80 of those names.
`pyrkt-registry tls status` shows the state.
"""


@main.command(epilog=SERVE_EPILOG)
@click.option("--bind", default=None, help="HOST:PORT to listen on (env PYRKT_REGISTRY_BIND) "
                                           "[127.0.0.1:8080; 127.0.0.1:443 with TLS].")
@click.option("--dev", is_flag=True, help="Flask's development server instead of gunicorn.")
@click.option("--workers", type=int, default=None,
              help="gunicorn worker processes (env PYRKT_REGISTRY_WORKERS) "
                   "[2 x CPU cores + 1, at most 8].")
@click.option("--tls-cert", type=click.Path(dir_okay=False), default=None,
              help="PEM certificate chain: serve HTTPS (env PYRKT_REGISTRY_TLS_CERT).")
@click.option("--tls-key", type=click.Path(dir_okay=False), default=None,
              help="PEM private key of --tls-cert (env PYRKT_REGISTRY_TLS_KEY).")
@click.option("--acme", is_flag=True, default=None,
              help="Get and renew the certificate over ACME for every hosted domain.")
@click.option("--acme-directory", metavar="URL", default=None,
              help="ACME directory (env PYRKT_REGISTRY_ACME_DIRECTORY) [Let's Encrypt].")
@click.option("--acme-email", default=None, help="Contact address given to the CA.")
@click.option("--http-bind", metavar="HOST:PORT", default=None,
              help="Plain-HTTP listener redirecting to HTTPS and answering ACME challenges "
                   "(env PYRKT_REGISTRY_HTTP_BIND).")
@pass_context
def serve(obj: Context, bind: str | None, dev: bool, workers: int | None, tls_cert: str | None,
          tls_key: str | None, acme: bool | None, acme_directory: str | None,
          acme_email: str | None, http_bind: str | None) -> None:
    """Serve the registry (gunicorn); initialises an empty data dir first."""
    from registry.server.tls import serving

    given: dict[str, object] = {"bind": bind, "workers": workers, "tls_cert": tls_cert,
                                "tls_key": tls_key, "acme": acme,
                                "acme_directory": acme_directory, "acme_email": acme_email,
                                "http_bind": http_bind}
    config = obj.config(**given)
    tls = config.tls
    if tls.enabled and config.sources["bind"] == DEFAULT:
        given["bind"] = "127.0.0.1:443"  # HTTPS on its own port: image names carry none
        config = obj.config(**given)
    host, _, port_text = config.bind.rpartition(":")
    port = int(port_text)
    if tls.http_bind and not tls.enabled:
        raise click.UsageError("--http-bind redirects to HTTPS: give --tls-cert or --acme")
    # Before anything is initialised or printed: a busy address must not leave a half-started
    # registry (nor a one-time password shown for a server that never ran).
    _check_bindable(config.bind, host.strip("[]"), port)
    if tls.http_bind:
        http_host, _, http_port = tls.http_bind.rpartition(":")
        _check_bindable(tls.http_bind, http_host.strip("[]"), int(http_port))
    if config.sources["base_url"] == DEFAULT:
        public_host = "127.0.0.1" if host in ("0.0.0.0", "::", "[::]") else host
        if tls.enabled:
            base_url = f"https://{public_host}" + ("" if port == 443 else f":{port}")
        else:
            base_url = f"http://{public_host}:{port}"
        config = obj.config(**given, base_url=base_url)
    certificate = None
    if tls.cert is not None:
        try:
            certificate = serving.check_certificate_files(config)
        except serving.ServeError as error:
            raise click.ClickException(str(error)) from None
    _initialise(config)
    # Workers build their app from the environment and the config file: hand down what
    # came from this command line.
    os.environ.update(config.environment())
    cert_file, key_file = tls.cert, tls.key
    if tls.acme or tls.http_bind:
        sidecar = serving.start_sidecar(serving.environment_for_sidecar(config))
        if tls.acme:
            click.echo(f"TLS: getting a certificate for {', '.join(config.domains)} from "
                       f"{tls.acme_directory}...", err=True)
            try:
                cert_file, key_file = serving.wait_for_first_certificate(config, sidecar), None
            except serving.ServeError as error:
                serving.stop(sidecar)
                raise click.ClickException(str(error)) from None
    if cert_file is not None:
        os.environ.update(serving.environment_for_workers(config, cert_file, key_file))
    _print_howto(obj, config)
    if certificate is not None:
        click.echo(f"TLS certificate: {certificate.info.summary()}")
        for warning in certificate.warnings:
            click.echo(f"warning: {warning}", err=True)
    sys.stdout.flush()
    if dev:
        from registry.server.app import create_app

        ssl_context = (str(cert_file), str(key_file) if key_file else None) if cert_file else None
        create_app(RegistryConfig.load()).run(host=host.strip("[]"), port=port, threaded=True,
                                              ssl_context=ssl_context)
        return
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "-c",
                               "python:registry.server.gunicorn_conf", "registry.server.wsgi:app"])


def _check_bindable(bind: str, host: str, port: int) -> None:
    """Bind (and close) a socket like gunicorn's (SO_REUSEADDR), so a busy address fails now."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as error:
        raise click.BadParameter(f"cannot resolve {host!r}: {error.strerror}",
                                 param_hint="--bind") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise click.ClickException(f"{bind} is in use; choose another --bind") from None
            if error.errno == errno.EACCES and port < 1024:
                raise click.ClickException(f"cannot listen on {bind}: ports below 1024 need "
                                           "root (or CAP_NET_BIND_SERVICE); run as root or "
                                           "choose another port") from None
            raise click.ClickException(f"cannot listen on {bind}: {error.strerror}") from None


def _print_howto(obj: Context, config: RegistryConfig) -> None:
    domain = config.domains[0]
    parts = urlsplit(config.base_url)
    port = parts.port
    insecure = parts.scheme == "http"
    name = f"{domain}/demo/hello"
    click.echo(f"\nregistry: {config.base_url}  (domains: {', '.join(config.domains)})")
    click.echo("push, trust and fetch an image:")
    click.echo(f"  {obj.command(config, 'token', 'create', 'admin')}"
               "            # an API token for pushing")
    trust_flags = " --insecure-allow-http" if insecure else ""
    fetch_flags = " --insecure-options=http" if insecure else ""
    push_flags = ""
    local_ca = _local_ca_bundle(config)
    if local_ca is not None:
        # A certificate from `tls init`: clients need its CA (or a domains.d caBundle).
        ca = f" --ca-bundle {shlex.quote(str(local_ca))}"
        trust_flags, fetch_flags, push_flags = trust_flags + ca, fetch_flags + ca, ca
    if port and port != (80 if insecure else 443):
        # Image names cannot carry a port, so the client is told where to look.
        trust_flags += f" --port={port}"
        fetch_flags += f" --port={port}"
    click.echo(f"  pyrkt push hello.aci --registry {config.base_url}{push_flags} --token TOKEN")
    click.echo(f"  pyrkt trust --prefix {domain}/demo{trust_flags}")
    click.echo(f"  pyrkt fetch{fetch_flags} {name}:1.0")
    if port and insecure:
        click.echo(f"  actool discover --insecure --port={port} {name}:1.0")
    click.echo("")


def _local_ca_bundle(config: RegistryConfig) -> Path | None:
    """The CA of `tls init` when the served certificate is the one it made."""
    # Late: the TLS helpers (and cryptography) load only when the how-to is printed.
    from registry.server.tls.localca import served_local_ca

    return served_local_ca(config.data_dir, config.tls.cert)


def _safe_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


# -- users ---------------------------------------------------------------------------------------
@main.group()
def user() -> None:
    """Manage users."""


@user.command("add")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user a registry administrator.")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@pass_context
def user_add(obj: Context, username: str, admin: bool, password_stdin: bool) -> None:
    """Add a user (prints a generated password unless one is given on stdin)."""
    from registry.server.services import users

    password = sys.stdin.readline().rstrip("\n") if password_stdin else users.generate_password()
    with _session(obj) as session:
        users.create_user(session, _operator(), username, password, is_admin=admin)
    click.echo(f"user {username} created" + (" (administrator)" if admin else ""))
    if not password_stdin:
        click.echo(f"password (shown only now): {password}")


@user.command("list")
@pass_context
def user_list(obj: Context) -> None:
    """List users."""
    from registry.server.services import users

    with _session(obj) as session:
        for found in users.list_users(session, _operator()):
            click.echo(f"{found.username}{'  (admin)' if found.is_admin else ''}")


@user.command("passwd")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the new password from standard input.")
@pass_context
def user_passwd(obj: Context, username: str, password_stdin: bool) -> None:
    """Set a user's password (generated and printed unless given on stdin)."""
    from registry.server.services import users

    password = sys.stdin.readline().rstrip("\n") if password_stdin else users.generate_password()
    with _session(obj) as session:
        users.set_password(session, _operator(), username, password)
    click.echo(f"password of {username} changed")
    if not password_stdin:
        click.echo(f"new password (shown only now): {password}")


@user.command("rm")
@click.argument("username")
@pass_context
def user_rm(obj: Context, username: str) -> None:
    """Remove a user (their tokens and roles go with them)."""
    from registry.server.services import users

    with _session(obj) as session:
        users.delete_user(session, _operator(), username)
    click.echo(f"user {username} removed")


# -- tokens --------------------------------------------------------------------------------------
@main.group()
def token() -> None:
    """Manage API tokens (for `pyrkt push` and CI)."""


def _token_options(func):  # type: ignore[no-untyped-def]
    for option in reversed([
        click.option("--description", default="", help="What the token is for."),
        click.option("--scope", type=click.Choice(["read", "push", "admin"]), default="admin",
                     show_default=True,
                     help="At most what the token may do: read (fetch), push (also upload, "
                          "delete versions), admin (everything the account may)."),
        click.option("--repository", default=None, metavar="NAME",
                     help="Limit the token to this one repository [every repository]."),
        click.option("--expires-days", default=str(90), show_default=True, metavar="DAYS|never",
                     help="Days until the token stops working, or 'never'."),
    ]):
        func = option(func)
    return func


def _create_token(obj: Context, username: str, description: str, scope: str,
                  repository: str | None, expires_days: str) -> None:
    from registry.server.services import tokens

    with _session(obj) as session:
        row, plain = tokens.create_token(session, _operator(), username, description,
                                         scope=scope, repository=repository,
                                         expires_in_days=tokens.parse_expiry(expires_days))
        where = row.repository.name if row.repository else "every repository"
        expiry = row.expires_at.strftime("%Y-%m-%d %H:%M UTC") if row.expires_at else "never"
    click.echo(f"token {row.id} for {username}: {scope} on {where}, expires {expiry} "
               "(shown only now):", err=True)
    click.echo(plain)


@token.command("create")
@click.argument("username")
@_token_options
@pass_context
def token_create(obj: Context, username: str, description: str, scope: str,
                 repository: str | None, expires_days: str) -> None:
    """Print a new API token for USERNAME (on stdout, alone: easy to capture).

    \b
    Examples:
      pyrkt-registry token create alice --scope read
      pyrkt-registry token create ci --scope push --repository example.com/team/app
    """
    _create_token(obj, username, description, scope, repository, expires_days)


def _echo_tokens(rows, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    import json

    from registry.server.services import tokens

    def when(moment):  # type: ignore[no-untyped-def]
        return moment.isoformat() if moment else None

    listed = [{"id": r.id, "hint": r.hint, "state": tokens.state_of(r), "scope": r.scope,
               "repository": r.repository.name if r.repository else None,
               "expires": when(r.expires_at), "last_used": when(r.last_used_at),
               "last_used_from": r.last_used_addr, "description": r.description}
              for r in rows]
    if as_json:
        click.echo(json.dumps({"tokens": listed}, indent=2))
        return
    for t in listed:
        click.echo(f"{t['id']}\t{t['hint']}...\t{t['state']}\t{t['scope']}\t"
                   f"{t['repository'] or '*'}\texpires {t['expires'] or 'never'}\t"
                   f"last used {t['last_used'] or 'never'}"
                   f"{' from ' + t['last_used_from'] if t['last_used_from'] else ''}\t"
                   f"{t['description']}")


@token.command("list")
@click.argument("username")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@pass_context
def token_list(obj: Context, username: str, as_json: bool) -> None:
    """List a user's (or robot's) tokens: id, hint, state, scope, repository, expiry, last use."""
    from registry.server.services import tokens

    with _session(obj) as session:
        _echo_tokens(tokens.list_tokens(session, _operator(), username), as_json)


@token.command("revoke")
@click.argument("token_id", type=int)
@pass_context
def token_revoke(obj: Context, token_id: int) -> None:
    """Revoke a token by its id."""
    from registry.server.services import tokens

    with _session(obj) as session:
        tokens.revoke_token(session, _operator(), token_id)
    click.echo(f"token {token_id} revoked")


# -- robot accounts ------------------------------------------------------------------------------
@main.group()
def robot() -> None:
    """Robot accounts for CI: no password, tokens only, roles per repository.

    \b
    Example (a CI job that pushes to one repository):
      pyrkt-registry robot create ci-app --description "CI of team/app"
      pyrkt-registry repo grant example.com/team/app ci-app write
      pyrkt-registry robot token ci-app --scope push --repository example.com/team/app
    """


@robot.command("create")
@click.argument("name")
@click.option("--description", default="", help="What the robot is for.")
@pass_context
def robot_create(obj: Context, name: str, description: str) -> None:
    """Create the robot account NAME."""
    from registry.server.services import robots

    with _session(obj) as session:
        robots.create_robot(session, _operator(), name, description)
    click.echo(f"robot {name} created: give it roles with `pyrkt-registry repo grant REPO "
               f"{name} ROLE`, then a token with `pyrkt-registry robot token {name}`")


@robot.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (for scripts).")
@pass_context
def robot_list(obj: Context, as_json: bool) -> None:
    """List robot accounts and their roles."""
    import json

    from registry.server.services import robots

    with _session(obj) as session:
        found: list[dict[str, Any]] = [
            {"name": r.username, "description": r.description,
             "roles": {repo: role.value
                       for repo, role in robots.robot_roles(session, _operator(), r.username)}}
            for r in robots.list_robots(session, _operator())]
    if as_json:
        click.echo(json.dumps({"robots": found}, indent=2))
        return
    for r in found:
        roles = ", ".join(f"{repo}={role}" for repo, role in r["roles"].items()) or "no roles"
        click.echo(f"{r['name']}\t{roles}\t{r['description']}")


@robot.command("rm")
@click.argument("name")
@pass_context
def robot_rm(obj: Context, name: str) -> None:
    """Delete the robot account NAME (its tokens stop working, its roles go)."""
    from registry.server.services import robots

    with _session(obj) as session:
        robots.delete_robot(session, _operator(), name)
    click.echo(f"robot {name} deleted")


@robot.command("token")
@click.argument("name")
@_token_options
@pass_context
def robot_token(obj: Context, name: str, description: str, scope: str,
                repository: str | None, expires_days: str) -> None:
    """Print a new token for the robot NAME (same options as `token create`)."""
    from registry.server.services import robots

    with _session(obj) as session:
        robots.get_robot(session, name)
    _create_token(obj, name, description, scope, repository, expires_days)


# -- audit ---------------------------------------------------------------------------------------
@main.command()
@click.option("--user", "actor", default="", help="Only events by this user, robot, "
                                                  "(operator) or (system).")
@click.option("--repository", default="", help="Only events about this repository.")
@click.option("--action", default="", help="Only this action (or family: `image`, `token`).")
@click.option("--limit", type=click.IntRange(1, 1_000_000), default=50, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@pass_context
def audit(obj: Context, actor: str, repository: str, action: str, limit: int, fmt: str) -> None:
    """Show the audit log, newest first."""
    import csv
    import itertools
    import json

    from registry.server.services import audit as audit_log

    where = audit_log.AuditFilter(actor=actor, repository=repository, action=action)
    with _session(obj) as session:
        rows = [audit_log.export_row(e)
                for e in itertools.islice(audit_log.every(session, where), limit)]
    if fmt == "json":
        click.echo(json.dumps({"events": rows}, indent=2))
    elif fmt == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(audit_log.EXPORT_COLUMNS)
        for row in rows:
            row["details"] = json.dumps(row["details"], sort_keys=True)
            writer.writerow(["" if row[c] is None else row[c] for c in audit_log.EXPORT_COLUMNS])
    else:
        for row in rows:
            who = row["actor"] or "anonymous"
            cause = f" [{row['triggered_by']}]" if row["triggered_by"] else ""
            click.echo(f"{row['at'][:19]}\t{who}{cause}\t{row['action']}\t{row['target']}\t"
                       f"{row['remote_addr'] or '-'}")


# -- repositories --------------------------------------------------------------------------------
@main.group()
def repo() -> None:
    """Manage repositories."""


@repo.command("create")
@click.argument("name")
@click.option("--private", is_flag=True, help="Only users with a role may see it.")
@click.option("--description", default="")
@pass_context
def repo_create(obj: Context, name: str, private: bool, description: str) -> None:
    """Create a repository (full AC name, e.g. example.com/team/app)."""
    from registry.server.services import repositories

    config = obj.config()
    with _session(obj, config) as session:
        repositories.create_repository(session, _operator(), name, config.domains,
                                       public=not private, description=description)
    click.echo(f"repository {name} created ({'private' if private else 'public'})")


@repo.command("grant")
@click.argument("name")
@click.argument("username")
@click.argument("role", type=click.Choice(["read", "write", "admin", "none"]))
@pass_context
def repo_grant(obj: Context, name: str, username: str, role: str) -> None:
    """Give USERNAME a ROLE on repository NAME ("none" takes it away)."""
    from registry.server.services import repositories

    with _session(obj) as session:
        repositories.grant_role(session, _operator(), name, username,
                                None if role == "none" else repositories.parse_role(role))
    click.echo(f"{username}: {role} on {name}")


@repo.command("describe")
@click.argument("name")
@click.argument("source", type=click.File("r"))
@pass_context
def repo_describe(obj: Context, name: str, source) -> None:  # type: ignore[no-untyped-def]
    """Set repository NAME's description (Markdown) from the file SOURCE ("-": stdin).

    \b
    Example:
      pyrkt-registry repo describe example.com/team/app README.md
    """
    from registry.server.services import repositories

    text = source.read(100_001)
    if len(text) > 100_000:
        raise click.ClickException("description larger than 100000 characters")
    with _session(obj) as session:
        repositories.update_repository(session, _operator(), name, description=text.strip())
    click.echo(f"description of {name} set ({len(text.strip())} characters of Markdown)")


@repo.command("list")
@pass_context
def repo_list(obj: Context) -> None:
    """List repositories."""
    from registry.server.services import repositories

    with _session(obj) as session:
        for found in repositories.list_repositories(session, _operator()):
            click.echo(f"{found.name}\t{'public' if found.is_public else 'private'}")


# -- keys ----------------------------------------------------------------------------------------
@main.group()
def key() -> None:
    """Manage the registry's signing keys."""


@key.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON document (for scripts).")
@pass_context
def key_list(obj: Context, as_json: bool) -> None:
    """List the registry's keys (active ones sign; retired ones stay published).

    The last column says whether rkt 1.x (and appc clients built on the Go OpenPGP of its
    time) can read the key; `key rotate` then `key resign` replace one they cannot read.
    """
    import json

    from registry.server.services import keys

    with _session(obj) as session:
        rows = [(row, keys.old_client_report(row)) for row in keys.server_keys(session)]
    if as_json:
        click.echo(json.dumps([{
            "fingerprint": row.fingerprint, "status": row.status.value,
            "userIds": row.user_ids.splitlines(), "created": row.created_at.isoformat(),
            "oldClientsCanRead": not problems, "oldClientProblems": problems,
        } for row, problems in rows], indent=2))
        return
    for row, problems in rows:
        readable = ("rkt 1.x: ok" if not problems
                    else f"rkt 1.x CANNOT read it ({problems[0]})")
        click.echo(f"{row.fingerprint}\t{row.status.value}\t"
                   f"{', '.join(row.user_ids.splitlines())}\t{readable}")


@key.command("generate")
@pass_context
def key_generate(obj: Context) -> None:
    """Generate a new RSA 4096 key; it becomes the one new uploads are signed with.

    The key is one sign-capable RSA primary key, which gpg, Sequoia and rkt 1.x all read.
    """
    from registry.server.bootstrap import key_user_id
    from registry.server.services import keys

    config = obj.config()
    with _session(obj, config) as session:
        row = keys.generate_server_key(session, _operator(), user_id=key_user_id(config.domains[0]))
    click.echo(row.fingerprint)


@key.command("rotate")
@pass_context
def key_rotate(obj: Context) -> None:
    """Generate a new active key and retire all others (still published for old signatures)."""
    from registry.server.bootstrap import key_user_id
    from registry.server.services import keys

    config = obj.config()
    with _session(obj, config) as session:
        row = keys.rotate_server_key(session, _operator(), user_id=key_user_id(config.domains[0]))
        stale = keys.signatures_by_unreadable_keys(session)
    click.echo(row.fingerprint)
    if stale:
        click.echo(f"{stale} image(s) are still signed by a key rkt 1.x cannot read; "
                   "`pyrkt-registry key resign` signs them again with the new key", err=True)


@key.command("resign")
@click.option("--key", "fingerprint", default=None, metavar="FINGERPRINT",
              help="Re-sign what this retired registry key signed (default: what keys rkt 1.x "
                   "cannot read signed).")
@pass_context
def key_resign(obj: Context, fingerprint: str | None) -> None:
    """Sign images again with the active key (after a rotation), so old clients can verify them.

    Owners' own signatures are kept. Example, fixing a registry whose key rkt cannot import:

        pyrkt-registry key rotate && pyrkt-registry key resign
    """
    from registry.server.app import storage_settings
    from registry.server.services import keys
    from registry.server.storage import storage_from_config

    config = obj.config()
    with _session(obj, config) as session:
        count = keys.resign_images(session, _operator(), storage_from_config(storage_settings(config)),
                                   key_fingerprint=fingerprint)
    click.echo(f"re-signed {count} image(s)")


@key.command("retire")
@click.argument("fingerprint")
@pass_context
def key_retire(obj: Context, fingerprint: str) -> None:
    """Stop signing with a key (it stays published)."""
    from registry.server.services import keys

    with _session(obj) as session:
        row = keys.retire_key(session, _operator(), fingerprint)
    click.echo(f"{row.fingerprint} retired")


# -- gc ------------------------------------------------------------------------------------------
@main.command()
@click.option("--dry-run", is_flag=True, help="Only report what would be removed.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@pass_context
def gc(obj: Context, dry_run: bool, as_json: bool) -> None:
    """Repair the index and the storage in both directions: remove images no version points
    at, blobs no image names, uploads whose process died or that were abandoned, and the
    versions whose blob the storage lost (push the same ACI again to restore one)."""
    from registry.server.app import storage_settings
    from registry.server.oci.blobs import spool_dir
    from registry.server.services.gc import collect_garbage
    from registry.server.storage import storage_from_config

    config = obj.config()
    with _session(obj, config) as session:
        report = collect_garbage(session, storage_from_config(storage_settings(config)),
                                 _operator(), dry_run=dry_run,
                                 oci_spool_dir=spool_dir(config.tmp_dir))
    if as_json:
        import json

        click.echo(json.dumps({"dry_run": dry_run, **report.to_dict()}, indent=2, default=str))
        return
    verb = "would remove" if dry_run else "removed"
    for digest in report.missing_blobs:
        click.echo(f"missing blob: {digest} (the storage lost it)")
    if report.missing_kept:
        click.echo(f"warning: {report.missing_kept}", err=True)
    for version in report.versions_removed:
        click.echo(f"{verb} {version}: its blob is missing; push the same ACI again to "
                   "restore it")
    if report.retention is not None:
        for doomed in report.retention.deleted:
            click.echo(f"retention: {verb} {doomed.repository}:{doomed.version} "
                       f"(pushed {doomed.pushed_at:%Y-%m-%d}; {doomed.reason})")
        click.echo(f"retention: {verb} {len(report.retention.deleted)} version(s)")
    click.echo(f"{verb} {len(report.images_removed)} image(s), {len(report.blobs_removed)} blob(s), "
               f"{report.stale_uploads_removed} stale upload(s), "
               f"{len(report.oci_blobs_removed)} OCI blob(s), "
               f"{report.oci_uploads_removed} OCI upload(s), "
               f"{len(report.versions_removed)} version(s) whose blob is missing")


# -- tls -----------------------------------------------------------------------------------------
@main.group()
def tls() -> None:
    """HTTPS certificates: a local CA for trying things out, and the state of ACME."""


TLS_INIT_EPILOG = """\b
Example (the README's walkthrough):
  pyrkt-registry tls init
  sudo pyrkt-registry serve --tls-cert pyrkt-data/tls/cert.pem --tls-key pyrkt-data/tls/key.pem
  sudo pyrkt trust --prefix 127.0.0.1/demo --ca-bundle pyrkt-data/tls/ca.pem
"""


@tls.command("init", epilog=TLS_INIT_EPILOG)
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Where to write ca.pem, cert.pem and their keys "
                                 "[DATA_DIR/tls].")
@click.option("--json", "as_json", is_flag=True, help="Print the paths as JSON.")
@pass_context
def tls_init(obj: Context, directory: Path | None, as_json: bool) -> None:
    """Make a local CA (kept if it exists) and a certificate for every hosted domain."""
    import json

    from registry.server.tls.certs import file_info
    from registry.server.tls.localca import init_local_ca

    config = obj.config()
    target = (directory or config.data_dir / "tls").absolute()
    try:
        made = init_local_ca(target, config.domains)
        issued = file_info(made.cert_file)
    except (OSError, ValueError) as error:
        raise click.ClickException(f"cannot make the local CA in {target}: {_reason(error)}") \
            from None
    domains_file = {"pyrktKind": "domain", "pyrktVersion": "v1",
                    "domains": list(config.domains), "caBundle": str(made.ca_file)}
    serve_command = obj.command(config, "serve", "--tls-cert", str(made.cert_file),
                                "--tls-key", str(made.key_file))
    if as_json:
        click.echo(json.dumps({"ca": str(made.ca_file), "caCreated": made.ca_created,
                               "cert": str(made.cert_file), "key": str(made.key_file),
                               "names": list(issued.names),
                               "notAfter": issued.not_after.isoformat(),
                               "serve": serve_command, "domainsFile": domains_file}, indent=2))
        return
    click.echo(f"CA: {made.ca_file}" + (" (new)" if made.ca_created else " (kept)")
               + f"; its key {target / 'ca-key.pem'} stays here")
    click.echo(f"certificate: {made.cert_file} for {', '.join(issued.names)}, valid until "
               f"{issued.not_after:%Y-%m-%d}")
    click.echo(f"key: {made.key_file}")
    click.echo("\nserve HTTPS with it (port 443 needs root):")
    click.echo(f"  {serve_command}")
    click.echo("clients trust the CA with --ca-bundle (trust, fetch, run, push, docker2aci):")
    click.echo(f"  pyrkt trust --prefix {config.domains[0]}/demo --ca-bundle {made.ca_file}")
    click.echo(f"or, for every command, with a domains.d file such as "
               f"/etc/pyrkt/domains.d/{config.domains[0]}.json:")
    click.echo(f"  {json.dumps(domains_file)}")


@tls.command("status")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@pass_context
def tls_status(obj: Context, as_json: bool) -> None:
    """The configured certificate and the ACME state shared by the registry's hosts."""
    import json

    from registry.server.tls.status import tls_status as collect

    config = obj.config()
    with _session(obj, config) as session:
        report = collect(config, session)
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    for line in report["lines"]:
        click.echo(line)

# -- retention, webhooks, mirrors (registry.server.operations) ----------------------------------
def _echo_json(data: object) -> None:
    import json

    click.echo(json.dumps(data, indent=2, default=str))


@main.group()
def retention() -> None:
    """Retention policies: how many versions repositories keep (applied by `gc`)."""


@retention.command("set")
@click.option("--repo", "name", help="A repository's own policy [the registry-wide one].")
@click.option("--keep", "keep_last", type=click.IntRange(min=1),
              help="Keep the N newest versions.")
@click.option("--max-age", "max_age_days", type=click.IntRange(min=1), metavar="DAYS",
              help="Delete versions older than DAYS days.")
@pass_context
def retention_set(obj: Context, name: str | None, keep_last: int | None,
                  max_age_days: int | None) -> None:
    """Set a retention policy; with both rules a version goes only when it breaks both.
    `latest` and protected versions are always kept. Neither option removes the policy.

    \b
    Examples:
      pyrkt-registry retention set --keep 10                      # every repository
      pyrkt-registry retention set --repo example.com/app --keep 5 --max-age 30
      pyrkt-registry gc --dry-run                                 # what would go
    """
    from registry.server.operations import retention as policies

    with _session(obj) as session:
        policies.set_policy(session, _operator(), name, keep_last=keep_last,
                            max_age_days=max_age_days)
    where = name or "the registry"
    if keep_last is None and max_age_days is None:
        click.echo(f"{where}: no retention policy of its own")
    else:
        click.echo(f"{where}: keep {keep_last or 'any number of'} newest, "
                   f"{'delete after ' + str(max_age_days) + ' days' if max_age_days else 'no age limit'}")


@retention.command("show")
@click.option("--repo", "name", help="A repository [the registry-wide policy].")
@pass_context
def retention_show(obj: Context, name: str | None) -> None:
    """Show a policy and the one in effect (as JSON)."""
    from registry.server.operations import retention as policies

    with _session(obj) as session:
        _echo_json(policies.get_policy(session, _operator(), name))


@retention.command("plan")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@pass_context
def retention_plan(obj: Context, output_format: str) -> None:
    """List the versions the policies would delete now (a dry run; `gc` deletes them)."""
    from registry.server.operations import retention as policies

    with _session(obj) as session:
        doomed = policies.plan(session)
    if output_format == "json":
        _echo_json([d.to_dict() for d in doomed])
        return
    for item in doomed:
        click.echo(f"{item.repository}:{item.version}\tpushed {item.pushed_at:%Y-%m-%d}\t"
                   f"{item.reason}")
    click.echo(f"{len(doomed)} version(s) would be deleted")


@repo.command("protect")
@click.argument("name")
@click.argument("version")
@click.option("--off", is_flag=True, help="Lift the protection.")
@pass_context
def repo_protect(obj: Context, name: str, version: str, off: bool) -> None:
    """Protect NAME:VERSION from retention policies (or lift it with --off)."""
    from registry.server.operations import retention as policies

    with _session(obj) as session:
        policies.protect(session, _operator(), name, version, protected=not off)
    click.echo(f"{name}:{version} {'is no longer' if off else 'is'} protected")


@main.group()
def webhook() -> None:
    """Webhooks: JSON notifications of push, delete, conversion and retention events."""


@webhook.command("add")
@click.argument("url")
@click.option("--event", "events", multiple=True,
              type=click.Choice(["push", "delete", "conversion", "retention"]),
              help="An event to send (repeatable) [all].")
@click.option("--repo", "repository", help="Only this repository's events [all].")
@click.option("--description", default="")
@pass_context
def webhook_add(obj: Context, url: str, events: tuple[str, ...], repository: str | None,
                description: str) -> None:
    """Send events to URL, signed with a new secret (printed once: give it to the receiver,
    which checks `X-Pyrkt-Signature: sha256=HMAC(secret, body)`)."""
    from registry.server.operations import webhook_admin, webhooks

    with _session(obj) as session:
        hook = webhook_admin.create_webhook(session, _operator(), url,
                                            events=events or webhooks.EVENTS,
                                            repository=repository, description=description)
        click.echo(f"webhook {hook.id}: {url} ({', '.join(hook.events)})")
        click.echo(f"secret: {hook.secret}")


@webhook.command("list")
@pass_context
def webhook_list(obj: Context) -> None:
    """List webhooks (JSON)."""
    from registry.server.operations import webhook_admin, webhooks

    with _session(obj) as session:
        _echo_json([webhooks.describe(h) for h in webhook_admin.list_webhooks(session, _operator())])


@webhook.command("rm")
@click.argument("hook_id", type=int)
@pass_context
def webhook_rm(obj: Context, hook_id: int) -> None:
    """Remove a webhook and its delivery log."""
    from registry.server.operations import webhook_admin

    with _session(obj) as session:
        webhook_admin.delete_webhook(session, _operator(), hook_id)
    click.echo(f"webhook {hook_id} removed")


@webhook.command("deliveries")
@click.argument("hook_id", type=int, required=False)
@click.option("--limit", default=50, show_default=True)
@pass_context
def webhook_deliveries(obj: Context, hook_id: int | None, limit: int) -> None:
    """The delivery log, newest first: status, attempts, the receiver's last answer."""
    from registry.server.operations import webhook_admin

    with _session(obj) as session:
        for row in webhook_admin.deliveries(session, _operator(), hook_id, limit=limit):
            answer = row.last_status_code or row.last_error or "-"
            click.echo(f"{row.id}\thook {row.webhook_id}\t{row.event}\t{row.status}\t"
                       f"{row.attempts} attempt(s)\t{answer}")


@webhook.command("deliver")
@pass_context
def webhook_deliver(obj: Context) -> None:
    """Send the deliveries that are due now (the server's workers do this by themselves)."""
    from registry.server.db import make_engine, make_session_factory
    from registry.server.operations.webhooks import deliver_due

    config = obj.config()
    with _database_errors(config):
        engine = make_engine(config.database_url)
    try:
        outcomes = deliver_due(make_session_factory(engine), retry_base=config.webhook_retry_base,
                               timeout=config.webhook_timeout)
    finally:
        engine.dispose()
    ok = sum(1 for o in outcomes if o.ok)
    click.echo(f"{ok} delivered, {len(outcomes) - ok} failed (retried later)")


@main.group()
def mirror() -> None:
    """Pull-through mirrors: answer for names hosted elsewhere, cache what clients fetch."""


@mirror.command("add")
@click.argument("prefix")
@click.option("--allow-http", is_flag=True, help="Upstream may be reached over plain HTTP.")
@click.option("--port", type=click.IntRange(1, 65535), help="Upstream's port (testing).")
@click.option("--ca-bundle", type=click.Path(exists=True, dir_okay=False),
              help="CA certificates to verify upstream with.")
@pass_context
def mirror_add(obj: Context, prefix: str, allow_http: bool, port: int | None,
               ca_bundle: str | None) -> None:
    """Mirror the names under PREFIX (e.g. quay.io/coreos). Clients then point the domain at
    this registry with a domains.d file: {"domains": ["quay.io"], "mirror": "<base URL>/_mirror"}
    (printed below)."""
    from registry.server.operations import mirror as mirrors

    config = obj.config()
    with _session(obj, config) as session:
        row = mirrors.add_mirror(session, _operator(), prefix, domains=config.domains,
                                 allow_http=allow_http, port=port,
                                 ca_bundle=str(Path(ca_bundle).absolute()) if ca_bundle else None)
    domain = row.prefix.split("/", 1)[0]
    click.echo(f"mirroring {row.prefix}; clients use a domains.d file such as:")
    click.echo(f'  {{"pyrktKind": "domain", "pyrktVersion": "v1", "domains": ["{domain}"], '
               f'"mirror": "{config.base_url}{mirrors.DISCOVERY_ROOT}"}}')


@mirror.command("list")
@pass_context
def mirror_list(obj: Context) -> None:
    """List mirrored prefixes with what they cache (JSON)."""
    from registry.server.operations import mirror as mirrors

    with _session(obj) as session:
        _echo_json([mirrors.describe(m, session) for m in mirrors.list_mirrors(session)])


@mirror.command("rm")
@click.argument("prefix")
@pass_context
def mirror_rm(obj: Context, prefix: str) -> None:
    """Stop mirroring PREFIX (its cached files go with the next gc)."""
    from registry.server.operations import mirror as mirrors

    with _session(obj) as session:
        mirrors.remove_mirror(session, _operator(), prefix)
    click.echo(f"{prefix} is no longer mirrored")


if __name__ == "__main__":  # pragma: no cover
    main()
