"""`/_health`: for load balancers and compose health checks, answered within its own deadline.

The database, the storage and an audit of the blobs run side by side, each bounded by
`health_timeout` seconds: a frozen S3 server or a database that accepts connections but never
answers makes the probe report that backend as not answering, never makes the probe hang.

Status 503 means "do not route here": the database or the storage cannot be used. Image rows
whose blob is missing (the storage lost data) are reported (`missing_blobs`, `ok: false`) with
status 200: the registry still serves everything else, and the repair is `pyrkt-registry gc`
(it lists them) plus pushing the same ACIs again. The blob audit lists the storage once and is
cached per process for `health_blob_audit_interval` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from flask import Blueprint, jsonify
from sqlalchemy import select, text

from registry.server.context import state
from registry.server.models import Image
from registry.server.storage import StorageError, blob_key

bp = Blueprint("health", __name__)

# Few threads: a backend that hangs occupies at most these; later probes time out alike.
_executor = ThreadPoolExecutor(max_workers=6, thread_name_prefix="pyrkt-health")
_audit_lock = threading.Lock()
_audit_cache: dict[str, Any] = {"at": 0.0, "result": None, "pending": None}
MISSING_SHOWN = 20


def _check_database(engine: Any) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def _audit_blobs(engine: Any, storage: Any) -> list[str]:
    """Digests of image rows whose blob the storage does not hold."""
    with engine.connect() as connection:
        digests = connection.execute(select(Image.digest)).scalars().all()
    present = set(storage.iter_keys("blobs/"))
    return sorted(digest for digest in digests if blob_key(digest) not in present)


def _cached_audit(engine: Any, storage: Any, interval: float) -> Future[list[str]]:
    """The current audit's future: a recent result, the audit still running, or a new one."""
    with _audit_lock:
        pending = _audit_cache["pending"]
        if pending is not None and not pending.done():
            return pending
        if pending is not None and time.monotonic() - _audit_cache["at"] < interval:
            return pending
        future = _executor.submit(_audit_blobs, engine, storage)
        _audit_cache.update(at=time.monotonic(), pending=future)
        return future


def _outcome(future: Future[Any], deadline: float, what: str) -> tuple[str | None, Any]:
    """(problem or None, result) of a check, waiting at most until `deadline`."""
    try:
        return None, future.result(timeout=max(0.0, deadline - time.monotonic()))
    except FutureTimeout:
        return f"{what}: no answer within the health check's deadline", None
    except StorageError as error:
        return f"{what}: {error}", None
    except Exception as error:  # noqa: BLE001 - any failure of a backend means unhealthy
        return f"{what}: {error.__class__.__name__}", None


@bp.get("/_health")
def health():  # type: ignore[no-untyped-def]
    registry = state()
    settings = registry.config
    deadline = time.monotonic() + settings.health_timeout
    checks: dict[str, Callable[[], Any]] = {
        "database": lambda: _check_database(registry.engine),
        "storage": registry.storage.check,
    }
    futures = {name: _executor.submit(check) for name, check in checks.items()}
    audit = _cached_audit(registry.engine, registry.storage, settings.health_blob_audit_interval)
    problems: list[str] = []
    for name, future in futures.items():
        problem, _ = _outcome(future, deadline, name)
        if problem:
            problems.append(problem)
    serving = not problems
    body: dict[str, Any] = {"ok": serving, "serving": serving, "problems": problems}
    if serving:
        problem, missing = _outcome(audit, deadline, "blob audit")
        if problem:
            body["blob_audit"] = problem
        else:
            body["missing_blobs"] = len(missing)
            if missing:
                body["ok"] = False
                body["missing_blob_digests"] = missing[:MISSING_SHOWN]
                problems.append(f"storage: {len(missing)} image(s) whose blob is missing "
                                "(`pyrkt-registry gc --dry-run` lists them; push them again)")
    return jsonify(body), 200 if serving else 503
