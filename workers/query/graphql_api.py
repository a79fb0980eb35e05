"""`POST /graphql`: the query API as GraphQL (strawberry), the same answers as REST from the same code.

The schema is generated from the insight registry (workers.query.insights): one field per insight,
`<name>(request: JSON!): JSON`, where `request` is exactly the body `POST /api/<name>` takes, checked by the
same `parse` and answered by the same code and result cache. The request stays a JSON scalar because the
source of truth for its shape is `parse` (fields that depend on each other, ranges, defaults); the
insights' dataclasses hold the parsed form (dates, filters as objects), not the wire form, so input types
generated from them would describe something else, and input types written by hand would be a second
definition to keep in step. An insight added to the registry is a GraphQL field at once. The listings
(`events`, `persons`, `person`, `definitions`, `cohorts`, `cohort`, `cohortPersons`) have real output
types, mirroring their REST answers field for field (camelCase); their arguments go through the same
parsing as the REST query string.

Auth is the REST API's: the project's key as `Authorization: Bearer`, else the REST 401 JSON error (no
GraphQL document is run). A request takes one of the key's QUERY_KEY_CONCURRENCY slots for its whole run
(api._key_budget), and its fields run one after the other, so a document of many fields never has more
than one statement set in flight; each field runs under its REST endpoint's ClickHouse limits. A refused
field is a GraphQL error whose message is the REST error's `detail` and `extensions.code` its `code`; the
fields are nullable, so the document's other fields still answer.
There is no GraphiQL and no GET.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg
import orjson
import strawberry
from aiohttp import web
from graphql import GraphQLError
from strawberry.aiohttp.views import GraphQLView
from strawberry.scalars import JSON

from workers.clickhouse import ClickHouseError, ClickHouseUnavailable
from workers.projects import Project
from workers.query.cohorts import CohortNotFound, cohort_answer, cohort_persons_page, cohorts_answer
from workers.query.definitions import UnknownName, definitions_answer
from workers.query.events import cohort_versions, events_page
from workers.query.http import POOL_KEY, caller, error, refusal, runner
from workers.query.insights import INSIGHTS, cached_answer
from workers.query.persons import person_answer, persons_page
from workers.query.sql import BadRequest, is_id

T = TypeVar("T")
PROJECT_KEY = web.RequestKey("project", Project)


@strawberry.type
class Event:
    uuid: str
    event: str
    distinct_id: str
    person_id: str
    timestamp: str
    properties: JSON


@strawberry.type
class EventsPage:
    events: list[Event]
    next_cursor: str | None


@strawberry.type
class Person:
    id: str
    distinct_ids: list[str]
    properties: JSON
    is_identified: bool
    created_at: str


@strawberry.type
class PersonsPage:
    persons: list[Person]
    next_cursor: str | None


@strawberry.type
class PersonProfile:
    id: str
    distinct_ids: list[str]
    properties: JSON
    is_identified: bool
    created_at: str
    version: int
    events: list[Event]
    next_cursor: str | None


@strawberry.type
class Cohort:
    """GET /api/cohorts/{id}; `match` and `filters` are a dynamic cohort's, `distinctIdsCount` and
    `unmatched` a static one's (null for the other kind)."""

    id: int
    name: str
    kind: str
    count: int
    version: int
    computed_at: str | None
    created_at: str
    updated_at: str
    match: str | None = None
    filters: JSON | None = None
    distinct_ids_count: int | None = None
    unmatched: int | None = None


@strawberry.type
class CohortPerson:
    id: str
    distinct_ids: list[str]
    properties: JSON


@strawberry.type
class CohortPersonsPage:
    persons: list[CohortPerson]
    next_cursor: str | None


@strawberry.type
class PropertyDefinition:
    name: str
    type: str | None


@strawberry.type
class Definitions:
    events: list[str]
    event_properties: list[PropertyDefinition]
    person_properties: list[PropertyDefinition]


def _events(page: dict[str, Any]) -> dict[str, Any]:
    return {**page, "events": [Event(**e) for e in page["events"]]}


def _query(**arguments: object) -> dict[str, str]:
    """Arguments as the REST query string would carry them, so they are parsed exactly as there."""
    return {name: str(value) for name, value in arguments.items() if value is not None}


async def _answer(info: strawberry.Info, work: Callable[[web.Application, Project], Awaitable[T]]) -> T:
    """The field's answer, computed after the document's other fields (one at a time); a refusal as the
    REST error's detail and code."""
    context = info.context
    async with context["serial"]:
        try:
            return await work(context["request"].app, context["request"][PROJECT_KEY])
        except BadRequest as exc:
            raise _error(str(exc), "invalid_request") from None
        except UnknownName as exc:
            raise _error(str(exc), exc.code) from None
        except CohortNotFound as exc:
            raise _error(str(exc), "cohort_not_found") from None
        except (ClickHouseError, ClickHouseUnavailable) as exc:
            _, answer = refusal(exc)
            raise _error(answer["detail"], answer["code"]) from None
        except (OSError, asyncpg.PostgresError) as exc:
            raise _error(str(exc), "postgres_unavailable") from None


def _error(detail: str, code: str) -> GraphQLError:
    return GraphQLError(detail, extensions={"code": code})


def _insight_field(name: str) -> Any:
    async def resolve(info: strawberry.Info, request: JSON) -> JSON | None:
        async def work(app: web.Application, project: Project) -> Any:
            return orjson.loads((await cached_answer(app, name, project, request))[0])

        return await _answer(info, work)

    return strawberry.field(
        resolver=resolve, description=f"The answer of POST /api/{name} to `request`, its body."
    )


async def events(
    info: strawberry.Info,
    event: str | None = None,
    filters: JSON | None = None,
    after: str | None = None,
    before: str | None = None,
    limit: int | None = None,
    cursor: str | None = None,
) -> EventsPage | None:
    """GET /api/events: a page of the project's events, newest first."""
    query = _query(event=event, after=after, before=before, limit=limit, cursor=cursor)
    if filters is not None:
        query["filters"] = orjson.dumps(filters).decode()

    async def work(app: web.Application, project: Project) -> EventsPage:
        versions = await cohort_versions(app, project, query)
        return EventsPage(**_events(await events_page(runner(app, "events"), project, query, None, versions)))

    return await _answer(info, work)


async def persons(
    info: strawberry.Info, search: str | None = None, limit: int | None = None, cursor: str | None = None
) -> PersonsPage | None:
    """GET /api/persons: the project's persons, newest created first."""

    async def work(app: web.Application, project: Project) -> PersonsPage:
        page = await persons_page(app[POOL_KEY], project, _query(search=search, limit=limit, cursor=cursor))
        return PersonsPage(persons=[Person(**p) for p in page["persons"]], next_cursor=page["next_cursor"])

    return await _answer(info, work)


async def person(
    info: strawberry.Info, distinct_id: str, limit: int | None = None, cursor: str | None = None
) -> PersonProfile | None:
    """GET /api/persons/{distinct_id}: the person and a page of their events; null when there is none."""

    async def work(app: web.Application, project: Project) -> PersonProfile | None:
        found = await person_answer(app, project, distinct_id, _query(limit=limit, cursor=cursor))
        return None if found is None else PersonProfile(**_events(found))

    return await _answer(info, work)


async def definitions(info: strawberry.Info) -> Definitions | None:
    """GET /api/definitions: the events and properties the project has sent."""

    async def work(app: web.Application, project: Project) -> Definitions:
        answer = await definitions_answer(runner(app, "definitions"), project)
        return Definitions(
            events=answer["events"],
            event_properties=[PropertyDefinition(**p) for p in answer["event_properties"]],
            person_properties=[PropertyDefinition(**p) for p in answer["person_properties"]],
        )

    return await _answer(info, work)


async def cohorts(info: strawberry.Info) -> list[Cohort] | None:
    """GET /api/cohorts: the project's cohorts, by id."""

    async def work(app: web.Application, project: Project) -> list[Cohort]:
        return [Cohort(**c) for c in (await cohorts_answer(app[POOL_KEY], project))["cohorts"]]

    return await _answer(info, work)


async def cohort(info: strawberry.Info, id: int) -> Cohort | None:
    """GET /api/cohorts/{id}: the cohort; null when the project has none of that id."""

    async def work(app: web.Application, project: Project) -> Cohort | None:
        found = await cohort_answer(app[POOL_KEY], project, id) if is_id(id) else None
        return None if found is None else Cohort(**found)

    return await _answer(info, work)


async def cohort_persons(
    info: strawberry.Info, id: int, limit: int | None = None, cursor: str | None = None
) -> CohortPersonsPage | None:
    """GET /api/cohorts/{id}/persons: a page of the cohort's members by person id."""

    async def work(app: web.Application, project: Project) -> CohortPersonsPage:
        page = await cohort_persons_page(app, project, str(id), _query(limit=limit, cursor=cursor))
        members = [CohortPerson(**p) for p in page["persons"]]
        return CohortPersonsPage(persons=members, next_cursor=page["next_cursor"])

    return await _answer(info, work)


def schema() -> strawberry.Schema:
    fields = {name: _insight_field(name) for name in INSIGHTS}
    for resolver in (events, persons, person, definitions, cohorts, cohort, cohort_persons):
        fields[resolver.__name__] = strawberry.field(resolver=resolver, description=resolver.__doc__)
    query = strawberry.type(type("Query", (), {"__module__": __name__, **fields}))
    return strawberry.Schema(query=query)


class ProjectGraphQLView(GraphQLView):
    async def get_context(self, request: web.Request, response: Any) -> Any:
        return {"request": request, "response": response, "serial": asyncio.Lock()}


def add_routes(app: web.Application) -> None:
    view = ProjectGraphQLView(schema=schema(), graphql_ide=None, allow_queries_via_get=False)

    async def endpoint(request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return error(405, "method_not_allowed", "send POST /graphql with {query, variables?}")
        project = await caller(request)
        if isinstance(project, web.Response):
            return project
        request[PROJECT_KEY] = project
        return await view(request)

    app.router.add_route("*", "/graphql", endpoint)
