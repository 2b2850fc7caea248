"""Registry settings: ONE table (`SETTINGS`) and how values reach it.

Every setting has a lower-case name (`max_upload`), an environment variable
(`PYRKT_REGISTRY_MAX_UPLOAD`) and the same name as a key of the optional TOML config file
(`--config FILE`, `PYRKT_REGISTRY_CONFIG`, or `<data dir>/registry.toml` when it exists).
Precedence: default < config file < environment < command line. An empty variable counts as
unset. An unknown `PYRKT_REGISTRY_*` variable or config-file key is an error naming the closest
valid one, so `PYRKT_REGISTRY_STORGE=s3` never silently runs on local storage.
`pyrkt-registry config` prints the effective values (secrets masked) and where each came from;
`pyrkt-registry config --explain` prints every setting's type, default and meaning.

Adding a setting is one entry in `SETTINGS`:

    Setting("tls_cert", PATH, None, "PEM certificate chain to serve HTTPS with"),

(name, kind, default, help; `secret=True` masks it in `config`). The default may be a function
of the settings above it (`lambda v: v["data_dir"] / "storage"`), described by `shown=`. Code
reads it as `config.tls_cert` (or `config.values["tls_cert"]`): typed fields of
`RegistryConfig` below exist only for the settings the server reads most; the others are
reached through the same attribute syntax. Validation across settings goes in `_check`.
"""

from __future__ import annotations

import difflib
import multiprocessing
import os
import secrets
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from registry.errors import PyrktError

ENV_PREFIX = "PYRKT_REGISTRY_"
CONFIG_ENV = ENV_PREFIX + "CONFIG"
DEFAULT_DATA_DIR = "pyrkt-data"
DEFAULT_BASE_URL = "http://127.0.0.1:8080"
DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_MAX_UPLOAD = 4 * 1024**3
DEFAULT_MAX_UNCOMPRESSED = 16 * 1024**3
LETS_ENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"

# Variables in the PYRKT_REGISTRY_ name space that belong to other programs, so the server
# leaves them alone: `pyrkt push` reads PYRKT_REGISTRY_URL (the registry to push to).
FOREIGN_VARIABLES = frozenset({"PYRKT_REGISTRY_URL"})

# Where a value came from, as `pyrkt-registry config` shows it.
DEFAULT, CONFIG_FILE, ENVIRONMENT, COMMAND_LINE = "default", "config file", "environment", \
    "command line"


class ConfigError(PyrktError, ValueError):
    """A setting has a value the registry cannot use; the message names the setting."""


# -- kinds: how a raw value (a string from the environment, or a TOML value) becomes typed ------
@dataclass(frozen=True)
class Kind:
    name: str
    parse: Callable[[Any], Any]  # raises ValueError with the reason


def _text(value: Any) -> str:
    if isinstance(value, bool | list | dict):
        raise ValueError("is not a string")
    return str(value)


def _whole(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("is not a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError("is not a whole number") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _seconds(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("is not a number of seconds") from None
    if number < 0:
        raise ValueError("must not be negative")
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("is not a boolean (use 1 or 0)")


def _path(value: Any) -> Path:
    return Path(_text(value)).expanduser().absolute()


def _names(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("is not a list (comma-separated in a variable)")
    return tuple(dict.fromkeys(str(d).strip().lower() for d in items if str(d).strip()))


def _url(value: Any) -> str:
    url = _text(value).rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("is not an http(s) URL with a host")
    return url


def _address(value: Any) -> str:
    text = _text(value)
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("is not HOST:PORT")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"has port {port}, out of range (1-65535)")
    return text


def _choice(*options: str) -> Kind:
    def parse(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in options:
            raise ValueError(f"is not one of {', '.join(options)}")
        return text

    return Kind("|".join(options), parse)


TEXT, WHOLE, SECONDS = Kind("text", _text), Kind("integer", _whole), Kind("seconds", _seconds)
FLAG, PATH, NAMES = Kind("boolean", _flag), Kind("path", _path), Kind("list", _names)
URL, ADDRESS = Kind("url", _url), Kind("host:port", _address)


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    # A value, or a function of the settings above it in the table.
    default: Any
    help: str
    secret: bool = False
    shown: str | None = None  # how `config --explain` describes a computed default

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def describe_default(self) -> str:
        if self.shown is not None:
            return self.shown
        return "unset" if self.default is None else _display(self.default)


def _default_workers(_values: Mapping[str, Any]) -> int:
    return min(multiprocessing.cpu_count() * 2 + 1, 8)


SETTINGS: tuple[Setting, ...] = (
    Setting("config", PATH, None, "TOML file of settings (keys: the setting names in lower case)",
            shown="<data dir>/registry.toml when it exists"),
    Setting("data_dir", PATH, lambda _v: Path(DEFAULT_DATA_DIR).absolute(),
            "everything local lives here", shown="./pyrkt-data"),
    Setting("base_url", URL, DEFAULT_BASE_URL, "external URL clients reach, port included"),
    Setting("domains", NAMES, lambda v: (urlsplit(v["base_url"]).hostname,),
            "domains whose names are hosted here (comma-separated)",
            shown="the host of base_url"),
    Setting("database_url", TEXT, lambda v: f"sqlite:///{v['data_dir'] / 'registry.db'}",
            "SQLAlchemy URL; PostgreSQL: postgresql+psycopg://user:pw@host/db",
            shown="sqlite:///<data dir>/registry.db"),
    Setting("db_wait", SECONDS, 30.0, "how long start-up waits for a database still starting"),
    Setting("storage", _choice("local", "s3"), "local", "where blobs live"),
    Setting("storage_dir", PATH, lambda v: v["data_dir"] / "storage", "local storage root",
            shown="<data dir>/storage"),
    Setting("s3_bucket", TEXT, None, "S3 bucket (required when storage is s3)"),
    Setting("s3_endpoint", TEXT, None, "S3 endpoint URL, e.g. MinIO's", shown="AWS"),
    Setting("s3_region", TEXT, "us-east-1", "S3 region"),
    Setting("s3_access_key", TEXT, None, "S3 access key", shown="boto3's credential chain"),
    Setting("s3_secret_key", TEXT, None, "S3 secret key", secret=True,
            shown="boto3's credential chain"),
    Setting("s3_prefix", TEXT, "", "key prefix inside the bucket"),
    Setting("s3_presign", FLAG, False, "redirect downloads to presigned S3 URLs"),
    Setting("s3_create_bucket", FLAG, False, "create the bucket if it is missing (also when "
            "it disappears while the registry runs)"),
    # Small on purpose: during an outage a request gets its 503 in seconds instead of hanging.
    Setting("s3_connect_timeout", SECONDS, 2.0, "seconds to connect to the S3 server"),
    Setting("s3_read_timeout", SECONDS, 3.0, "seconds S3 may stay silent during a request"),
    Setting("s3_max_attempts", WHOLE, 2, "tries per S3 request, the first included"),
    Setting("db_connect_timeout", WHOLE, 3, "seconds to wait for a database connection"),
    Setting("db_statement_timeout", WHOLE, 15, "seconds one PostgreSQL statement may run "
            "(0: no limit)"),
    Setting("db_pool_timeout", WHOLE, 5, "seconds a request waits for a free pooled database "
            "connection"),
    Setting("retry_after", WHOLE, 5, "Retry-After seconds of the 503 answered while the "
            "database or the storage is unavailable"),
    Setting("health_timeout", SECONDS, 3.0, "seconds /_health waits for the backends"),
    Setting("health_blob_audit_interval", SECONDS, 30.0, "seconds /_health reuses its audit "
            "of image rows whose blob is missing"),
    # Brute-force defence (services/throttle.py), per account and per client address.
    Setting("login_free_attempts", WHOLE, 5, "failed sign-ins or token guesses before delays "
            "begin"),
    Setting("login_base_delay", SECONDS, 2.0, "seconds of the first delay; each further "
            "failure doubles it"),
    Setting("login_max_delay", SECONDS, 900.0, "the longest delay in seconds"),
    Setting("login_window", SECONDS, 3600.0, "seconds after which failures are forgotten"),
    Setting("max_upload", WHOLE, DEFAULT_MAX_UPLOAD, "largest accepted upload in bytes"),
    Setting("max_uncompressed", WHOLE, DEFAULT_MAX_UNCOMPRESSED,
            "largest unpacked size of an uploaded ACI in bytes (against decompression bombs)"),
    Setting("signing_key", PATH, None, "armored secret key file `init` imports as the active "
            "signing key", shown="a new RSA 4096 key"),
    Setting("secret_key", TEXT, None, "session secret shared by every host", secret=True,
            shown="generated into <data dir>/secret_key"),
    Setting("cache_max_age", WHOLE, 300, "Cache-Control max-age of versioned downloads (s)"),
    Setting("pull_counting", FLAG, True, "count pulls per version and day (0: off)"),
    Setting("pull_flush_seconds", WHOLE, 5, "how often each worker writes the pull counts it "
            "keeps in memory (s)"),
    Setting("admin_username", TEXT, "admin", "the first administrator, created by init/serve "
            "when there are no users"),
    Setting("admin_password", TEXT, None, "the first administrator's password", secret=True,
            shown="generated and printed once"),
    Setting("bind", ADDRESS, DEFAULT_BIND, "HOST:PORT `serve` listens on"),
    Setting("workers", WHOLE, _default_workers, "gunicorn worker processes",
            shown="2 x CPU cores + 1, at most 8"),
    Setting("worker_class", _choice("gevent", "gthread"), "gevent", "gevent: a greenlet per "
            "connection (slow or idle clients cost no thread); gthread: a thread each"),
    Setting("worker_connections", WHOLE, 2000, "connections one gevent worker holds at once"),
    Setting("threads", WHOLE, 4, "threads per worker"),
    Setting("header_timeout", SECONDS, 10.0, "seconds a client has to send its request line "
            "and headers; also how long an idle keep-alive connection stays open (gevent)"),
    Setting("io_timeout", SECONDS, 60.0, "seconds an upload body or a download may make no "
            "progress before its connection is closed (gevent)"),
    Setting("timeout", WHOLE, 120, "seconds a worker may stay silent before it is restarted"),
    Setting("forwarded_allow_ips", TEXT, "127.0.0.1",
            "proxies whose X-Forwarded-* headers are trusted (comma-separated, or *)"),
    Setting("access_log", TEXT, None, "access log: - for stdout, or a file path", shown="none"),
    Setting("log_level", _choice("debug", "info", "warning", "error", "critical"), "info",
            "server log level"),
    # HTTPS (registry/server/tls/): certificate files, or ACME.
    Setting("tls_cert", PATH, None, "PEM certificate chain: serve HTTPS with it (re-read "
            "when it changes on disk)", shown="none: plain HTTP"),
    Setting("tls_key", PATH, None, "PEM private key of tls_cert",
            shown="none: the key is in tls_cert"),
    Setting("acme", FLAG, False, "get and renew the certificate over ACME (RFC 8555) for "
            "every hosted domain; exclusive with tls_cert"),
    Setting("acme_directory", URL, LETS_ENCRYPT_DIRECTORY, "ACME directory URL",
            shown="Let's Encrypt's production directory"),
    Setting("acme_email", TEXT, None, "contact address given to the ACME CA"),
    Setting("acme_ca_bundle", PATH, None, "CA bundle trusted for the ACME server's own HTTPS "
            "(e.g. pebble's in tests)", shown="the system's"),
    Setting("acme_renew_days", WHOLE, 30, "renew the ACME certificate when it expires within "
            "this many days"),
    Setting("acme_check_interval", WHOLE, 43200, "seconds between ACME renewal checks"),
    Setting("http_bind", ADDRESS, None, "HOST:PORT of a plain-HTTP listener that redirects to "
            "HTTPS and answers ACME http-01 challenges", shown="none"),
    Setting("hsts_max_age", WHOLE, 31536000, "Strict-Transport-Security max-age sent over "
            "HTTPS (0: none)"),
    Setting("metrics", FLAG, True, "serve Prometheus metrics at /metrics"),
    Setting("metrics_allow", TEXT, "127.0.0.0/8,::1",
            "addresses or networks that may read /metrics (comma-separated)"),
    Setting("metrics_token", TEXT, None, "a bearer token that may read /metrics from anywhere",
            secret=True, shown="none"),
    Setting("webhook_timeout", SECONDS, 10.0, "how long a webhook receiver may take to answer"),
    Setting("webhook_retry_base", SECONDS, 5.0,
            "first retry delay of a failed webhook delivery (doubles on each retry)"),
)
BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}
BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}


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
    connect_timeout: float = 2.0
    read_timeout: float = 3.0
    max_attempts: int = 2


@dataclass(frozen=True)
class TLSSettings:
    """How the registry serves HTTPS: certificate files, or ACME (then `cert`/`key` are None)."""

    cert: Path | None = None
    key: Path | None = None
    acme: bool = False
    acme_directory: str = LETS_ENCRYPT_DIRECTORY
    acme_email: str | None = None
    acme_ca_bundle: Path | None = None
    acme_renew_days: int = 30
    acme_check_interval: int = 43200
    http_bind: str | None = None
    hsts_max_age: int = 31536000

    @property
    def enabled(self) -> bool:
        return self.acme or self.cert is not None


@dataclass(frozen=True)
class RegistryConfig:
    """The effective settings. `values` holds every setting of the table by name, `sources`
    where each came from; the typed fields repeat the ones the server reads most."""

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
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict, repr=False)

    def __getattr__(self, name: str) -> Any:
        # Only reached for names that are not fields: the rest of the table.
        values = self.__dict__.get("values", {})
        if name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__} has no setting {name!r}")

    @property
    def tls(self) -> TLSSettings:
        v = self.values
        return TLSSettings(
            cert=v.get("tls_cert"), key=v.get("tls_key"), acme=bool(v.get("acme")),
            acme_directory=v.get("acme_directory") or LETS_ENCRYPT_DIRECTORY,
            acme_email=v.get("acme_email"), acme_ca_bundle=v.get("acme_ca_bundle"),
            acme_renew_days=v.get("acme_renew_days", 30),
            acme_check_interval=max(1, v.get("acme_check_interval", 43200)),
            http_bind=v.get("http_bind"), hsts_max_age=v.get("hsts_max_age", 31536000))

    @property
    def tmp_dir(self) -> Path:
        """Spool space for uploads being validated (same disk as the data dir)."""
        return self.data_dir / "tmp"

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> RegistryConfig:
        """Resolve every setting; `overrides` (command-line options, by setting name) win.

        None, () and [] in `overrides` mean "not given"."""
        env = os.environ if environ is None else environ
        given = {k: v for k, v in overrides.items() if v not in (None, (), [])}
        for name in given:
            if name not in BY_NAME:
                raise ConfigError(f"unknown setting {name}{_suggest(name, BY_NAME)}")
        raw: dict[str, tuple[Any, str]] = {}
        for key, value in env.items():
            if not key.startswith(ENV_PREFIX) or key in FOREIGN_VARIABLES:
                continue
            if key not in BY_ENV:
                raise ConfigError(f"unknown setting {key}{_suggest(key, BY_ENV)}")
            if value != "":
                raw[BY_ENV[key].name] = (value, ENVIRONMENT)
        raw.update((name, (value, COMMAND_LINE)) for name, value in given.items())
        # The file is read first: an explicit one may set the data dir, whose own
        # registry.toml is read only when no file is named.
        config_file = _parse(BY_NAME["config"], *raw["config"]) if "config" in raw else None
        from_file = _read_file(config_file, named=True) if config_file is not None else {}
        if "data_dir" not in raw and "data_dir" in from_file:
            raw["data_dir"] = (from_file["data_dir"], f"{CONFIG_FILE} {config_file}")
        data_dir = (_parse(BY_NAME["data_dir"], *raw["data_dir"]) if "data_dir" in raw
                    else Path(DEFAULT_DATA_DIR).absolute())
        if config_file is None and (data_dir / "registry.toml").is_file():
            config_file = data_dir / "registry.toml"
            raw["config"] = (config_file, f"{DEFAULT} (in the data dir)")
            from_file = _read_file(config_file, named=False)
        for name, value in from_file.items():
            raw.setdefault(name, (value, f"{CONFIG_FILE} {config_file}"))
        values: dict[str, Any] = {}
        sources: dict[str, str] = {}
        for setting in SETTINGS:
            if setting.name in raw:
                values[setting.name] = _parse(setting, *raw[setting.name])
                sources[setting.name] = raw[setting.name][1]
            else:
                default = setting.default
                values[setting.name] = default(values) if callable(default) else default
                sources[setting.name] = DEFAULT
        _check(values, sources)
        return cls._from_values(values, sources)

    @classmethod
    def _from_values(cls, values: dict[str, Any], sources: dict[str, str]) -> RegistryConfig:
        s3 = None
        if values["storage"] == "s3":
            s3 = S3Settings(
                bucket=values["s3_bucket"], endpoint_url=values["s3_endpoint"] or None,
                region=values["s3_region"], access_key=values["s3_access_key"] or None,
                secret_key=values["s3_secret_key"] or None, prefix=values["s3_prefix"],
                presign=values["s3_presign"], create_bucket=values["s3_create_bucket"],
                connect_timeout=values["s3_connect_timeout"],
                read_timeout=values["s3_read_timeout"], max_attempts=values["s3_max_attempts"])
        typed = {f.name: values[f.name] for f in fields(cls) if f.name in values}
        typed["secret_key"] = values["secret_key"] or ""
        return cls(**typed, s3=s3, signing_key_file=values["signing_key"],
                   values=values, sources=sources)

    def with_values(self, **changes: Any) -> RegistryConfig:
        """A copy with some settings replaced (already typed), e.g. the generated secret."""
        values = {**self.values, **changes}
        return self._from_values(values, {**self.sources, **dict.fromkeys(changes, DEFAULT)})

    def environment(self) -> dict[str, str]:
        """The `PYRKT_REGISTRY_*` variables that give another process (gunicorn's workers) the
        settings this one took from its command line; the environment is inherited and the
        config file is read again."""
        return {BY_NAME[n].env: _to_env(self.values[n]) for n, source in self.sources.items()
                if source == COMMAND_LINE and self.values[n] is not None}

    def report(self) -> list[dict[str, Any]]:
        """Every setting with its value (secrets masked) and source: `pyrkt-registry config`."""
        rows = []
        for setting in SETTINGS:
            value = self.values[setting.name]
            shown: Any
            if setting.secret and value:
                shown = "********"
            elif isinstance(value, Path):
                shown = str(value)
            elif isinstance(value, tuple):
                shown = list(value)
            elif isinstance(value, str):
                shown = _mask_url_password(value)
            elif isinstance(value, float) and value.is_integer():
                shown = int(value)
            else:
                shown = value
            rows.append({"name": setting.name, "variable": setting.env, "value": shown,
                         "source": self.sources[setting.name], "type": setting.kind.name,
                         "default": setting.describe_default(), "secret": setting.secret,
                         "help": setting.help})
        return rows


def _check(values: Mapping[str, Any], sources: Mapping[str, str]) -> None:
    """Rules across settings."""
    for name in ("workers", "threads", "worker_connections", "s3_max_attempts",
                 "db_connect_timeout", "db_pool_timeout", "retry_after", "login_free_attempts"):
        if values[name] < 1:
            raise ConfigError(f"{BY_NAME[name].env} ({name}) must be at least 1")
    for name in ("header_timeout", "io_timeout", "s3_connect_timeout", "s3_read_timeout",
                 "health_timeout", "login_base_delay"):
        if values[name] <= 0:
            raise ConfigError(f"{BY_NAME[name].env} ({name}) must be more than 0 seconds")
    if values["storage"] == "s3" and not values["s3_bucket"]:
        raise ConfigError(f"{BY_NAME['s3_bucket'].env} (s3_bucket) is required when "
                          "storage is s3")
    if values["tls_key"] and not values["tls_cert"]:
        raise ConfigError(f"{BY_NAME['tls_key'].env} (tls_key) is set without tls_cert")
    if values["acme"] and values["tls_cert"]:
        raise ConfigError("acme and tls_cert exclude each other: the certificate comes either "
                          "from ACME or from the file")
    if urlsplit(values["acme_directory"]).scheme != "https":
        raise ConfigError(f"{BY_NAME['acme_directory'].env} (acme_directory) must be an "
                          "https:// URL")


def _parse(setting: Setting, value: Any, source: str) -> Any:
    try:
        return setting.kind.parse(value)
    except ValueError as error:
        if source == ENVIRONMENT:
            where = setting.env
        elif source.startswith(CONFIG_FILE):
            where = f"{source[len(CONFIG_FILE) + 1:]}: {setting.name}"
        else:  # the command line's options are named after the settings
            where = f"--{setting.name.replace('_', '-')}"
        raise ConfigError(f"{where}: {value!r} {error}") from None


def _suggest(name: str, known: Mapping[str, Setting]) -> str:
    # Compared without the shared prefix, which would make every variable look alike.
    bare = {key.removeprefix(ENV_PREFIX).lower(): key for key in known}
    close = difflib.get_close_matches(name.removeprefix(ENV_PREFIX).lower(), list(bare), n=1,
                                      cutoff=0.6)
    if close:
        return f" (did you mean {bare[close[0]]}?)"
    return " (`pyrkt-registry config --explain` lists them all)"


def _read_file(path: Path, *, named: bool) -> dict[str, Any]:
    """A config file's settings; `named`: given with --config/PYRKT_REGISTRY_CONFIG (only such
    a file may set data_dir: the data dir's own registry.toml cannot move it)."""
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {path} is a directory") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None
    for key in data:
        if key not in BY_NAME:
            raise ConfigError(f"config file {path}: unknown setting {key}"
                              f"{_suggest(key, BY_NAME)}")
        if key == "config" or (key == "data_dir" and not named):
            raise ConfigError(f"config file {path}: {key} cannot be set here "
                              f"(use --{key.replace('_', '-')} or {BY_NAME[key].env})")
    return dict(data)


def _to_env(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _display(value: Any) -> str:
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    return str(value)


def _mask_url_password(text: str) -> str:
    """A URL's password replaced by ***, so `config` output can be pasted into a bug report."""
    if "://" not in text:
        return text
    parts = urlsplit(text)
    if parts.password:
        return text.replace(f":{parts.password}@", ":***@", 1)
    return text


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
    return config.with_values(secret_key=path.read_text().strip())


__all__ = ["SETTINGS", "ConfigError", "RegistryConfig", "S3Settings", "Setting", "TLSSettings",
           "ensure_secret_key"]
