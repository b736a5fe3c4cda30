# The production image: gunicorn (docker-compose's web), Celery worker and beat all run from it.

# Front-end dependencies come from the npm registry, pinned by package-lock.json.
FROM node:20-slim AS frontend
WORKDIR /app/frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    CX_VAR_DIR=/var/lib/cx
WORKDIR /app

COPY requirements.txt .
RUN pip install -r requirements.txt

COPY . .
COPY --from=frontend /app/frontend/node_modules frontend/node_modules

# Settings need these to import; nothing connects while static files and translations are built.
RUN export DATABASE_URL=postgres://build@localhost/build CLICKHOUSE_URL=http://localhost:8123 \
        SECRET_KEY=build-only DEBUG=0 \
 && python manage.py collectstatic --noinput --verbosity 0 \
 && if [ -d locale ]; then \
        apt-get update && apt-get install -y --no-install-recommends gettext \
        && python manage.py compilemessages --ignore node_modules \
        && apt-get purge -y gettext && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*; \
    fi

# Media (uploads, shared by web and worker) and beat's schedule live in volumes mounted here.
RUN useradd --system --uid 10001 --home-dir /app cx \
 && mkdir -p /var/lib/cx/media /var/lib/cx/beat \
 && chown -R cx /var/lib/cx
USER cx

EXPOSE 8000
CMD ["gunicorn", "--config", "cxplatform/gunicorn_config.py", "cxplatform.wsgi"]
