"""The registry server: Flask app factory, configuration, SQL models, storage backends, services and blueprints.

- `app.create_app(config=None, **flask_config)`: the WSGI app (`wsgi.app` for gunicorn);
  `app.RegistryState` (config, engine, sessions, storage) in `app.extensions["pyrkt"]`.
- `config.RegistryConfig.load(environ=None, **overrides)`: every setting (`config.SETTINGS`).
- `context`: `config()`, `storage()`, `db()` (the request's SQLAlchemy session).
- `auth`: `api_actor(required=True)` (tokens/passwords; bad credentials are 401),
  `reader_actor()` (downloads and pages: bad credentials count as anonymous; honours the web
  UI's login session), `session_user()` (the one check of a login session: the user's id
  plus a proof bound to the password hash, so a password change ends the other sessions).
- `models`: the SQLAlchemy 2.0 models; `schema.load_all_models()` imports every
  `registry.server[.*].models` so Alembic sees the whole schema; `db.upgrade_schema(url)`.
- `services`: the rules (access, users, tokens, repositories, keys, upload, gc, audit), shared
  by the API, the web UI and `pyrkt-registry`; each takes a Session and an `Actor`.
- `blueprints`: `discovery` (`/<name>[?ac-discovery=1]`), `files` (`/_aci/...`), `api`
  (`/_api/v1/...`), `health` (`/_health`).
- `bootstrap.initialise(config)`: schema, signing key and first administrator (idempotent).
"""
