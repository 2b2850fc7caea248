"""The Flask application factory: configuration, database, storage and the blueprints."""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from sqlalchemy.exc import SQLAlchemyError

from registry import __version__
from registry.resources import templates_dir
from registry.server.config import RegistryConfig, ensure_secret_key
from registry.server.db import make_engine, make_session_factory
from registry.server.services.pulls import PullCounter
from registry.server.state import EXTENSION, RegistryState
from registry.server.storage import storage_from_config

# Function-local imports keep start-up fast: the CLI's commands load only what they use.


def storage_settings(config: RegistryConfig) -> dict[str, Any]:
    """The mapping `registry.server.storage.storage_from_config` takes."""
    if config.storage == "s3" and config.s3 is not None:
        s3 = config.s3
        return {
            "backend": "s3", "bucket": s3.bucket, "endpoint_url": s3.endpoint_url,
            "region": s3.region, "access_key": s3.access_key, "secret_key": s3.secret_key,
            "prefix": s3.prefix, "presign": s3.presign, "create_bucket": s3.create_bucket,
            "connect_timeout": s3.connect_timeout, "read_timeout": s3.read_timeout,
            "max_attempts": s3.max_attempts,
            # Uploads spool next to the data dir so validation re-reads cost no network.
            "spool_dir": str(config.tmp_dir),
        }
    return {"backend": "local", "root": str(config.storage_dir)}


def create_app(config: RegistryConfig | None = None, **flask_config: Any) -> Flask:
    """Build the registry app; `config` defaults to the environment (RegistryConfig.load())."""
    config = ensure_secret_key(config or RegistryConfig.load())
    config.tmp_dir.mkdir(parents=True, exist_ok=True)
    # Static files at /_static: `_` keeps them out of the AC name space the discovery route owns.
    app = Flask("registry.server", template_folder=str(templates_dir()), static_url_path="/_static")
    app.config.update(
        SECRET_KEY=config.secret_key,
        # Uploads are size-checked while streaming (services.upload); Flask must not buffer them.
        MAX_CONTENT_LENGTH=None,
        PYRKT_VERSION=__version__,
    )
    app.config.update(flask_config)
    engine = make_engine(config.database_url, connect_timeout=config.db_connect_timeout,
                         statement_timeout=config.db_statement_timeout,
                         pool_timeout=config.db_pool_timeout)
    sessions = make_session_factory(engine)
    state = RegistryState(
        config=config,
        engine=engine,
        sessions=sessions,
        # Not checked here: a worker (re)starting while S3 is down must still come up and
        # answer 503s, then recover by itself (`serve` checked the storage once at start).
        storage=storage_from_config({**storage_settings(config), "check": False}
                                    if config.storage == "s3" else storage_settings(config)),
        pulls=PullCounter(sessions, enabled=config.pull_counting,
                          interval=config.pull_flush_seconds),
    )
    app.extensions[EXTENSION] = state
    # Spool files of uploads whose process died (kill -9, a crash): a restarted worker takes
    # them back at once instead of leaving them to gc. Live uploads hold their file's lock.
    try:
        state.storage.reclaim_dead_uploads()
    except OSError:
        pass  # an unreadable spool directory is reported by /_health, not fatal here

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            try:
                session.close()
            except SQLAlchemyError:
                # The server killed the connection (an outage): drop it, never fail the request.
                session.invalidate()

    # Imported here to keep start-up fast: the CLI imports this module for storage_settings
    # alone, and only a running server needs the views.
    from registry.server.blueprints import api, discovery, files, health

    app.register_blueprint(health.bp)
    app.register_blueprint(files.bp)
    app.register_blueprint(api.bp)
    from registry.server import oci

    oci.init_app(app)  # /v2/ (OCI distribution) and the appc offer of OCI-pushed images
    # Last: its catch-all rule answers every path the others do not claim.
    app.register_blueprint(discovery.bp)
    from registry.server import ui

    ui.init_app(app)
    from registry.server import outage

    outage.register(app, config.retry_after)
    fast_path = discovery.DiscoveryFastPath(app.wsgi_app, config.base_url, config.domains)
    app.wsgi_app = fast_path  # type: ignore[method-assign]
    from registry.server import lane

    # The gevent worker answers plain discovery requests from this before any WSGI layer.
    app.extensions[lane.EXTENSION] = lane.DiscoveryLane(fast_path, metrics=config.metrics)
    from registry.server.headers import SecurityHeaders

    # CSP, framing, nosniff, Referrer-Policy on every answer, fast-path pages included.
    app.wsgi_app = SecurityHeaders(app.wsgi_app)  # type: ignore[method-assign]
    from registry.server.tls.middleware import HTTPSResponses

    app.wsgi_app = HTTPSResponses(  # type: ignore[method-assign]
        app.wsgi_app, config.tls.hsts_max_age)
    from registry.server.operations import api as operations

    operations.install(app)  # /metrics (and the middleware counting requests), retention,
    # webhooks and mirrors under /_api/v1
    # Outermost: what escapes everything above still gets a 503 or a plain 500 in the
    # protocol's format, never the WSGI server's bare page.
    app.wsgi_app = outage.ShieldMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, config.retry_after)
    return app
