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
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .context import EXIT_FAILURE, ClientContext, client_context, human_bytes, reported_errors
from .flags import (
    GLOBAL_FLAGS,
    GLOBAL_NAMES,
    PATH_ANY,
    PATH_DIR,
    PATH_EXISTING_FILE,
    PATH_FILE,
    Option,
)

__all__ = ["EXIT_FAILURE", "ClientContext", "client_options", "click_options", "global_options",
           "human_bytes", "reported_errors"]

F = TypeVar("F", bound=Callable[..., Any])

_PATH_TYPES = {  # paths as the text given (str), as the lean entry reads them (cli/flags.py)
    PATH_DIR: click.Path(file_okay=False),
    PATH_ANY: click.Path(),
    PATH_FILE: click.Path(dir_okay=False),
    PATH_EXISTING_FILE: click.Path(exists=True, dir_okay=False),
}


def _converted(convert: Callable[[str], Any]) -> Callable[..., Any]:
    def callback(_ctx: click.Context, _param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return convert(value)
        except ValueError as error:
            raise click.BadParameter(str(error)) from None

    return callback


def click_option(option: Option) -> Callable[[F], F]:
    """click's option for one `flags.Option` (the declaration the lean entry reads too)."""
    decls = [option.name, *([option.short] if option.short else []), option.dest]
    attrs: dict[str, Any] = {"help": option.help}
    if option.is_flag:
        attrs.update(is_flag=True, default=option.default)
    else:
        attrs["multiple"] = option.multiple
        if option.default is not None:
            attrs["default"] = option.default
        if option.choices is not None:
            attrs["type"] = click.Choice(option.choices)
        elif option.path is not None:
            attrs["type"] = _PATH_TYPES[option.path]
        if option.convert in (float, int):  # click's own number types (FLOAT, their errors)
            attrs["type"] = option.convert
        elif option.convert is not None:
            attrs["callback"] = _converted(option.convert)
        if option.metavar:
            attrs["metavar"] = option.metavar
        if option.show_default:
            attrs["show_default"] = True
    return click.option(*decls, **attrs)


def click_options(options: Sequence[Option]) -> Callable[[F], F]:
    """All of `options` as click options, in their order in `--help`."""

    def decorate(func: F) -> F:
        for option in reversed(options):
            func = click_option(option)(func)
        return func

    return decorate


def global_options(func: F) -> F:
    """rkt's global flags as click options (every default None: "not given here")."""
    return click_options(GLOBAL_FLAGS)(func)


def _before_subcommand() -> dict[str, Any]:
    """The global flags given before the subcommand (`pyrkt --debug list`), if any."""
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return root.obj if root is not None and isinstance(root.obj, dict) else {}


def client_options(command: F) -> F:
    """Add the global client flags; the command receives them as `client: ClientContext`."""

    @global_options
    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        given = {name: kwargs.pop(name) for name in GLOBAL_NAMES}
        client = client_context(given, _before_subcommand())
        with reported_errors(debug=client.debug):
            return command(*args, client=client, **kwargs)

    return wrapper  # type: ignore[return-value]
