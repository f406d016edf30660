# The two commands: `make run` and `make test`. Both install what is missing first.
SHELL := /bin/bash
VENV := .venv/bin

.PHONY: run test setup setup-test messages lint

setup:
	@bash scripts/setup.sh run

setup-test:
	@bash scripts/setup.sh test

run: setup
	@bash scripts/run.sh

# Lint first: a formatting slip fails in seconds, not after the whole suite.
test: setup-test
	@$(MAKE) --no-print-directory lint
	@bash scripts/test.sh

# Formatting, lint rules, types, import contracts; stops at the first that fails. mypy imports
# the settings, which want a SECRET_KEY: any value does for reading them.
lint:
	$(VENV)/ruff format --check .
	$(VENV)/ruff check .
	SECRET_KEY=lint $(VENV)/mypy
	$(VENV)/lint-imports

messages:
	SECRET_KEY=build $(VENV)/python manage.py makemessages -l de --ignore=.venv --ignore=var
	SECRET_KEY=build $(VENV)/python manage.py compilemessages --ignore=.venv
