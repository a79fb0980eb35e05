"""Cohorts (issue 12): sets of persons, static (a list of distinct ids) or dynamic (person-property and
behavioural filters), computed into ClickHouse's `cohort_people` and used by insights' filters and trends'
breakdowns.

A computation holds the cohort's Postgres row lock, writes version v + 1 whole in ClickHouse (INSERT ...
SELECT), then records v + 1 in Postgres; readers bind the version from Postgres, so they never see a half
written one. Older versions are deleted afterwards, in the background (a lightweight DELETE takes about as
long as the computation); rows a failed computation left are deleted by the next one, before it inserts.
A failed computation leaves the previous version.
`GET|POST /api/cohorts`, `GET|PATCH|DELETE /api/cohorts/{id}`, `POST /api/cohorts/{id}/refresh`,
`GET /api/cohorts/{id}/persons`; dynamic cohorts are also recomputed every COHORT_REFRESH_SECONDS.
Postgres statements: sql/postgres/cohorts/; ClickHouse statements: sql/clickhouse/queries/cohort_*.sql.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import io
import time
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

import asyncpg
import orjson
import structlog
from aiohttp import web

from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable
from workers.metrics import COHORT_COMPUTATION_SECONDS, COHORT_COMPUTATIONS
from workers.projects import Project
from workers.query import sql
from workers.query.definitions import DEFINITIONS_KEY, UnknownName
from workers.query.http import (
    CLICKHOUSE_KEY,
    POOL_KEY,
    SETTINGS_KEY,
    error,
    json_response,
    project_endpoint,
    refused,
    runner,
)
from workers.query.sql import BadRequest, Filter, Name

log = structlog.get_logger(__name__)
MAX_FILTERS = 50
MAX_DISTINCT_IDS = 100_000
MAX_MIN_COUNT, MAX_DAYS = 10_000, 3650
PERSONS_LIMIT, PERSONS_MAX_LIMIT = 100, 1000
STALE_BATCH = 20
MATCHES = ("all", "any")


@cache
def _postgres(name: str) -> str:
    return (sql.SQL / "postgres" / "cohorts" / name).read_text()


# definitions


def _name(body: dict[str, Any]) -> str:
    name = body.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or "\x00" in name:
        raise BadRequest("name: required, 1 to 200 characters, no NUL")
    return name.strip()


def _distinct_ids(raw: object) -> list[str]:
    if not isinstance(raw, list) or len(raw) > MAX_DISTINCT_IDS:
        raise BadRequest(f"distinct_ids: a list of at most {MAX_DISTINCT_IDS} distinct ids")
    for n, distinct_id in enumerate(raw):
        if not isinstance(distinct_id, str) or not distinct_id or len(distinct_id) > 200:
            raise BadRequest(f"distinct_ids[{n}]: a distinct id, 1 to 200 characters")
        if "\x00" in distinct_id:
            raise BadRequest(f"distinct_ids[{n}]: must not contain NUL (\\u0000)")
    return sorted(set(raw))


def csv_distinct_ids(text: str) -> list[str]:
    """The first column of each non-blank line; a first cell `distinct_id` is a header."""
    ids = []
    for n, row in enumerate(csv.reader(io.StringIO(text))):
        cell = row[0].strip() if row else ""
        if cell and not (n == 0 and cell == "distinct_id"):
            ids.append(cell)
    return ids


def _behavioral(f: dict[str, Any], field: str) -> dict[str, Any]:
    event, did = f.get("event"), f.get("did", True)
    min_count, days = f.get("min_count", 1), f.get("days")
    if not isinstance(event, str) or not event:
        raise BadRequest(f"{field}.event: required, an event name")
    if not isinstance(did, bool):
        raise BadRequest(f"{field}.did: true or false")
    for key, value, high in (("min_count", min_count, MAX_MIN_COUNT), ("days", days, MAX_DAYS)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= high:
            raise BadRequest(f"{field}.{key}: an integer from 1 to {high}")
    return {"type": "behavioral", "event": event, "did": did, "min_count": min_count, "days": days}


def definition(body: Mapping[str, Any]) -> dict[str, Any]:
    """A dynamic cohort's {match, filters}, normalized (defaults filled in); a 400 names the field."""
    match, raw = body.get("match", "all"), body.get("filters")
    if match not in MATCHES:
        raise BadRequest(f"match: {match!r} is not one of {', '.join(MATCHES)}")
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_FILTERS:
        raise BadRequest(f"filters: a list of 1 to {MAX_FILTERS} filters")
    filters = []
    for n, f in enumerate(raw):
        field = f"filters[{n}]"
        if isinstance(f, dict) and f.get("type") == "behavioral":
            filters.append(_behavioral(f, field))
            continue
        parsed = sql.one_filter(f, field, kinds=("person", "behavioral"))
        filters.append(
            {"type": "person", "property": parsed.property, "op": parsed.op, "value": parsed.value}
        )
    return {"match": match, "filters": filters}


def names(definition: dict[str, Any]) -> list[Name]:
    return [
        ("event", f"filters[{n}].event", f["event"])
        if f["type"] == "behavioral"
        else ("person_property", f"filters[{n}].property", f["property"])
        for n, f in enumerate(definition["filters"])
    ]


# computing


def dynamic_sql(definition: dict[str, Any], params: dict[str, Any]) -> str:
    """The INSERT of a dynamic cohort's members; params holds computed_at."""
    conditions = []
    for n, f in enumerate(definition["filters"]):
        if f["type"] == "person":
            conditions.append(sql.filter_sql((Filter(f["property"], f["op"], f.get("value"), "person"),),
                                             f"p{n}", params))  # fmt: skip
            continue
        key = f"b{n}"
        params[f"{key}_event"], params[f"{key}_min"] = f["event"], f["min_count"]
        params[f"{key}_since"] = params["computed_at"] - timedelta(days=f["days"])
        did = sql.statement("cohort_behavior.sql", {**sql.after_merges(), "key": key})
        conditions.append(f"id {'IN' if f['did'] else 'NOT IN'} ({did})")
    joined = (" AND " if definition["match"] == "all" else " OR ").join(f"({c})" for c in conditions)
    return sql.statement("cohort_dynamic.sql", {"conditions": joined})


async def compute(pool: asyncpg.Pool, ch: ClickHouse, cohort_id: int) -> None:
    """Computes the cohort's next version and records it; a ClickHouse refusal is logged and re-raised,
    the previous version staying the cohort's."""
    started = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_postgres("lock.sql"), cohort_id)
        if row is None:  # deleted meanwhile
            return
        version = row["version"] + 1
        params: dict[str, Any] = {"project_id": row["project_id"], "cohort_id": cohort_id, "version": version,
                                  "computed_at": datetime.now(UTC)}  # fmt: skip
        unmatched = 0
        try:
            leftovers = await ch.query(
                sql.fragment("cohort_leftovers.sql"), {**params, "keep": row["version"]}
            )
            if leftovers[0]["leftover"]:
                await ch.execute(sql.fragment("cohort_prune.sql"), {**params, "keep": row["version"]})
            if row["kind"] == "static":
                ids = [r["distinct_id"] for r in await conn.fetch(_postgres("ids.sql"), cohort_id)]
                params["distinct_ids"] = ids
                await ch.execute(sql.fragment("cohort_static.sql"), params)
                matched = await ch.query(sql.fragment("cohort_matched.sql"), params)
                unmatched = len(ids) - int(matched[0]["matched"])
            else:
                await ch.execute(dynamic_sql(orjson.loads(row["definition"]), params), params)
            count = int((await ch.query(sql.fragment("cohort_count.sql"), params))[0]["count"])
        except (ClickHouseError, ClickHouseUnavailable) as exc:
            COHORT_COMPUTATIONS.labels("error").inc()
            log.error("cohort_computation_failed", cohort_id=cohort_id, error=str(exc))
            await conn.execute(_postgres("release.sql"), cohort_id)
            raise
        await conn.execute(
            _postgres("computed.sql"), cohort_id, version, count, unmatched, params["computed_at"]
        )
    COHORT_COMPUTATIONS.labels("ok").inc()
    COHORT_COMPUTATION_SECONDS.observe(time.perf_counter() - started)
    pruning = asyncio.create_task(_prune_older(ch, {**params, "keep": version}))
    _PRUNING.add(pruning)
    pruning.add_done_callback(_PRUNING.discard)


_PRUNING: set[asyncio.Task[None]] = set()  # the background deletions of older versions


async def _prune_older(ch: ClickHouse, params: dict[str, Any]) -> None:
    """Deletes a cohort's versions older than `keep` (never a newer one: a later computation's rows)."""
    try:
        await ch.execute(sql.fragment("cohort_prune_older.sql"), params)
    except (ClickHouseError, ClickHouseUnavailable) as exc:  # never read; the next computation prunes them
        log.warning("cohort_prune_failed", cohort_id=params["cohort_id"], error=str(exc))


async def pruned() -> None:
    """Waits for the background deletions started so far."""
    while _PRUNING:
        await asyncio.gather(*_PRUNING, return_exceptions=True)


async def refresh_stale(pool: asyncpg.Pool, ch: ClickHouse, seconds: float) -> list[int]:
    """Recomputes the dynamic cohorts computed more than `seconds` ago that this process claims; the ids."""
    claimed = [r["id"] for r in await pool.fetch(_postgres("claim_stale.sql"), seconds, STALE_BATCH)]
    for cohort_id in claimed:
        with contextlib.suppress(ClickHouseError, ClickHouseUnavailable):  # logged; retried next time
            await compute(pool, ch, cohort_id)
    return claimed


async def refresh_schedule(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: every COHORT_REFRESH_SECONDS (0: never), recompute the stale dynamic cohorts."""
    seconds = app[SETTINGS_KEY].cohort_refresh_seconds

    async def loop() -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                await refresh_stale(app[POOL_KEY], app[CLICKHOUSE_KEY], seconds)
            except (OSError, asyncpg.PostgresError) as exc:
                log.error("cohort_refresh_failed", error=str(exc))

    task = asyncio.create_task(loop()) if seconds > 0 else None
    yield
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    await pruned()


async def current_versions(
    pool: asyncpg.Pool, project_id: int, references: list[tuple[str, int]]
) -> dict[int, int]:
    """The current version of each cohort a request names; a 400 naming the field of one that is not the
    project's."""
    if not references:
        return {}
    rows = await pool.fetch(_postgres("versions.sql"), project_id, sorted({c for _, c in references}))
    versions = {r["id"]: r["version"] for r in rows}
    for field, cohort in references:
        if cohort not in versions:
            raise BadRequest(f"{field}: no cohort {cohort} in this project")
    return versions


# endpoints


def _cohort(row: asyncpg.Record) -> dict[str, Any]:
    cohort: dict[str, Any] = {"id": row["id"], "name": row["name"], "kind": row["kind"]}
    if row["kind"] == "dynamic":
        cohort.update(orjson.loads(row["definition"]))
    else:
        cohort.update(distinct_ids_count=row["distinct_ids_count"], unmatched=row["unmatched"])
    computed = row["computed_at"]
    return {**cohort, "count": row["count"], "version": row["version"],
            "computed_at": computed.isoformat() if computed else None,
            "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat()}  # fmt: skip


class CohortNotFound(LookupError):
    """No cohort of the project has the id (REST: 404 cohort_not_found); the message is the detail."""

    def __init__(self, raw_id: str) -> None:
        super().__init__(f"no cohort {raw_id[:40]!r} in this project")


def _id(request: web.Request) -> int | None:
    return _parsed_id(request.match_info["id"])


def _parsed_id(raw: str) -> int | None:
    return int(raw) if raw.isascii() and raw.isdigit() and sql.is_id(int(raw)) else None


def _not_found(request: web.Request) -> web.Response:
    return error(404, "cohort_not_found", str(CohortNotFound(request.match_info["id"])))


async def cohorts_answer(pool: asyncpg.Pool, project: Project) -> dict[str, Any]:
    """The project's cohorts, by id (GET /api/cohorts)."""
    return {"cohorts": [_cohort(r) for r in await pool.fetch(_postgres("list.sql"), project.id, None)]}


async def cohort_answer(pool: asyncpg.Pool, project: Project, cohort_id: int) -> dict[str, Any] | None:
    """The project's cohort (GET /api/cohorts/{id}); None when the project has none of that id."""
    rows = await pool.fetch(_postgres("list.sql"), project.id, cohort_id)
    return _cohort(rows[0]) if rows else None


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("body: a JSON object")
    return body


async def _answer(
    request: web.Request, project: Project, cohort_id: int, status: int = 200
) -> web.StreamResponse:
    """Computes the cohort, then answers it (a ClickHouse refusal as refused() says)."""
    pool = request.app[POOL_KEY]
    try:
        await compute(pool, request.app[CLICKHOUSE_KEY], cohort_id)
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)
    cohort = await cohort_answer(pool, project, cohort_id)
    return json_response(cohort, status=status) if cohort else _not_found(request)


async def cohorts_list(request: web.Request, project: Project) -> web.StreamResponse:
    return json_response(await cohorts_answer(request.app[POOL_KEY], project))


async def cohort_create(request: web.Request, project: Project) -> web.StreamResponse:
    if request.content_type == "text/csv":
        body: dict[str, Any] = {"name": request.query.get("name"), "kind": "static"}
        try:
            body["distinct_ids"] = csv_distinct_ids((await request.read()).decode())
        except (UnicodeDecodeError, csv.Error) as exc:
            raise BadRequest(f"body: not a UTF-8 CSV: {exc}") from None
    else:
        body = await _body(request)
    name, kind = _name(body), body.get("kind")
    ids, spec = None, None
    if kind == "static":
        ids = _distinct_ids(body.get("distinct_ids"))
    elif kind == "dynamic":
        spec = definition(body)
        try:
            await request.app[DEFINITIONS_KEY].check(project.id, names(spec))
        except UnknownName as exc:
            return error(400, exc.code, str(exc))
    else:
        raise BadRequest("kind: one of static, dynamic")
    pool = request.app[POOL_KEY]
    async with pool.acquire() as conn, conn.transaction():
        cohort_id = await conn.fetchval(_postgres("create.sql"), project.id, name, kind,
                                        orjson.dumps(spec).decode() if spec else None)  # fmt: skip
        if ids is not None:
            await conn.execute(_postgres("ids_insert.sql"), cohort_id, ids)
    return await _answer(request, project, cohort_id, status=201)


async def cohort_get(request: web.Request, project: Project) -> web.StreamResponse:
    cohort_id = _id(request)
    cohort = None if cohort_id is None else await cohort_answer(request.app[POOL_KEY], project, cohort_id)
    return json_response(cohort) if cohort else _not_found(request)


async def cohort_patch(request: web.Request, project: Project) -> web.StreamResponse:
    cohort_id, pool = _id(request), request.app[POOL_KEY]
    found = None if cohort_id is None else await cohort_answer(pool, project, cohort_id)
    if cohort_id is None or found is None:
        return _not_found(request)
    body = await _body(request)
    name = _name(body) if "name" in body else None
    ids, spec = None, None
    if found["kind"] == "static":
        if "match" in body or "filters" in body:
            raise BadRequest("filters: a static cohort has distinct_ids, not filters")
        ids = _distinct_ids(body["distinct_ids"]) if "distinct_ids" in body else None
    elif "distinct_ids" in body:
        raise BadRequest("distinct_ids: a dynamic cohort has filters, not distinct_ids")
    elif "match" in body or "filters" in body:
        spec = definition({"match": found["match"], "filters": found["filters"], **body})
        try:
            await request.app[DEFINITIONS_KEY].check(project.id, names(spec))
        except UnknownName as exc:
            return error(400, exc.code, str(exc))
    async with pool.acquire() as conn, conn.transaction():
        updated = await conn.fetchval(_postgres("update.sql"), project.id, cohort_id, name,
                                      orjson.dumps(spec).decode() if spec else None)  # fmt: skip
        if updated is None:
            return _not_found(request)
        if ids is not None:
            await conn.execute(_postgres("ids_clear.sql"), cohort_id)
            await conn.execute(_postgres("ids_insert.sql"), cohort_id, ids)
    if ids is None and spec is None:
        return await cohort_get(request, project)
    return await _answer(request, project, cohort_id)


async def cohort_delete(request: web.Request, project: Project) -> web.StreamResponse:
    cohort_id = _id(request)
    deleted = cohort_id is not None and await request.app[POOL_KEY].fetchval(
        _postgres("delete.sql"), project.id, cohort_id
    )
    if not deleted:
        return _not_found(request)
    params = {"project_id": project.id, "cohort_id": cohort_id, "keep": 0}
    with contextlib.suppress(ClickHouseError, ClickHouseUnavailable):  # never read again; pruned or not
        await request.app[CLICKHOUSE_KEY].execute(sql.fragment("cohort_prune.sql"), params)
    return web.Response(status=204)


async def cohort_refresh(request: web.Request, project: Project) -> web.StreamResponse:
    cohort_id = _id(request)
    if cohort_id is None or await cohort_answer(request.app[POOL_KEY], project, cohort_id) is None:
        return _not_found(request)
    return await _answer(request, project, cohort_id)


async def cohort_persons(request: web.Request, project: Project) -> web.StreamResponse:
    try:
        page = await cohort_persons_page(request.app, project, request.match_info["id"], request.query)
    except CohortNotFound:
        return _not_found(request)
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)
    return json_response(page)


async def cohort_persons_page(
    app: web.Application, project: Project, raw_id: str, query: Mapping[str, str]
) -> dict[str, Any]:
    """A page of the current version's members by person id (`query`: limit, cursor), with their
    properties and distinct ids from ClickHouse; CohortNotFound when `raw_id` is none of the project's."""
    cohort_id = _parsed_id(raw_id)
    cohort = None if cohort_id is None else await cohort_answer(app[POOL_KEY], project, cohort_id)
    if cohort is None:
        raise CohortNotFound(raw_id)
    raw_limit = query.get("limit", str(PERSONS_LIMIT))
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= PERSONS_MAX_LIMIT:
        raise BadRequest(f"limit: an integer from 1 to {PERSONS_MAX_LIMIT}")
    limit, after = int(raw_limit), query.get("cursor", "")
    params = {"project_id": project.id, "cohort_id": cohort_id, "version": cohort["version"], "after": after,
              "limit": limit + 1}  # fmt: skip
    run = runner(app, "cohorts")
    ids = [r["id"] for r in await run(sql.fragment("cohort_members.sql"), params)]
    details = await run(sql.fragment("cohort_member_details.sql"), {**params, "ids": ids[:limit]})
    properties = {r["member"]: orjson.loads(r["properties"]) for r in details if r["properties"]}
    distinct_ids = {r["member"]: sorted(r["distinct_ids"]) for r in details if r["distinct_ids"]}
    persons = [
        {"id": p, "distinct_ids": distinct_ids.get(p, []), "properties": properties.get(p, {})}
        for p in ids[:limit]
    ]
    return {"persons": persons, "next_cursor": ids[limit - 1] if len(ids) > limit else None}


def add_routes(app: web.Application) -> None:
    router = app.router
    router.add_get("/api/cohorts", project_endpoint(cohorts_list))
    router.add_post("/api/cohorts", project_endpoint(cohort_create))
    router.add_get("/api/cohorts/{id}", project_endpoint(cohort_get))
    router.add_patch("/api/cohorts/{id}", project_endpoint(cohort_patch))
    router.add_delete("/api/cohorts/{id}", project_endpoint(cohort_delete))
    router.add_post("/api/cohorts/{id}/refresh", project_endpoint(cohort_refresh))
    router.add_get("/api/cohorts/{id}/persons", project_endpoint(cohort_persons))
    app.cleanup_ctx.append(refresh_schedule)
