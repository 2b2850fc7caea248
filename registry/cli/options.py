"""Options shared by the client commands (`trust`, `fetch`, `image`) and their error handling.

Every client command takes rkt's global flags: `--dir` (the store), `--system-config`,
`--local-config`, `--user-config`, `--insecure-options`, `--debug` and `--trust-keys-from-https`,
before the subcommand (`pyrkt --insecure-options=image run X.aci`, as rkt's seed lines write
them) or after it. Given in both places, the one after the subcommand wins (as the last of two
rkt flags does). Any `PyrktError` (the client's, the launcher's, the format core's, ...) ends
the command in `reported_errors`: `pyrkt: <message>` on stderr and exit status 254 (rkt's);
`--debug` adds tracebacks.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from registry.client.dirs import ConfigDirs, default_store_dir
from registry.client.insecure import ALL_NAMES, InsecureOptions
from registry.errors import PyrktError

# Function-local imports keep start-up fast: each command loads only the parts it runs.

if TYPE_CHECKING:
    from registry.client.store import ImageStore

EXIT_FAILURE = 254  # what rkt exits with on errors

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class ClientContext:
    store_dir: Path
    dirs: ConfigDirs
    insecure: InsecureOptions
    debug: bool
    trust_keys_from_https: bool = False

    def store(self) -> ImageStore:
        from registry.client.store import ImageStore

        return ImageStore(self.store_dir)

    def warn(self, message: str) -> None:
        click.echo(f"pyrkt: warning: {message}", err=True)

    def info(self, message: str) -> None:
        click.echo(f"pyrkt: {message}", err=True)


def _insecure(_ctx: click.Context, _param: click.Parameter,
              value: str | None) -> InsecureOptions | None:
    if value is None:
        return None
    try:
        return InsecureOptions.parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None


GLOBAL_FLAGS = ("store_dir", "system_config", "local_config", "user_config", "insecure", "debug",
                "trust_keys_from_https")


def global_options(func: F) -> F:
    """rkt's global flags as click options (every default None: "not given here")."""
    options = [
        click.option("--dir", "store_dir", type=click.Path(file_okay=False, path_type=Path),
                     default=None, help="the image store [default: $PYRKT_DIR, /var/lib/pyrkt "
                     "for root, else ~/.local/share/pyrkt]"),
        click.option("--system-config", type=click.Path(path_type=Path), default=None,
                     help="system configuration directory [default: /usr/lib/pyrkt]"),
        click.option("--local-config", type=click.Path(path_type=Path), default=None,
                     help="local configuration directory [default: /etc/pyrkt]"),
        click.option("--user-config", type=click.Path(path_type=Path), default=None,
                     help="user configuration directory [default: ~/.config/pyrkt]"),
        click.option("--insecure-options", "insecure", default=None, callback=_insecure,
                     metavar="OPTS", help="comma-separated checks to switch off: "
                     + ", ".join(ALL_NAMES)),
        click.option("--debug", is_flag=True, default=None, help="show details and tracebacks"),
        click.option("--trust-keys-from-https", is_flag=True, default=None,
                     help="trust the keys an image's name discovers over HTTPS when none is "
                          "trusted for it yet (rkt's flag; never with --insecure-options=tls)"),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _before_subcommand() -> dict[str, Any]:
    """The global flags given before the subcommand (`pyrkt --debug list`), if any."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return root.obj if root is not None and isinstance(root.obj, dict) else {}


def client_options(command: F) -> F:
    """Add the global client flags; the command receives them as `client: ClientContext`."""

    @global_options
    @functools.wraps(command)
    def wrapper(*args: Any, store_dir: Path | None, system_config: Path | None,
                local_config: Path | None, user_config: Path | None,
                insecure: InsecureOptions | None, debug: bool | None,
                trust_keys_from_https: bool | None, **kwargs: Any) -> Any:
        given: dict[str, Any] = dict(store_dir=store_dir, system_config=system_config, local_config=local_config,
                     user_config=user_config, insecure=insecure, debug=debug,
                     trust_keys_from_https=trust_keys_from_https)
        for name, value in _before_subcommand().items():
            if given.get(name) is None:
                given[name] = value
        debug = bool(given["debug"])
        client = ClientContext(
            store_dir=given["store_dir"] or default_store_dir(),
            dirs=ConfigDirs.from_env(given["system_config"], given["local_config"],
                                     given["user_config"]),
            insecure=given["insecure"] or InsecureOptions.parse("none"), debug=debug,
            trust_keys_from_https=bool(given["trust_keys_from_https"]))
        with reported_errors(debug=debug):
            return command(*args, client=client, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def reported_errors(*, debug: bool = False, before: Callable[[], None] | None = None
                    ) -> Iterator[None]:
    """The one place a `pyrkt` command's PyrktError becomes `pyrkt: <message>` and exit 254.

    `before` runs first (e.g. to end a progress bar's line); `debug` prints the traceback."""
    try:
        yield
    except PyrktError as error:
        if before is not None:
            before()
        if debug:
            import traceback

            traceback.print_exc()
        click.echo(f"pyrkt: {error}", err=True)
        sys.exit(EXIT_FAILURE)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
