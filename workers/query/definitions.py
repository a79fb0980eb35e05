"""The names a project has used: `GET /api/definitions` lists them with their types (for the web app), and
an insight request naming an event or a property the project never sent is a 400 that names it
(`unknown_event`, `unknown_property`) rather than a chart of zeros.

ClickHouse keeps them (`definitions`, filled by materialized views: sql/clickhouse/005_definitions.sql).
Each query process caches a project's names; a name missing from the cache reloads them (at most once a
`refresh_seconds`), so an event sent a moment ago can be asked about at once.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

from aiohttp import web

from workers.clickhouse import ClickHouse, ClickHouseError, ClickHouseUnavailable
from workers.projects import Project
from workers.query.http import json_response, refused, runner
from workers.query.sql import Name, Run, fragment

NAMES_SQL = "SELECT kind, name FROM definitions WHERE project_id = {project_id:UInt64} GROUP BY kind, name"
# JSONType -> the type the web app shows; Null says nothing
TYPES = {"Int64": "Numeric", "UInt64": "Numeric", "Double": "Numeric", "Bool": "Boolean",
         "String": "String", "Array": "Array", "Object": "Object"}  # fmt: skip
TYPE_SAMPLE = 10_000
WHAT = {
    "event": "no event named",
    "event_property": "no event property",
    "person_property": "no person property",
}


class UnknownName(ValueError):
    def __init__(self, kind: str, field: str, name: str) -> None:
        self.code = "unknown_event" if kind == "event" else "unknown_property"
        super().__init__(f"{field}: {WHAT[kind]} {name[:200]!r} in this project")


class Definitions:
    def __init__(self, ch: ClickHouse, refresh_seconds: float = 1.0) -> None:
        self._ch = ch
        self._refresh = refresh_seconds
        self._known: dict[int, tuple[float, set[tuple[str, str]]]] = {}

    async def _load(self, project_id: int) -> set[tuple[str, str]]:
        rows = await self._ch.query(NAMES_SQL, {"project_id": project_id}, settings={"readonly": 1})
        known = {(r["kind"], r["name"]) for r in rows}
        self._known[project_id] = (time.monotonic(), known)
        return known

    async def check(self, project_id: int, names: list[Name]) -> None:
        """UnknownName for the first name the project never used; ClickHouse errors pass through."""
        if not names:
            return
        loaded, known = self._known.get(project_id, (0.0, set()))
        missing = [n for n in names if (n[0], n[2]) not in known]
        if missing and time.monotonic() - loaded >= self._refresh:
            known = await self._load(project_id)
            missing = [n for n in names if (n[0], n[2]) not in known]
        if missing:
            raise UnknownName(*missing[0])


def _types(rows: list[dict[str, Any]]) -> dict[str, str]:
    """name -> the most common type seen (ties: the type name first in order)."""
    seen: dict[str, Counter[str]] = {}
    for r in rows:
        if r["type"] in TYPES:
            seen.setdefault(r["name"], Counter())[TYPES[r["type"]]] += int(r["seen"])
    return {name: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for name, c in seen.items()}


async def definitions(request: web.Request, project: Project) -> web.StreamResponse:
    """`GET /api/definitions`: the project's events, and its event and person properties with their types."""
    try:
        return json_response(await definitions_answer(runner(request.app, "definitions"), project))
    except (ClickHouseError, ClickHouseUnavailable) as exc:
        return refused(exc)


async def definitions_answer(run: Run, project: Project) -> dict[str, Any]:
    params = {"project_id": project.id, "sample": TYPE_SAMPLE}
    names = await run(fragment("definitions.sql"), params)
    events = _types(await run(fragment("event_property_types.sql"), params))
    persons = _types(await run(fragment("person_property_types.sql"), params))
    of = {kind: sorted(r["name"] for r in names if r["kind"] == kind) for kind in
          ("event", "event_property", "person_property")}  # fmt: skip
    return {
        "events": of["event"],
        "event_properties": [{"name": n, "type": events.get(n)} for n in of["event_property"]],
        "person_properties": [{"name": n, "type": persons.get(n)} for n in of["person_property"]],
    }


DEFINITIONS_KEY = web.AppKey("definitions", Definitions)
