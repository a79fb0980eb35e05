"""A result cache for the analytics endpoints, keyed by project, path and the normalized request.

Answers whose range reaches today (in the project's time zone) live `recent_seconds`, since new events
still land there; answers about the past live `seconds`. `"refresh": true` in a request skips the lookup
and stores the fresh answer. Only 200s are kept; the oldest entry goes first when the cache is full.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping
from datetime import date, datetime
from zoneinfo import ZoneInfo

import orjson

Key = tuple[str, int, bytes]


class ResultCache:
    def __init__(self, seconds: float, recent_seconds: float, entries: int) -> None:
        self._seconds = seconds
        self._recent = recent_seconds
        self._entries = entries
        self._store: OrderedDict[Key, tuple[float, bytes]] = OrderedDict()

    @staticmethod
    def key(
        path: str, project_id: int, body: object, cohort_versions: Mapping[int, int] | None = None
    ) -> tuple[Key, bool]:
        """The cache key (request minus `refresh`, and the versions of the cohorts it uses), and whether
        the caller asked for a refresh."""
        refresh = isinstance(body, dict) and body.get("refresh") is True
        if isinstance(body, dict):
            body = {k: v for k, v in body.items() if k != "refresh"}
        versions = sorted((cohort_versions or {}).items())
        return (path, project_id, orjson.dumps([body, versions], option=orjson.OPT_SORT_KEYS)), refresh

    def get(self, key: Key) -> bytes | None:
        hit = self._store.get(key)
        if hit is None or hit[0] < time.monotonic():
            return None
        return hit[1]

    def put(self, key: Key, body: object, answer: bytes, timezone: str) -> None:
        ttl = self._recent if _reaches_today(body, timezone) else self._seconds
        if ttl <= 0:
            return
        self._store[key] = (time.monotonic() + ttl, answer)
        self._store.move_to_end(key)
        while len(self._store) > self._entries:
            self._store.popitem(last=False)


def _reaches_today(body: object, timezone: str) -> bool:
    date_to = body.get("date_to") if isinstance(body, dict) else None
    try:
        last = date.fromisoformat(date_to) if isinstance(date_to, str) else None
    except ValueError:
        last = None
    return last is None or last >= datetime.now(ZoneInfo(timezone)).date()
