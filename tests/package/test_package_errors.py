"""One error root: every public exception class pyrkt defines is a `PyrktError`, and no two
share a name (so `except ConfigError` can never catch the wrong part's error)."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import registry
from registry.errors import PyrktError


def _exception_classes() -> dict[str, list[type[BaseException]]]:
    found: dict[str, list[type[BaseException]]] = {}
    for module_info in pkgutil.walk_packages(registry.__path__, "registry."):
        if module_info.name.endswith("__main__") or module_info.name == "registry.server.wsgi":
            continue  # running code at import (the CLI, the WSGI app built from the environment)
        module = importlib.import_module(module_info.name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, BaseException) and cls.__module__ == module.__name__:
                found.setdefault(cls.__name__, []).append(cls)
    return found


def test_every_error_is_a_pyrkt_error_and_names_are_unique() -> None:
    classes = _exception_classes()
    assert len(classes) > 30  # the walk really reached every part
    # A private class (`_FoundManifest`) is a signal caught inside its own module, never shown.
    outside = sorted(f"{cls.__module__}.{name}" for name, group in classes.items()
                     for cls in group if not issubclass(cls, PyrktError)
                     and not name.startswith("_"))
    assert outside == []
    twice = {name: [c.__module__ for c in group] for name, group in classes.items()
             if len(group) > 1}
    assert twice == {}


def test_push_errors_are_client_errors() -> None:
    from registry.client.errors import ClientError
    from registry.client.push import PushError

    assert issubclass(PushError, ClientError)


def test_the_root_imports_nothing() -> None:
    """The ground floor imports it, so it must not pull anything in."""
    tree = ast.parse(Path(inspect.getfile(importlib.import_module("registry.errors"))).read_text())
    assert [node for node in ast.walk(tree) if isinstance(node, ast.Import | ast.ImportFrom)] == []
