# Two commands on a fresh machine with Python 3.11+, Node and npm:
#   make demo   — install everything, migrate, seed a demo agency and tenant, serve on http://localhost:8000
#   make test   — the whole test suite (embedded services; again against DATABASE_URL/REDIS_URL when set)

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)
NPM_STAMP := frontend/node_modules/.installed-$(shell cat frontend/package-lock.json | cksum | cut -d' ' -f1)
HOST ?= 127.0.0.1
PORT ?= 8000
# Links we print and e-mail (invitations) point at the port we serve on.
export SITE_PORT ?= $(PORT)

.PHONY: install demo setup serve test lint clean

$(PY_STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $@

$(NPM_STAMP): frontend/package-lock.json
	cd frontend && npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(PY_STAMP) $(NPM_STAMP)

setup: install
	$(PY) manage.py setup

demo: setup
	$(PY) manage.py seed_demo
	$(PY) manage.py serve --addr $(HOST) --port $(PORT)

serve: install
	$(PY) manage.py serve --addr $(HOST) --port $(PORT)

test: install
	bash scripts/test.sh

lint: install
	$(VENV)/bin/ruff check .

clean:
	rm -rf var .pytest_cache
