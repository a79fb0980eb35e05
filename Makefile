.PHONY: up down setup test lint format bench clean status web

# Node.js from .venv/bin when scripts/setup.sh had to install it there (the machine's was missing or too old)
export PATH := $(CURDIR)/.venv/bin:$(PATH)

up:
	scripts/up.sh

down:
	scripts/down.sh

status:
	bash -c 'source scripts/env.sh && exec .venv/bin/python -m workers status'

setup:
	scripts/setup.sh

test: setup
	cd web && npm test --silent
	.venv/bin/pytest -q -p no:cacheprovider

lint: setup
	.venv/bin/ruff check workers flink tests bench
	.venv/bin/ruff format --check workers flink tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports
	cd web && npm run --silent typecheck

format: setup
	.venv/bin/ruff check --fix workers flink tests bench
	.venv/bin/ruff format workers flink tests bench

bench: setup
	.venv/bin/python bench/capture.py
	.venv/bin/python bench/limits.py
	.venv/bin/python bench/persons.py --profile
	.venv/bin/python bench/queries.py
	.venv/bin/python bench/flink.py

web:
	scripts/web.sh

clean: down
	rm -rf var
