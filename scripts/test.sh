#!/usr/bin/env bash
# The whole suite. Pass 1 runs on the embedded services (pgserver, chdb, in-memory
# broker) whatever the environment says; pass 2 runs it again against the real
# Postgres and Redis named by DATABASE_URL / REDIS_URL, when either is set.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python

# pytest exits 5 when it collected nothing: for us that is a failure too.
pytest_pass() {
  local status=0
  "$@" || status=$?
  if [ "$status" -eq 5 ]; then echo "pytest collected no tests" >&2; return 1; fi
  return "$status"
}

echo "== lint"
.venv/bin/ruff check .
env -u DATABASE_URL "$PY" manage.py makemigrations --check --dry-run >/dev/null \
  || { echo "models changed without migrations: run manage.py makemigrations" >&2; exit 1; }

echo "== pass 1: embedded services"
pytest_pass env -u DATABASE_URL -u REDIS_URL -u CLICKHOUSE_URL "$PY" -m pytest "$@"

if [ -n "${DATABASE_URL:-}" ] || [ -n "${REDIS_URL:-}" ]; then
  echo "== pass 2: DATABASE_URL=${DATABASE_URL:-<embedded>} REDIS_URL=${REDIS_URL:-<embedded>}"
  pytest_pass "$PY" -m pytest "$@"
fi
