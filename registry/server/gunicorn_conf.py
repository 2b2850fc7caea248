"""gunicorn settings for the registry (`pyrkt-registry serve` uses them; so can a bare gunicorn).

Environment knobs (all optional):
  PYRKT_REGISTRY_BIND            address to listen on (127.0.0.1:8080; 0.0.0.0:8080 in a container)
  PYRKT_REGISTRY_WORKERS         worker processes (2 x CPU cores + 1, at most 8)
  PYRKT_REGISTRY_THREADS         threads per worker (4)
  PYRKT_REGISTRY_TIMEOUT         seconds a worker may stay silent before it is restarted (120)
  PYRKT_REGISTRY_FORWARDED_ALLOW_IPS  proxies whose X-Forwarded-* headers are trusted (127.0.0.1)
  PYRKT_REGISTRY_ACCESS_LOG      "-" for stdout, a path, or unset for none

Why these choices: `gthread` workers keep HTTP keep-alive (discovery clients make many small
requests) and a slow download occupies one thread, not a whole process; downloads from local
storage go out with sendfile(2), so a worker's memory stays flat however big the image is.
Every worker opens its own database pool (no preload: connections must not cross a fork).
"""

from __future__ import annotations

import multiprocessing
import os

_env = os.environ.get

bind = [_env("PYRKT_REGISTRY_BIND", "127.0.0.1:8080")]
workers = int(_env("PYRKT_REGISTRY_WORKERS", str(min(multiprocessing.cpu_count() * 2 + 1, 8))))
worker_class = "gthread"
threads = int(_env("PYRKT_REGISTRY_THREADS", "4"))
timeout = int(_env("PYRKT_REGISTRY_TIMEOUT", "120"))
graceful_timeout = 30
keepalive = 5
# Uploads can be gigabytes: gunicorn must never cap request bodies; the app checks sizes itself.
limit_request_line = 8190
# No `sendfile` setting on purpose: gunicorn's option is `--no-sendfile`, and giving it ANY
# value (even True) turns sendfile off. Left unset, downloads from local storage use sendfile(2).
preload_app = False
forwarded_allow_ips = _env("PYRKT_REGISTRY_FORWARDED_ALLOW_IPS", "127.0.0.1")
accesslog = _env("PYRKT_REGISTRY_ACCESS_LOG") or None
errorlog = "-"
loglevel = _env("PYRKT_REGISTRY_LOG_LEVEL", "info")
proc_name = "pyrkt-registry"
# Recent gunicorn releases open a control socket, by default one path per user (~/.gunicorn/
# gunicorn.ctl) that every registry on the host would share. The registry does not use it.
control_socket_disable = True
