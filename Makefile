# One virtual environment, made and filled by make itself: a fresh machine needs only python3, git and
# the machine's Debian PostgreSQL binaries (the tests start their own cluster).
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.floe-installed

.PHONY: test lint checkov demo devstack bench clean

# checkov pins many packages, so it lives in its own virtual environment (its own .gitignore keeps it
# out of git and ruff), never in $(VENV). The HCL parse and the policy-versus-code checks are pytest's.
CHECKOV_VERSION := 3.3.30
CHECKOV_STAMP   := .venv-checkov/.checkov-$(CHECKOV_VERSION)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

$(CHECKOV_STAMP):
	rm -rf .venv-checkov && python3 -m venv .venv-checkov && echo '*' > .venv-checkov/.gitignore
	.venv-checkov/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	touch $(CHECKOV_STAMP)

checkov: $(CHECKOV_STAMP)
	.venv-checkov/bin/checkov --directory terraform --framework terraform --compact --quiet --skip-download

# pytest exits 5 when it collected nothing: say so, and fail. The first run is the whole suite under the
# stand-in's `today` reading; the second repeats every test marked `readings` (the acceptance tests of
# tests/test_tick.py in both load modes, the hostile keys) under the seven other readings
# (docs/snowflake-standin.md, "Readings").
OTHER_READINGS := -m readings --standin-reading all -k "not today"
# The tests mostly wait on servers (about a third of a core each): four workers, each with its own
# servers, keep two cores busy. PYTEST_WORKERS=0 runs them in this process.
PYTEST_WORKERS ?= 4
PYTEST := $(BIN)/pytest -n $(PYTEST_WORKERS)

test: lint checkov
	$(PYTEST) || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; exit $$rc; }
	$(PYTEST) $(OTHER_READINGS) || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; exit $$rc; }

demo: $(STAMP)
	$(BIN)/floe demo

devstack: $(STAMP)
	$(BIN)/floe devstack up

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .venv-checkov build *.egg-info .mypy_cache .pytest_cache .ruff_cache
