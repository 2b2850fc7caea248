"""Running blocking native code well under gevent (the registry's gunicorn worker).

Under gevent every request is a greenlet on one OS thread. Two kinds of native calls must not
run there: CPU-heavy ones that release the GIL (scrypt: in a real thread they no longer stall
every other connection of the worker), and pysequoia's parsing and verification, which crash
(SIGSEGV) when called on a greenlet's stack but work in a real thread. `native(fn)` runs such
a function in gevent's pool of real threads when gevent has patched `threading`, and simply
calls it otherwise (the CLI, tests, the gthread worker). Imports nothing of registry, so the
ground floor (`registry.signing`) may use it.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


def _gevent_pool():  # type: ignore[no-untyped-def]
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None or not monkey.is_module_patched("threading"):
        return None
    return sys.modules["gevent"].get_hub().threadpool


def run_native(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    """`fn(*args, **kwargs)`, in a real thread when running under gevent."""
    pool = _gevent_pool()
    if pool is None:
        return fn(*args, **kwargs)
    # Called from one of the pool's own threads (a nested call), gevent runs it in place.
    return pool.apply(fn, args, kwargs)


def native(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of `run_native`."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return run_native(fn, *args, **kwargs)

    return wrapper
