# The Palimpsest server: `palimpsest serve` against the PostgreSQL and NATS it is given
# (PALIMPSEST_DATABASE_URL, PALIMPSEST_NATS_URL); see docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY infra infra
COPY projections projections
COPY realtime realtime
COPY web web
COPY workers workers
RUN pip install . && rm -rf /app/*

RUN useradd --system --create-home --home-dir /data palimpsest
USER palimpsest
WORKDIR /data

ENV PALIMPSEST_DATA_DIR=/data \
    PALIMPSEST_HOST=0.0.0.0 \
    PALIMPSEST_PORT=8080 \
    PALIMPSEST_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/api/server/about', timeout=2)"]
CMD ["palimpsest", "serve"]
