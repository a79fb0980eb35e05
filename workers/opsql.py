"""The operations statements (issue 10: lag, reconciliation, status): files of sql/postgres/ops/ and
sql/clickhouse/ops/, read once per process."""

from __future__ import annotations

from functools import cache
from pathlib import Path

SQL = Path(__file__).resolve().parent.parent / "sql"


@cache
def postgres(name: str) -> str:
    return (SQL / "postgres" / "ops" / name).read_text()


@cache
def clickhouse(name: str) -> str:
    """Without its comment lines (the query API's /api/sql wraps a statement as a subquery)."""
    lines = (SQL / "clickhouse" / "ops" / name).read_text().splitlines()
    return "\n".join(line for line in lines if not line.startswith("--"))
