# TinyViT Lab. `make run` opens the app, `make test` runs every test; each sets up
# its own virtual environment (.venv) on a fresh machine first.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8501

.PHONY: run test test-fast system-packages-run system-packages-test space-image bench demo-runs clean help

help:
	@echo "make run        start the app on http://localhost:$(PORT)"
	@echo "make test       run all tests (unit, app, browser)"
	@echo "make bench      print the speed benchmark table"
	@echo "make demo-runs  retrain the demo runs shipped in demo_runs/"
	@echo "make space-image  build the Space's Dockerfile with buildah and open it in Chromium"

# The stamp is remade whenever a requirements file changes, so a stale venv is refreshed.
$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed system-packages-run
	$(PY) -m streamlit run app.py --server.port $(PORT)

# Debian packages: Chromium for the browser tests (Playwright cannot download its own browser
# here), PostgreSQL for the several-machine sweep test (it starts its own server in a temporary
# folder: no mock database), Fashion-MNIST so that real data trains offline. Only the missing ones are installed.
APT_RUN := dataset-fashion-mnist
APT_TEST := $(APT_RUN) chromium postgresql
define apt_install
	@missing=$$(for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi
endef

system-packages-run:
	$(call apt_install,$(APT_RUN))

system-packages-test:
	$(call apt_install,$(APT_TEST))

# TINYVIT_REQUIRE_BROWSER=1: the browser tests fail (not skip) when Playwright is missing.
test: $(VENV)/.installed-dev system-packages-test
	TINYVIT_REQUIRE_BROWSER=1 $(PY) -m pytest -q

test-fast: $(VENV)/.installed-dev
	$(PY) -m pytest -q -m "not browser and not slow"

# The Space image, built without a Docker daemon: Debian's buildah builds the Dockerfile and
# runs its CMD, debootstrap makes the base image (tools/space_image.sh). Not part of `make test`:
# it downloads and installs every requirement into a fresh image (minutes).
space-image: $(VENV)/.installed-dev
	$(call apt_install,chromium buildah debootstrap)
	PY=$(abspath $(PY)) bash tools/space_image.sh

bench: $(VENV)/.installed
	$(PY) -m tinyvit.tools.bench

# Hours of CPU: it runs in the background (surviving a closed terminal), one line per epoch in
# demo-runs.log; each run replaces the shipped one only once it has finished above its floor.
demo-runs: $(VENV)/.installed
	nohup $(PY) -m tinyvit.tools.demo > demo-runs.log 2>&1 & \
	echo "retraining the demo runs in the background (pid $$!, a few CPU-hours): tail -f demo-runs.log"

clean:
	rm -rf $(VENV) .pytest_cache
