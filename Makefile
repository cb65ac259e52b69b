# The two commands a newcomer needs:
#   make run   - the product on the embedded default (SQLite, local-memory cache, eager Celery)
#   make test  - the whole test suite against PostgreSQL and Redis at their local default addresses
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:5432/ticketing
TEST_REDIS_URL ?= redis://127.0.0.1:6379/9

.PHONY: run test lint venv chromium

$(BIN)/.installed: requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(BIN)/.installed

run: venv
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo
	@# No beat in the embedded default: this fires hold expiries and other timers.
	$(BIN)/python manage.py run_due_workflows --loop --verbosity 0 & trap 'kill $$!' EXIT INT TERM; \
	$(BIN)/python manage.py runserver 127.0.0.1:8000

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/mypy ticketing seating payments finance scanning workflows

# The browser tests drive Debian's chromium (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } \
	  || { echo "install Debian's chromium (apt-get install chromium) for the browser tests"; exit 1; }

test: venv chromium
	DATABASE_URL=$(TEST_DATABASE_URL) REDIS_URL=$(TEST_REDIS_URL) $(BIN)/pytest $(PYTEST_ARGS)

