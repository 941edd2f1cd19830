# revrec-pipelines — the two commands of the README:
#   make demo   set up and run the demo on the bundled sample data
#   make test   set up (including the test servers and tools) and run the tests
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup demo test test-tools ui lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/revrec demo

# Servers and tools the integration tests talk to (sshd, Prism); see .ci/install-test-tools.sh.
test-tools: setup
	bash .ci/install-test-tools.sh

test: test-tools
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4

ui: setup
	mkdir -p data/dagster_home && cp -n dagster.yaml data/dagster_home/ 2>/dev/null || true
	DAGSTER_HOME=$(CURDIR)/data/dagster_home $(BIN)/dagster dev -w workspace.yaml

lint: setup
	$(BIN)/ruff check .

clean:
	rm -rf $(VENV) node_modules data .pytest_cache
