"""What the Flink job must output for a stream read in order from one partition, computed in plain Python:
the first arrival of each uuid; a watermark of the highest event time so far minus the lateness, moved on
every event; Flink's merging session windows (an event is merged into the open windows first and dropped
only if the merged window has already fired; windows that touch merge); one-minute windows that drop what
arrives after they fired, which is exactly `late_events`."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

from flink.job import SESSION_NAMESPACE


def epoch_ms(text: str) -> int:
    """An ISO-8601 time with a zone, floored to the millisecond like TIMESTAMP_LTZ(3)."""
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1_000_000) // 1000


def session_key(event: dict) -> tuple[str, str]:
    """(kind, key): the session id the SDK sent, or the distinct id for a session cut by the gap."""
    props = event["properties"]
    sid = props.get("$session_id")
    if event.get("protocol") == "amplitude":
        if sid is not None and sid.lstrip("-").isdigit() and int(sid) > 0:
            device = props.get("$device_id") or props.get("$user_id") or event["distinct_id"]
            return "amplitude", f"amp:{device}:{sid}"
        return "window", event["distinct_id"]
    return ("explicit", sid) if sid else ("window", event["distinct_id"])


def reference(
    events: list[dict], lateness_s: int, gap_minutes: int
) -> tuple[list[dict], list[dict], list[dict]]:
    """(sessions, minute counts, late events) in the shapes of the job's topics, times as epoch ms."""
    lateness, gap = lateness_s * 1000, gap_minutes * 60_000
    seen: set[str] = set()
    watermark: int | None = None
    open_windows: dict[tuple, list[list]] = defaultdict(list)  # key -> [[start, end, [events]]]
    sessions: list[dict] = []
    minutes: dict[tuple, tuple[int, set[tuple[str, str]]]] = {}
    late: list[dict] = []

    def fire(upto: int | None) -> None:
        for key in list(open_windows):
            keep = []
            for w in open_windows[key]:
                if upto is None or w[1] - 1 <= upto:
                    sessions.append(_session(key, w))
                else:
                    keep.append(w)
            if keep:
                open_windows[key] = keep
            else:
                del open_windows[key]

    for event in events:
        if event["uuid"] in seen:
            continue
        seen.add(event["uuid"])
        t = event["_ms"] = epoch_ms(event["timestamp"])
        minute = t - t % 60_000
        if watermark is not None and minute + 60_000 - 1 <= watermark:
            late.append(event)
        else:
            count, actors = minutes.get((event["project_id"], event["event"], minute), (0, set()))
            actors = actors | {(event["person_id"], event["distinct_id"])}
            minutes[(event["project_id"], event["event"], minute)] = (count + 1, actors)
        key = (event["project_id"], *session_key(event))
        merged = [t, t + gap, [event]]
        rest = list(open_windows[key])
        changed = True
        while changed:
            changed = False
            for w in list(rest):
                if w[0] <= merged[1] and w[1] >= merged[0]:
                    merged = [min(w[0], merged[0]), max(w[1], merged[1]), w[2] + merged[2]]
                    rest.remove(w)
                    changed = True
        if not (watermark is not None and merged[1] - 1 <= watermark):
            open_windows[key] = [*rest, merged]
        elif not open_windows[key]:
            del open_windows[key]
        watermark = t - lateness if watermark is None else max(watermark, t - lateness)
        fire(watermark)
    fire(None)
    counts = [
        {"project_id": p, "event": e, "minute": m, "count": n, "actors": sorted(map(list, actors))}
        for (p, e, m), (n, actors) in minutes.items()
    ]
    return sessions, counts, late


def _session(key: tuple, window: list) -> dict:
    project, kind, skey = key
    events = sorted(window[2], key=lambda e: (e["_ms"], e["uuid"]))
    first, last = events[0], events[-1]
    start = first["_ms"]
    props = first["properties"]
    return {
        "session_id": str(uuid.uuid5(SESSION_NAMESPACE, f"{project}:{skey}:{start}")) if kind == "window" else skey,
        "kind": kind, "project_id": project, "person_id": first["person_id"], "distinct_id": first["distinct_id"],
        "start": start, "end": last["_ms"], "duration_seconds": (last["_ms"] - start) / 1000,
        "event_count": len(events), "pageview_count": sum(e["event"] == "$pageview" for e in events),
        "entry_url": props.get("$current_url"), "exit_url": last["properties"].get("$current_url"),
        "bounced": len(events) == 1, "browser": props.get("$browser"), "os": props.get("$os"),
        "device_type": props.get("$device_type"), "country": props.get("$geoip_country_code"),
    }  # fmt: skip
