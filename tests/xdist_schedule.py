"""How .ci/run's `pytest -n 2 --dist loadfile` hands out the work: the longest files first.

Each worker takes whole files, so a file's module fixtures (a gunicorn, a browser) start once.
xdist hands the files out by their number of tests, so a slow file of few tests (tests/vm, the
booted-systemd test, the package install) could start last and keep one worker busy for
minutes while the other idles. Instead the durations of the previous run (per file, kept in the
test cache; a fresh cache keeps xdist's order) put the longest first, and files not timed yet
before them. tests/vm is one unit, so its session-scoped virtual machine boots once.

Registered from tests/conftest.py; does nothing unless pytest-xdist runs with --dist loadfile.
"""

from __future__ import annotations

import json
import math
import os
from collections import OrderedDict, defaultdict
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
CACHE_DIR = Path(os.environ.get("PYRKT_TEST_CACHE", REPO_ROOT / ".test-cache"))
DURATIONS = CACHE_DIR / "test-durations.json"
ONE_UNIT = ("tests/vm/",)  # folders whose files share one session fixture (the VM)

_spent: defaultdict[str, float] = defaultdict(float)


def scope_of(nodeid: str) -> str:
    """The unit of work of a test: its file, or the folder of ONE_UNIT it is in."""
    path = nodeid.split("::", 1)[0]
    for folder in ONE_UNIT:
        if path.startswith(folder):
            return folder.rstrip("/")
    return path


def _previous() -> dict[str, float]:
    try:
        data = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return {}
    return {k: float(v) for k, v in data.items()} if isinstance(data, dict) else {}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    if config.getoption("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadFileScheduling

    weights = _previous()

    class LongestFirst(LoadFileScheduling):
        ordered = False

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

        def _assign_work_unit(self, node: Any) -> None:
            if not self.ordered and weights:  # once, before the first unit leaves the queue
                self.ordered = True
                # Stable: equal weights (none timed yet) keep xdist's order.
                order = sorted(self.workqueue, key=lambda scope: -weights.get(scope, math.inf))
                self.workqueue = OrderedDict((scope, self.workqueue[scope]) for scope in order)
            super()._assign_work_unit(node)

    return LongestFirst(config, log)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _spent[scope_of(report.nodeid)] += report.duration


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller of an xdist run (it sees every worker's reports) keeps the durations."""
    if not _spent or hasattr(session.config, "workerinput") or \
            session.config.getoption("dist", "no") != "loadfile":
        return
    merged = {**_previous(), **{scope: round(spent, 1) for scope, spent in _spent.items()}}
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        partial = DURATIONS.with_name(f".{DURATIONS.name}.{os.getpid()}")
        partial.write_text(json.dumps(merged, indent=0, sort_keys=True))
        os.replace(partial, DURATIONS)
    except OSError:  # an order for the next run only: never a reason to fail this one
        pass
