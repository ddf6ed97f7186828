# Every target builds .venv from pyproject.toml on first use, so a fresh clone needs only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench mutate deploy-config lock clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/cover-consumer demo

lint: $(STAMP)
	$(BIN)/ruff check consumer tests
	$(BIN)/ruff format --check consumer tests
	$(BIN)/mypy consumer tests
	$(BIN)/lint-imports
	$(BIN)/hadolint deploy/Dockerfile
	$(BIN)/python -m consumer.devtools.promrules

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m consumer.devtools.bench

# Mutation testing of the engine, retry policy, guard, quota and circuit against the unit
# tests ([tool.mutmut] in pyproject.toml); fails under 90 % killed per module. Not part of
# `make test`: it takes minutes. Starts afresh: mutmut's cache would keep the verdicts of
# mutants whose function did not change even when the tests did.
mutate: $(STAMP)
	rm -rf mutants
	$(BIN)/mutmut run
	$(BIN)/python -m consumer.devtools.mutation

# requirements.lock: the runtime dependencies, pinned with the hashes of every file PyPI has
# for them; deploy/Dockerfile installs exactly that (--require-hashes). Rerun after changing
# [project] dependencies (a unit test fails until then). From PyPI alone: this machine's pip
# configuration (local indexes, find-links, constraints) is ignored.
lock: $(STAMP)
	env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL -u PIP_CONSTRAINT \
	  PIP_CONFIG_FILE=/dev/null $(BIN)/pip-compile --quiet --generate-hashes --strip-extras \
	  --no-emit-index-url --no-emit-find-links --output-file requirements.lock pyproject.toml

# The base kustomization's copy of the config (kustomize reads nothing outside its root);
# `make test` fails while the two differ.
deploy-config:
	cp config/consumer.yaml deploy/k8s/base/consumer.yaml

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache mutants
