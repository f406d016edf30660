# The two commands: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: run test setup setup-test messages lint check-dovecot-24

setup:
	@bash scripts/setup.sh run

setup-test:
	@bash scripts/setup.sh test

run: setup
	@bash scripts/run.sh

# Lint first: a formatting slip fails in seconds, not after the whole suite; then Dovecot 2.4
# (Debian 13) against the rendered configuration, about a minute, before the suite on 2.3.
test: setup-test
	@$(MAKE) --no-print-directory lint
	@$(MAKE) --no-print-directory check-dovecot-24
	@bash scripts/test.sh

# PostgreSQL first: without it the check would skip its pgsql half.
check-dovecot-24:
	@bash scripts/services.sh
	@bash scripts/check-dovecot-2.4.sh > var/check-dovecot-2.4.log 2>&1 \
	  && echo "Dovecot 2.4: every check passed (var/check-dovecot-2.4.log)" \
	  || { tail -n 60 var/check-dovecot-2.4.log; \
	       echo "Dovecot 2.4 check FAILED: see var/check-dovecot-2.4.log" >&2; exit 1; }

# Formatting, lint rules, types, import contracts; stops at the first that fails. mypy imports
# the settings, which want a SECRET_KEY: any value does for reading them.
lint:
	$(VENV)/ruff format --check .
	$(VENV)/ruff check .
	SECRET_KEY=lint $(VENV)/mypy
	$(VENV)/lint-imports

messages:
	SECRET_KEY=build $(VENV)/python manage.py makemessages -l de --ignore=.venv --ignore=var --ignore=.cache
	SECRET_KEY=build $(VENV)/python manage.py compilemessages --ignore=.venv --ignore=.cache
