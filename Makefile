# The shop's developer commands. Everything runs from .venv, created on first use.
PYTHON_BIN ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
USER ?= alice
ROLE ?= customer

.PHONY: up top replay down test install promtool seed token manifests migrate bench load cost-report smoke deploy-check clean

up: $(STAMP)  ## run the whole shop locally at http://127.0.0.1:8080: make up [SCALING=knative]
	SCALING='$(SCALING)' $(PY) -m local.run

top: $(STAMP)  ## live per-function scaling of `make up SCALING=knative`, every second
	$(PY) -m local.top

replay: $(STAMP)  ## a short trace against `make up SCALING=knative`, observed vs the KPA model: make replay [TRACE=…]
	$(PY) -m bench.replay $(if $(TRACE),--trace '$(TRACE)') $(REPLAY_ARGS)

down: $(STAMP)  ## stop this checkout's shop: a running `make up`, or what one that died left behind
	$(PY) -m local.run down

TEST_WORKERS ?= 2
test: $(STAMP) promtool pgbouncer  ## install and run every test, in TEST_WORKERS processes (one test file each at a time)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON_BIN) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# promtool (Debian's prometheus package) checks the alert rules in the test suite, and its prometheus the cost
# report's PromQL mode; amtool and alertmanager (prometheus-alertmanager) check and run the Alertmanager config.
promtool:
	@command -v promtool >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; }
	@command -v amtool >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null; }

# Debian's pgbouncer: the tests run the orders suite through it (tests/stores), as knative/stores deploys it.
.PHONY: pgbouncer
pgbouncer:
	@command -v pgbouncer >/dev/null || [ -x /usr/sbin/pgbouncer ] || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null; }

manifests: $(STAMP)  ## regenerate knative/, local/docker-compose.yml and openapi.json from the route table
	$(PY) -m local.generate

# A typed Python client from openapi.json, as a caller makes one (the tests make and use one too).
.PHONY: client
client: $(STAMP)  ## generate a Python client package: make client [OUT=build/shop_client]
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/openapi-python-client generate --path openapi.json \
	  --meta none --overwrite --output-path "$(or $(OUT),build/shop_client)"

seed: $(STAMP)  ## add the demo products that are missing
	$(PY) -m local.seed

migrate: $(STAMP)  ## the deploy step: SQL migrations to DATABASE_URL, catalog indexes to MONGODB_URL
	$(PY) -m local.migrate

token: $(STAMP)  ## print a bearer token: make token USER=alice [ROLE=admin] [TTL=seconds, default a day]
	@$(PY) -m local.token --user "$(USER)" --role "$(ROLE)" $(if $(TTL),--ttl "$(TTL)")

BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

load: $(BENCH_STAMP)  ## Locust against the local gateway: make load USERS=20 SPAWN_RATE=5 DURATION=30s
	$(PY) -m bench.load

cost-report: $(BENCH_STAMP)  ## measured cost per request per endpoint (terminal, CSV, JSON, HTML)
	$(PY) -m bench.cost run

smoke: $(STAMP)  ## the whole journey against a running shop: make smoke BASE_URL=https://shop.example.com
	@test -n "$(BASE_URL)" || { echo "usage: make smoke BASE_URL=http://127.0.0.1:8080 [ADMIN_TOKEN=… USER_TOKEN=…]"; exit 2; }
	$(PY) -m local.smoke "$(BASE_URL)"

# Server-side validation of knative/ by a real API server (CRDs, admission webhooks). Skipped, saying why, when
# kubectl (Debian's kubernetes-client, installed here when apt can), a recent enough one, or a cluster is missing;
# never part of `make test`.
deploy-check:
	@command -v kubectl >/dev/null || ! command -v apt-get >/dev/null || [ "$$(id -u)" != 0 ] || \
	  { echo "installing kubectl (Debian's kubernetes-client)"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends kubernetes-client >/dev/null; } || true
	@minor=$$(kubectl version --client -o json 2>/dev/null | sed -n 's/.*"minor": *"\([0-9]*\).*/\1/p' | head -n 1); \
	if ! command -v kubectl >/dev/null; then \
	  echo "deploy-check SKIPPED: kubectl is not installed (apt-get install kubernetes-client) - nothing was validated"; \
	elif [ "$${minor:-0}" -lt 27 ]; then \
	  echo "deploy-check SKIPPED: kubectl 1.$$minor is older than 1.27, the oldest whose kustomize the README vouches for"; \
	  echo "with the kustomization's replacements (Debian 12's kubernetes-client is 1.20: install kubectl from pkgs.k8s.io)"; \
	elif ! reason=$$(timeout 20 kubectl cluster-info --request-timeout=5s 2>&1 >/dev/null); then \
	  echo "deploy-check SKIPPED: no cluster answers ($$(echo "$$reason" | tail -n 1)) - nothing was validated"; \
	else \
	  echo "kubectl apply -k knative/ --dry-run=server  (context: $$(kubectl config current-context))"; \
	  kubectl apply -k knative/ --dry-run=server; \
	fi

bench: $(BENCH_STAMP)  ## cold start, warm cost and seed-design benchmarks, as ratios
	$(PY) -m bench.run

.PHONY: bench-pooler
bench-pooler: $(STAMP) pgbouncer  ## what DATABASE_POOLER=transaction costs per statement, direct and through PgBouncer
	$(PY) -m bench.pooler

.PHONY: profile
profile: $(BENCH_STAMP)  ## flame graph of one function under load: make profile FUNCTION=catalog-get-product
	@test -n "$(FUNCTION)" || { echo "usage: make profile FUNCTION=catalog-get-product [PROFILE_SECONDS=20]"; exit 2; }
	$(PY) -m bench.profile "$(FUNCTION)"

.PHONY: startup
startup: $(BENCH_STAMP)  ## where one function's cold start goes, phase by phase, next to hello: make startup FUNCTION=…
	@test -n "$(FUNCTION)" || { echo "usage: make startup FUNCTION=catalog-get-product [STARTUP_RUNS=5]"; exit 2; }
	$(PY) -m bench.startup "$(FUNCTION)"

.PHONY: bench-catalog
bench-catalog: $(BENCH_STAMP)  ## a category page at 1k and 100k products: the function's CPU less its client's waiting, the server's
	$(PY) -m bench.catalog

.PHONY: simulate
simulate: $(STAMP)  ## a day through Knative's KPA, Cloud Run and always-on: make simulate [TRACE=file.csv] [SCALE=10]
	$(PY) -m bench.sim $(if $(TRACE),--trace '$(TRACE)') $(if $(SCALE),--scale '$(SCALE)') $(SIMULATE_ARGS)

clean:
	rm -rf $(VENV) .venv-runtime .local .pytest_cache
