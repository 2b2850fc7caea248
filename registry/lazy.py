"""`lazy_exports`: a package's public names, imported from their submodules on first use.

A package's `__init__` runs before any of its submodules, so names re-exported eagerly there
cost every `from registry.X.Y import ...` the imports of all of X (the start path of `pyrkt
run` is the one that notices). Imports only the standard library, so the ground floor may use it.

It imports nothing at run time that the interpreter has not loaded already: `typing` alone (with
re, enum and collections behind it) is ~10 ms, a twentieth of computing the image ID of a
128 MiB ACI, and every lazy package's first import goes through here. Hence `TYPE_CHECKING`
spelled out (type checkers take a module-level `TYPE_CHECKING = False` as theirs) and
`__import__` instead of importlib.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str], namespace: dict[str, Any]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level `__getattr__` and `__dir__` of `package`, whose `exports` map each public
    name to the submodule defining it; `namespace` is the package's `globals()`."""

    def __getattr__(name: str) -> Any:
        submodule = exports.get(name)
        if submodule is None:
            # AttributeError (not ImportError): `from package import submodule` still falls back
            # to importing the submodule, and hasattr() behaves.
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        qualified = f"{package}.{submodule}"
        __import__(qualified)
        value = getattr(sys.modules[qualified], name)
        namespace[name] = value  # later lookups are plain attribute reads
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(exports))

    return __getattr__, __dir__
