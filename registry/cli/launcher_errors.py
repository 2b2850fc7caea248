"""`launcher_errors`: how every launcher command (`run`, `prepare`, `list`, `gc`, ...) ends on
an error. Its own module so that `pyrkt list` and the other pod commands need not import
`registry.cli.run` (and the run flags' parsers behind it) to share it.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from registry.launcher.errors import LauncherError

F = TypeVar("F", bound=Callable[..., Any])


def launcher_errors(command: F) -> F:
    """Let a launcher command's host errors reach `client_options`' handling (apply it below
    that): a LauncherError or an ACIError is a PyrktError already; an OSError (the host said
    no) becomes a LauncherError naming what and where, so the user sees one line (`pyrkt:
    <message>`, exit 254; `--debug` adds the traceback) and never a traceback. A reader that
    went away (`pyrkt logs UUID | head -1`) ends the command quietly, as SIGPIPE would.
    """

    @functools.wraps(command)
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

    return wrapper  # type: ignore[return-value]
