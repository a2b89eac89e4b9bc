PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test bench clean chromium wrk web-vendor screenshot lock

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/memetrade serve

test: $(STAMP) chromium
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q

bench: $(STAMP) wrk
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev,bench]'
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) data

# Pin every installed package (dev and bench extras included) at its current version.
lock: $(STAMP)
	{ echo "# Versions the test suite last passed with (pip freeze of .venv); make installs with"; \
	  echo "# -c constraints.txt, so a fresh machine gets these. Refresh: make lock."; \
	  $(BIN)/python -m pip freeze --exclude-editable | grep -v '^memetrade=='; } > constraints.txt

# The browser tests (tests/e2e/test_dashboard.py) drive Debian's Chromium; a fresh machine
# gets it from apt (Playwright's own browser download is never used).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "installing chromium (apt-get) for the browser tests"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

# The REST benchmark (bench/rest.py) loads the server with wrk, from Debian like Chromium.
wrk:
	@command -v wrk >/dev/null 2>&1 || { \
	  echo "installing wrk (apt-get) for the REST benchmark"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }

# The dashboard's charting library, vendored so running memetrade needs no Node.js: refresh
# the committed standalone build from the npm registry at the pinned version.
LWC_VERSION := 5.2.1
WEB_VENDOR := src/memetrade/web/static/vendor
web-vendor:
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	npm pack --silent --pack-destination "$$tmp" lightweight-charts@$(LWC_VERSION) >/dev/null && \
	tar -xzf "$$tmp"/lightweight-charts-$(LWC_VERSION).tgz -C "$$tmp" && \
	cp "$$tmp"/package/dist/lightweight-charts.standalone.production.mjs $(WEB_VENDOR)/ && \
	cp "$$tmp"/package/LICENSE $(WEB_VENDOR)/LICENSE && \
	{ echo "lightweight-charts $(LWC_VERSION)"; \
	  (cd $(WEB_VENDOR) && sha256sum lightweight-charts.standalone.production.mjs); } \
	  > $(WEB_VENDOR)/VERSION && cat $(WEB_VENDOR)/VERSION

# Re-take docs/dashboard.png (and docs/dashboard-phone.png) from a live mock market.
screenshot: $(STAMP) chromium
	UPDATE_SCREENSHOTS=1 $(BIN)/pytest -q tests/e2e/test_dashboard.py -k screenshot
