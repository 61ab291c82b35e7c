# Two entry points for a fresh clone: `make demo` and `make test`. Everything else is a helper for them.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test lint unit bench eval-crowds eval-tracking simulate scale clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/derby-batch demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	cd playbooks && ../$(BIN)/ansible-playbook --syntax-check deploy.yml teardown.yml
	cd playbooks && ../$(BIN)/ansible-lint --profile production --offline deploy.yml teardown.yml

# One worker per core, a test file per worker: the playbook tests of one file build on each other's deploys.
unit: $(STAMP)
	$(BIN)/pytest -n auto --dist loadfile

test: lint unit

bench: $(STAMP)
	$(BIN)/derby-batch bench
	$(BIN)/python -m devtools.router_bench
	$(BIN)/python -m devtools.local_bench

# Crowded wide shots: recall, precision, boxes holding two people and CPU per frame, `--tiles auto` vs fixed grids.
eval-crowds: $(STAMP)
	$(BIN)/python -m devtools.eval_crowds

# The fault-injecting simulation of the whole pipeline: 500 seeded schedules (`make test` runs a few of them).
simulate: $(STAMP)
	$(BIN)/python -m devtools.sim

# Tracking, teams and chunk borders scored on generated match footage (IDF1, switches at borders, team accuracy).
eval-tracking: $(STAMP)
	$(BIN)/python -m devtools.eval_tracking

# The pipeline at scale against moto at Batch's SubmitJob quota: one video of 10,000 chunks, 100 videos of 100.
scale: $(STAMP)
	$(BIN)/python -m devtools.scale

clean:
	rm -rf $(VENV) derby-output .pytest_cache .mypy_cache .ruff_cache
