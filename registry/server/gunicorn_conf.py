"""gunicorn settings for the registry (`pyrkt-registry serve` uses them; so can a bare gunicorn).

The knobs (bind, workers, worker_class, worker_connections, threads, header_timeout,
io_timeout, timeout, forwarded_allow_ips, access_log, log_level) are registry settings like any
other (registry/server/config.py's table; `pyrkt-registry config` shows them), so a misspelt
one stops gunicorn here too.

Why these choices: the gevent worker (registry/server/worker.py) gives every connection a
greenlet instead of a thread, so slow or idle clients (a thousand of them trickling headers or
bodies, or just holding sockets) wait without starving /_health, discovery and downloads; the
headers must arrive within header_timeout, and a transfer that stalls for io_timeout is cut.
Downloads from local storage still go out with sendfile(2) (a cooperative one), so a worker's
memory stays flat however big the image is. The request line and the headers are capped
(below); bodies are not: uploads can be gigabytes and the app checks sizes while streaming.
`gthread` stays available (worker_class). Every worker opens its own database pool (no
preload: connections must not cross a fork).
TLS (tls_cert/tls_key): gunicorn's own certfile/keyfile, with a context hook that re-reads them
when they change on disk (registry/server/tls/context.py). sendfile cannot apply under TLS (the
bytes pass through OpenSSL): gunicorn writes the file wrapper block by block instead, 1 MiB at
a time (tls/middleware.py), so a worker's memory stays flat there too.
"""

from __future__ import annotations

from registry.server.config import RegistryConfig

_settings = RegistryConfig.load().values

bind = [_settings["bind"]]
workers = _settings["workers"]
worker_class = {"gevent": "registry.server.worker.RegistryGeventWorker",
                "gthread": "gthread"}[_settings["worker_class"]]
worker_connections = _settings["worker_connections"]
threads = _settings["threads"]
timeout = _settings["timeout"]
graceful_timeout = 30
# gthread's idle keep-alive; the gevent worker uses header_timeout for it.
keepalive = 5
# The request line (method + URL) and the headers: an AC name and its labels fit easily in
# 8 KiB; at most 100 header fields of at most 8 KiB each. Beyond, gunicorn answers 414 or 431
# before the app sees the request.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190
# No `sendfile` setting on purpose: gunicorn's option is `--no-sendfile`, and giving it ANY
# value (even True) turns sendfile off. Left unset, downloads from local storage use sendfile(2).
preload_app = False
forwarded_allow_ips = _settings["forwarded_allow_ips"]
accesslog = _settings["access_log"]
errorlog = "-"
loglevel = _settings["log_level"]
proc_name = "pyrkt-registry"
# Recent gunicorn releases open a control socket, by default one path per user (~/.gunicorn/
# gunicorn.ctl) that every registry on the host would share. The registry does not use it.
control_socket_disable = True

certfile = str(_settings["tls_cert"]) if _settings["tls_cert"] else None
keyfile = str(_settings["tls_key"]) if _settings["tls_key"] else None


def ssl_context(conf, default_ssl_context_factory):  # type: ignore[no-untyped-def]
    # Imported in the worker that handshakes: the master never needs the TLS code.
    from registry.server.tls.context import reloading_context

    return reloading_context(conf.certfile, conf.keyfile, default_ssl_context_factory)


# -- hooks ---------------------------------------------------------------------------------------
def on_starting(server: object) -> None:
    """Before any worker exists: give Prometheus's multiprocess mode an empty folder. It must be
    in the environment before a worker imports prometheus_client (registry.server.operations.
    metrics), so each run starts from zero and every worker's values add up in a scrape."""
    import os
    import tempfile

    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="pyrkt-metrics-")
        os.environ["PYRKT_METRICS_DIR_OWNED"] = "1"


def post_worker_init(worker: object) -> None:
    """Each worker runs a webhook dispatcher (deliveries are claimed, never sent twice), and
    over TLS a certificate watcher: worker classes that build their SSL context once (gevent)
    see renewed certificates too (registry/server/tls/context.py)."""
    # Imported in the worker, after the fork: the master never loads the app.
    from registry.server.operations.webhooks import start_dispatcher

    start_dispatcher(worker.wsgi)  # type: ignore[attr-defined]
    cfg = worker.cfg  # type: ignore[attr-defined]
    if cfg.is_ssl:
        # Imported only when serving TLS (plain HTTP never loads it).
        from gunicorn.sock import ssl_context as current_context

        from registry.server.tls.context import watch

        watch(lambda: current_context(cfg))


def child_exit(server: object, worker: object) -> None:
    # Imported late: prometheus_client must not be loaded before on_starting set its folder.
    from registry.server.operations.metrics import worker_exited

    worker_exited(worker.pid)  # type: ignore[attr-defined]


def on_exit(server: object) -> None:
    import os
    import shutil

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if folder and os.environ.get("PYRKT_METRICS_DIR_OWNED"):
        shutil.rmtree(folder, ignore_errors=True)
