.PHONY: up down setup test lint format bench clean status

up:
	scripts/up.sh

down:
	scripts/down.sh

status:
	bash -c 'source scripts/env.sh && exec .venv/bin/python -m workers status'

setup:
	scripts/setup.sh

test: setup
	.venv/bin/pytest -q -p no:cacheprovider

lint: setup
	.venv/bin/ruff check workers flink tests bench
	.venv/bin/ruff format --check workers flink tests bench
	.venv/bin/mypy
	.venv/bin/lint-imports

format: setup
	.venv/bin/ruff check --fix workers flink tests bench
	.venv/bin/ruff format workers flink tests bench

bench: setup
	.venv/bin/python bench/capture.py
	.venv/bin/python bench/limits.py
	.venv/bin/python bench/persons.py --profile
	.venv/bin/python bench/queries.py
	.venv/bin/python bench/flink.py

clean: down
	rm -rf var
