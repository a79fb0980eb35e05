"""bench/generate.py: deterministic, and the data holds every feature the analytics tests rely on."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pandas as pd
import pytest

from bench.generate import HOSTILE_EVENT, HOSTILE_PROPERTY, Dataset, generate
from workers.writer import DISTINCT_ID_COLUMNS, EVENT_COLUMNS, PERSON_COLUMNS

START = datetime(2026, 10, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def data() -> Dataset:
    return generate(3, 42, persons=600, days=10, events=20_000, start=START, extra_event="invited_friend")


def test_same_arguments_same_rows(data: Dataset) -> None:
    again = generate(3, 42, persons=600, days=10, events=20_000, start=START, extra_event="invited_friend")
    for name in ("events", "person_distinct_ids", "persons"):
        pd.testing.assert_frame_equal(getattr(again, name), getattr(data, name))
    other = generate(4, 42, persons=600, days=10, events=20_000, start=START)
    moved = generate(3, 43, persons=600, days=10, events=20_000, start=START, extra_event="invited_friend")
    assert (moved.events["uuid"] == data.events["uuid"]).all() and (moved.events["project_id"] == 43).all()
    assert not other.events["uuid"].isin(data.events["uuid"]).any()


def test_columns_are_the_writers_with_utc_instants(data: Dataset) -> None:
    assert list(data.events.columns) == list(EVENT_COLUMNS)
    assert list(data.person_distinct_ids.columns) == list(DISTINCT_ID_COLUMNS)
    assert list(data.persons.columns) == list(PERSON_COLUMNS)
    for column in ("timestamp", "sent_at", "received_at"):
        assert str(data.events[column].dt.tz) == "UTC"
    assert (data.events["timestamp"].dt.microsecond > 0).mean() > 0.99
    assert data.events["timestamp"].min() >= START
    assert data.events["timestamp"].max() < START + pd.Timedelta(days=10, hours=6)


def test_duplicates_are_identical_rows_and_late_events_arrive_days_later(data: Dataset) -> None:
    events = data.events
    assert events["uuid"].nunique() == 20_000
    assert 0.04 < events.duplicated("uuid").mean() < 0.06
    assert events.duplicated().sum() == events.duplicated("uuid").sum(), "a duplicate is the same row"
    late = events["received_at"] - events["timestamp"] >= pd.Timedelta(days=1)
    assert 0.005 < late.mean() < 0.02


def test_identities_anonymous_merged_and_personless(data: Dataset) -> None:
    ids, events = data.person_distinct_ids, data.events
    anon = ids[ids["distinct_id"].str.startswith("anon-")]
    assert set(anon.groupby("distinct_id")["version"].min()) == {0} and anon["version"].max() >= 1
    first_anon = anon[anon["version"] == 0].set_index("distinct_id")["person_id"]
    anon_events = events[events["distinct_id"].str.startswith("anon-")]
    assert len(anon_events) and (anon_events["person_id"] == anon_events["distinct_id"].map(first_anon)).all()
    moved = ids[ids["distinct_id"].str.startswith("user-") & (ids["version"] == 1)]
    assert 30 < len(moved) < 90, "about a tenth of the users were merged into another"
    devices = events[events["distinct_id"].str.startswith("device-")]
    linked = ids[ids["distinct_id"].str.startswith("device-")]
    assert len(devices) and len(linked) and set(linked["version"]) == {1}
    assert all(int(d.split("-")[1]) % 2 == 0 for d in linked["distinct_id"]), "the even devices were linked"
    assert (
        devices["person_id"]
        == [str(uuid.uuid5(uuid.NAMESPACE_URL, f"42:{d}")) for d in devices["distinct_id"]]
    ).all()


def test_persons_have_a_current_and_a_superseded_row(data: Dataset) -> None:
    persons = data.persons[data.persons["is_identified"] == 1].sort_values("version")
    oldest, newest = persons.drop_duplicates("id"), persons.drop_duplicates("id", keep="last")
    current = [orjson.loads(p) for p in newest["properties"]]
    assert all(p["tier"] in ("gold", "silver", "bronze") and 0 <= p["score"] <= 100 for p in current)
    old = dict(zip(oldest["id"], (orjson.loads(p)["tier"] for p in oldest["properties"]), strict=True))
    assert all(old[i] != p["tier"] for i, p in zip(newest["id"], current, strict=True))
    assert data.persons["is_deleted"].sum() > 0, (
        "merged-away and anonymous persons are deleted at a higher version"
    )


def test_properties_events_and_sessions(data: Dataset) -> None:
    events = data.events.drop_duplicates("uuid")
    props = [orjson.loads(p) for p in events["properties"]]
    for key in ("$browser", "$os", "$current_url", "$geoip_country_code", "$pathname", "plan"):
        assert all(key in p for p in props), key
    assert 0.08 < sum("amount" not in p for p in props) / len(props) < 0.12
    assert all(isinstance(p["amount"], int) for p in props if "amount" in p)
    assert 0.75 < sum("$session_id" in p for p in props) / len(props) < 0.85
    assert any(p["$current_url"] == "https://shop.example/'; DROP TABLE events; --" for p in props)
    assert any(HOSTILE_PROPERTY in p for p in props) and any("invite_code" in p for p in props)
    counts = events["event"].value_counts()
    assert counts.index[0] == "$pageview" and {"signed_up", "purchase", "$autocapture", HOSTILE_EVENT} <= set(
        counts.index
    )
    sizes = pd.Series([p["$session_id"] for p in props if "$session_id" in p]).value_counts()
    assert (sizes == 1).any() and (sizes >= 5).any(), "bounces and longer sessions"


def test_a_persons_events_are_at_least_a_second_apart(data: Dataset) -> None:
    events = data.events.drop_duplicates("uuid")
    ids = data.person_distinct_ids.sort_values("version").drop_duplicates("distinct_id", keep="last")
    person = events["distinct_id"].map(ids.set_index("distinct_id")["person_id"]).fillna(events["person_id"])
    gaps = (
        events.assign(person=person).sort_values("timestamp").groupby("person")["timestamp"].diff().dropna()
    )
    assert gaps.min() >= pd.Timedelta(seconds=1)
