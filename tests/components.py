"""The real components tests need (PostgreSQL, root, the systemd rootfs, gpg, actool ...):
when one is missing, a local run skips and says why, but CI (CI=true, set by .ci/run) FAILS,
so a CI machine lacking a component cannot quietly run a smaller suite.

    from components import missing, need_root
    need_root("the launcher's namespaces")
    if shutil.which("gpg") is None:
        missing("gpg is not installed (apt-get install gnupg)")
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

IN_CI = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


def missing(reason: str) -> NoReturn:
    """Skip, or under CI=true fail, because a component the test needs is missing."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: a missing component fails the run instead of "
                    "skipping)", pytrace=False)
    pytest.skip(reason)


def need_root(what: str) -> None:
    if os.geteuid() != 0:
        missing(f"{what} needs root")
