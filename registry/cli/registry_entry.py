"""The `pyrkt-registry` console script: a plain `pip install pyrkt` installs the host side only,
so before loading the server this checks that the `registry` extra is there and, if not, says
in one line what to install (instead of an ImportError traceback)."""

from __future__ import annotations

import importlib.util
import sys

# Import name -> distribution, for every package of the `registry` extra (setup.cfg).
SERVER_PACKAGES = {"flask": "Flask", "werkzeug": "Werkzeug", "sqlalchemy": "SQLAlchemy",
                   "alembic": "alembic", "gunicorn": "gunicorn", "boto3": "boto3",
                   "psycopg": "psycopg", "cryptography": "cryptography", "acme": "acme",
                   "josepy": "josepy"}
HINT = ("pyrkt-registry: the registry server's packages are not installed (missing: {missing}); "
        "install them with: python3 -m pip install 'pyrkt[registry]' "
        "(from a checkout: python3 -m pip install '.[registry]')")


def missing_packages() -> list[str]:
    # find_spec looks for the package without importing it: the check costs no start-up time.
    return [dist for module, dist in SERVER_PACKAGES.items()
            if importlib.util.find_spec(module) is None]


def main() -> None:
    missing = missing_packages()
    if missing:
        print(HINT.format(missing=", ".join(missing)), file=sys.stderr)
        sys.exit(1)
    # Imported only once the check passed: it imports the server's packages.
    from registry.cli.registry import main as registry_main

    registry_main()


if __name__ == "__main__":  # pragma: no cover
    main()
