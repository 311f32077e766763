PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The Prefect server's port: `make server`, `make serve` and `make demo` agree on it (the UI asks the API there).
PREFECT_PORT ?= 4200
PREFECT_ENV := PREFECT_SERVER_API_HOST=127.0.0.1 PREFECT_SERVER_API_PORT=$(PREFECT_PORT)

.PHONY: install lint browser test test-fast demo server serve bench docs clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check olmix_core tasks flows deployments tests bench

# The UI test drives Debian's chromium headless; installed here when missing (as root, e.g. on a fresh CI machine).
browser:
	@command -v chromium >/dev/null || { test "$$(id -u)" = 0 && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } \
		|| { echo "chromium is missing: run 'sudo apt-get install -y chromium' (tests/orchestration/test_ui.py needs it)"; exit 1; }

test: install lint browser
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: install
	$(BIN)/python -m pytest -q -m "not slow"

demo: install
	$(PREFECT_ENV) $(BIN)/python -m deployments.demo

server: install
	$(PREFECT_ENV) $(BIN)/prefect server start

serve: install
	$(PREFECT_ENV) $(BIN)/python -m deployments.serve

docs: install
	$(BIN)/python -m olmix_core.docs_gen
	$(BIN)/python -m deployments.reference

bench: install
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .olmix
