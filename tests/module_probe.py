"""What a `pyrkt` command loads (and what a module imports at load), for tests/launcher/test_launcher_startup.py and
bench/bench_run.py: the console script's lean entry run with a probe that lists sys.modules at
its os._exit (the lean entry ends with os._exit, so an atexit hook would never run)."""

from __future__ import annotations

import ast
from pathlib import Path

PROBE = """
import os, sys
main_pid, exit_ = os.getpid(), os._exit
def report(code):
    if os.getpid() == main_pid:  # not the stage1's forks
        sys.stdout.flush()
        os.write(1, ("\\nMODULES " + " ".join(sorted(sys.modules)) + "\\n").encode())
    exit_(code)
os._exit = report
sys.argv = ["pyrkt", *sys.argv[1:]]
from registry.cli.entry import main
main()
"""


def modules_of(stdout: str) -> set[str]:
    """The module names a PROBE run printed after the command's own output."""
    return set(stdout.rsplit("MODULES ", 1)[1].split())


def top_level_imports(path: Path) -> set[str]:
    """The modules a source file imports when it loads (not under `if TYPE_CHECKING:`, not in
    a function): a static reading, so that what another module of a start path still loads
    cannot hide a regression in this one."""
    found: set[str] = set()
    pending: list[ast.AST] = [ast.parse(path.read_text())]
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            continue  # runs when called, not when the module loads
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
                and node.test.id == "TYPE_CHECKING":
            pending.extend(node.orelse)
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
        pending.extend(ast.iter_child_nodes(node))
    return found
