# hxinfra: make targets for operators and CI. Everything installs what it needs (root: apt).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
HX := $(VENV)/bin/hxinfra
APT_PACKAGES := debootstrap debian-archive-keyring systemd-container tinyproxy-bin zstd iproute2 openssh-client curl openssl \
                nftables chromium gnupg
ENV ?= production
DEPLOY ?= site
PROMOTE_ENVS ?= development staging production
LIMIT ?=
SERIAL ?=

.PHONY: help install apt venv lock lock-check lint format test test-fast demo lab-down prod-deploy promote clean

help: ## List the targets
	@awk -F':.*## ' '/^[a-z-]+:.*## /{printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

install: apt venv ## Install the lab's Debian packages (root) and the Python venv with hxinfra

apt:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "need root to apt-get install:$$missing"; exit 1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

venv: $(VENV)/.installed

# Everything installs from uv.lock, every file checked against its hash: pip installs uv itself as the
# lock pins it (--require-hashes), uv installs the rest (--locked: a lock that no longer matches
# pyproject.toml is an error, never a silent re-resolve), then hxinfra itself (editable). Byte-compiled
# as pip would (uv does not by default): without .pyc files every run compiles its imports anew
# (0.75 s of a site no-op where Python may not write them).
UV := $(VENV)/bin/uv
export UV_PROJECT_ENVIRONMENT := $(abspath $(VENV))
# the certificates this machine trusts (a proxy's CA installed in it, as pip here already uses them)
export UV_SYSTEM_CERTS ?= 1

$(VENV)/.installed: pyproject.toml uv.lock
	test -x $(VENV)/bin/python || python3 -m venv $(VENV)
	python3 scripts/locked-requirement.py uv.lock uv > $(VENV)/uv-requirement.txt
	$(VENV)/bin/pip install -q --disable-pip-version-check --no-deps --require-hashes -r $(VENV)/uv-requirement.txt
	$(UV) sync -q --locked --extra dev --no-install-project --compile-bytecode
	$(UV) sync -q --locked --extra dev
	$(VENV)/bin/python -m compileall -q -j 0 hxinfra deploys >/dev/null
	touch $@

lock: ## Refresh uv.lock after pyproject.toml's dependencies changed (UPGRADE=1: the newest they allow)
	@test -x $(UV) || { echo "run make venv first"; exit 1; }
	$(UV) lock $(if $(filter 1,$(UPGRADE)),--upgrade)

lock-check: ## Fail when uv.lock does not match pyproject.toml (CI runs it)
	@test -x $(UV) || { echo "run make venv first"; exit 1; }
	$(UV) lock --check

LINT_PATHS := hxinfra deploys inventories tests bench apps scripts

lint: venv ## The one quality gate (CI and the pre-commit hook run it): format, lint, types
	$(VENV)/bin/ruff format --check $(LINT_PATHS)
	$(VENV)/bin/ruff check $(LINT_PATHS)
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy bench apps

format: venv ## Format the tree (ruff format) and apply ruff's safe fixes
	$(VENV)/bin/ruff format $(LINT_PATHS)
	$(VENV)/bin/ruff check --fix $(LINT_PATHS)

test: install ## Every test, lab tests included (needs root, as CI has)
	$(VENV)/bin/pytest

test-fast: venv ## Only the tests that need no lab hosts
	$(VENV)/bin/pytest -m 'not lab'

demo: install ## Boot the local lab fleet and deploy the HX site to it
	$(HX) lab up
	$(PY) apps/hx-webui/build.py 1.0.0 --out "$$($(HX) lab dir)/artifacts"
	$(HX) deploy site --env lab
	@echo
	@ca=$$($(HX) lab ca); $(HX) inventory list --env lab | while read -r name ip groups; do \
	  case "$$groups" in *web_servers*) \
	    echo "web UI: https://$$ip/   (curl --cacert $$ca https://$$ip/)"; \
	    curl -fsS --max-time 20 --cacert "$$ca" "https://$$ip/" | grep -q 'hx-lab-model says' \
	      && echo "  answered: the page read its database over TLS and got a completion through the gateway" \
	      || { echo "  the page did not answer as expected"; exit 1; };; \
	  esac; done
	@echo "lab hosts:"; $(HX) lab status
	@echo "log in: $(HX) lab ssh HOST    tear down: make lab-down"

lab-down: venv ## Destroy the local lab fleet (leaves nothing behind)
	$(HX) lab down

prod-deploy: venv ## Doctor, then check $(ENV) with a diff, then ask before deploying (YES=1 to skip the question)
	$(HX) doctor --env $(ENV)
	$(HX) deploy $(DEPLOY) --env $(ENV) --check --diff
	@if [ "$(YES)" = 1 ]; then \
	  $(HX) deploy $(DEPLOY) --env $(ENV) --yes; \
	elif [ -t 0 ]; then \
	  $(HX) deploy $(DEPLOY) --env $(ENV); \
	else echo "refusing to deploy $(ENV) without a terminal; set YES=1 after reviewing the check"; exit 1; fi

promote: venv ## Promote $(DEPLOY) through $(PROMOTE_ENVS): gate, check+diff, deploy, zero-change run, gate; each
	@set -e; for env in $(PROMOTE_ENVS); do \
	  echo "== $$env: gate before (hxinfra validate --pre)"; \
	  $(HX) validate --pre --env $$env $(if $(LIMIT),--limit '$(LIMIT)'); \
	  echo "== $$env: check"; \
	  $(HX) deploy $(DEPLOY) --env $$env --check --diff $(if $(LIMIT),--limit '$(LIMIT)'); \
	  echo "== $$env: deploy"; \
	  $(HX) deploy $(DEPLOY) --env $$env $(if $(filter 1,$(YES)),--yes) $(if $(SERIAL),--serial $(SERIAL)) \
	    $(if $(LIMIT),--limit '$(LIMIT)'); \
	  echo "== $$env: validate (a second run must change nothing)"; \
	  $(HX) deploy $(DEPLOY) --env $$env --check --detailed-exitcode $(if $(LIMIT),--limit '$(LIMIT)'); \
	  echo "== $$env: gate after (hxinfra validate --post)"; \
	  $(HX) validate --post --env $$env $(if $(LIMIT),--limit '$(LIMIT)'); \
	done; echo "promoted $(DEPLOY) through: $(PROMOTE_ENVS)"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
