"""The token buckets on a fake clock (the per-process steps; tests/integration/test_limits.py checks that
Redis's Lua script takes the same steps)."""

from __future__ import annotations

from workers.capture.amplitude import throttled_answer
from workers.capture.limits import Bucket, LocalBuckets, Rates, Taken
from workers.projects import Project
from workers.settings import Settings

RATES = Rates(project=Bucket(10, 100), distinct_id=Bucket(2, 10), overflow=Bucket(1, 5))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def take(buckets: LocalBuckets, counts: list[tuple[str, int]], whole: bool) -> Taken:
    keys = ["p", *(f"d:{distinct_id}" for distinct_id, _ in counts)]
    return buckets.take(keys, RATES, [n for _, n in counts], whole)


def test_a_whole_request_is_taken_or_refused_whole_and_says_when_to_come_back() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert take(buckets, [("a", 8), ("b", 3)], whole=True) == Taken([8, 3], [3, 0], [0, 0], 0, 0)
    # a holds 2 tokens: its 3 are refused by its own bucket, and b's 1 with them (by no bucket)
    assert take(buckets, [("a", 3), ("b", 1)], whole=True) == Taken([0, 0], [0, 0], [3, 0], 0, 500)
    clock.now += 0.5  # a: 2 + 1
    assert take(buckets, [("a", 3), ("b", 1)], whole=True) == Taken([3, 1], [3, 0], [0, 0], 0, 0)


def test_a_batch_bigger_than_the_burst_passes_on_a_full_bucket_and_leaves_a_debt() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert take(buckets, [("a", 25)], whole=True) == Taken([25], [20], [0], 0, 0)
    # a is 15 below zero: a full burst again after (10 + 15) / 2 s
    assert take(buckets, [("a", 10)], whole=True) == Taken([0], [0], [10], 0, 12_500)
    clock.now += 12.5
    assert take(buckets, [("a", 10)], whole=True).granted == [10]


def test_partial_requests_take_what_fits_per_distinct_id_then_within_the_project() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert take(buckets, [("a", 14), ("b", 4)], whole=False) == Taken([10, 4], [5, 0], [4, 0], 0, 2000)
    for n in range(8):  # the project's bucket: 86 left; eight more distinct ids take 80
        take(buckets, [(f"c{n}", 10)], whole=False)
    # 6 fit the project; d's 4 more were within d's own bucket, so the project refused them
    assert take(buckets, [("d", 10)], whole=False) == Taken([6], [1], [0], 4, 400)


def test_the_hot_key_bucket_sends_the_surplus_to_overflow_until_it_refills() -> None:
    clock = Clock()
    buckets = LocalBuckets(clock)
    assert take(buckets, [("a", 4)], whole=True).overflow == [0]
    assert take(buckets, [("a", 4)], whole=True).overflow == [3]  # 1 token left in the hot-key bucket
    clock.now += 3  # +3 hot-key tokens, and a's own bucket holds 2 + 6
    assert take(buckets, [("a", 4)], whole=True).overflow == [1]


def test_project_columns_override_the_environment_defaults() -> None:
    from workers.capture.limits import rates_for

    settings = Settings.from_env({"CAPTURE_PROJECT_EVENTS_PER_SECOND": "50", "CAPTURE_OVERFLOW_BURST": "7"})
    plain = Project(1, "p", "t", "k", "UTC")
    own = Project(2, "q", "u", "l", "UTC", distinct_id_events_per_second=30, distinct_id_burst=900)
    assert rates_for(plain, settings) == Rates(Bucket(50, 100_000), Bucket(1000, 10_000), Bucket(100, 7))
    assert rates_for(own, settings) == Rates(Bucket(50, 100_000), Bucket(30, 900), Bucket(100, 7))


def test_amplitudes_429_names_the_throttled_events_users_and_devices() -> None:
    events = [
        {"properties": {"$user_id": "u1", "$device_id": "dev-1"}},
        {"properties": {"$device_id": "dev-2"}},
        {"properties": {"$user_id": "u1", "$device_id": "dev-1"}},
        {"properties": {"$device_id": "dev-2"}},
    ]
    assert throttled_answer(events, [1, 2, 3], 30.0) == {
        "code": 429,
        "error": "Too many requests for some devices and users",
        "eps_threshold": 30,
        "throttled_devices": {"dev-2": 2},
        "throttled_users": {"u1": 1},
        "throttled_events": [1, 2, 3],
    }
