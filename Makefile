# Two commands matter: `make run` (the whole product on embedded Postgres + Redis) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST := $(BIN)/python -m pytest

.PHONY: install run test test-unit test-integration test-browser evals bench lint infra-down clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install            ## start Postgres+pgvector and Redis (embedded), migrate, seed the demo, serve API + worker
	$(BIN)/leadpilot run

test: install           ## the whole suite: unit, integration (real Postgres + Redis), browser, offline evals
	$(PYTEST) -q

test-unit: install
	$(PYTEST) -q -m "not integration and not browser and not evals"

test-integration: install
	$(PYTEST) -q -m integration

test-browser: install
	$(PYTEST) -q -m browser

evals: install
	$(PYTEST) -q -m evals

bench: install          ## every bench/*.py, one JSON line each, collected in bench/results.jsonl
	@for b in bench/*.py; do [ -e "$$b" ] || continue; $(BIN)/python $$b | tail -n 1 | tee -a bench/results.jsonl; done

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy services tools agents

infra-down: install
	$(BIN)/leadpilot infra down

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
