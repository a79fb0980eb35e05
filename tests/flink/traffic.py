"""A seeded stream of `events` messages for the Flink job, in the order they arrive: two projects; PostHog
ids with `$session_id`, Amplitude ids with session ids (and a few -1), ids with neither; gaps just under,
exactly at and just over 30 minutes; timestamps in three zone spellings; events out of order within the
lateness and far beyond it; duplicate uuids."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta, timezone

from flink.job import SESSION_NAMESPACE

URLS = [
    f"https://shop.example/{p}" for p in ("", "cart", "product/1", "product/2", "checkout", "blog", "about")
]
BROWSERS, OSES = ["Chrome", "Firefox", "Safari", "Edge"], ["Windows", "Mac OS X", "Linux", "iOS", "Android"]
DEVICES, COUNTRIES = ["Desktop", "Mobile", "Tablet"], ["US", "DE", "FR", "GB", "BR", "IN"]
EVENTS = ["$pageview"] * 5 + ["$autocapture"] * 2 + ["click", "signup", "$pageleave"]


def _timestamp(rng: random.Random, moment: datetime) -> str:
    r = rng.random()
    if r < 0.05:
        return moment.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")
    if r < 0.15:
        zone = timezone(timedelta(hours=rng.choice([2, -5, 5, -3]), minutes=rng.choice([0, 30])))
        return moment.astimezone(zone).isoformat(timespec="microseconds")
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def generate(
    n_target: int, late_share: float = 0.005, seed: int = 7, projects: tuple[int, int] = (1, 2)
) -> list[dict]:
    rng = random.Random(seed)
    base = datetime(2026, 11, 1, tzinfo=UTC)
    arrivals: list[tuple[float, dict]] = []
    ids = [
        (project, f"{kind}-{project}-{i:03d}", kind)
        for project in projects
        for i in range(50)
        for kind in rng.choices(["anon", "posthog", "amplitude"], [0.4, 0.35, 0.25])
    ]
    for project, distinct_id, kind in ids:
        person = str(uuid.uuid5(SESSION_NAMESPACE, f"person:{project}:{distinct_id}"))
        t = base + timedelta(seconds=rng.uniform(0, 3600))
        produced = 0
        while produced < n_target // len(ids):
            visit_length = 1 if rng.random() < 0.2 else rng.randint(2, 40)
            posthog_session = str(uuid.uuid4())
            amplitude_session = int(t.timestamp() * 1000) if rng.random() > 0.1 else -1
            browser, os_, device, country = (rng.choice(BROWSERS), rng.choice(OSES), rng.choice(DEVICES),
                                             rng.choice(COUNTRIES))  # fmt: skip
            for _ in range(visit_length):
                props: dict = {"$current_url": rng.choice(URLS), "$browser": browser, "$os": os_,
                               "$device_type": device, "$geoip_country_code": country, "other": rng.randint(0, 9)}  # fmt: skip
                if rng.random() < 0.1:
                    props["$browser"] = rng.choice(BROWSERS)  # not the first event's: must not be picked
                if rng.random() < 0.03:
                    del props["$current_url"]
                protocol = "posthog"
                if kind == "posthog" and rng.random() > 0.05:
                    props["$session_id"] = posthog_session
                if kind == "amplitude":
                    protocol = "amplitude"
                    props["$device_id"] = f"dev-{distinct_id}"
                    if rng.random() < 0.5:
                        props["$user_id"] = distinct_id
                    if amplitude_session != -1:
                        props["$session_id"] = str(amplitude_session)
                event = {
                    "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)), "project_id": project,
                    "event": rng.choice(EVENTS), "distinct_id": distinct_id, "person_id": person,
                    "timestamp": _timestamp(rng, t), "received_at": t.isoformat(), "protocol": protocol,
                    "token": f"tok{project}", "properties": props, "person_properties": {},
                }  # fmt: skip
                arrival = t.timestamp()
                r = rng.random()
                if r < late_share:
                    arrival += rng.uniform(120, 90 * 60)  # far beyond the lateness
                elif r < 0.10:
                    arrival += rng.uniform(0, 20)  # out of order within it
                arrivals.append((arrival, event))
                produced += 1
                inside = rng.uniform(1, 300) if rng.random() > 0.03 else rng.uniform(29 * 60, 29 * 60 + 59.9)
                t += timedelta(seconds=inside)
            g = rng.random()
            if g < 0.3:
                t += timedelta(seconds=rng.uniform(30 * 60 + 1, 32 * 60))
            elif g < 0.32:
                t += timedelta(minutes=30)  # exactly the gap: Flink merges windows that touch
            else:
                t += timedelta(seconds=rng.uniform(3600, 5 * 3600))
    arrivals += [(a + rng.uniform(0, 120), dict(e)) for a, e in arrivals if rng.random() < 0.02]
    arrivals.sort(key=lambda x: x[0])
    return [e for _, e in arrivals]
