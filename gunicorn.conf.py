"""gunicorn configuration for running the registry from a checkout: `gunicorn registry.server.wsgi:app`.

gunicorn reads ./gunicorn.conf.py by default. The settings live in the package
(registry/server/gunicorn_conf.py, documented there) so an installed registry uses the very same
ones: `pyrkt-registry serve` runs `gunicorn -c python:registry.server.gunicorn_conf`.
"""

from registry.server.gunicorn_conf import *  # noqa: F403
