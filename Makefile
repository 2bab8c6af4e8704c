# Quanchenglian ledger: `make run` starts the dev deployment, `make test` runs every suite.
# Both install what is missing (and only that) first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NPM_STAMP := node_modules/.installed
SLITHER_VENV := .venv-slither
SLITHER_STAMP := $(SLITHER_VENV)/.installed
HARDHAT := node_modules/.bin/node node_modules/hardhat/dist/src/cli.js
PAGES_STAMP := api/static/vendor/versions.json
CHROMIUM := /usr/bin/chromium
CHROMIUM_STAMP := build/.chromium-installed

.PHONY: all run test test-fast test-python test-hardhat install pages chromium tools lint bench bench-gas fuzz mutation clean distclean

all: test

tools:
	@PYTHON=$(PYTHON) scripts/check-tools.sh

$(PY_STAMP): pyproject.toml constraints.txt | tools
	@echo "==> installing Python packages into $(VENV) (pinned by constraints.txt)"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-cache-dir --upgrade pip
	@$(PY) -m pip install --quiet --disable-pip-version-check --no-cache-dir -c constraints.txt -e '.[dev]'
	@touch $@

$(NPM_STAMP): package.json package-lock.json | tools
	@echo "==> installing npm packages (package-lock.json)"
	@npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The pages' JavaScript and CSS (ethers, qrcode-generator, @hpke/core, swagger-ui-dist, redoc, axe-core),
# copied from node_modules into api/static/vendor/ (gitignored): nothing is fetched at run time.
$(PAGES_STAMP): $(NPM_STAMP) scripts/build_pages.mjs
	@echo "==> copying the pages' vendor files into api/static/vendor"
	@node_modules/.bin/node scripts/build_pages.mjs

pages: $(PAGES_STAMP)

install: $(PY_STAMP) $(NPM_STAMP) $(PAGES_STAMP)

# Debian's chromium and a Chinese font for the page tests (tests/pages: Playwright drives this
# chromium; it never downloads a browser). Installed with apt-get only when missing.
$(CHROMIUM_STAMP):
	@if [ ! -x $(CHROMIUM) ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then \
	  echo "==> installing Debian chromium and a Chinese font (apt-get)"; \
	  SUDO=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-wqy-microhei; \
	fi
	@mkdir -p $(@D) && touch $@

chromium: $(CHROMIUM_STAMP)

# Slither requires web3 < 8 (the project uses 8), so it has a virtual environment of its own.
$(SLITHER_STAMP): constraints-slither.txt | tools
	@echo "==> installing Slither into $(SLITHER_VENV) (pinned by constraints-slither.txt)"
	@test -x $(SLITHER_VENV)/bin/python || $(PYTHON) -m venv $(SLITHER_VENV)
	@$(SLITHER_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-cache-dir -r constraints-slither.txt
	@touch $@

run: install
	@$(VENV)/bin/qcl dev

test: test-hardhat test-python

test-hardhat: install
	@echo "==> Hardhat: Solidity unit and fuzz tests"
	@$(HARDHAT) test solidity

# pytest-xdist: PYTEST_WORKERS processes (auto: one per core), each a whole module at a time
# (--dist loadscope), so a module's deployments, PostgreSQL database and Hypothesis state stay in one
# worker. pytest-randomly shuffles modules and tests; the seed is printed at the top of the run
# (repeat an order: `.venv/bin/python -m pytest --randomly-seed=N ...`).
PYTEST_WORKERS ?= auto
PYTEST_PARALLEL := -n $(PYTEST_WORKERS) --dist loadscope

test-python: install $(CHROMIUM_STAMP)
	@echo "==> pytest: Python suites (every node), $(PYTEST_WORKERS) workers, random order"
	@$(PY) -m pytest $(PYTEST_PARALLEL)

test-fast: install
	@$(PY) -m pytest $(PYTEST_PARALLEL) -m "not nodes and not slow"

# Schemathesis for longer and with a random seed (make test runs a short seeded pass of the same test).
FUZZ_EXAMPLES ?= 100
fuzz: install
	@echo "==> Schemathesis: $(FUZZ_EXAMPLES) examples per operation, random seed, stateful phase"
	@QCL_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) QCL_FUZZ_SEED=random $(PY) -m pytest -p no:randomly -s tests/api/test_schemathesis.py

# Mutation testing (mutmut): MUTATE lists the modules to mutate, MUTATION_TESTS the tests run
# against each mutant; scores go into BENCHMARKS.md. E.g. make mutation MUTATE="api/siwe.py".
MUTATE ?= api/siwe.py api/auth.py audit/rules.py audit/log_tree.py db/release_log.py \
	chain_client/relayer/__init__.py db/nonces.py
MUTATION_TESTS ?= tests/api/test_siwe.py tests/api/test_siwe_messages.py tests/api/test_auth.py \
	tests/audit/test_rules.py tests/audit/test_rules_edges.py tests/audit/test_rules_replay.py tests/audit/test_log_tree.py \
	tests/chain_client/test_relayer_nonces.py tests/vault/test_nonce_counter.py
MUTATION_JOBS ?= $(shell nproc)
mutation: install
	@$(PY) scripts/mutation.py --jobs $(MUTATION_JOBS) --tests $(MUTATION_TESTS) -- $(MUTATE)

PACKAGES := chain_client audit db vault api cli qcl_client

lint: install $(SLITHER_STAMP)
	@$(VENV)/bin/ruff check $(PACKAGES) tests scripts
	@$(VENV)/bin/mypy $(PACKAGES)
	@$(VENV)/bin/lint-imports
	@$(HARDHAT) build --quiet > /dev/null
	@$(SLITHER_VENV)/bin/python scripts/slither_check.py

bench: install
	@$(PY) scripts/bench_release.py
	@$(PY) scripts/bench_release.py --deployment split --api-workers 1
	@$(PY) scripts/bench_release.py --deployment split --api-workers 2
	@$(PY) scripts/bench_release.py --deployment split --api-workers 1 --block-time 2 --releases 3000 --clients 128 512 --naive 100
	@$(PY) scripts/bench_gas.py
	@$(PY) scripts/bench_vault.py
	@$(PY) scripts/bench_verify.py

bench-gas: install
	@$(PY) scripts/bench_gas.py

clean:
	rm -rf build .pytest_cache

distclean: clean
	rm -rf $(VENV) $(SLITHER_VENV) node_modules api/static/vendor
