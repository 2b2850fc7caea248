# The pyrkt registry server: gunicorn serving the Flask app, migrations applied at start.
#
#   docker build -t pyrkt-registry .
#   docker run -p 8080:8080 -v pyrkt-data:/data \
#       -e PYRKT_REGISTRY_BASE_URL=https://registry.example.com pyrkt-registry
#
# With no other settings it runs on SQLite + local storage in /data (the embedded default);
# docker-compose.yml shows PostgreSQL + S3 (MinIO). All settings: `pyrkt-registry config --explain`.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYRKT_REGISTRY_DATA_DIR=/data \
    PYRKT_REGISTRY_BIND=0.0.0.0:8080 \
    PYRKT_REGISTRY_ACCESS_LOG=-

RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin pyrkt \
    && mkdir -p /data && chown pyrkt /data

WORKDIR /src
COPY setup.py setup.cfg pyproject.toml README.md ./
COPY registry ./registry
COPY templates ./templates
COPY migrations ./migrations
RUN pip install '.[registry]' && rm -rf /src

USER pyrkt
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=60s \
    CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/_health').status != 200)"

# `serve` applies the migrations (alembic upgrade head), makes sure a signing key and an
# administrator exist (the password is printed once to the log), then execs gunicorn.
CMD ["pyrkt-registry", "serve"]
