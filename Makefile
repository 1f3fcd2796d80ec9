# Two commands on a fresh machine: `make demo` (a real transfer with progress) and `make test`.
# Each creates .venv and installs what it needs on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NODE_DIR := tests/interop/node
# Material for MkDocs prints a banner about MkDocs 2.0 on every build; it is no warning of ours.
export NO_MKDOCS_2_WARNING := 1
JS_DIR := js
TUTORIAL_DIR := examples/tutorial

.PHONY: demo test lint node system web docs docs-serve dist-check clean

$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c requirements.lock -e '.[dev]'
	touch $(STAMP)

$(NODE_DIR)/node_modules/.package-lock.json: $(NODE_DIR)/package-lock.json
	cd $(NODE_DIR) && npm ci --no-audit --no-fund

$(JS_DIR)/node_modules/.package-lock.json: $(JS_DIR)/package-lock.json
	cd $(JS_DIR) && npm ci --no-audit --no-fund

$(TUTORIAL_DIR)/node_modules/.package-lock.json: $(TUTORIAL_DIR)/package-lock.json
	cd $(TUTORIAL_DIR) && npm ci --no-audit --no-fund

node: $(NODE_DIR)/node_modules/.package-lock.json $(JS_DIR)/node_modules/.package-lock.json \
	$(TUTORIAL_DIR)/node_modules/.package-lock.json

# The web page ships socket.io-client's browser bundle (no CDN), vendored build output of the npm
# package pinned in js/package-lock.json: copy it into the package after changing the lock
# (tests/test_web_assets.py fails while it differs). Our own client needs no copy: the page
# serves js/sio-stream.js in a checkout, and the wheel's build copies it (setup.py).
web: $(JS_DIR)/node_modules/.package-lock.json
	cp $(JS_DIR)/node_modules/socket.io-client/dist/socket.io.esm.min.js sio_stream/cli/web/

# Debian packages the suite runs for real (redis-server, chromium), installed when missing.
system:
	bash .ci/system-packages

demo: $(STAMP)
	$(BIN)/sio-stream demo $(ARGS)

test: $(STAMP) node system
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check sio_stream tests benchmarks examples docs/_ext .ci/check_dist.py setup.py
	$(BIN)/ruff format --check sio_stream tests benchmarks examples docs/_ext .ci/check_dist.py setup.py
	$(BIN)/mypy

# The documentation site, into site/ (warnings are errors: a broken link, anchor or reference fails).
docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

# Build the wheel and the sdist, check them with twine, install each into a fresh venv.
dist-check: $(STAMP)
	$(BIN)/python .ci/check_dist.py

clean:
	rm -rf $(VENV) $(NODE_DIR)/node_modules $(TUTORIAL_DIR)/node_modules site
