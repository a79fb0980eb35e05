"""The dlq's Postgres statements, files of sql/postgres/dlq/ read once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path

STATEMENTS = Path(__file__).resolve().parents[2] / "sql" / "postgres" / "dlq"


@cache
def statement(name: str) -> str:
    return (STATEMENTS / name).read_text()
