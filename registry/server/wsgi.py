"""WSGI entry point for gunicorn: `gunicorn -c python:registry.server.gunicorn_conf registry.server.wsgi:app`.

The app is configured from the environment (see registry.server.config).
"""

from registry.server.app import create_app

app = create_app()
