# The two commands the README promises: `make demo` and `make test`.
# Both work on a fresh Debian machine with Python 3.11+; `make test` needs root
# (or sudo) once, to install Debian's influxdb and chromium packages if missing.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PG_VERSION := $(shell ls /etc/postgresql 2>/dev/null | sort -n | tail -1)

.PHONY: install demo test lint services bench

$(BIN)/citywarn: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[dev]'
	touch $@

install: $(BIN)/citywarn

demo: install
	$(BIN)/citywarn run --demo

# The test suite starts its own Tansu broker and influxd; it needs the binaries,
# and a PostgreSQL server on 127.0.0.1:5432 (started here if it is installed but down).
# The console's browser tests drive Debian's Chromium (Playwright downloads no browser),
# with a small CJK font so their screenshots of the Chinese console show its glyphs.
services:
	@command -v influxd >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq influxdb >/dev/null; }
	@{ [ -x /usr/bin/chromium ] && fc-list :lang=zh | grep -q .; } || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null; }
	@pg_isready -q -h 127.0.0.1 -p 5432 || { [ -n "$(PG_VERSION)" ] && \
		$(SUDO) pg_ctlcluster --skip-systemctl-redirect $(PG_VERSION) main start && sleep 2; } || true
	@pg_isready -h 127.0.0.1 -p 5432

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy app ingest store models alerts config demo

test: install services lint
	$(BIN)/python -m pytest -q --durations=25

bench: install
	$(BIN)/python -m bench.ingest
