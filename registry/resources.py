"""Where the top-level templates/ and migrations/ folders are, installed or in a checkout."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_CHECKOUT = Path(__file__).resolve().parent.parent


def _folder(packaged: str, checkout_name: str) -> Path:
    # A wheel ships the folder as a data package (see setup.py); an editable install or a
    # plain checkout leaves it at the top of the repository.
    spec = importlib.util.find_spec(packaged)
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return _CHECKOUT / checkout_name


def templates_dir() -> Path:
    """The Jinja templates of the server's pages."""
    return _folder("registry._templates", "templates")


def migrations_dir() -> Path:
    """The Alembic migration environment (env.py, versions/)."""
    return _folder("registry._migrations", "migrations")
