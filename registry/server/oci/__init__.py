"""The registry's OCI distribution API (`/v2/`) and the appc offer of images pushed through it.

`blueprint.bp` is registered by the app factory; `offer.install(app)` hooks the conversion of
OCI tags into the server's appc distribution path. Models live in `models` (tables created by
migrations/versions/0100_oci_distribution.py).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register /v2/ and hook the appc offer into the server's distribution path."""
    from . import blueprint, offer

    app.register_blueprint(blueprint.bp)
    offer.install(app)
