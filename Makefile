# Parley: two commands on a fresh machine with Python >= 3.11 and make.
#   make run    install into .venv, migrate, seed the demo, serve on http://127.0.0.1:$(PORT)
#   make test   the whole test suite
#   make bench  the benchmarks (bench/, several minutes); make bench-quick: under two minutes
# DATABASE_URL / REDIS_URL, when set, select those servers instead of SQLite + embedded Redis.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: install run test lint format migrate shell clean bench bench-quick screenshots

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("Parley needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

run: $(STAMP)
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py serve --port $(PORT)

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# docs/screenshots/: the seeded demo in headless Chromium (room, room list, dashboard; desktop
# and phone; light and dark). Needs Debian's chromium, as the browser tests do.
screenshots: $(STAMP)
	PARLEY_SCREENSHOTS=docs/screenshots $(BIN)/python -m pytest -q tests/browser/test_screenshots.py

# The benchmarks never run in `make test`. BENCH_ARGS passes options, e.g.
#   make bench BENCH_ARGS="--scenarios fanout --fanout-sizes 1000"
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	@touch $@

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench --quick $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

migrate: $(STAMP)
	$(BIN)/python manage.py migrate --noinput

shell: $(STAMP)
	$(BIN)/python manage.py shell

clean:
	rm -rf $(VENV) var db.sqlite3 db.sqlite3-wal db.sqlite3-shm staticfiles .pytest_cache
