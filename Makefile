# The two Quickstart commands are `make demo` and `make test`; each sets up what it needs.
.PHONY: setup setup-dev demo test test-quick lint bench

VENV := .venv/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

setup:
	@scripts/bootstrap.sh

setup-dev:
	@scripts/bootstrap.sh --dev

demo: setup
	$(VENV)/atlas demo

lint: setup-dev
	$(VENV)/ruff check src tests benchmarks
	$(VENV)/ruff format --check src tests benchmarks
	$(VENV)/mypy

test: lint
	$(VENV)/python -m pytest -q --durations=20

# While developing: everything but the slow tests (real models, real media).
test-quick: setup-dev
	$(VENV)/python -m pytest -q -m "not slow"

bench: setup-dev
	@for script in benchmarks/*.py; do echo "== $$script"; $(VENV)/python $$script || exit 1; done
