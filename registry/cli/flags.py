"""The flags of the `pyrkt` commands the lean entry runs, declared once, without click.

Each `Option` is what two readers are made from: `options.click_options` turns it into click's
option (help, types, defaults: what `--help` and every usage error show), and `parse` reads it
for `registry.cli.entry`, which starts `pyrkt run`, `list`, `status` and `image list` without
importing click (~10 ms of each start). `parse` accepts only what click would take the same way
and raises `Defer` for anything else (`--help`, a short option, an unknown flag, a bad value,
`--`): the entry then hands the whole command line to click, so a mistake gets click's own
message and exit status, and the two readers never disagree on a command they both accept
(tests/launcher/test_launcher_entry.py compares them).
"""

from __future__ import annotations

import os
import stat

from registry.client.insecure import ALL_NAMES, InsecureOptions
from registry.errors import PyrktError

TYPE_CHECKING = False  # typing and pathlib stay out of every start (~8 ms with what they load)
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


class Defer(PyrktError):
    """The lean reader does not take this command line: click reads it (and words any error).
    A PyrktError as every exception of the package is, though no user ever sees it."""


# How a value of a path option is checked and given, as click.Path does it
PATH_DIR = "dir"  # click.Path(file_okay=False)
PATH_ANY = "any"  # click.Path()
PATH_FILE = "file"  # click.Path(dir_okay=False): a str
PATH_EXISTING_FILE = "existing-file"  # click.Path(exists=True, dir_okay=False): a str


class Option:
    """One `--name` option: `dest` is the keyword the command receives."""

    __slots__ = ("name", "dest", "is_flag", "multiple", "default", "choices", "help",
                 "metavar", "show_default", "path", "convert", "short")

    def __init__(self, name: str, dest: str | None = None, *, is_flag: bool = False,
                 multiple: bool = False, default: Any = None,
                 choices: Sequence[str] | None = None, help: str | None = None,
                 metavar: str | None = None, show_default: bool = False,
                 path: str | None = None, convert: Callable[[str], Any] | None = None,
                 short: str | None = None) -> None:
        self.name, self.dest = name, dest or name.lstrip("-").replace("-", "_")
        self.is_flag, self.multiple, self.default = is_flag, multiple, default
        self.choices = tuple(choices) if choices is not None else None
        self.help, self.metavar, self.show_default = help, metavar, show_default
        self.path, self.convert, self.short = path, convert, short

    def value(self, raw: str) -> Any:
        """The value click would give the command for `raw` (Defer where click would refuse)."""
        if self.choices is not None and raw not in self.choices:
            raise Defer(self.name)
        if self.path is not None:
            return _path_value(self.path, raw, self.name)
        if self.convert is not None:
            try:
                return self.convert(raw)
            except ValueError:
                raise Defer(self.name) from None
        return raw

    def missing(self) -> Any:
        """What click gives the command when the option is not on the command line."""
        if self.multiple:
            return ()
        if self.is_flag and self.default is None:
            return None
        return self.value(self.default) if isinstance(self.default, str) else self.default


def _path_value(kind: str, raw: str, name: str) -> Any:
    """click.Path's checks (readable by default; existence only where asked). The value is
    the text given, where click's commands get a pathlib.Path for a directory (`--dir`):
    everything downstream takes either, and pathlib costs a start ~5 ms."""
    if not raw:
        raise Defer(name)
    try:
        mode = os.stat(raw).st_mode
    except OSError:
        if kind == PATH_EXISTING_FILE:
            raise Defer(name) from None
        return raw
    if (kind == PATH_DIR and stat.S_ISREG(mode)) or \
            (kind in (PATH_FILE, PATH_EXISTING_FILE) and stat.S_ISDIR(mode)) or \
            not os.access(raw, os.R_OK):
        raise Defer(name)
    return raw


def _insecure(text: str) -> InsecureOptions:
    return InsecureOptions.parse(text)  # ValueError: click words it (options.click_options)


# rkt's global flags: before the subcommand or after it (every default None: "not given here")
GLOBAL_FLAGS = (
    Option("--dir", "store_dir", path=PATH_DIR,
           help="the image store [default: $PYRKT_DIR, /var/lib/pyrkt for root, else "
                "~/.local/share/pyrkt]"),
    Option("--system-config", path=PATH_ANY,
           help="system configuration directory [default: /usr/lib/pyrkt]"),
    Option("--local-config", path=PATH_ANY,
           help="local configuration directory [default: /etc/pyrkt]"),
    Option("--user-config", path=PATH_ANY,
           help="user configuration directory [default: ~/.config/pyrkt]"),
    Option("--insecure-options", "insecure", convert=_insecure, metavar="OPTS",
           help="comma-separated checks to switch off: " + ", ".join(ALL_NAMES)),
    Option("--debug", is_flag=True, help="show details and tracebacks"),
    Option("--trust-keys-from-https", is_flag=True,
           help="trust the keys an image's name discovers over HTTPS when none is trusted for "
                "it yet (rkt's flag; never with --insecure-options=tls)"),
)
GLOBAL_NAMES = tuple(option.dest for option in GLOBAL_FLAGS)


def parse(options: Sequence[Option], tokens: Sequence[str], *, interspersed: bool = True
          ) -> tuple[dict[str, Any], list[str]]:
    """Read `tokens` as click reads a command with these options: `--name value`,
    `--name=value`, flags; a repeated single option keeps its last value. With
    `interspersed=False` (click's allow_interspersed_args) the first other word and everything
    after it are the arguments. Returns (values by dest, arguments); raises Defer for the rest.
    """
    by_name: dict[str, Option] = {}
    for option in options:
        by_name[option.name] = option
        if option.short:
            by_name[option.short] = option
    given: dict[str, Any] = {}
    arguments: list[str] = []
    index = 0
    while index < len(tokens):
        token = tokens[index]
        index += 1
        if token.startswith("-") and token != "-":
            name, equals, inline = token.partition("=") if token.startswith("--") else \
                (token, "", "")
            found = by_name.get(name)
            if found is None:  # --help, --, an unknown or combined flag: click's to read
                raise Defer(token)
            option = found
            if option.is_flag:
                if equals:
                    raise Defer(token)
                given[option.dest] = True
                continue
            if equals:
                raw = inline
            elif index < len(tokens):
                raw, index = tokens[index], index + 1
            else:
                raise Defer(token)
            value = option.value(raw)
            given[option.dest] = (*given.get(option.dest, ()), value) if option.multiple \
                else value
            continue
        if not interspersed:
            arguments.extend(tokens[index - 1:])
            break
        arguments.append(token)
    values = {option.dest: given[option.dest] if option.dest in given else option.missing()
              for option in options}
    return values, arguments
