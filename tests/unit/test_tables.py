"""The insights' tables as CSV: cells exactly as the JSON answer writes them, RFC 4180 quoting, CRLF lines."""

from __future__ import annotations

import csv
import io

from workers.query import funnels, retention, trends
from workers.query.tables import cell, csv_text


def test_a_cell_is_the_json_text_and_null_is_empty() -> None:
    assert [cell(v) for v in (None, 0, 1.0, 0.123457, 12, "a", True)] == [
        "",
        "0",
        "1.0",
        "0.123457",
        "12",
        "a",
        "true",
    ]


def test_fields_with_a_comma_quote_or_line_break_are_quoted() -> None:
    text = csv_text((["Series", "a,b"], [['say "hi"', "line\nbreak"], ["cr\r", "plain"]]))
    assert text == 'Series,"a,b"\r\n"say ""hi""","line\nbreak"\r\n"cr\r",plain\r\n'
    assert list(csv.reader(io.StringIO(text, newline=""))) == [
        ["Series", "a,b"], ['say "hi"', "line\nbreak"], ["cr\r", "plain"]]  # fmt: skip


def test_trends_series_of_different_labels_share_the_columns_in_order_of_appearance() -> None:
    answer = {"series": [
        {"event": "buy", "breakdown_value": "", "labels": ['"pro"', '"free"'], "values": [3, 2]},
        {"event": "buy", "breakdown_value": 5, "labels": ['"team"', '"pro"'], "values": [1, 4]},
    ]}  # fmt: skip
    assert trends.table(answer) == (
        ["Series", '"pro"', '"free"', '"team"'],
        [["buy · (none)", "3", "2", ""], ["buy · 5", "4", "", "1"]],
    )


def test_funnel_breakdowns_follow_the_steps() -> None:
    step = {"event": "a", "count": 2, "conversion_from_first": 1.0, "conversion_from_previous": 1.0,
            "median_seconds_from_previous": None}  # fmt: skip
    answer = {"steps": [step], "breakdowns": [{"breakdown_value": "", "steps": [step]}]}
    assert funnels.table(answer) == (
        ["Step", *funnels.FUNNEL_COLUMNS],
        [["1. a", "2", "1.0", "1.0", ""], [" · 1. a", "2", "1.0", "1.0", ""]],
    )


def test_retention_columns_are_the_periods() -> None:
    answer = {"cohorts": [{"date": "2026-11-02", "size": 4, "values": [4, 1, 0]}]}
    assert retention.table(answer) == (
        ["Cohort", "size", "0", "1", "2"],
        [["2026-11-02", "4", "4", "1", "0"]],
    )
