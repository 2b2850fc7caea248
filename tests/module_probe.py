"""What a `pyrkt` command loads, for tests/launcher/test_launcher_startup.py and
bench/bench_run.py: the console script's lean entry run with a probe that lists sys.modules at
its os._exit (the lean entry ends with os._exit, so an atexit hook would never run)."""

from __future__ import annotations

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
