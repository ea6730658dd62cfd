# Two commands a new user needs: `make run` (the app on its built-in demo) and `make test`; `make bundle` for IT.
# Both create or reuse a virtual environment in .venv and install exactly what is pinned.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.installed
CONSTRAINTS := requirements/constraints.txt
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
export QT_API := pyside6

.PHONY: run test test-slow lint bench bundle bundle-test clean-venv

$(STAMP): pyproject.toml $(CONSTRAINTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --disable-pip-version-check $(TORCH_PINS)
	$(PIP) install --quiet --disable-pip-version-check -c $(CONSTRAINTS) -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	$(BIN)/endoreview --demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

test: $(STAMP) lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -n 2 -m "not slow and not gpu" --durations=15 -q

test-slow: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -m "slow or gpu" --durations=15 -q

bench: $(STAMP)
	for b in benchmarks/*.py; do $(BIN)/python $$b --small || exit 1; done

# The desktop folder dist/EndoReview, assembled from .venv (the pinned versions the tests use), and its tarball.
bundle: $(STAMP)
	packaging/build.sh --tarball

# What CI runs after the tests: build the folder and run it as a user would (packaging/README.md).
bundle-test: $(STAMP)
	packaging/build.sh
	packaging/smoke_test.sh dist/EndoReview

clean-venv:
	rm -rf $(VENV)
