"""Enrichment steps of the persons worker, run before person processing.

Each step is a plain function over one normalized event (the `events_raw` JSON). User agent and bot flag
come from maintained parsers (ua-parser's rules, the crawler-user-agents list); places come from a
MaxMind-format `.mmdb`; blocked events and JSON Schemas are per-project config in Postgres, reloaded in
the background so that a change takes effect without a restart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import asyncpg
import crawleruseragents
import fastjsonschema
import maxminddb
import orjson
import structlog
from ua_parser import parse as parse_user_agent

log = structlog.get_logger(__name__)

Event = dict[str, Any]
USER_AGENT_PROPERTIES = ("$raw_user_agent", "$user_agent", "$useragent")
_MOBILE_OS = {"iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS"}
_DESKTOP_OS = {
    "Windows",
    "Mac OS X",
    "macOS",
    "Linux",
    "Ubuntu",
    "Fedora",
    "Chrome OS",
    "ChromeOS",
    "FreeBSD",
}


@dataclass(frozen=True, slots=True)
class UserAgent:
    properties: dict[str, str]  # $browser, $browser_version, $os, $os_version, $device_type, $device
    bot: str | None  # the crawler's name when the user agent is a known bot


def _version(*parts: str | None) -> str:
    return ".".join(p for p in parts if p)


@lru_cache(maxsize=20_000)
def describe_user_agent(user_agent: str) -> UserAgent:
    """Browser, OS and device type of a user agent string; cached, since real traffic repeats them."""
    parsed = parse_user_agent(user_agent)
    props: dict[str, str] = {}
    if parsed.user_agent is not None:
        props["$browser"] = parsed.user_agent.family
        props["$browser_version"] = _version(parsed.user_agent.major, parsed.user_agent.minor)
    if parsed.os is not None:
        props["$os"] = parsed.os.family
        props["$os_version"] = _version(parsed.os.major, parsed.os.minor, parsed.os.patch)
    if parsed.device is not None and parsed.device.family not in ("Other", "Spider"):
        props["$device"] = parsed.device.family
    matches = crawleruseragents.matching_crawlers(user_agent)
    bot = None
    if matches or (parsed.device is not None and parsed.device.family == "Spider"):
        bot = parsed.user_agent.family if parsed.user_agent is not None else "bot"
    props["$device_type"] = _device_type(user_agent, props.get("$os"), props.get("$device"), bot)
    return UserAgent({k: v for k, v in props.items() if v}, bot)


def _device_type(user_agent: str, os: str | None, device: str | None, bot: str | None) -> str:
    if bot is not None:
        return "Bot"
    if device == "iPad" or (os == "Android" and "Mobile" not in user_agent) or "Tablet" in user_agent:
        return "Tablet"
    if os in _MOBILE_OS:
        return "Mobile"
    if os in _DESKTOP_OS:
        return "Desktop"
    return "Other"


def add_user_agent(event: Event) -> None:
    """Fill in what the client did not send ($browser and friends) and flag bots (never dropped)."""
    properties = event["properties"]
    for name in USER_AGENT_PROPERTIES:
        user_agent = properties.get(name)
        if isinstance(user_agent, str) and user_agent:
            break
    else:
        return
    described = describe_user_agent(user_agent[:1024])
    if not described.properties.keys() <= properties.keys():
        for key, value in described.properties.items():
            properties.setdefault(key, value)
    if described.bot is not None:
        properties["$is_bot"] = True
        properties["$bot_name"] = described.bot


class GeoIP:
    """IP → country, region, city through a MaxMind-format database (GeoLite2/GeoIP2 City layout)."""

    def __init__(self, reader: maxminddb.Reader) -> None:
        self._reader = reader

    @classmethod
    def open(cls, path: str) -> GeoIP | None:
        """None, with one warning, when there is no database: enrichment by IP is then off."""
        if not path:
            log.warning("geoip_disabled", reason="GEOIP_DATABASE_PATH is empty")
            return None
        if not Path(path).is_file():
            log.warning("geoip_disabled", reason="no such file", path=path)
            return None
        log.info("geoip_enabled", path=path)
        return cls(maxminddb.open_database(path))

    def lookup(self, ip: str) -> dict[str, str]:
        try:
            record = self._cached(ip)
        except ValueError:  # not an IP address
            return {}
        return dict(record)

    @lru_cache(maxsize=50_000)  # noqa: B019 - one GeoIP per process, the cache lives as long as it does
    def _cached(self, ip: str) -> tuple[tuple[str, str], ...]:
        found: Any = self._reader.get(ip)
        if not isinstance(found, dict):
            return ()
        result: dict[str, str] = {}
        country = found.get("country") or {}
        if country.get("iso_code"):
            result["$geoip_country_code"] = country["iso_code"]
        if name := (country.get("names") or {}).get("en"):
            result["$geoip_country_name"] = name
        subdivisions = found.get("subdivisions") or []
        if subdivisions:
            if code := subdivisions[0].get("iso_code"):
                result["$geoip_subdivision_1_code"] = code
            if name := (subdivisions[0].get("names") or {}).get("en"):
                result["$geoip_subdivision_1_name"] = name
        if name := ((found.get("city") or {}).get("names") or {}).get("en"):
            result["$geoip_city_name"] = name
        return tuple(result.items())

    def add_place(self, event: Event) -> None:
        ip = event.get("ip")
        properties = event["properties"]
        if not isinstance(ip, str) or not ip or properties.get("$geoip_disable") is True:
            return
        for key, value in self.lookup(ip).items():
            properties.setdefault(key, value)

    def close(self) -> None:
        self._reader.close()


@dataclass
class ProjectRules:
    """Per-project enrichment config from Postgres: blocked event names and JSON Schemas by event name."""

    blocked: set[tuple[int, str]] = field(default_factory=set)
    validators: dict[tuple[int, str], Any] = field(default_factory=dict)

    def is_blocked(self, event: Event) -> bool:
        return (event["project_id"], event["event"]) in self.blocked

    def schema_error(self, event: Event) -> str | None:
        """The validation message when the event's properties break its schema, else None."""
        validate = self.validators.get((event["project_id"], event["event"]))
        if validate is None:
            return None
        try:
            validate(event["properties"])
        except fastjsonschema.JsonSchemaValueException as exc:
            return str(exc.message)
        return None


async def load_rules(pool: asyncpg.Pool) -> ProjectRules:
    async with pool.acquire() as conn:
        blocked = await conn.fetch("SELECT project_id, event FROM blocked_events")
        schemas = await conn.fetch("SELECT project_id, event, json_schema FROM event_schemas")
    rules = ProjectRules(blocked={(r["project_id"], r["event"]) for r in blocked})
    for row in schemas:
        schema = (
            orjson.loads(row["json_schema"]) if isinstance(row["json_schema"], str) else row["json_schema"]
        )
        try:
            rules.validators[(row["project_id"], row["event"])] = fastjsonschema.compile(schema)
        except (fastjsonschema.JsonSchemaDefinitionException, TypeError, ValueError) as exc:
            log.error(
                "event_schema_invalid", project_id=row["project_id"], event=row["event"], error=str(exc)
            )
    return rules


class RulesCache:
    """The current `ProjectRules`, reloaded every `refresh_seconds`; a failed reload keeps the old ones."""

    def __init__(self, pool: asyncpg.Pool, refresh_seconds: float) -> None:
        self._pool = pool
        self._refresh = refresh_seconds
        self._loaded_at = float("-inf")
        self.rules = ProjectRules()

    async def current(self) -> ProjectRules:
        if time.monotonic() - self._loaded_at >= self._refresh:
            try:
                self.rules = await load_rules(self._pool)
            except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
                log.warning("enrichment_rules_reload_failed", error=str(exc))
            self._loaded_at = time.monotonic()
        return self.rules
