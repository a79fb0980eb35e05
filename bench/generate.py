"""Seeded synthetic product-analytics data: the rows the writer stores, as pandas DataFrames.

    .venv/bin/python bench/generate.py [--events 10000000] [--persons 200000] [--days 90] [--seed 1]

`generate()` is deterministic for its arguments and numpy-vectorized (10M events in seconds); `insert()`
writes a Dataset through `ClickHouse.insert` in chunks. What the data holds, per project:

- `persons` users `user-<n>` over `days` days from `start`, in sessions of events (a quarter of them one
  event long: bounces); heavy and light users (log-normal activity).
- Anonymous browsing: a share of users first browse as `anon-<n>` (those events carry the anonymous
  person's id), then are identified: `person_distinct_ids` maps `anon-<n>` to the anonymous person at
  version 0 and to the user's person at version 1.
- Merges: a share of users were merged into another user (`user-<j>` -> the other's person at version 1,
  events after the merge carry the new person already), the merged-away person deleted at a higher version.
- Personless ids `device-<n>`: their events carry `uuid5(NAMESPACE_URL, "<project_id>:<distinct_id>")`;
  the odd ones have no `person_distinct_ids` row, the even ones were later linked to a user (one row at
  version 1, as the persons worker writes an id that joins another person).
- Duplicate sends (identical rows, same uuid) and late events (received days after their timestamp).
- Properties `$browser`, `$os`, `$geoip_country_code` (per person), `$pathname` and `$current_url` (some
  hostile), `plan`, `amount` (missing on ~10%), `$session_id` (~80% of sessions); the event named
  HOSTILE_EVENT and the property HOSTILE_PROPERTY are in the data on purpose. `persons` rows: the current
  `{"tier", "score"}` and an older, superseded `{"tier"}` at a lower version.

One person's events are always at least a second apart (their sessions never overlap), so their time
order is the same at second and at microsecond resolution.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from flink.job import session_uuid
from workers.clickhouse import ClickHouse
from workers.writer import (
    DISTINCT_ID_COLUMNS,
    EVENT_COLUMNS,
    EVENT_COUNT_COLUMNS,
    PERSON_COLUMNS,
    SESSION_COLUMNS,
)

HOSTILE_EVENT = "'; DROP TABLE events; --"
HOSTILE_PROPERTY = "{project_id:UInt64}'\"\\"
HOSTILE_VALUES = ("x'y", "{project_id:UInt64}", 'a"b\\c')
EVENTS = ("$pageview", "$autocapture", "signed_up", "purchase", HOSTILE_EVENT)
FIRST_EVENT_WEIGHTS = (0.85, 0.1, 0.03, 0.015, 0.005)  # a session's first event
LATER_EVENT_WEIGHTS = (0.5, 0.28, 0.09, 0.12, 0.01)
HOST = "https://shop.example"
PAGES = ("/", "/pricing", "/products/42", "/cart", "/checkout", "/'; DROP TABLE events; --",
         '/search?q="x\\y"', "/café")  # fmt: skip
PAGE_WEIGHTS = (0.3, 0.15, 0.2, 0.1, 0.1, 0.05, 0.05, 0.05)
BROWSERS, OSES = ("Chrome", "Firefox", "Safari", "Edge"), ("Mac OS X", "Windows", "Linux", "iOS", "Android")
COUNTRIES, PLANS, TIERS = (
    ("US", "DE", "GB", "FR", "IN", "BR"),
    ("free", "pro", "team"),
    ("gold", "silver", "bronze"),
)
INVITES = 50  # distinct `invite_code` values of the extra event
SECOND = 1_000_000  # microseconds
LATE_AFTER = pd.Timedelta(hours=12)  # received this much after its timestamp: a late event


@dataclass(frozen=True)
class Dataset:
    """The stored rows: `events` (EVENT_COLUMNS, duplicates included), `person_distinct_ids`, `persons`."""

    events: pd.DataFrame
    person_distinct_ids: pd.DataFrame
    persons: pd.DataFrame

    @staticmethod
    def concat(*parts: Dataset) -> Dataset:
        def join(name: str) -> pd.DataFrame:
            return pd.concat([getattr(p, name) for p in parts], ignore_index=True)

        return Dataset(join("events"), join("person_distinct_ids"), join("persons"))


def _uuids(rng: np.random.Generator, n: int) -> pa.Array:
    """`n` random version-4 UUIDs as strings, without a Python loop."""
    return _uuid_text(rng.integers(0, 256, size=(n, 16), dtype=np.uint8))


def _uuid_text(raw: np.ndarray) -> pa.Array:
    raw, n = raw.copy(), len(raw)
    raw[:, 6] = (raw[:, 6] & 0x0F) | 0x40
    raw[:, 8] = (raw[:, 8] & 0x3F) | 0x80
    nibbles = np.empty((n, 32), dtype=np.uint8)
    nibbles[:, 0::2], nibbles[:, 1::2] = raw >> 4, raw & 0x0F
    text = np.full((n, 36), ord("-"), dtype=np.uint8)
    text[:, [i for i in range(36) if i not in (8, 13, 18, 23)]] = np.frombuffer(
        b"0123456789abcdef", np.uint8
    )[nibbles]
    return pa.array(text.view("S36").ravel()).cast(pa.string())


def _pick(rng: np.random.Generator, weights: tuple[float, ...], n: int) -> np.ndarray:
    cdf = np.cumsum(weights) / sum(weights)
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(weights) - 1)


def _texts(values: list[str] | tuple[str, ...]) -> pa.Array:
    return pa.array(list(values), type=pa.string())


def _numbered(prefix: str, numbers: np.ndarray, suffix: str = "") -> pa.Array:
    return pc.binary_join_element_wise(prefix, pc.cast(pa.array(numbers), pa.string()), suffix, "")


@dataclass
class _People:
    """Every actor (users, then personless devices) as arrays indexed by actor number."""

    distinct_id: pa.Array  # user-<n> | device-<n>
    anon_id: pa.Array  # anon-<n> (users)
    person: pa.Array  # ids: users' persons, then anonymous persons, then the devices' uuid5 ids
    users: int
    is_anon: np.ndarray
    identified_at: np.ndarray  # microseconds from start; before it an anonymous user browses as anon-<n>
    merged_into: np.ndarray  # -1, or the user whose person this user was merged into
    merged_at: np.ndarray
    owner: np.ndarray  # the actor whose person this actor's events end up with
    weight: np.ndarray
    device: pa.Array  # `{"$browser":…,"$os":…,"$geoip_country_code":…` (unclosed), per actor


def _people(rng: np.random.Generator, project_id: int, users: int, devices: int, anonymous: float,
            merged: float, span: int) -> _People:  # fmt: skip
    actors = users + devices
    device_ids = [f"device-{n}" for n in range(devices)]
    uuid5s = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"{project_id}:{d}")) for d in device_ids]
    person = pa.concat_arrays([_uuids(rng, 2 * users), _texts(uuid5s)])
    is_anon = np.r_[rng.random(users) < anonymous, np.zeros(devices, bool)]
    merged_into = np.full(actors, -1)
    chosen = np.flatnonzero(rng.random(users) < merged)
    keep = np.setdiff1d(np.arange(users), chosen)
    if len(keep):
        merged_into[chosen] = keep[rng.integers(0, len(keep), len(chosen))]
    owner = np.where(merged_into >= 0, merged_into, np.arange(actors))
    return _People(
        distinct_id=pa.concat_arrays([_numbered("user-", np.arange(users)), _texts(device_ids)]),
        anon_id=_numbered("anon-", np.arange(actors)), person=person, users=users, is_anon=is_anon,
        identified_at=rng.integers(0, span, actors), merged_into=merged_into,
        merged_at=rng.integers(0, span, actors), owner=owner, weight=rng.lognormal(0, 1.0, actors),
        device=_texts([orjson.dumps({"$browser": BROWSERS[b], "$os": OSES[o], "$geoip_country_code": COUNTRIES[c]})
                       .decode()[:-1] for b, o, c in rng.integers(0, [len(BROWSERS), len(OSES), len(COUNTRIES)],
                                                                 (actors, 3))]),
    )  # fmt: skip


def _sessions(rng: np.random.Generator, events: int) -> np.ndarray:
    """Session lengths adding up to exactly `events`: a quarter are bounces (one event), the rest have
    1 + a geometric number of events (2 or more, 5 on average)."""
    lengths: list[np.ndarray] = []
    total = 0
    while total < events:
        n = max(16, int((events - total) / 4.5 * 1.1))
        more = np.where(rng.random(n) < 0.25, 1, 1 + rng.geometric(0.25, n))
        lengths.append(more)
        total += int(more.sum())
    out = np.concatenate(lengths)
    cut = np.searchsorted(np.cumsum(out), events)
    out = out[: cut + 1]
    out[-1] -= int(out.sum()) - events
    return out


def _session_starts(
    rng: np.random.Generator, owner: np.ndarray, span: np.ndarray, range_us: int
) -> np.ndarray:
    """Random starts, pushed later where needed so one owner's sessions are a second or more apart."""
    wanted = rng.integers(0, range_us, len(owner))
    order = np.lexsort((wanted, owner))
    o, s, width = owner[order], wanted[order], span[order] + SECOND
    before = np.cumsum(width) - width  # exclusive running sum, reset per owner below
    firsts = np.r_[0, np.flatnonzero(np.diff(o)) + 1]
    group_start = np.repeat(firsts, np.diff(np.r_[firsts, len(o)]))
    before -= before[group_start]
    pushed = pd.Series(s - before).groupby(o).cummax().to_numpy() + before
    starts = np.empty_like(pushed)
    starts[order] = pushed
    return starts


def _draws(rng: np.random.Generator, people: _People, events: int, range_us: int, late: float,
           extra_event: str | None) -> dict[str, np.ndarray]:  # fmt: skip
    """Everything random about each event, as numbers (strings are made once, after ordering)."""
    lengths = _sessions(rng, events)
    firsts = np.cumsum(lengths) - lengths
    session = np.repeat(np.arange(len(lengths)), lengths)
    position = np.arange(events) - np.repeat(firsts, lengths)
    offset = np.cumsum(
        np.where(position == 0, 0, SECOND + rng.exponential(40 * SECOND, events).astype(np.int64))
    )
    offset -= np.repeat(offset[firsts], lengths)
    actor_of_session = rng.choice(len(people.weight), len(lengths), p=people.weight / people.weight.sum())
    span = offset[firsts + lengths - 1]
    moment = _session_starts(rng, people.owner[actor_of_session], span, range_us)[session] + offset
    actor = actor_of_session[session]
    code = np.where(
        position == 0, _pick(rng, FIRST_EVENT_WEIGHTS, events), _pick(rng, LATER_EVENT_WEIGHTS, events)
    )
    extra = (rng.random(events) < 0.01) if extra_event else np.zeros(events, bool)
    anon_phase = people.is_anon[actor] & (moment < people.identified_at[actor])
    after_merge = (people.merged_into[actor] >= 0) & (moment >= people.merged_at[actor])
    users = people.users  # person ids: users' persons, then anonymous persons, then the devices' uuid5 ids
    person = np.where(actor >= users, actor + users, actor)
    person = np.where(anon_phase, actor + users, np.where(after_merge, people.merged_into[actor], person))
    code = np.where(extra, len(EVENTS), code)
    delay = np.where(rng.random(events) < late, rng.integers(86400 * SECOND, 4 * 86400 * SECOND, events),
                     rng.integers(SECOND // 20, 2 * SECOND, events))  # fmt: skip
    return {
        "session": session, "actor": actor, "moment": moment, "delay": delay, "code": code, "extra": extra,
        "anon_phase": anon_phase, "person": person, "page": _pick(rng, PAGE_WEIGHTS, events),
        "plan": rng.integers(0, len(PLANS), events), "amount": rng.integers(1, 500, events),
        "has_amount": rng.random(events) >= 0.1, "invite": rng.integers(0, INVITES, events),
        "hostile_key": (code == EVENTS.index(HOSTILE_EVENT)) | (rng.random(events) < 0.03),
        "hostile_value": rng.integers(0, len(HOSTILE_VALUES), events),
        "uuid": rng.integers(0, 256, size=(events, 16), dtype=np.uint8),
    }  # fmt: skip


def _fragment(mapping: dict[str, object]) -> str:
    """`{"k":v,...}` as `,"k":v,...`: a piece of a JSON object to join after another."""
    return "," + orjson.dumps(mapping).decode()[1:-1]


def _properties(people: _People, d: dict[str, np.ndarray], has_session_id: np.ndarray) -> pa.Array:
    """Each event's properties as JSON text, joined in one pass from pre-encoded fragments: the device,
    page, plan (and the `"amount":` key when it has one), the amount, the session id, then the rest."""
    amount_key = ("", ',"amount":')
    middle = [_fragment({"$pathname": p, "$current_url": HOST + p, "plan": plan}) + key
              for p in PAGES for plan in PLANS for key in amount_key]  # fmt: skip
    hostile = ["", *(_fragment({HOSTILE_PROPERTY: v}) for v in HOSTILE_VALUES)]
    invites = ["", *(_fragment({"invite_code": f"inv-{n}"}) for n in range(INVITES))]
    tail = [quote + h + i + "}" for quote in ("", '"') for h in hostile for i in invites]
    with_id = has_session_id[d["session"]]
    which_tail = (with_id * len(hostile) + np.where(d["hostile_key"], 1 + d["hostile_value"], 0)) * len(
        invites
    ) + np.where(d["extra"], 1 + d["invite"], 0)
    parts = [
        people.device.take(pa.array(d["actor"])),
        _texts(middle).take(pa.array((d["page"] * len(PLANS) + d["plan"]) * 2 + d["has_amount"])),
        pc.cast(pa.array(d["amount"], mask=~d["has_amount"]), pa.string()),
        _texts(["", ',"$session_id":"s-']).take(pa.array(with_id.astype(np.int8))),
        pc.cast(pa.array(d["session"], mask=~with_id), pa.string()),
        _texts(tail).take(pa.array(which_tail)),
    ]
    return pc.binary_join_element_wise(*parts, "", null_handling="replace", null_replacement="")


def generate(seed: int, project_id: int, persons: int, days: int, events: int, start: datetime, *,
             anonymous: float = 0.3, merged: float = 0.1, personless: float = 0.1, duplicates: float = 0.05,
             late: float = 0.01, sessions_with_id: float = 0.8, extra_event: str | None = None) -> Dataset:  # fmt: skip
    """`events` distinct events (plus ~`duplicates` of them stored twice) of `persons` users and
    `personless` * `persons` personless ids over `days` days from `start`, in time order, the duplicate
    sends last; `extra_event` (an event name only this project has, with the property `invite_code`)
    replaces ~1% of the events when given."""
    rng = np.random.default_rng(seed)  # the same rows whatever id the project got
    people = _people(
        rng, project_id, persons, round(persons * personless), anonymous, merged, days * 86400 * SECOND
    )
    d = _draws(rng, people, events, days * 86400 * SECOND, late, extra_event)
    has_session_id = rng.random(int(d["session"].max()) + 1 if events else 0) < sessions_with_id
    rows = np.argsort(d["moment"], kind="stable")
    rows = np.r_[rows, rows[rng.random(events) < duplicates]]
    d = {name: values[rows] for name, values in d.items()}
    n, start_us = len(rows), int(start.timestamp()) * SECOND + start.microsecond
    table = pa.table({
        "uuid": _uuid_text(d["uuid"]),
        "project_id": pa.array(np.full(n, project_id)),
        "event": _texts([*EVENTS, extra_event or ""]).take(pa.array(d["code"])),
        "distinct_id": pc.if_else(pa.array(d["anon_phase"]), people.anon_id.take(pa.array(d["actor"])),
                                  people.distinct_id.take(pa.array(d["actor"]))),
        "person_id": people.person.take(pa.array(d["person"])),
        "person_properties": _constant("{}", n),
        "timestamp": _instants(start_us + d["moment"]),
        "properties": _properties(people, d, has_session_id),
        "set": _constant("", n),
        "set_once": _constant("", n),
        "ip": _constant("", n),
        "lib": _constant("web", n),
        "protocol": _constant("posthog", n),
        "sent_at": _instants(start_us + d["moment"] + d["delay"] // 2),
        "received_at": _instants(start_us + d["moment"] + d["delay"]),
    })  # fmt: skip
    return Dataset(table.to_pandas(), *_identities(rng, project_id, people, start))


def _constant(text: str, n: int) -> pa.Array:
    return pa.repeat(pa.scalar(text, pa.string()), n)


def _instants(micros: np.ndarray) -> pa.Array:
    return pa.array(micros.astype("datetime64[us]")).cast(pa.timestamp("us", tz="UTC"))


def _identities(rng: np.random.Generator, project_id: int, people: _People,
                start: datetime) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
    """`person_distinct_ids` and `persons` rows of the users (personless devices have none)."""
    n = people.users
    ids = people.person.to_pylist()
    user, anon = ids[:n], ids[n : 2 * n]
    into = people.merged_into[:n]
    final = [user[t] if t >= 0 else user[i] for i, t in enumerate(into)]
    rows = [(f"user-{i}", user[i], 0) for i in range(n)]
    rows += [(f"user-{i}", final[i], 1) for i in np.flatnonzero(into >= 0)]
    for i in np.flatnonzero(people.is_anon[:n]):
        rows += [(f"anon-{i}", anon[i], 0), (f"anon-{i}", user[i], 1)]
        rows += [(f"anon-{i}", final[i], 2)] if into[i] >= 0 else []
    # every other personless device was later linked to a user: its first row joins another person, so the
    # persons worker writes it at version 1 (workers.identity.first_version); its events keep their uuid5
    devices = people.distinct_id.to_pylist()[n:]
    owners = rng.integers(0, n, len(devices)) if n else np.zeros(0, int)
    rows += [(d, final[owners[k]], 1) for k, d in enumerate(devices) if k % 2 == 0]
    distinct_ids = pd.DataFrame(
        [(project_id, d, p, v, 0) for d, p, v in rows], columns=list(DISTINCT_ID_COLUMNS)
    ).astype({"distinct_id": "str", "person_id": "str"})
    tier, score = rng.integers(0, 3, n), rng.integers(0, 101, n)
    created = pd.Timestamp(start).tz_convert("UTC")
    persons = []
    for i in range(n):
        now = orjson.dumps({"tier": TIERS[tier[i]], "score": int(score[i])}).decode()
        persons += [(user[i], f'{{"tier":"{TIERS[(tier[i] + 1) % 3]}"}}', 1, 0, 0), (user[i], now, 1, 1, 0)]
        persons += [(user[i], now, 1, 2, 1)] if into[i] >= 0 else []
        persons += [(anon[i], "{}", 0, 0, 0), (anon[i], "{}", 0, 1, 1)] if people.is_anon[i] else []
    frame = pd.DataFrame(persons, columns=["id", "properties", "is_identified", "version", "is_deleted"])
    frame = frame.assign(project_id=project_id, created_at=created)[list(PERSON_COLUMNS)]
    return distinct_ids, frame.astype({"id": "str", "properties": "str"})


def _rows(frame: pd.DataFrame, columns: tuple[str, ...]) -> list[tuple[object, ...]]:
    """Rows for `ClickHouse.insert`; instants as naive UTC datetimes (fast to make, read as UTC)."""
    values = []
    for column in columns:
        series = frame[column]
        if isinstance(series.dtype, pd.DatetimeTZDtype):
            # in microseconds: numpy gives datetime objects for µs, but plain ints for ns (pandas < 3's unit)
            naive = series.dt.tz_convert("UTC").dt.tz_localize(None).dt.as_unit("us")
            values.append(naive.to_numpy().astype(object).tolist())
        else:
            values.append(series.tolist())
    return list(zip(*values, strict=True))


def sessions(data: Dataset, gap_minutes: int = 30) -> pd.DataFrame:
    """The `sessions` rows (SESSION_COLUMNS) the Flink job writes for these events when it reads them in
    time order (so none is too late): each uuid once, cut by `$session_id` (`explicit`) or else by the
    distinct id (`window`), a new session after a gap over `gap_minutes` (windows that touch merge)."""
    ev = data.events.drop_duplicates(["project_id", "uuid"])
    props = [orjson.loads(p) for p in ev["properties"]]

    def prop(name: str) -> list[str]:
        return [p.get(name) or "" for p in props]

    sid = np.array(prop("$session_id"), dtype=object)
    ev = ev.assign(
        ms=ev["timestamp"].dt.as_unit("us").astype("int64") // 1000,
        kind=np.where(sid != "", "explicit", "window"),
        key=np.where(sid != "", sid, ev["distinct_id"].to_numpy()),
        url=prop("$current_url"), browser=prop("$browser"), os=prop("$os"), device_type=prop("$device_type"),
        country=prop("$geoip_country_code"), pageview=(ev["event"] == "$pageview").astype("int64"),
    ).sort_values(["project_id", "kind", "key", "ms", "uuid"])  # fmt: skip
    same_key = (ev[["project_id", "kind", "key"]] == ev[["project_id", "kind", "key"]].shift()).all(axis=1)
    number = (~same_key | (ev["ms"].diff() > gap_minutes * 60_000)).cumsum()
    grouped = ev.groupby(number.to_numpy(), sort=False)
    first, last = grouped.first(), grouped.last()
    count = grouped.size()
    frame = pd.DataFrame({
        "session_id": [k if kind == "explicit" else session_uuid(p, k, ms) for p, kind, k, ms in
                       zip(first["project_id"], first["kind"], first["key"], first["ms"], strict=True)],
        "kind": first["kind"], "project_id": first["project_id"], "person_id": first["person_id"],
        "distinct_id": first["distinct_id"],
        "start": pd.to_datetime(first["ms"], unit="ms", utc=True), "end": pd.to_datetime(last["ms"], unit="ms", utc=True),
        "duration_seconds": (last["ms"] - first["ms"]) / 1000, "event_count": count,
        "pageview_count": grouped["pageview"].sum(), "entry_url": first["url"], "exit_url": last["url"],
        "bounced": (count == 1).astype("int64"), "browser": first["browser"], "os": first["os"],
        "device_type": first["device_type"], "country": first["country"],
    })  # fmt: skip
    return frame[list(SESSION_COLUMNS)]


def event_counts(data: Dataset, time_zones: dict[int, str]) -> pd.DataFrame:
    """The `event_counts_1m` rows (EVENT_COUNT_COLUMNS) the Flink job and the writer make of these events
    read in time order: per project, event and UTC minute, the events (each uuid once) and their distinct
    (distinct id, person id) pairs; `local_day` is the minute's day in the project's time zone (UTC if not
    given)."""
    ev = data.events.drop_duplicates(["project_id", "uuid"])
    actors = list(zip(ev["distinct_id"], ev["person_id"], strict=True))
    ev = ev.assign(minute=ev["timestamp"].dt.floor("min"), actor=actors)
    grouped = ev.groupby(["project_id", "event", "minute"], sort=False)
    frame = grouped.agg(count=("uuid", "size"), actors=("actor", lambda a: sorted(set(a)))).reset_index()
    frame["distinct_ids"] = [[d for d, _ in actors] for actors in frame["actors"]]
    frame["persons"] = [[p for _, p in actors] for actors in frame["actors"]]
    zones = frame["project_id"].map(lambda p: time_zones.get(p, "UTC"))
    frame["local_day"] = [m.tz_convert(z).date() for m, z in zip(frame["minute"], zones, strict=True)]
    return frame[list(EVENT_COUNT_COLUMNS)]


async def insert(
    ch: ClickHouse, data: Dataset, chunk_rows: int = 100_000, time_zones: dict[int, str] | None = None
) -> None:
    """Distinct ids and persons version by version (lowest first), then the events: on-time events,
    their duplicate sends, and the late events last, each in chunks of `chunk_rows`; then what the Flink
    job makes of them: `sessions` and `event_counts_1m` (local days in `time_zones`, UTC if not given)."""
    for table, frame, columns in (("person_distinct_ids", data.person_distinct_ids, DISTINCT_ID_COLUMNS),
                                  ("persons", data.persons, PERSON_COLUMNS)):  # fmt: skip
        for _, part in frame.groupby("version", sort=True):
            await _chunks(ch, table, part, columns, chunk_rows)
    events = data.events
    late = (events["received_at"] - events["timestamp"] >= LATE_AFTER).to_numpy()
    again = events.duplicated(["project_id", "uuid"]).to_numpy()
    for mask in (~late & ~again, ~late & again, late & ~again, late & again):
        await _chunks(ch, "events", events[mask], EVENT_COLUMNS, chunk_rows)
    await _chunks(ch, "sessions", sessions(data), SESSION_COLUMNS, chunk_rows)
    await _chunks(
        ch, "event_counts_1m", event_counts(data, time_zones or {}), EVENT_COUNT_COLUMNS, chunk_rows
    )


async def _chunks(
    ch: ClickHouse, table: str, frame: pd.DataFrame, columns: tuple[str, ...], size: int
) -> None:
    for first in range(0, len(frame), size):
        await ch.insert(table, columns, _rows(frame.iloc[first : first + size], columns))


def data_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """The generator's options, shared with bench/queries.py."""
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--persons", type=int, default=200_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=1)
    return parser


def main() -> None:
    parser = data_arguments(
        argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    )
    parser.add_argument("--project-id", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    data = generate(
        args.seed, args.project_id, args.persons, args.days, args.events, datetime(2026, 8, 1, tzinfo=UTC)
    )
    seconds = time.perf_counter() - started
    events = data.events
    print(f"{len(events):,} stored events ({events['uuid'].nunique():,} distinct), "
          f"{len(data.person_distinct_ids):,} distinct id rows, {len(data.persons):,} person rows "
          f"in {seconds:.1f} s")  # fmt: skip


if __name__ == "__main__":
    main()
