# Two commands on a fresh machine: `make demo` (a real transfer with progress) and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DIR := tests/interop/node
JS_DIR := js

.PHONY: demo test lint node web chromium clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund

$(JS_DIR)/node_modules/.package-lock.json: $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund

node: $(NODE_DIR)/node_modules/.package-lock.json $(JS_DIR)/node_modules/.package-lock.json

# The web page ships the JavaScript client and socket.io-client's browser bundle (no CDN):
# copy them into the package after changing js/sio-stream.js or js/package-lock.json
# (tests/test_web_assets.py fails while the copies differ).
web: $(JS_DIR)/node_modules/.package-lock.json
	cp $(JS_DIR)/sio-stream.js $(JS_DIR)/sio-stream.d.ts sio_stream/web/
	cp $(JS_DIR)/node_modules/socket.io-client/dist/socket.io.esm.min.js sio_stream/web/

# The browser tests drive Debian's chromium (no browser download): .ci/run installs it.
chromium:
	@command -v chromium >/dev/null || { echo "make test: chromium is missing; the browser tests need it: apt-get install -y chromium (.ci/run does this)" >&2; exit 1; }

demo: $(STAMP)
	$(BIN)/sio-stream demo $(ARGS)

test: $(STAMP) node chromium
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check sio_stream tests benchmarks examples
	$(BIN)/ruff format --check sio_stream tests benchmarks examples
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules
