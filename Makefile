# TinyViT Lab. `make run` opens the app, `make test` runs every test; each sets up
# its own virtual environment (.venv) on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test test-fast browser postgres bench demo-runs clean help

help:
	@echo "make run        start the app on http://localhost:$(PORT)"
	@echo "make test       run all tests (unit, app, browser)"
	@echo "make bench      print the speed benchmark table"
	@echo "make demo-runs  retrain the demo runs shipped in demo_runs/"

# The stamp is remade whenever a requirements file changes, so a stale venv is refreshed.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed
	$(PY) -m streamlit run app.py --server.port $(PORT)

# Browser tests drive Debian's Chromium through Playwright (Playwright cannot download
# its own browser here).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium for the browser tests"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The several-machine sweep test starts its own PostgreSQL server in a temporary folder,
# from Debian's postgresql binaries (no mock database).
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  echo "installing Debian's postgresql for the sweep storage test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

test: $(VENV)/.installed-dev browser postgres
	$(PY) -m pytest -q

test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not browser and not slow"

bench: $(VENV)/.installed
	$(PY) -m tinyvit.bench

demo-runs: $(VENV)/.installed
	$(PY) -m tinyvit.demo

clean:
	rm -rf $(VENV) .pytest_cache
