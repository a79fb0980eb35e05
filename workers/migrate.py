"""Applies sql/postgres/*.sql and sql/clickhouse/*.sql in name order, once each, recording what ran."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import structlog

if TYPE_CHECKING:
    from workers.clickhouse import ClickHouse

log = structlog.get_logger(__name__)

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


def _files(kind: str) -> list[Path]:
    return sorted((SQL_DIR / kind).glob("*.sql"))


async def migrate_postgres(dsn: str) -> list[str]:
    conn = await asyncpg.connect(dsn)
    try:
        # one migrator at a time, even with several workers starting together
        await conn.execute("SELECT pg_advisory_lock(4242)")
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
        applied = []
        for path in _files("postgres"):
            if path.name in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", path.name)
            applied.append(path.name)
        await conn.execute("SELECT pg_advisory_unlock(4242)")
    finally:
        await conn.close()
    log.info("postgres_migrated", applied=applied)
    return applied


async def migrate_clickhouse(ch: ClickHouse) -> list[str]:
    await ch.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (name String, applied_at DateTime DEFAULT now())"
        " ENGINE = ReplacingMergeTree ORDER BY name"
    )
    done = {r["name"] for r in await ch.query("SELECT name FROM schema_migrations")}
    applied = []
    for path in _files("clickhouse"):
        if path.name in done:
            continue
        for statement in _statements(path.read_text()):
            await ch.execute(statement)
        await ch.insert("schema_migrations", ["name"], [(path.name,)])
        applied.append(path.name)
    log.info("clickhouse_migrated", applied=applied)
    return applied


def _statements(text: str) -> list[str]:
    """Split a file on ';' at line ends (our SQL files keep one statement per ';')."""
    lines = [line for line in text.splitlines() if not line.strip().startswith("--")]
    statements = (s.strip().rstrip(";").strip() for s in "\n".join(lines).split(";\n"))
    return [s for s in statements if s]
