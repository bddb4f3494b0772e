# The shop's developer commands. Everything runs from .venv, created on first use.
PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
USER ?= alice
ROLE ?= customer

.PHONY: up down test install promtool seed token manifests migrate bench load cost-report clean

up: $(STAMP)  ## run the whole shop locally at http://127.0.0.1:8080
	$(PY) -m local.run

down: $(STAMP)  ## stop this checkout's shop: a running `make up`, or what one that died left behind
	$(PY) -m local.run down

test: $(STAMP) promtool  ## install and run every test
	$(PY) -m pytest

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# promtool (Debian's prometheus package) checks the alert rules in the test suite.
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }

manifests: $(STAMP)  ## regenerate knative/, local/docker-compose.yml and openapi.json from the route table
	$(PY) -m local.generate

seed: $(STAMP)  ## add the demo products that are missing
	$(PY) -m local.seed

migrate: $(STAMP)  ## apply the SQL migrations to DATABASE_URL
	$(PY) -m local.migrate

token: $(STAMP)  ## print a bearer token: make token USER=alice [ROLE=admin]
	@$(PY) -m local.token --user "$(USER)" --role "$(ROLE)"

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

load: $(BENCH_STAMP)  ## Locust against the local gateway: make load USERS=20 SPAWN_RATE=5 DURATION=30s
	$(PY) -m bench.load

cost-report: $(BENCH_STAMP)  ## measured cost per request per endpoint (terminal, CSV, JSON, HTML)
	$(PY) -m bench.cost run

bench: $(BENCH_STAMP)  ## cold start, warm cost and seed-design benchmarks, as ratios
	$(PY) -m bench.run

clean:
	rm -rf $(VENV) .local .pytest_cache
