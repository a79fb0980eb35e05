"""The names a project has used, so an analytics request naming an event or a property the project never
sent is a 400 that names it (`unknown_event`, `unknown_property`) rather than a chart of zeros.

ClickHouse keeps them (`definitions`, filled by materialized views: sql/clickhouse/005_definitions.sql).
Each query process caches a project's names; a name missing from the cache reloads them (at most once a
`refresh_seconds`), so an event sent a moment ago can be asked about at once.
"""

from __future__ import annotations

import time
from typing import Any

from workers.clickhouse import ClickHouse
from workers.funnels import FunnelQuery
from workers.paths import PathsQuery
from workers.retention import RetentionQuery
from workers.sessions import SessionsQuery
from workers.trends import Filter, TrendsQuery

# (kind, the request field, the name); kind: event | event_property | person_property
Name = tuple[str, str, str]
NAMES_SQL = "SELECT kind, name FROM definitions WHERE project_id = {project_id:UInt64} GROUP BY kind, name"
WHAT = {
    "event": "no event named",
    "event_property": "no event property",
    "person_property": "no person property",
}


class UnknownName(ValueError):
    def __init__(self, kind: str, field: str, name: str) -> None:
        self.code = "unknown_event" if kind == "event" else "unknown_property"
        super().__init__(f"{field}: {WHAT[kind]} {name[:200]!r} in this project")


def _filter_names(filters: tuple[Filter, ...], where: str) -> list[Name]:
    return [
        (f"{f.type}_property", f"{where}.filters[{n}].property", f.property) for n, f in enumerate(filters)
    ]


def names_in(q: Any) -> list[Name]:
    """Every event and property name a parsed request refers to, with the field it came from."""
    names: list[Name] = []
    if isinstance(q, TrendsQuery | FunnelQuery):
        series, field = (q.series, "events") if isinstance(q, TrendsQuery) else (q.steps, "steps")
        for n, s in enumerate(series):
            names.append(("event", f"{field}[{n}].event", s.event))
            names += _filter_names(s.filters, f"{field}[{n}]")
        if q.breakdown is not None:
            names.append((f"{q.breakdown.type}_property", "breakdown.property", q.breakdown.property))
        if (
            isinstance(q, TrendsQuery)
            and q.property is not None
            and q.measure in ("sum", "avg", "distribution")
        ):
            names.append(("event_property", "property", q.property))
    elif isinstance(q, RetentionQuery):
        names.append(("event", "start_event", q.start_event))
        if q.return_event != "$any":
            names.append(("event", "return_event", q.return_event))
    elif isinstance(q, PathsQuery) and q.start_event is not None:
        names.append(("event", "start_event", q.start_event))
    elif isinstance(q, SessionsQuery):
        names += _filter_names(q.filters, "sessions")
    return names


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
