"""python -m workers <name>

capture | persons | writer | query     run a worker (writer also serves the query API with chdb://)
migrate                               apply the Postgres and ClickHouse migrations, then exit
admin create-project --name N [--timezone TZ] [--token T] [--api-key K]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import orjson

from workers import runtime
from workers.settings import Settings, SettingsError


async def _capture(settings: Settings, stopping: asyncio.Event) -> None:
    from workers.capture.app import main

    await main(settings, stopping)


async def _persons(settings: Settings, stopping: asyncio.Event) -> None:
    from workers.persons import main

    await main(settings, stopping)


async def _writer(settings: Settings, stopping: asyncio.Event) -> None:
    from workers import query, writer
    from workers.clickhouse import connect

    ch = await connect(settings.clickhouse_url)
    try:
        jobs = [writer.main(settings, stopping, ch)]
        if settings.clickhouse_url.startswith("chdb://"):
            # only one process may open a chDB directory: the query API lives in the writer's process
            jobs.append(query.main(settings, stopping, ch))
        await _all_or_nothing(jobs)
    finally:
        await ch.close()


async def _query(settings: Settings, stopping: asyncio.Event) -> None:
    from workers import query
    from workers.clickhouse import connect

    if settings.clickhouse_url.startswith("chdb://"):
        raise SettingsError("CLICKHOUSE_URL is chdb://: the query API is served by the writer's process")
    ch = await connect(settings.clickhouse_url)
    try:
        await query.main(settings, stopping, ch)
    finally:
        await ch.close()


async def _all_or_nothing(jobs: list[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines together; if one fails, cancel the others and raise its error."""
    tasks = [asyncio.create_task(j) for j in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()


async def _migrate(settings: Settings) -> None:
    from workers.clickhouse import connect
    from workers.migrate import migrate_clickhouse, migrate_postgres

    await migrate_postgres(settings.postgres_dsn)
    ch = await connect(settings.clickhouse_url)
    try:
        await migrate_clickhouse(ch)
    finally:
        await ch.close()


async def _create_project(settings: Settings, args: argparse.Namespace) -> dict[str, object]:
    from workers.migrate import migrate_postgres
    from workers.projects import ensure_project

    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"--timezone {args.timezone!r}: not an IANA time zone name") from None
    await migrate_postgres(settings.postgres_dsn)
    conn = await asyncpg.connect(settings.postgres_dsn)
    try:
        project = await ensure_project(conn, args.name, args.token, args.api_key, args.timezone)
    finally:
        await conn.close()
    return {
        "id": project.id, "name": project.name, "api_token": project.api_token,
        "api_key": project.api_key, "timezone": project.timezone,
    }  # fmt: skip


WORKERS = {"capture": _capture, "persons": _persons, "writer": _writer, "query": _query}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    commands = parser.add_subparsers(dest="command", required=True)
    for name in WORKERS:
        commands.add_parser(name, help=f"run the {name} worker")
    commands.add_parser("migrate", help="apply migrations and exit")
    admin = commands.add_parser("admin", help="administration").add_subparsers(dest="action", required=True)
    create = admin.add_parser("create-project", help="create a project and print its token and API key")
    create.add_argument("--name", required=True)
    create.add_argument("--timezone", default="UTC")
    create.add_argument("--token", help="capture token (default: generated)")
    create.add_argument("--api-key", help="query API key (default: generated)")
    args = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"invalid setting: {exc}", file=sys.stderr)
        return 2
    if args.command in WORKERS:
        port = getattr(settings, f"{args.command}_metrics_port")
        return runtime.run(args.command, settings, WORKERS[args.command], port)
    runtime.configure_logging(settings.log_level)
    try:
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        else:
            print(orjson.dumps(asyncio.run(_create_project(settings, args))).decode())
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
