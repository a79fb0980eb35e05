"""Persons for the web app and the API: `GET /api/persons/{distinct_id}?limit=&cursor=` (one person: all their
distinct ids and properties from Postgres, the source of truth, and a page of their events from ClickHouse)
and `GET /api/persons?search=&limit=&cursor=` (the project's persons, newest first).
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web

from workers.clickhouse import ClickHouseError, ClickHouseUnavailable
from workers.projects import Project
from workers.query.events import cohort_versions, events_page
from workers.query.http import POOL_KEY, error, json_response, refused, runner
from workers.query.sql import BadRequest, postgres

PERSONS_LIMIT, PERSONS_MAX_LIMIT = 50, 1000


def _not_found(distinct_id: str) -> web.Response:
    return error(404, "person_not_found", f"no person has the distinct id {distinct_id[:200]!r}")


async def person(request: web.Request, project: Project) -> web.StreamResponse:
    distinct_id = request.match_info["distinct_id"]
    try:
        found = await person_answer(request.app, project, distinct_id, dict(request.query))
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)
    return _not_found(distinct_id) if found is None else json_response(found)


async def person_answer(
    app: web.Application, project: Project, distinct_id: str, query: Mapping[str, str]
) -> dict[str, Any] | None:
    """The person with this distinct id and a page of their events (`query`: limit, cursor); None when the
    project has no such person."""
    if "\x00" in distinct_id:  # Postgres text cannot hold NUL, so no person has such an id
        return None
    async with app[POOL_KEY].acquire() as conn:
        found = await conn.fetchrow(postgres("person.sql"), project.id, distinct_id)
        ids = [] if found is None else [
            r["distinct_id"] for r in await conn.fetch(postgres("person_distinct_ids.sql"), found["id"])
        ]  # fmt: skip
    if found is None:
        return None
    versions = await cohort_versions(app, project, query)
    events = await events_page(runner(app, "persons"), project, query, ids, versions)
    return {
        "id": str(found["id"]), "distinct_ids": ids, "properties": orjson.loads(found["properties"]),
        "is_identified": found["is_identified"], "created_at": found["created_at"].isoformat(),
        "version": found["version"], **events,
    }  # fmt: skip


def _cursor(raw: str) -> tuple[datetime, uuid.UUID]:
    try:
        moment, _, person_id = base64.urlsafe_b64decode(raw.encode()).decode().partition("|")
        return datetime.fromisoformat(moment), uuid.UUID(person_id)
    except (ValueError, binascii.Error, UnicodeError):
        raise BadRequest("cursor: not a next_cursor of this endpoint") from None


async def persons_list(request: web.Request, project: Project) -> web.StreamResponse:
    return json_response(await persons_page(request.app[POOL_KEY], project, request.query))


async def persons_page(pool: asyncpg.Pool, project: Project, query: Mapping[str, str]) -> dict[str, Any]:
    """A page of the project's persons (`query`: search, limit, cursor)."""
    search = query.get("search") or None
    if search is not None and "\x00" in search:
        raise BadRequest("search: must not contain NUL (\\u0000)")
    raw_limit = query.get("limit", str(PERSONS_LIMIT))
    if not raw_limit.isascii() or not raw_limit.isdigit() or not 1 <= int(raw_limit) <= PERSONS_MAX_LIMIT:
        raise BadRequest(f"limit: an integer from 1 to {PERSONS_MAX_LIMIT}")
    limit = int(raw_limit)
    after, after_id = _cursor(query["cursor"]) if query.get("cursor") else (None, None)
    rows = await pool.fetch(
        postgres("persons_list.sql"),
        project.id,
        search.lower() if search else None,
        after,
        after_id,
        limit + 1,
    )
    persons = [
        {"id": str(r["id"]), "distinct_ids": list(r["distinct_ids"]), "properties": orjson.loads(r["properties"]),
         "is_identified": r["is_identified"], "created_at": r["created_at"].isoformat()}
        for r in rows[:limit]
    ]  # fmt: skip
    cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        cursor = base64.urlsafe_b64encode(f"{last['created_at'].isoformat()}|{last['id']}".encode()).decode()
    return {"persons": persons, "next_cursor": cursor}
