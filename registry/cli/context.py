"""What every `pyrkt` command shares once its flags are read, without click: the client context
(store, configuration layers, insecure options) and the one place a PyrktError ends a command.

Both readers of the command line use it: click's commands (`options.client_options`) and the
lean entry (`registry.cli.entry`), so a command behaves the same whichever read its flags.
"""

from __future__ import annotations

import sys

from registry.client.dirs import ConfigDirs, default_store_dir
from registry.client.insecure import InsecureOptions
from registry.errors import PyrktError
from registry.records import record

TYPE_CHECKING = False  # typing, pathlib and contextlib stay out of every start (~8 ms in all)
if TYPE_CHECKING:
    import os
    from collections.abc import Callable
    from typing import Any

    from registry.client.store import ImageStore

EXIT_FAILURE = 254  # what rkt exits with on errors


def say(message: str) -> None:
    """One line on stderr, written at once (as click.echo(err=True) writes it)."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def echo(message: str) -> None:
    """One line on stdout, written at once (as click.echo writes it)."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


@record
class ClientContext:
    store_dir: str | os.PathLike[str]
    dirs: ConfigDirs
    insecure: InsecureOptions
    debug: bool
    trust_keys_from_https: bool = False

    def store(self) -> ImageStore:
        from registry.client.store import ImageStore  # here: sqlite and the store load on use

        return ImageStore(self.store_dir)

    def warn(self, message: str) -> None:
        say(f"pyrkt: warning: {message}")

    def info(self, message: str) -> None:
        say(f"pyrkt: {message}")


def client_context(given: dict[str, Any], before: dict[str, Any]) -> ClientContext:
    """The context from the global flags given after the subcommand (`given`) and before it
    (`before`); one given in both places: the one after wins (as the last of two rkt flags)."""
    merged = dict(given)
    for name, value in before.items():
        if merged.get(name) is None:
            merged[name] = value
    return ClientContext(
        store_dir=merged.get("store_dir") or default_store_dir(),
        dirs=ConfigDirs.from_env(merged.get("system_config"), merged.get("local_config"),
                                 merged.get("user_config")),
        insecure=merged.get("insecure") or InsecureOptions.parse("none"),
        debug=bool(merged.get("debug")),
        trust_keys_from_https=bool(merged.get("trust_keys_from_https")))


class reported_errors:  # noqa: N801  (used as a function: `with reported_errors(...)`)
    """The one place a `pyrkt` command's PyrktError becomes `pyrkt: <message>` and exit 254.

    `before` runs first (e.g. to end a progress bar's line); `debug` prints the traceback.
    (A class, not contextlib.contextmanager: contextlib costs every start ~1 ms.)"""

    def __init__(self, *, debug: bool = False, before: Callable[[], None] | None = None
                 ) -> None:
        self.debug, self.before = debug, before

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if not isinstance(error, PyrktError):
            return
        if self.before is not None:
            self.before()
        if self.debug:
            import traceback

            traceback.print_exception(error)
        say(f"pyrkt: {error}")
        sys.exit(EXIT_FAILURE)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
