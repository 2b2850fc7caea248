"""The `pyrkt-registry` console script: a plain `pip install pyrkt` installs the host side only,
so before loading the server this checks that the `registry` extra is there and, if not, says
in one line what to install (instead of an ImportError traceback)."""

from __future__ import annotations

import re
import sys
from importlib import metadata

HINT = ("pyrkt-registry: the registry server's packages are not installed (missing: {missing}); "
        "install them with: python3 -m pip install 'pyrkt[registry]' "
        "(from a checkout: python3 -m pip install '.[registry]')")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def missing_packages() -> list[str]:
    """The distributions of the `registry` extra that are not installed, read from pyrkt's own
    metadata (setup.cfg stays the one list); nothing is imported, so the check is cheap."""
    try:
        requirements = metadata.requires("pyrkt") or []
    except metadata.PackageNotFoundError:  # run from a source tree: nothing to compare with
        return []
    missing = []
    for requirement in requirements:
        text, _, marker = requirement.partition(";")
        found = _NAME.match(text.strip())
        if found is None or not re.search(r"""extra\s*==\s*["']registry["']""", marker):
            continue
        try:
            metadata.distribution(found.group())
        except metadata.PackageNotFoundError:
            missing.append(found.group())
    return missing


def main() -> None:
    missing = missing_packages()
    if missing:
        print(HINT.format(missing=", ".join(missing)), file=sys.stderr)
        sys.exit(1)
    # Imported only now: the server's modules need the packages checked above.
    from registry.cli.registry import main as registry_main

    registry_main()


if __name__ == "__main__":  # pragma: no cover
    main()
