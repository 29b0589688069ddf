# Two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# Two pytest workers (one per core here): most end-to-end tests wait on real-time calls, so two
# files at once halve the wall time; each file stays on one worker (its fixtures are shared).
TEST_WORKERS ?= 2

.PHONY: demo demo-campaign test lint install clean serve browser proxy

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The tester's HTML report is checked in headless Chromium: Debian's package, installed when
# missing and this is root on a Debian machine (elsewhere the browser test says how, and skips).
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; } \
	  || echo "note: no chromium; the report's browser test will skip (apt-get install chromium)"

# The replica tests run three bridges behind Debian's nginx (round robin, WebSocket upgrade);
# installed when missing and this is root on a Debian machine (elsewhere those tests say how).
proxy:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { [ "$$(id -u)" = 0 ] \
	  && command -v apt-get >/dev/null 2>&1 \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null; } \
	  || echo "note: no nginx; the replica tests will fail (apt-get install nginx-light)"

demo: $(STAMP)
	$(BIN)/ivr-bridge demo --out demo-out

demo-campaign: $(STAMP)
	$(BIN)/ivr-bridge demo campaign

serve: $(STAMP)
	$(BIN)/ivr-bridge serve

lint: $(STAMP)
	$(BIN)/ruff check ivr_bridge tests benchmarks
	$(BIN)/ruff format --check ivr_bridge tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy ivr_bridge

test: $(STAMP) browser proxy
	$(BIN)/ruff check ivr_bridge tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy ivr_bridge
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) demo-out test-out .pytest_cache
