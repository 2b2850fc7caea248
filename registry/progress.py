"""The one progress protocol of pyrkt: push, fetch, docker2aci and builds report through it.

A producer takes `progress: Progress | None` (None: report nothing) and, for each transfer or
write it starts, calls `progress(label, total)` (total bytes, None when unknown) to get a
`ProgressTask`; it then calls `task.update(count)` with the bytes done since the last call and
`task.close()` when the task ends, however it ends. One renderer draws it for the command line
(`registry.cli.progress.renderer`: a bar on a terminal, nothing when the output is not one or
is JSON); tests and scripts pass their own.

This module imports nothing, so every part, the ground floor included, may use it.
"""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    def update(self, count: int) -> None: ...

    def close(self) -> None: ...


class Progress(Protocol):
    def __call__(self, label: str, total: int | None) -> ProgressTask: ...
