"""Registry configuration: defaults < optional TOML file < environment < explicit overrides.

Every setting has an environment variable (``PYRKT_REGISTRY_<NAME>``) and a key of the same
name in lower case in the optional config file (``PYRKT_REGISTRY_CONFIG``, or
``<data dir>/registry.toml`` when it exists). With nothing set at all the registry runs on
SQLite and local storage under ``./pyrkt-data``.

=================================  ==========================================================
Environment variable               Meaning (default)
=================================  ==========================================================
PYRKT_REGISTRY_DATA_DIR            everything local lives here (``./pyrkt-data``)
PYRKT_REGISTRY_CONFIG              optional TOML file with the keys below in lower case
PYRKT_REGISTRY_BASE_URL            external URL clients reach, port included
                                   (``http://127.0.0.1:8080``)
PYRKT_REGISTRY_DOMAINS             comma-separated domains whose names are hosted here
                                   (the host of the base URL)
PYRKT_REGISTRY_DATABASE_URL        SQLAlchemy URL (``sqlite:///<data dir>/registry.db``);
                                   PostgreSQL: ``postgresql+psycopg://user:pw@host/db``
PYRKT_REGISTRY_STORAGE             ``local`` or ``s3`` (``local``)
PYRKT_REGISTRY_STORAGE_DIR         local storage root (``<data dir>/storage``)
PYRKT_REGISTRY_S3_BUCKET           S3 bucket (required for ``s3``)
PYRKT_REGISTRY_S3_ENDPOINT         S3 endpoint URL, e.g. MinIO (AWS when unset)
PYRKT_REGISTRY_S3_REGION           S3 region (``us-east-1``)
PYRKT_REGISTRY_S3_ACCESS_KEY       S3 access key (boto3's usual credential chain when unset)
PYRKT_REGISTRY_S3_SECRET_KEY       S3 secret key
PYRKT_REGISTRY_S3_PREFIX           key prefix inside the bucket (none)
PYRKT_REGISTRY_S3_PRESIGN          ``1`` to redirect downloads to presigned URLs (``0``)
PYRKT_REGISTRY_S3_CREATE_BUCKET    ``1`` to create the bucket if it is missing (``0``)
PYRKT_REGISTRY_MAX_UPLOAD          largest accepted upload in bytes (``4294967296``, 4 GiB)
PYRKT_REGISTRY_MAX_UNCOMPRESSED    largest unpacked size of an uploaded ACI, against
                                   decompression bombs (``17179869184``, 16 GiB)
PYRKT_REGISTRY_SIGNING_KEY         armored secret key file imported as the active signing key
                                   by ``init`` (a new RSA 4096 key is generated when unset)
PYRKT_REGISTRY_SECRET_KEY          Flask session secret (generated into the data dir)
PYRKT_REGISTRY_CACHE_MAX_AGE       Cache-Control max-age of versioned downloads (``300``)
=================================  ==========================================================
"""

from __future__ import annotations

import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from registry.errors import PyrktError

ENV_PREFIX = "PYRKT_REGISTRY_"
DEFAULT_DATA_DIR = "pyrkt-data"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_MAX_UPLOAD = 4 * 1024**3
DEFAULT_MAX_UNCOMPRESSED = 16 * 1024**3


class ConfigError(PyrktError, ValueError):
    """A setting has a value the registry cannot use; the message names the setting."""


@dataclass(frozen=True)
class S3Settings:
    bucket: str
    endpoint_url: str | None = None
    region: str = "us-east-1"
    access_key: str | None = None
    secret_key: str | None = None
    prefix: str = ""
    presign: bool = False
    create_bucket: bool = False


@dataclass(frozen=True)
class RegistryConfig:
    data_dir: Path
    base_url: str
    domains: tuple[str, ...]
    database_url: str
    storage: str = "local"
    storage_dir: Path | None = None
    s3: S3Settings | None = None
    max_upload: int = DEFAULT_MAX_UPLOAD
    max_uncompressed: int = DEFAULT_MAX_UNCOMPRESSED
    signing_key_file: Path | None = None
    secret_key: str = field(default="", repr=False)
    cache_max_age: int = 300

    @property
    def tmp_dir(self) -> Path:
        """Spool space for uploads being validated (same disk as the data dir)."""
        return self.data_dir / "tmp"

    def with_overrides(self, **changes: Any) -> RegistryConfig:
        return replace(self, **changes)

    @classmethod
    def load(
        cls, environ: Mapping[str, str] | None = None, **overrides: Any
    ) -> RegistryConfig:
        """Build the configuration; ``overrides`` (e.g. from command-line options) win."""
        env = os.environ if environ is None else environ
        clean = {k: v for k, v in overrides.items() if v not in (None, (), [])}
        data_dir = Path(
            clean.pop("data_dir", None) or env.get(ENV_PREFIX + "DATA_DIR") or DEFAULT_DATA_DIR
        ).absolute()
        settings: dict[str, Any] = {}
        config_file = env.get(ENV_PREFIX + "CONFIG") or clean.pop("config_file", None)
        if config_file:
            settings.update(_read_file(Path(config_file), required=True))
        elif (data_dir / "registry.toml").is_file():
            settings.update(_read_file(data_dir / "registry.toml", required=False))
        for key, value in env.items():
            if key.startswith(ENV_PREFIX) and key not in (ENV_PREFIX + "CONFIG",):
                settings[key[len(ENV_PREFIX) :].lower()] = value
        settings.update(clean)
        return cls._from_settings(data_dir, settings)

    @classmethod
    def _from_settings(cls, data_dir: Path, s: dict[str, Any]) -> RegistryConfig:
        base_url = str(s.get("base_url") or DEFAULT_BASE_URL).rstrip("/")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"base_url: {base_url!r} is not an http(s) URL with a host")
        domains = _domains(s.get("domains")) or (parts.hostname,)
        database_url = str(s.get("database_url") or f"sqlite:///{data_dir / 'registry.db'}")
        storage = str(s.get("storage") or "local").lower()
        if storage not in ("local", "s3"):
            raise ConfigError(f"storage: {storage!r} is neither 'local' nor 's3'")
        s3 = None
        if storage == "s3":
            bucket = s.get("s3_bucket")
            if not bucket:
                raise ConfigError("s3_bucket: required when storage is 's3'")
            s3 = S3Settings(
                bucket=str(bucket),
                endpoint_url=s.get("s3_endpoint") or None,
                region=str(s.get("s3_region") or "us-east-1"),
                access_key=s.get("s3_access_key") or None,
                secret_key=s.get("s3_secret_key") or None,
                prefix=str(s.get("s3_prefix") or ""),
                presign=_bool(s.get("s3_presign", False), "s3_presign"),
                create_bucket=_bool(s.get("s3_create_bucket", False), "s3_create_bucket"),
            )
        storage_dir = Path(s.get("storage_dir") or data_dir / "storage").absolute()
        key_file = s.get("signing_key")
        return cls(
            data_dir=data_dir,
            base_url=base_url,
            domains=domains,
            database_url=database_url,
            storage=storage,
            storage_dir=storage_dir,
            s3=s3,
            max_upload=_int(s.get("max_upload", DEFAULT_MAX_UPLOAD), "max_upload"),
            max_uncompressed=_int(s.get("max_uncompressed", DEFAULT_MAX_UNCOMPRESSED),
                                  "max_uncompressed"),
            signing_key_file=Path(key_file) if key_file else None,
            secret_key=str(s.get("secret_key") or ""),
            cache_max_age=_int(s.get("cache_max_age", 300), "cache_max_age"),
        )


def ensure_secret_key(config: RegistryConfig) -> RegistryConfig:
    """Give the config a session secret, kept in the data dir so restarts keep sessions."""
    if config.secret_key:
        return config
    path = config.data_dir / "secret_key"
    if not path.exists():
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # Written through a temporary name so two workers starting at once agree on one value.
        tmp = path.with_name(f".secret_key.{os.getpid()}")
        tmp.write_text(secrets.token_urlsafe(48))
        tmp.chmod(0o600)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return replace(config, secret_key=path.read_text().strip())


def _read_file(path: Path, *, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {path} does not exist") from None
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    return {str(k).lower(): v for k, v in data.items()}


def _domains(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    return tuple(dict.fromkeys(d.strip().lower() for d in items if d.strip()))


def _int(value: Any, name: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: {value!r} is not a whole number") from None
    if number < 0:
        raise ConfigError(f"{name}: must not be negative")
    return number


def _bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}: {value!r} is not a boolean (use 1 or 0)")
