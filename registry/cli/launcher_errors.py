"""`launcher_errors`: how every launcher command (`run`, `prepare`, `list`, `gc`, ...) ends on
an error. Its own module so that `pyrkt list` and the other pod commands need not import
`registry.cli.run` (and the run flags' parsers behind it) to share it.
"""

from __future__ import annotations

import os
import sys

from registry.launcher.errors import LauncherError

TYPE_CHECKING = False  # functools, signal (enum) and typing cost each start ~5 ms in all
if TYPE_CHECKING:
    import signal
    from collections.abc import Callable
    from typing import Any, TypeVar

    F = TypeVar("F", bound=Callable[..., Any])
else:
    import _signal as signal  # signal's numbers without its IntEnum wrappers (enum)


def launcher_errors(command: F) -> F:
    """Let a launcher command's host errors reach `client_options`' handling (apply it below
    that): a LauncherError or an ACIError is a PyrktError already; an OSError (the host said
    no) becomes a LauncherError naming what and where, so the user sees one line (`pyrkt:
    <message>`, exit 254; `--debug` adds the traceback) and never a traceback. A reader that
    went away (`pyrkt logs UUID | head -1`) ends the command quietly, as SIGPIPE would.
    """

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # nothing left to flush at exit
            os.close(devnull)
            sys.exit(128 + signal.SIGPIPE)
        except OSError as error:
            where = f": {error.filename}" if error.filename else ""
            raise LauncherError(f"{error.strerror or error}{where}") from error

    # what functools.wraps copies: click reads the command's name and help from it
    for attribute in ("__module__", "__name__", "__qualname__", "__doc__"):
        setattr(wrapper, attribute, getattr(command, attribute, None))
    wrapper.__dict__.update(command.__dict__)
    wrapper.__wrapped__ = command  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
