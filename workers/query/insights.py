"""The insights: each a module with `parse(body) -> query` (BadRequest naming the field), `names(query)` (the
event and property names it refers to), `async answer(run, query, project) -> dict` and `table(answer)` (its
table: workers.query.tables). The API serves each as `POST /api/<name>` (JSON, or CSV) and as the GraphQL
field `<name>`; saved insights are of one of these kinds, their query checked by its `parse`.
"""

from __future__ import annotations

from typing import Any, Protocol

import orjson
from aiohttp import web

from workers.projects import Project
from workers.query import funnels, lifecycle, paths, retention, sessions, stickiness, trends
from workers.query.cache import ResultCache
from workers.query.cohorts import current_versions
from workers.query.definitions import DEFINITIONS_KEY
from workers.query.http import POOL_KEY, runner
from workers.query.sql import Name, Run, cohort_references, with_cohort_versions
from workers.query.tables import Table


class Insight(Protocol):
    def parse(self, body: object) -> Any: ...

    def names(self, q: Any) -> list[Name]: ...

    async def answer(self, run: Run, q: Any, project: Project) -> dict[str, Any]: ...

    def table(self, answer: dict[str, Any]) -> Table: ...


INSIGHTS: dict[str, Insight] = {
    "trends": trends,
    "funnels": funnels,
    "retention": retention,
    "sessions": sessions,
    "paths": paths,
    "stickiness": stickiness,
    "lifecycle": lifecycle,
}
CACHE_KEY = web.AppKey("result_cache", ResultCache)


async def cached_answer(
    app: web.Application, name: str, project: Project, body: object
) -> tuple[bytes, bool]:
    """The insight's JSON answer to the request `body`, and whether the result cache held it. BadRequest
    (a cohort not of the project too), definitions.UnknownName, Postgres's and ClickHouse's errors pass
    through."""
    insight = INSIGHTS[name]
    q = insight.parse(body)
    versions = await current_versions(app[POOL_KEY], project.id, cohort_references(q))
    q = with_cohort_versions(q, versions)
    cache = app[CACHE_KEY]
    # a new version of a cohort the answer used is a new answer
    key, refresh = ResultCache.key(f"/api/{name}", project.id, body, versions)
    if not refresh and (cached := cache.get(key)) is not None:
        return cached, True
    await app[DEFINITIONS_KEY].check(project.id, insight.names(q))
    result = orjson.dumps(await insight.answer(runner(app, name), q, project))
    cache.put(key, body, result, project.timezone)
    return result, False
