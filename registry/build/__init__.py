"""The acbuild-compatible image builder: a build context in .acbuild/ and its commands.

`Builder(work_path)` runs acbuild's commands (begin, set-name, copy, ..., write, end) against
the build context in `work_path/.acbuild`; the `acbuild` CLI (registry.cli.build) only parses.
"""

from registry.build.builder import Builder, parse_port
from registry.build.context import BuildContext
from registry.build.edits import history_line
from registry.build.errors import (
    BuildError,
    BuildInProgress,
    LockHeld,
    NoBuildInProgress,
    NotFoundError,
)

__all__ = [
    "BuildContext",
    "BuildError",
    "BuildInProgress",
    "Builder",
    "LockHeld",
    "NoBuildInProgress",
    "NotFoundError",
    "history_line",
    "parse_port",
]
