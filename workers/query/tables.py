"""The one table each insight shows, as the web app draws it (web/src/tables.ts) and as `POST /api/<insight>`
answers it with `Accept: text/csv`: a header (the row labels' title, then the column labels) and rows (a
label, then the cells). Each insight module's `table(answer)` builds its table from its JSON answer (so a
cached answer renders too) with the helpers here.

A cell is the JSON text of the answer's value (numbers exactly as the JSON answer writes them), a string as
it is, null as empty. The CSV is RFC 4180: a field holding a comma, a quote, CR or LF is quoted (quotes
doubled), every line ends with CRLF.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson

Table = tuple[list[str], list[list[str]]]


def cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def breakdown_label(value: Any) -> str:
    return "(none)" if value == "" else cell(value)


def series_label(series: dict[str, Any]) -> str:
    """`event`, or `event · breakdown value` when the series is one value of a breakdown."""
    if series.get("breakdown_value") is None:  # stickiness series have none
        return str(series["event"])
    return f"{series['event']} · {breakdown_label(series['breakdown_value'])}"


def series_table(answer: dict[str, Any]) -> Table:
    """A row per series (trends, stickiness): the columns are the labels, in order of first appearance
    (series of different labels, as `distribution`'s, leave a cell empty where they have none)."""
    columns: list[str] = []
    for series in answer["series"]:
        columns += [label for label in map(cell, series["labels"]) if label not in columns]
    rows = []
    for series in answer["series"]:
        values = dict(zip(map(cell, series["labels"]), series["values"], strict=True))
        rows.append([series_label(series), *(cell(values.get(c)) for c in columns)])
    return ["Series", *columns], rows


def field(value: str) -> str:
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


def csv_lines(lines: Iterable[Sequence[str]]) -> Iterable[str]:
    for fields in lines:
        yield ",".join(map(field, fields)) + "\r\n"


def csv_text(table: Table) -> str:
    header, rows = table
    return "".join(csv_lines([header, *rows]))
