# `make run`  - start mitmdump with the addon on the defaults (port 8080).
# `make bench` - addon vs a streaming passthrough, side by side (BENCH_ARGS=--quick for a smoke run).
# `make load`  - 200 concurrent streams through one mitmdump, then a 1,000,000-event soak with a
#               flat-memory check; exits non-zero on any failure (LOAD_ARGS=--quick for a smoke run).
# `make fuzz`  - atheris on the stream core, then on whole bodies, for FUZZ_SECONDS (default 60) each.
# `make cluster` - N mitmdump replicas (default one per core) behind HAProxy, sticky per API key
#               (deploy/cluster.py): `make cluster N=4 UPSTREAM=https://... CLUSTER_ARGS="--listen-host 0.0.0.0"`.
# `make test` - lint (ruff), format check and type check (mypy) of the package, then the
#               whole suite, unit and end to end. It first makes sure of Chromium
#               (/usr/bin/chromium) for the mitmweb browser test: installed with apt-get
#               when run as root (CI); elsewhere a note, and that one test skips.
#               HAProxy (for the cluster tests) the same way: apt-get as root, else a note and they skip.
#               It also installs the Node clients in tests/node (npm ci) when npm is there;
#               without npm, a note, and the Node client tests skip.
# Each target creates .venv when it is missing; .python-version selects 3.13 through pyenv.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NODE_DIR := tests/node

.PHONY: run test bench load fuzz cluster chromium haproxy clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.test-deps: requirements.txt requirements-test.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-test.txt -e .
	touch $@

run: $(VENV)/.run-deps
	$(BIN)/mitmdump -s addon.py $(ARGS)

$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --prefix $(NODE_DIR) --no-audit --no-fund && touch $@; \
	else \
		echo "Note: npm is missing: the Node client tests (tests/e2e/test_node_clients_e2e.py) will skip."; \
	fi

CHECKED := normalize addon.py deploy

test: $(VENV)/.test-deps chromium haproxy $(NODE_DIR)/node_modules/.installed
	$(BIN)/ruff check $(CHECKED)
	$(BIN)/ruff format --check $(CHECKED)
	$(BIN)/mypy
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The benchmark: proxy CPU per event, added latency, TTFB and memory, addon vs passthrough.
bench: $(VENV)/.test-deps
	$(BIN)/python -m bench.bench $(BENCH_ARGS)

# Load: concurrent streams checked exactly, and VmRSS over one very long stream (bench/load.py).
load: $(VENV)/.test-deps haproxy
	$(BIN)/python -m bench.load $(LOAD_ARGS)

$(VENV)/.fuzz-deps: requirements.txt requirements-fuzz.txt pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -r requirements-fuzz.txt -e .
	touch $@

# Coverage-guided fuzzing of the stream core, then of whole bodies, for FUZZ_SECONDS (default 60) each.
FUZZ_SECONDS ?= 60
fuzz: $(VENV)/.fuzz-deps
	$(BIN)/python -m fuzz.fuzz_stream -max_total_time=$(FUZZ_SECONDS)
	$(BIN)/python -m fuzz.fuzz_whole -max_total_time=$(FUZZ_SECONDS)

chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing chromium for the mitmweb browser test"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else \
		echo "Note: /usr/bin/chromium is missing (and this is not root with apt-get): the mitmweb browser test will skip."; \
	fi

# Several mitmdumps behind HAProxy (README: "Running for a team"). N: replicas (default one per core).
cluster: $(VENV)/.run-deps haproxy
	$(BIN)/python -m deploy.cluster $(if $(N),--replicas $(N)) $(if $(UPSTREAM),--upstream $(UPSTREAM)) $(CLUSTER_ARGS)

haproxy:
	@if command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "Installing haproxy for make cluster and its tests"; \
		apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q haproxy; \
	else \
		echo "Note: haproxy is missing (and this is not root with apt-get): make cluster needs it, and the cluster tests will skip."; \
	fi

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis $(NODE_DIR)/node_modules
