"""capture's HTTP server: PostHog and Amplitude SDK requests -> `events_raw` (hot keys: `events_overflow`).

A request is all or nothing: every event is decoded, checked and serialized before one `send_all`, and the
answer (200) waits for Kafka's acknowledgement of all of them. The one exception is Amplitude's throttling:
over a rate limit (`workers.capture.limits`) the events that fit are produced and the answer is a 429 that
lists the others (`throttled_events`), as Amplitude does; PostHog requests over a limit are refused whole.
Errors are answered in the protocol's own shape (PostHog: `{type, code, detail, errors}`; Amplitude:
`{code, error, ...}` with `code` = HTTP status) because the SDKs decide from the answer whether to drop,
split or resend (PROTOCOLS.md §6).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import asyncpg
import orjson
import structlog
from aiohttp import web

from workers import lag
from workers.capture import Event, EventError, Rejected, amplitude, posthog
from workers.capture.decode import decode_payload
from workers.capture.limits import Limiter, rates_for
from workers.freshness import AcceptedCounts, heartbeats, instance_id
from workers.kafka import (
    ACCEPTED_COUNTS,
    EVENTS_OVERFLOW,
    EVENTS_RAW,
    ProduceFailed,
    Producer,
    Record,
    ensure_topics,
    start_producer,
)
from workers.metrics import (
    CAPTURE_EVENTS,
    CAPTURE_OVERFLOW_EVENTS,
    CAPTURE_RATE_LIMITED,
    CAPTURE_REQUEST_BYTES,
    CAPTURE_REQUEST_SECONDS,
    CAPTURE_REQUESTS,
    SANITIZED_VALUES,
)
from workers.projects import Project, ProjectCache
from workers.sanitize import Limits, OutOfBounds, clean
from workers.settings import Settings

log = structlog.get_logger(__name__)

POSTHOG_PATHS = ("/e", "/capture", "/track", "/engage", "/i/v0/e")
AMPLITUDE_PATHS = ("/2/httpapi",)
BATCH_PATH = "/batch"  # "/batch/" is PostHog's, "/batch" Amplitude's: the body shape decides
RETRY_AFTER_SECONDS = "2"
DECODE_IN_THREAD_BYTES = 256 * 1024  # bigger bodies are decoded and cleaned off the event loop
_ERROR_TYPES = {401: "authentication_error", 429: "rate_limit_error", 503: "server_error"}
_POSTGRES_DOWN = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
AnyEnvelope = TypeVar("AnyEnvelope", posthog.Envelope, amplitude.Envelope)


class EventProducer(Protocol):
    async def send_all(self, topic: str, records: Sequence[Record]) -> None: ...


class ProjectLookup(Protocol):
    async def by_token(self, token: str) -> Project | None: ...


def create_app(
    settings: Settings,
    producer: EventProducer,
    projects: ProjectLookup,
    limiter: Limiter | None = None,
    counts: AcceptedCounts | None = None,
) -> web.Application:
    """The capture routes. Serve it with `serve` (it turns off aiohttp's own, unbounded decompression).
    `counts` tallies the accepted events (workers.freshness); without a `limiter` no rate limit applies
    (CAPTURE_RATE_LIMITS=false)."""
    capture = _Capture(
        settings, producer, projects, counts or AcceptedCounts(instance_id("capture")), limiter
    )
    app = web.Application(client_max_size=settings.capture_max_body_bytes, middlewares=[_observe])
    for path in POSTHOG_PATHS:
        for route in (path, path + "/"):
            app.router.add_post(route, capture.posthog)
            app.router.add_get(route, capture.posthog)  # legacy GET /e/?data=<base64>
    for path in AMPLITUDE_PATHS:
        for route in (path, path + "/"):
            app.router.add_post(route, capture.amplitude)
    for route in (BATCH_PATH, BATCH_PATH + "/"):
        app.router.add_post(route, capture.batch)
    for route in ("/identify", "/identify/"):
        app.router.add_post(route, capture.amplitude_identify)
    for route in ("/i/v1/analytics/events", "/i/v1/analytics/events/"):
        app.router.add_post(route, capture.posthog_v1)
    for path in ("/flags", "/decide"):
        for route in (path, path + "/"):
            app.router.add_post(route, flags)
            app.router.add_get(route, flags)
    app.router.add_get("/array/{token}/config", config_json)
    app.router.add_get("/array/{token}/config.js", config_js)
    return app


async def serve(app: web.Application, host: str, port: int, shutdown_timeout: float) -> web.AppRunner:
    """Listen on host:port. `runner.cleanup()` stops accepting, then waits for requests in flight."""
    runner = web.AppRunner(
        app, access_log=None, auto_decompress=False, handle_signals=False, shutdown_timeout=shutdown_timeout
    )
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def main(settings: Settings, stopping: asyncio.Event) -> None:
    """Serve until `stopping` is set; then stop accepting, finish requests in flight, stop the producer."""
    await ensure_topics(settings)
    async with AsyncExitStack() as cleanup:  # undone in reverse: server, producer, pool
        pool = await asyncpg.create_pool(
            settings.postgres_dsn, min_size=1, max_size=8, timeout=5, command_timeout=5
        )
        cleanup.push_async_callback(pool.close)
        producer = await start_producer(settings)
        cleanup.push_async_callback(producer.stop)
        source = instance_id("capture")
        counts = AcceptedCounts(source)
        # issue 10: heartbeats, accepted counts and produced offsets every HEARTBEAT_SECONDS; at the end, once
        # the requests in flight are answered, the ticks stop and the last counts go out
        cleanup.push_async_callback(_every, 0, None, send_counts, producer, counts)
        done = asyncio.Event()
        ticks = [
            asyncio.create_task(_every(settings.heartbeat_seconds, done, beat, producer, counts, source)),
            asyncio.create_task(lag.track(pool, source, producer.produced, settings.heartbeat_seconds, done)),
        ]
        cleanup.push_async_callback(_wait, ticks)
        cleanup.callback(done.set)
        limiter = Limiter.from_settings(settings) if settings.capture_rate_limits else None
        if limiter is not None:
            cleanup.push_async_callback(limiter.close)
        app = create_app(
            settings, producer, ProjectCache(pool, settings.project_cache_seconds), limiter, counts
        )
        drain = settings.drain_timeout_seconds * 0.8  # leaves the rest for the producer and the pool
        runner = await serve(app, settings.capture_host, settings.capture_port, drain)
        cleanup.push_async_callback(runner.cleanup)
        log.info("capture_listening", host=settings.capture_host, port=settings.capture_port)
        await stopping.wait()
        log.info("capture_draining")


async def beat(producer: Producer, counts: AcceptedCounts, source: str) -> None:
    """A heartbeat to each partition of events_raw, then the accepted totals that changed since the last."""
    now = datetime.now(UTC)
    await producer.send_all(EVENTS_RAW, heartbeats(source, await producer.partitions(EVENTS_RAW), now))
    await send_counts(producer, counts)


async def send_counts(producer: Producer, counts: AcceptedCounts) -> None:
    records = counts.records(datetime.now(UTC))
    if records:
        await producer.send_all(ACCEPTED_COUNTS, records)
        counts.sent(records)


async def _wait(tasks: list[asyncio.Task[None]]) -> None:
    await asyncio.gather(*tasks)


async def _every(
    seconds: float, stopping: asyncio.Event | None, step: Callable[..., Awaitable[None]], *args: object
) -> None:
    """`step(*args)` every `seconds` (the first after one interval) until `stopping`; with None, once and
    now. A failure (Kafka down) is logged and tried again at the next."""
    while stopping is not None:
        try:
            await asyncio.wait_for(stopping.wait(), seconds)
            return
        except TimeoutError:
            pass
        await _step(step, *args)
    await _step(step, *args)


async def _step(step: Callable[..., Awaitable[None]], *args: object) -> None:
    try:
        await step(*args)
    except (ProduceFailed, OSError, TimeoutError) as exc:
        log.warning("heartbeat_failed", error=f"{type(exc).__name__}: {exc}")


@dataclass(slots=True)
class _Tally:
    """What a request turned out to be, for the answer's shape and the event metrics."""

    protocol: str
    events: int = 0


@dataclass(slots=True)
class _Routed:
    """A request's events under the rate limits, as indexes into its events."""

    raw: list[int]  # to events_raw
    overflow: list[int]  # hot distinct ids' surplus, to events_overflow
    refused: list[int]  # over a limit: not produced
    retry_after: int = 1  # seconds, when some were refused


class _Capture:
    def __init__(
        self,
        settings: Settings,
        producer: EventProducer,
        projects: ProjectLookup,
        counts: AcceptedCounts,
        limiter: Limiter | None,
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._projects = projects
        self._counts = counts
        self._limiter = limiter
        self._limits = Limits.from_settings(settings)

    async def posthog(self, request: web.Request) -> web.Response:
        return await self._handle(request, _Tally("posthog"), route_by_shape=False)

    async def amplitude(self, request: web.Request) -> web.Response:
        return await self._handle(request, _Tally("amplitude"), route_by_shape=False)

    async def amplitude_identify(self, request: web.Request) -> web.Response:
        tally = _Tally("amplitude")
        received_at = datetime.now(UTC)
        try:
            body = await self._read(request)
            payload = amplitude.identify_payload(body, request.content_type)
            return await self._amplitude(request, payload, len(body), received_at, tally)
        except Rejected as rejected:
            return _reject(request, tally, rejected)

    async def posthog_v1(self, request: web.Request) -> web.Response:
        """Capture v1: the token as a Bearer header, an answer per event (`ok`, or `drop` with a reason)."""
        tally = _Tally("posthog")
        received_at = datetime.now(UTC)
        try:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Rejected(401, "missing_token", "send Authorization: Bearer <project token>")
            body = await self._read(request)
            payload = await self._decode(request, body)
            env = posthog.v1_envelope(payload, token.strip())
            tally.events = len(env.events)
            project = await self._project(token.strip())
            outcomes = posthog.normalize_each(
                await self._clean(env, len(body)),
                project.id,
                project.api_token,
                received_at,
                client_ip(request),
            )
            events = [o for o in outcomes if not isinstance(o, EventError)]
            if events:
                values = self._serialize(events)
                routed = await self._route(project, events, whole=True)
                await self._produce(events, values, routed)
        except Rejected as rejected:
            return _reject(request, tally, rejected)
        results: dict[str, dict[str, str]] = {}
        for index, (raw, outcome) in enumerate(zip(env.events, outcomes, strict=True)):
            given = raw.get("uuid") if isinstance(raw, dict) else None  # as sent, even if out of bounds
            key = clean(given, self._limits)[0] if isinstance(given, str) else str(index)
            if isinstance(outcome, EventError):
                results[key] = {"result": "drop", "reason": f"{outcome.field}: {outcome.reason}"}
            else:
                results[key] = {"result": "ok"}
        CAPTURE_EVENTS.labels("posthog", "accepted").inc(len(events))
        if len(events) < len(outcomes):
            CAPTURE_EVENTS.labels("posthog", "invalid").inc(len(outcomes) - len(events))
        return _json({"results": results})

    async def batch(self, request: web.Request) -> web.Response:
        hint = "posthog" if request.path.endswith("/") else "amplitude"
        return await self._handle(request, _Tally(hint), route_by_shape=True)

    async def _handle(self, request: web.Request, tally: _Tally, route_by_shape: bool) -> web.Response:
        received_at = datetime.now(UTC)
        try:
            body = await self._read(request)
            payload = await self._decode(request, body)
            if route_by_shape:
                tally.protocol = _protocol_of(payload, tally.protocol)
            if tally.protocol == "posthog":
                return await self._posthog(request, payload, len(body), received_at, tally)
            return await self._amplitude(request, payload, len(body), received_at, tally)
        except Rejected as rejected:
            return _reject(request, tally, rejected)

    async def _posthog(
        self, request: web.Request, payload: object, size: int, received_at: datetime, tally: _Tally
    ) -> web.Response:
        env = await self._clean(posthog.envelope(payload, request.query.get("token")), size)
        tally.events = len(env.events)
        if env.token is None:
            raise Rejected(401, "missing_token", "no api_key or token in the body, the events or the query")
        project = await self._project(env.token)
        events = posthog.normalize(env, project.id, project.api_token, received_at, client_ip(request))
        values = self._serialize(events)
        await self._produce(events, values, await self._route(project, events, whole=True))
        CAPTURE_EVENTS.labels("posthog", "accepted").inc(len(events))
        return _json({"status": 1})

    async def _amplitude(
        self, request: web.Request, payload: object, size: int, received_at: datetime, tally: _Tally
    ) -> web.Response:
        env = await self._clean(amplitude.envelope(payload), size)
        tally.events = len(env.events)
        most = self._settings.capture_amplitude_max_events
        if len(env.events) > most:
            raise Rejected(413, "too_many_events", f"{len(env.events)} events, over {most} per request")
        project = await self._project(env.api_key)
        events = amplitude.normalize(env, project.id, received_at, client_ip(request))
        values = self._serialize(events)
        routed = await self._route(project, events, whole=False)
        await self._produce(events, values, routed)
        accepted = len(events) - len(routed.refused)
        CAPTURE_EVENTS.labels("amplitude", "accepted").inc(accepted)
        if routed.refused:
            CAPTURE_EVENTS.labels("amplitude", "rejected").inc(len(routed.refused))
            eps = rates_for(project, self._settings).distinct_id.rate
            log.info("capture_throttled", protocol="amplitude", path=request.path, project_id=project.id,
                     accepted=accepted, throttled=len(routed.refused))  # fmt: skip
            return _json(
                amplitude.throttled_answer(events, routed.refused, eps),
                429,
                {"Retry-After": str(routed.retry_after)},
            )
        return _json(
            {
                "code": 200,
                "events_ingested": len(events),
                "payload_size_bytes": size,
                "server_upload_time": int(time.time() * 1000),
            }
        )

    async def _read(self, request: web.Request) -> bytes:
        limit = self._settings.capture_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _too_large(f"Content-Length {request.content_length}", limit)
        body = bytearray()
        async for chunk in request.content.iter_any():
            body += chunk
            if len(body) > limit:
                raise _too_large("the body", limit)
        CAPTURE_REQUEST_BYTES.observe(len(body))
        return bytes(body)

    async def _decode(self, request: web.Request, body: bytes) -> object:
        args: dict[str, Any] = {
            "content_type": request.content_type,
            "content_encoding": request.headers.get("Content-Encoding", ""),
            "query": dict(request.query),
            "max_bytes": self._settings.capture_max_body_bytes,
        }
        if len(body) > DECODE_IN_THREAD_BYTES:
            return await asyncio.to_thread(decode_payload, body, **args)
        return decode_payload(body, **args)

    async def _clean(self, env: AnyEnvelope, size: int) -> AnyEnvelope:
        if size > DECODE_IN_THREAD_BYTES:
            return await asyncio.to_thread(self._clean_events, env)
        return self._clean_events(env)

    def _clean_events(self, env: AnyEnvelope) -> AnyEnvelope:
        """Every event as `sanitize.clean` leaves it; an event out of bounds is left as its `OutOfBounds`,
        for normalize to report among the invalid events."""
        events: list[object] = []
        changed = 0
        for raw in env.events:
            try:
                event, count = clean(raw, self._limits)
            except OutOfBounds as exc:
                event, count = exc, 0
            events.append(event)
            changed += count
        if changed:
            SANITIZED_VALUES.labels("capture").inc(changed)
        return dataclasses.replace(env, events=events)

    async def _project(self, token: str) -> Project:
        try:
            # a token Postgres cannot even compare (U+0000, a lone surrogate) is no project's
            project = None if clean(token, self._limits)[1] else await self._projects.by_token(token)
        except _POSTGRES_DOWN as exc:
            raise Rejected(
                503, "postgres_unavailable", "the project store is unavailable; retry later"
            ) from exc
        if project is None:
            raise Rejected(401, "invalid_token", f"no project has the token {token[:64]!r}")
        return project

    async def _route(self, project: Project, events: list[Event], whole: bool) -> _Routed:
        """Which events go to events_raw, which to events_overflow and which are refused, by the project's
        rate limits; `whole` refuses the request (429, Retry-After) rather than some of its events."""
        if self._limiter is None:
            return _Routed(list(range(len(events))), [], [])
        by_id: dict[str, list[int]] = {}
        for index, event in enumerate(events):
            by_id.setdefault(event["distinct_id"], []).append(index)
        rates = rates_for(project, self._settings)
        taken = await self._limiter.take(project.id, rates, [(d, len(i)) for d, i in by_id.items()], whole)
        routed = _Routed([], [], [], taken.retry_after_seconds)
        for indexes, granted, overflow in zip(by_id.values(), taken.granted, taken.overflow, strict=True):
            routed.raw += indexes[: granted - overflow]
            routed.overflow += indexes[granted - overflow : granted]
            routed.refused += indexes[granted:]
        if taken.refused_by_project:
            CAPTURE_RATE_LIMITED.labels("project").inc(taken.refused_by_project)
        if len(routed.refused) > taken.refused_by_project:  # a whole request counts where a distinct id was
            CAPTURE_RATE_LIMITED.labels("distinct_id").inc(len(routed.refused) - taken.refused_by_project)
        if whole and routed.refused:
            by = "the project's" if taken.refused_by_project else "a distinct id's"
            raise Rejected(
                429,
                "rate_limited",
                f"over {by} rate limit ({rates.project.rate:g} events/s per project,"
                f" {rates.distinct_id.rate:g} per distinct id); retry after {taken.retry_after_seconds} s",
                retry_after=taken.retry_after_seconds,
            )
        routed.raw.sort()
        routed.overflow.sort()
        routed.refused.sort()
        return routed

    def _serialize(self, events: list[Event]) -> list[bytes]:
        """Each event's bytes on Kafka; 413 naming the events over CAPTURE_MAX_EVENT_BYTES."""
        limit = self._settings.capture_max_event_bytes
        values = [orjson.dumps(event) for event in events]
        too_large = [
            EventError(index, "event", f"{len(value)} bytes, over the {limit} byte limit")
            for index, value in enumerate(values)
            if len(value) > limit
        ]
        if too_large:
            raise Rejected(
                413,
                "event_too_large",
                f"{len(too_large)} of {len(events)} events are over {limit} bytes",
                errors=too_large,
                extra={"events_too_large": [e.index for e in too_large]},
            )
        return values

    async def _produce(self, events: list[Event], values: list[bytes], routed: _Routed) -> None:
        """events_raw keyed `<token>:<distinct_id>` (one user's events in order on one partition);
        events_overflow without a key, so a hot distinct id spreads over every partition."""
        raw = [
            Record(f"{events[i]['token']}:{events[i]['distinct_id']}".encode(), values[i]) for i in routed.raw
        ]
        overflow = [Record(None, values[i]) for i in routed.overflow]
        sends = [
            self._producer.send_all(t, r) for t, r in ((EVENTS_RAW, raw), (EVENTS_OVERFLOW, overflow)) if r
        ]
        try:
            await asyncio.gather(*sends)
        except ProduceFailed as exc:
            raise Rejected(
                503, "kafka_unavailable", "Kafka did not acknowledge the events; retry later"
            ) from exc
        self._counts.add([events[i] for i in (*routed.raw, *routed.overflow)])
        if overflow:
            CAPTURE_OVERFLOW_EVENTS.inc(len(overflow))


def client_ip(request: web.Request) -> str | None:
    first = request.headers.get("X-Forwarded-For", "").split(",")[0].strip()
    # an address is ASCII; aiohttp reads other bytes as lone surrogates, which orjson refuses to write
    return first if first and first.isascii() else request.remote


def _protocol_of(payload: object, hint: str) -> str:
    if isinstance(payload, dict) and "events" in payload and "batch" not in payload:
        return "amplitude"
    if isinstance(payload, list) or (
        isinstance(payload, dict) and ("batch" in payload or "event" in payload)
    ):
        return "posthog"
    return hint


def _too_large(what: str, limit: int) -> Rejected:
    return Rejected(413, "payload_too_large", f"{what} is over the {limit} byte limit")


def _reject(request: web.Request, tally: _Tally, rejected: Rejected) -> web.Response:
    if tally.events:
        invalid = len({e.index for e in rejected.errors})
        CAPTURE_EVENTS.labels(tally.protocol, "invalid").inc(invalid)
        rest = "unavailable" if rejected.status >= 500 else "rejected"
        CAPTURE_EVENTS.labels(tally.protocol, rest).inc(tally.events - invalid)
    cause = rejected.__cause__
    (log.error if rejected.status >= 500 else log.warning)(
        "capture_rejected",
        status=rejected.status,
        code=rejected.code,
        detail=rejected.detail,
        protocol=tally.protocol,
        path=request.path,
        events=tally.events,
        invalid=[(e.index, e.field) for e in rejected.errors[:20]],
        cause=f"{type(cause).__name__}: {cause}" if cause else None,
    )
    headers = None
    if rejected.retry_after is not None:
        headers = {"Retry-After": str(rejected.retry_after)}
    elif rejected.status == 503:
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
    if tally.protocol == "amplitude":
        error = "Payload too large" if rejected.status == 413 else rejected.detail
        return _json({"code": rejected.status, "error": error, **rejected.extra}, rejected.status, headers)
    body = {
        "type": _ERROR_TYPES.get(rejected.status, "validation_error"),
        "code": rejected.code,
        "detail": rejected.detail,
        "errors": [{"index": e.index, "field": e.field, "reason": e.reason} for e in rejected.errors],
    }
    return _json(body, rejected.status, headers)


def _json(data: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(data), status=status, headers=headers, content_type="application/json"
    )


# ---- what posthog-js needs besides capture: flags, remote config, CORS ----

SUPPORTED_COMPRESSION = ["gzip", "gzip-js"]


def remote_config(token: str) -> dict[str, Any]:
    """posthog-js's remote config (`/array/<token>/config`): everything optional off, gzip on."""
    return {
        "token": token,
        "supportedCompression": SUPPORTED_COMPRESSION,
        "hasFeatureFlags": False,
        "captureDeadClicks": False,
        "capturePerformance": False,
        "autocapture_opt_out": False,
        "autocaptureExceptions": False,
        "analytics": {"endpoint": "/i/v0/e/"},
        "elementsChainAsString": True,
        "sessionRecording": False,
        "heatmaps": False,
        "surveys": False,
        "defaultIdentifiedOnly": True,
    }


FLAGS_ANSWER = {
    "flags": {},
    "featureFlags": {},
    "featureFlagPayloads": {},
    "errorsWhileComputingFlags": False,
    "quotaLimited": [],
    "config": {"enable_collect_everything": True},
    "toolbarParams": {},
    "isAuthenticated": False,
    "supportedCompression": SUPPORTED_COMPRESSION,
    "sessionRecording": False,
    "capturePerformance": False,
    "autocapture_opt_out": False,
    "autocaptureExceptions": False,
    "heatmaps": False,
    "surveys": False,
    "siteApps": [],
}


async def flags(request: web.Request) -> web.Response:
    return _json(FLAGS_ANSWER)


async def config_json(request: web.Request) -> web.Response:
    return _json({**remote_config(request.match_info["token"]), "siteApps": []})


async def config_js(request: web.Request) -> web.Response:
    token = request.match_info["token"]
    config = orjson.dumps(remote_config(token)).decode()
    script = (
        "(function() {\n"
        "  window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n"
        f"  window._POSTHOG_REMOTE_CONFIG[{orjson.dumps(token).decode()}] = {{\n"
        f"    config: {config},\n"
        "    siteApps: []\n"
        "  };\n"
        "})();\n"
    )
    return web.Response(text=script, content_type="application/javascript")


async def preflight(request: web.Request) -> web.Response:
    headers = {
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get("Access-Control-Request-Headers", "Content-Type"),
        "Access-Control-Max-Age": "86400",
    }
    if "Access-Control-Request-Private-Network" in request.headers:
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


@web.middleware
async def _observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS (preflights on any path, headers on every answer), JSON 404/405s, the request metrics."""
    started = time.perf_counter()
    try:
        response = await (preflight(request) if request.method == "OPTIONS" else handler(request))
    except web.HTTPException as exc:
        body = {
            "type": "validation_error",
            "code": exc.reason.lower().replace(" ", "_"),
            "detail": exc.reason,
        }
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        response = _json(body, exc.status, allow)
    except ConnectionError:  # the client went away mid-request: there is no one to answer
        raise
    except Exception:  # a bug, not bad input: still JSON, with a `code` Amplitude's SDKs can read
        log.exception("capture_failed", path=request.path)
        response = _json({"code": 500, "type": "server_error", "detail": "internal error"}, 500)
    origin = request.headers.get("Origin")
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
    CAPTURE_REQUESTS.labels(_endpoint(request), str(response.status)).inc()
    CAPTURE_REQUEST_SECONDS.observe(time.perf_counter() - started)
    return response


def _endpoint(request: web.Request) -> str:
    """A low-cardinality name for the metrics: the route, without its trailing slash."""
    route = request.match_info.route
    if request.method == "OPTIONS":
        return "preflight"
    if route.resource is None:
        return "unmatched"
    return route.resource.canonical.rstrip("/") or "/"
