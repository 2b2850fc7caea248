"""The one progress renderer of the command line (the protocol: `registry.progress`).

`renderer(json_output=...)` gives a `Progress` that draws a one-line bar on stderr when stderr
is a terminal (so `ID=$(pyrkt fetch ...)` still shows it), or None (nothing drawn) when stderr
is not a terminal (a pipe, a log file, a script capturing it) or when the command prints JSON.
"""

from __future__ import annotations

import sys
import time

from registry.progress import Progress

from .options import human_bytes


class TerminalProgress:
    """One task's bar on stderr, redrawn at most ten times a second."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label = label if len(label) <= 30 else "..." + label[-27:]
        self.total = total
        self.done = 0
        self._last = 0.0
        self._closed = False
        self._draw()

    def update(self, count: int) -> None:
        self.done += count
        now = time.monotonic()
        if now - self._last >= 0.1:
            self._last = now
            self._draw()

    def _draw(self) -> None:
        if self.total:
            fraction = min(self.done / self.total, 1.0)
            bar = "=" * int(fraction * 30)
            text = f"{self.label} [{bar:<30}] {human_bytes(self.done)} / {human_bytes(self.total)}"
        else:
            text = f"{self.label} {human_bytes(self.done)}"
        sys.stderr.write("\r" + text + "\x1b[K")
        sys.stderr.flush()

    def close(self) -> None:
        if self._closed:  # a task may be closed on success and again on the way out
            return
        self._closed = True
        self._draw()
        sys.stderr.write("\n")
        sys.stderr.flush()


def renderer(*, json_output: bool = False) -> Progress | None:
    """A bar per task on a terminal; None when the output is not a terminal or is JSON."""
    if json_output or not sys.stderr.isatty():
        return None
    return TerminalProgress
