"""Cohorts without a store: CSV ids, definitions, the cohorts a query names, and the cache key's versions."""

from __future__ import annotations

import pytest

from workers.query import cohorts, funnels, trends
from workers.query.cache import ResultCache
from workers.query.sql import BadRequest, CohortBreakdown, cohort_references, with_cohort_versions

RANGE = {"date_from": "2026-11-01", "date_to": "2026-11-07"}


def test_csv_takes_the_first_column_skipping_a_header_and_blank_lines() -> None:
    text = 'distinct_id,x\r\nuser-1,a\r\n\r\n"user,2"\n   \n user-3 ,b,c\ndistinct_id\n'
    assert cohorts.csv_distinct_ids(text) == ["user-1", "user,2", "user-3", "distinct_id"]
    assert cohorts.csv_distinct_ids("user-1\nuser-2") == ["user-1", "user-2"]


def test_a_definition_is_normalized_with_its_defaults() -> None:
    body = {"filters": [{"type": "behavioral", "event": "e", "days": 7},
                        {"type": "person", "property": "p", "op": "is_set"}]}  # fmt: skip
    assert cohorts.definition(body) == {"match": "all", "filters": [
        {"type": "behavioral", "event": "e", "did": True, "min_count": 1, "days": 7},
        {"type": "person", "property": "p", "op": "is_set", "value": None},
    ]}  # fmt: skip
    assert cohorts.names(cohorts.definition(body)) == [
        ("event", "filters[0].event", "e"),
        ("person_property", "filters[1].property", "p"),
    ]


@pytest.mark.parametrize(
    ("f", "detail"),
    [
        ({"type": "behavioral", "event": "e", "days": 3651}, "filters[0].days: an integer from 1 to 3650"),
        ({"type": "behavioral", "event": "e", "days": 1, "did": "no"}, "filters[0].did: true or false"),
        ({"type": "cohort", "value": 1}, "filters[0].type: 'cohort' is not one of person, behavioral"),
    ],
)
def test_a_bad_filter_is_named(f: dict[str, object], detail: str) -> None:
    with pytest.raises(BadRequest) as raised:
        cohorts.definition({"filters": [f]})
    assert str(raised.value) == detail


def test_the_cohorts_of_a_query_get_their_versions() -> None:
    q = trends.parse({"events": [{"event": "a"}, {"event": "b", "filters": [
        {"property": "x", "op": "eq", "value": "y"}, {"type": "cohort", "value": 7, "op": "not_in"}]}],
        "breakdown": {"type": "cohort", "cohorts": [3, 7]}, **RANGE})  # fmt: skip
    assert cohort_references(q) == [("events[1].filters[1].value", 7), ("breakdown.cohorts[0]", 3),
                                    ("breakdown.cohorts[1]", 7)]  # fmt: skip
    bound = with_cohort_versions(q, {3: 30, 7: 70})
    assert bound.series[1].filters[1].version == 70 and bound.series[1].filters[0] == q.series[1].filters[0]
    assert bound.breakdown == CohortBreakdown((3, 7), (30, 70))
    funnel = funnels.parse({"steps": [{"event": "a", "filters": [{"type": "cohort", "value": 5}]}, {"event": "b"}],
                            "exclusions": [{"event": "c", "from_step": 1, "to_step": 2,
                                            "filters": [{"type": "cohort", "value": 6, "op": "not_in"}]}],
                            "breakdown": {"type": "cohort", "cohorts": [7, 5]}, "window_seconds": 60, **RANGE})  # fmt: skip
    assert cohort_references(funnel) == [("steps[0].filters[0].value", 5), ("breakdown.cohorts[0]", 7),
                                         ("breakdown.cohorts[1]", 5), ("exclusions[0].filters[0].value", 6)]  # fmt: skip
    bound = with_cohort_versions(funnel, {5: 50, 6: 60, 7: 70})
    assert bound.steps[0].filters[0].version == 50 and bound.exclusions[0].series.filters[0].version == 60
    assert bound.breakdown == CohortBreakdown((7, 5), (70, 50))


def test_the_cache_key_holds_the_cohort_versions() -> None:
    body = {"events": [{"event": "a"}], "refresh": True}
    first, refresh = ResultCache.key("/api/trends", 1, body, {7: 1})
    assert refresh and first == ResultCache.key("/api/trends", 1, {"events": [{"event": "a"}]}, {7: 1})[0]
    assert first != ResultCache.key("/api/trends", 1, body, {7: 2})[0]
