"""`storage_from_config`: build a backend from a plain mapping (parsed env vars or a config file)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .base import BlobStorage
from .errors import StorageConfigError
from .local import LocalStorage
from .s3 import S3Storage

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _text(value: Any) -> str | None:
    # Empty strings count as "not set": unset environment variables often arrive as "".
    if value is None or value == "":
        return None
    return str(value)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise StorageConfigError(f"expected a boolean (true/false), got {value!r}")


def _integer(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StorageConfigError(f"expected an integer, got {value!r}") from None


# Option name -> converter, per backend. Anything else is a typo worth reporting.
_LOCAL_OPTIONS: dict[str, Callable[[Any], Any]] = {"root": _text, "fsync": _flag}
_S3_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "bucket": _text,
    "endpoint_url": _text,
    "region": _text,
    "access_key": _text,
    "secret_key": _text,
    "prefix": lambda v: _text(v) or "",
    "presign": _flag,
    "public_endpoint_url": _text,
    "create_bucket": _flag,
    "spool_dir": _text,
    "part_size": _integer,
    "max_concurrency": _integer,
    "connect_timeout": float,
    "read_timeout": float,
    "max_attempts": _integer,
    "check": _flag,
}


def _options(backend: str, given: Mapping[str, Any], known: dict[str, Callable[[Any], Any]]):
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise StorageConfigError(
            f"unknown {backend} storage option(s): {', '.join(unknown)} "
            f"(known: {', '.join(sorted(known))})"
        )
    options: dict[str, Any] = {}
    for name, value in given.items():
        try:
            options[name] = known[name](value)
        except StorageConfigError as exc:
            raise StorageConfigError(f"{backend} storage option {name}: {exc}") from None
        except (TypeError, ValueError):
            raise StorageConfigError(
                f"{backend} storage option {name}: bad value {value!r}"
            ) from None
    return {name: value for name, value in options.items() if value is not None}


def storage_from_config(config: Mapping[str, Any]) -> BlobStorage:
    """Build a backend: `{"backend": "local", "root": PATH}` or `{"backend": "s3", "bucket":
    ..., "endpoint_url", "region", "access_key", "secret_key", "prefix", "presign",
    "create_bucket", ...}`. S3 is checked at once (bucket exists, credentials accepted,
    endpoint reachable) unless `"check": False`; problems raise `StorageConfigError` or
    `StorageUnavailable` with a message naming the cause."""
    settings = dict(config)
    backend = str(settings.pop("backend", "local")).strip().lower()
    if backend == "local":
        options = _options("local", settings, _LOCAL_OPTIONS)
        if "root" not in options:
            raise StorageConfigError("local storage needs a root directory (option root)")
        return LocalStorage(options.pop("root"), **options)
    if backend == "s3":
        options = _options("s3", settings, _S3_OPTIONS)
        if "bucket" not in options:
            raise StorageConfigError("s3 storage needs a bucket (option bucket)")
        return S3Storage(options.pop("bucket"), **options)
    raise StorageConfigError(f"unknown storage backend {backend!r}: expected 'local' or 's3'")
