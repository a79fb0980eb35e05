"""Capture's rate limits: token buckets per project and per (project, distinct id), shared by every capture
process through Redis, and the hot-key bucket that sends a distinct id's surplus to `events_overflow`.

A bucket holds at most `burst` tokens and gains `rate` a second; an event takes one. One request is one
check (`Limiter.take`), atomic in Redis (`sql/redis/take_tokens.lua`):

- `whole=True` (PostHog: a request is refused whole, 429 with Retry-After): every event is taken, or none.
  A bucket lets a request through once it holds min(events, burst) tokens and may then go below zero, so a
  batch bigger than a burst is never refused forever, and the debt still counts against the rate.
- `whole=False` (Amplitude): each distinct id gets the events its bucket holds, in request order, within
  what the project's bucket holds; the rest are refused (`throttled_events`).

Of the events a distinct id was granted, those past its hot-key bucket (the last ones of the request) go
to `events_overflow`. When Redis cannot be reached the same steps run on per-process buckets
(`LocalBuckets`): the limits then hold per process, one warning is logged, and Redis is asked again every
`REDIS_RETRY_SECONDS`. A limit check never fails a request.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio
import structlog
from redis.exceptions import RedisError

from workers.metrics import CAPTURE_LIMIT_CHECK_SECONDS, CAPTURE_LIMITS_LOCAL
from workers.projects import Project
from workers.settings import Settings

log = structlog.get_logger(__name__)

TAKE_TOKENS = Path(__file__).resolve().parents[2] / "sql" / "redis" / "take_tokens.lua"
REDIS_TIMEOUT_SECONDS = (
    0.25  # a Redis slower than this counts as down: the request goes on with local buckets
)
REDIS_RETRY_SECONDS = 5.0
LOCAL_BUCKETS_MAX = 200_000  # past this, the local buckets that are full again are forgotten


@dataclass(frozen=True, slots=True)
class Bucket:
    rate: float  # tokens (events) gained per second
    burst: float  # tokens it holds at most


@dataclass(frozen=True, slots=True)
class Rates:
    project: Bucket
    distinct_id: Bucket
    overflow: Bucket  # the hot-key threshold


def rates_for(project: Project, settings: Settings) -> Rates:
    """The project's own limits (Postgres `projects`, NULL = default), else the CAPTURE_* defaults."""

    def pick(own: float | None, default: float) -> float:
        return default if own is None else own

    return Rates(
        Bucket(pick(project.events_per_second, settings.capture_project_events_per_second),
               pick(project.events_burst, settings.capture_project_burst)),
        Bucket(pick(project.distinct_id_events_per_second, settings.capture_distinct_id_events_per_second),
               pick(project.distinct_id_burst, settings.capture_distinct_id_burst)),
        Bucket(settings.capture_overflow_events_per_second, settings.capture_overflow_burst),
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Taken:
    """A check's outcome, per distinct id in the order asked."""

    granted: list[int]  # events accepted
    overflow: list[int]  # of those, how many (the last ones) go to events_overflow
    refused_by_distinct_id: list[int]  # events refused by the distinct id's own bucket
    refused_by_project: int  # events refused by the project's bucket (whole: the rest of the request)
    retry_after_ms: int  # until the buckets hold what was refused

    @property
    def retry_after_seconds(self) -> int:
        return max(1, math.ceil(self.retry_after_ms / 1000))


class LocalBuckets:
    """The Lua script's steps on buckets in this process: the project's (tokens, at) and each distinct id's
    (tokens, hot-key tokens, at), each with the time it is full again."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, tuple[tuple[float, ...], float]] = {}  # key -> (held, full again at)

    def take(self, keys: Sequence[str], rates: Rates, counts: Sequence[int], whole: bool) -> Taken:
        now = self._clock()
        if len(self._buckets) > LOCAL_BUCKETS_MAX:
            self._buckets = {k: v for k, v in self._buckets.items() if v[1] > now}
            if len(self._buckets) > LOCAL_BUCKETS_MAX // 2:
                self._buckets.clear()  # a flood of distinct ids: start them all full (lenient, bounded)

        def refill(tokens: float, since: float, bucket: Bucket) -> float:
            return min(bucket.burst, tokens + max(0.0, now - since) * bucket.rate)

        def full_at(tokens: float, bucket: Bucket) -> float:
            return now + (bucket.burst - tokens) / bucket.rate

        def wait(refused: float, left: float, bucket: Bucket) -> float:
            return (min(refused, bucket.burst) - left) / bucket.rate

        p, d, o = rates.project, rates.distinct_id, rates.overflow
        n = len(counts)
        levels, hot = [d.burst] * n, [o.burst] * n
        for i in range(n):
            held = self._buckets.get(keys[1 + i])
            if held is not None:
                tokens, hot_tokens, at = held[0]
                levels[i], hot[i] = refill(tokens, at, d), refill(hot_tokens, at, o)
        held = self._buckets.get(keys[0])
        project = p.burst if held is None else refill(held[0][0], held[0][1], p)
        total = sum(counts)
        by_project, retry = 0, 0.0
        refused = [0] * n
        if whole:
            ok = True
            for i in range(n):
                if levels[i] < min(counts[i], d.burst):
                    ok, refused[i] = False, counts[i]
                    retry = max(retry, wait(counts[i], levels[i], d))
            if project < min(total, p.burst):
                ok = False
                retry = max(retry, wait(total, project, p))
                by_project = total - sum(refused)
            granted = list(counts) if ok else [0] * n
        else:
            room = max(0, math.floor(project))
            granted = [0] * n
            for i in range(n):
                fits = min(counts[i], max(0, math.floor(levels[i])))
                refused[i] = counts[i] - fits
                if refused[i] > 0:
                    retry = max(retry, wait(refused[i], levels[i] - fits, d))
                granted[i] = min(fits, room)
                room -= granted[i]
                by_project += fits - granted[i]
            if by_project > 0:
                retry = max(retry, wait(by_project, project - sum(granted), p))
        overflow = [0] * n
        for i in range(n):
            if granted[i] > 0:
                overflow[i] = granted[i] - min(granted[i], max(0, math.floor(hot[i])))
                tokens, hot_tokens = levels[i] - granted[i], max(0.0, hot[i] - granted[i])
                self._buckets[keys[1 + i]] = (
                    (tokens, hot_tokens, now),
                    max(full_at(tokens, d), full_at(hot_tokens, o)),
                )
                project -= granted[i]
        self._buckets[keys[0]] = ((project, now), full_at(project, p))
        return Taken(granted, overflow, refused, by_project, math.ceil(retry * 1000))


class Limiter:
    """Checks a request against Redis's shared buckets, or the local ones while Redis cannot be reached."""

    def __init__(
        self,
        client: redis.asyncio.Redis | None,
        prefix: str,
        local: LocalBuckets | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._script = client.register_script(TAKE_TOKENS.read_text()) if client is not None else None
        self._prefix = prefix
        self._local = local or LocalBuckets(clock)
        self._clock = clock
        self._redis_again_at = 0.0
        self._redis_down = False

    @classmethod
    def from_settings(cls, settings: Settings) -> Limiter:
        client = redis.asyncio.Redis.from_url(
            settings.capture_redis_url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        )
        return cls(client, settings.capture_redis_prefix)

    def keys(self, project_id: int, distinct_ids: Sequence[str]) -> list[str]:
        """The project's bucket, then each distinct id's (its own and its hot-key bucket); the `{project}`
        hash tag keeps a request's keys in one Redis Cluster slot."""
        base = f"{self._prefix}{{{project_id}}}"
        return [f"{base}:p", *(f"{base}:d:{distinct_id}" for distinct_id in distinct_ids)]

    async def take(
        self, project_id: int, rates: Rates, counts: Sequence[tuple[str, int]], whole: bool
    ) -> Taken:
        """`counts`: (distinct id, its events in the request), each distinct id once."""
        started = time.perf_counter()
        keys = self.keys(project_id, [d for d, _ in counts])
        numbers = [n for _, n in counts]
        taken = None
        if self._script is not None and self._clock() >= self._redis_again_at:
            taken = await self._take_shared(keys, rates, numbers, whole)
        if taken is None:
            CAPTURE_LIMITS_LOCAL.inc()
            taken = self._local.take(keys, rates, numbers, whole)
        CAPTURE_LIMIT_CHECK_SECONDS.observe(time.perf_counter() - started)
        return taken

    async def _take_shared(
        self, keys: list[str], rates: Rates, counts: list[int], whole: bool
    ) -> Taken | None:
        assert self._script is not None
        p, d, o = rates.project, rates.distinct_id, rates.overflow
        args: list[float | str] = [
            p.rate,
            p.burst,
            d.rate,
            d.burst,
            o.rate,
            o.burst,
            int(whole),
            " ".join(map(str, counts)),
        ]
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS * 2):
                result = await self._script(keys=keys, args=args)
        except (RedisError, OSError, TimeoutError) as exc:
            self._redis_again_at = self._clock() + REDIS_RETRY_SECONDS
            if not self._redis_down:
                self._redis_down = True
                log.warning("rate_limits_per_process", error=f"{type(exc).__name__}: {exc}",
                            detail="Redis cannot be reached: each capture process limits on its own until"
                            " it answers")  # fmt: skip
            return None
        if self._redis_down:
            self._redis_down = False
            log.info("rate_limits_shared", detail="Redis answers again: the limits are shared again")
        values = [int(v) for v in result.split()]
        per_id = values[2:]
        return Taken(per_id[0::3], per_id[1::3], per_id[2::3], values[1], values[0])

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
