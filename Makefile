# One virtual environment, made and filled by make itself: a fresh machine needs only python3, git and
# the machine's Debian PostgreSQL binaries (the tests start their own cluster).
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.floe-installed

.PHONY: test lint demo devstack bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# pytest exits 5 when it collected nothing: say so, and fail.
test: lint
	$(BIN)/pytest || { rc=$$?; [ $$rc -ne 5 ] || echo "pytest collected no tests" >&2; exit $$rc; }

demo: $(STAMP)
	$(BIN)/floe demo

devstack: $(STAMP)
	$(BIN)/floe devstack up

bench: $(STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .pytest_cache .ruff_cache
