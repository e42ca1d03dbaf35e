# syntax=docker/dockerfile:1.7
# The Pollen hub: Django (gunicorn), migrations and the hub's Celery worker. Never torch.
#
# The build context is the repository root:
#   docker build -f deploy/docker/hub.Dockerfile -t pollen-hub:dev .
# BuildKit reads deploy/docker/hub.Dockerfile.dockerignore (next to this file) for the
# context, so the repository's own .dockerignore is not needed.
#
# Roles (deploy/docker/hub-entrypoint.sh is the one place that spells out each command):
#   web (default) | migrate | worker | check | manage ARGS...

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG NODE_IMAGE=node:20-bookworm-slim

# --- the dashboard: a static bundle, built once -----------------------------------------
FROM ${NODE_IMAGE} AS frontend
WORKDIR /src/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY frontend/ ./
RUN npm run build

# --- Python dependencies: the "web" extra only ------------------------------------------
FROM ${PYTHON_IMAGE} AS deps
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
COPY pyproject.toml deploy/docker/extras.py /tmp/pollen/
RUN python /tmp/pollen/extras.py web --pyproject /tmp/pollen/pyproject.toml > /tmp/pollen/requirements.txt \
    && python -m venv /opt/venv \
    && /opt/venv/bin/pip install -r /tmp/pollen/requirements.txt \
    # The web side must never carry torch (DESIGN.md, "Two roles"): fail the build if it does.
    && if /opt/venv/bin/python -c "import torch" 2>/dev/null; then echo "torch leaked into the hub image" >&2; exit 1; fi

# --- runtime -----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}
# pg_dump/pg_restore for scripts/backup.sh and scripts/restore.sh (Debian 12: PostgreSQL 15).
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-client \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 pollen \
    && useradd --system --uid 10001 --gid pollen --home-dir /app --shell /usr/sbin/nologin pollen
COPY --from=deps /opt/venv /opt/venv
WORKDIR /app
COPY manage.py ./
COPY platform/ platform/
COPY workers/pollen_contracts/ workers/pollen_contracts/
COPY deploy/docker/hub-entrypoint.sh deploy/docker/gunicorn.conf.py deploy/docker/
COPY deploy/backup/model_store.py deploy/backup/
COPY scripts/backup.sh scripts/restore.sh scripts/
COPY --from=frontend /src/frontend/dist/ frontend/dist/
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app/platform:/app/workers \
    DJANGO_SETTINGS_MODULE=pollen.settings \
    POLLEN_ENV=production \
    POLLEN_LOCAL_STORAGE=false \
    POLLEN_VAR_DIR=/app/var \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# Static files are baked into the image (read-only at run time; whitenoise serves them).
# The throwaway key exists only for this build step; production reads POLLEN_SECRET_KEY_FILE.
RUN POLLEN_SECRET_KEY=collectstatic-only-not-a-secret python manage.py collectstatic --noinput -v0 \
    && chmod 0755 deploy/docker/hub-entrypoint.sh
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["/app/deploy/docker/hub-entrypoint.sh"]
CMD ["web"]
