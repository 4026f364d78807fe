# Two commands on a fresh machine: `make run` and `make test`. Both install what they need.
SHELL := /bin/bash
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& echo $$p && break; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-10)
HOST ?= 127.0.0.1
PORT ?= 8000
WORKERS ?= 1
DATA_DIR ?= var
PYTEST_ARGS ?=

.PHONY: install run reset serve test test-unit test-fast clean loadtest bench lint soak messages
.PHONY: hostile
.PHONY: image image-test image-tools

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11+ is required (python3.11 / python3 on PATH)"; exit 1; }
	@echo "==> installing into $(VENV) with $(PYTHON)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -m pip install -q -e '.[test]' 2>&1 | grep -v '^WARNING: Location' || true
	@$(BIN)/python -c 'import gateway.app, auction.redis.book, persistence.store' \
		|| { echo "install failed"; exit 1; }
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

## Start the whole product with demo data: private durable Redis + SQLite file in ./var
## (credentials and data survive restarts; every start opens fresh demo rounds with the
## rules in force, e.g. IGE_ROUND_DURATION=PT2M, where none is open with them)
run: install
	$(BIN)/ige demo --host $(HOST) --port $(PORT) --workers $(WORKERS) --data-dir $(DATA_DIR)

## Start over: the demo's data and credentials in ./var removed, then as make run
reset: install
	$(BIN)/ige demo --fresh --host $(HOST) --port $(PORT) --workers $(WORKERS) --data-dir $(DATA_DIR)

## Run the server against REDIS_URL / DATABASE_URL (production style)
serve: install
	$(BIN)/ige serve --host $(HOST) --port $(PORT) --workers $(WORKERS)

## The whole suite: unit, contract, integration (SQLite, and PostgreSQL when
## TEST_DATABASE_URL is set), end to end with real server processes and crash tests.
## TEST_WORKERS pytest-xdist processes (2; 0 runs in this process) share it out a file at a
## time: a file's tests stay in one process, in order, with its module fixtures (servers,
## browsers) started once; each process claims its own Redis database and pub/sub prefix,
## its own tmp directory and free ports (tests/conftest.py), so the two do not meet. Files go
## out in collection order (--no-loadscope-reorder): the long ones (browser, the state machine,
## end to end) first, the many short unit files last to even out the two processes' ends.
TEST_WORKERS ?= 2
test: install
	$(BIN)/python -m pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile \
		--no-loadscope-reorder $(PYTEST_ARGS)

## The fast part of the suite: pure units, the use cases on the reference book, the contracts
test-fast: install
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit tests/contract

test-unit: test-fast

## The long versions of the reliability campaign (RELIABILITY.md): hostile input scaled up, the
## crash and fault tests (a minute of steady offers around each kill and outage)
soak: install
	IGE_SOAK=1 $(BIN)/python -m pytest -q -p no:cacheprovider tests/e2e/test_hardening.py \
		tests/e2e/test_crash.py tests/e2e/test_faults.py tests/e2e/test_campaign_stream.py \
		tests/integration/test_close_exactly_once.py \
		tests/contract/test_book_state_machine.py $(PYTEST_ARGS)

## Guard rails: ruff, mypy --strict on the product code, and the import-linter contracts
## (the layers of docs/ARCHITECTURE.md)
lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy --strict auction applications persistence usecases gateway loadtests
	$(BIN)/lint-imports

## The pages' messages: extract them (babel.cfg) and merge them into the catalogues
## (gateway/locales/<lang>/LC_MESSAGES/messages.po); then translate what is new in tr
messages: install
	@mkdir -p var
	$(BIN)/pybabel -q extract -F babel.cfg -k N_ -o var/messages.pot .
	$(BIN)/pybabel -q update -i var/messages.pot -d gateway/locales -N -w 100

clean:
	rm -rf $(VENV) var .pytest_cache

## A bounded headless locust run (own server + private Redis unless BASE_URL is given);
## LOAD_USERS, LOAD_RUN_TIME, LOAD_SHAPE=steady|ramp|spike; reports in var/loadtest/
loadtest: install
	rm -rf var/loadtest/stack
	$(BIN)/python -m loadtests.run_loadtest

## The benchmark: baseline vs bid path, ack p99 at 2,000/s, push latency with 2,000
## WebSockets, mass close, memory; writes BENCHMARKS.md (about 10 minutes)
bench: install
	@command -v wrk >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ] \
		&& apt-get install -y -q wrk >/dev/null; } || { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	@command -v wrk >/dev/null 2>&1 || { echo "make bench needs wrk (apt-get install wrk)"; exit 1; }
	$(BIN)/python -m loadtests.bench

## Load held (RELIABILITY.md section 4): the good clients' latency on a private stack while a
## 21,000-connection flood, a non-reading WebSocket swarm and a token brute force run, one at a
## time and at once; results in var/hostile-results.json (about 6 minutes; options:
## python -m loadtests.hostile --help, or HOSTILE_* variables)
hostile: install
	$(BIN)/python -m loadtests.hostile

## The container image (Dockerfile) with Docker, else Podman: IMAGE (ige:latest), IMAGE_BASE
## (the Dockerfile's default, python:3.11-slim-bookworm)
IMAGE ?= ige:latest
IMAGE_BASE ?=
CONTAINER = $(shell docker info >/dev/null 2>&1 && echo docker || echo podman)
image:
	$(CONTAINER) build $(if $(filter podman,$(CONTAINER)),--format docker) \
		$(if $(IMAGE_BASE),--build-arg BASE=$(IMAGE_BASE)) -t $(IMAGE) .

## The image built on a Debian base made here (debootstrap, no registry) and started from its
## own filesystem against a private Redis and SQLite: /readyz, a bank round over HTTP, the
## non-root user, the read-only root, the health check (tests/image). Root and podman needed
## (make image-tools); a few minutes the first time, then about 30 s.
image-test: install
	deploy/image-test.sh

## podman and debootstrap from Debian's packages, if missing (root)
image-tools:
	@command -v podman >/dev/null && command -v debootstrap >/dev/null || { \
		test "$$(id -u)" = 0 && command -v apt-get >/dev/null \
		|| { echo "image-tools: no podman or debootstrap, and no apt-get as root"; exit 1; }; \
		echo "==> installing podman and debootstrap"; \
		{ apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends podman debootstrap; } >/tmp/ige-image-tools.log 2>&1 \
		|| { tail -5 /tmp/ige-image-tools.log; exit 1; }; }
