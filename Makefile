# Two commands matter: `make run` (the whole product on embedded Postgres + Redis) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
PYTEST := $(BIN)/python -m pytest

.PHONY: install run test test-unit test-integration test-browser test-faults evals evals-full evals-ci bench lint infra-down clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

run: install            ## start Postgres+pgvector and Redis (embedded), migrate, seed the demo, serve API + worker
	$(BIN)/leadpilot run

test: install           ## the whole suite: unit, integration (real Postgres + Redis), browser, faults, evals
	$(PYTEST) -q -n 2 --dist loadfile  # two processes, a test file each at a time (own databases, own Redis db)

test-unit: install
	$(PYTEST) -q -m "not integration and not browser and not evals"

test-integration: install
	$(PYTEST) -q -m integration

test-browser: install
	$(PYTEST) -q -m browser

test-faults: install    ## issue 20's fault suite alone: a private product killed and restarted under signed SMS load
	$(PYTEST) -q -m faults

evals: install          ## the offline scenario suite at k=1 against evals/baseline.json (also part of `make test`)
	$(PYTEST) -q -m evals

evals-full: install     ## every scenario 4 times; pass^1..pass^4 per capability, report.json + report.html in evals/out/
	$(BIN)/leadpilot eval run --k 4 --report evals/out

evals-ci: install       ## k=1 from the CLI, failing when a capability drops below its floor in evals/baseline.json
	$(BIN)/leadpilot eval run --k 1 --report evals/out --check-floor

bench: install          ## every bench/*.py, one JSON line each, collected in bench/results.jsonl
	@for b in bench/*.py; do [ -e "$$b" ] || continue; $(BIN)/python $$b | tail -n 1 | tee -a bench/results.jsonl; done

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy services tools agents

infra-down: install
	$(BIN)/leadpilot infra down

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache
