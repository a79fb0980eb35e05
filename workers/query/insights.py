"""The insights: each a module with `parse(body) -> query` (BadRequest naming the field), `names(query)` (the
event and property names it refers to) and `async answer(run, query, project) -> dict`. The API serves each
as `POST /api/<name>`; saved insights are of one of these kinds, their query checked by its `parse`.
"""

from __future__ import annotations

from typing import Any, Protocol

from workers.projects import Project
from workers.query import funnels, lifecycle, paths, retention, sessions, stickiness, trends
from workers.query.sql import Name, Run


class Insight(Protocol):
    def parse(self, body: object) -> Any: ...

    def names(self, q: Any) -> list[Name]: ...

    async def answer(self, run: Run, q: Any, project: Project) -> dict[str, Any]: ...


INSIGHTS: dict[str, Insight] = {
    "trends": trends,
    "funnels": funnels,
    "retention": retention,
    "sessions": sessions,
    "paths": paths,
    "stickiness": stickiness,
    "lifecycle": lifecycle,
}
