"""The operator files (config/prometheus/alerts.yml, config/grafana/*.json) and the metrics they name.

`metric_names(expr)` reads the metric names out of a PromQL expression (a small lexer, not a parser: label
matchers, grouping clauses, ranges and strings are removed, then every identifier that is not a function,
an aggregation or a keyword is a metric). `exposed(text)` reads the names a /metrics page declares:
HELP/TYPE lines count, since a labelled metric without children has no samples.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "config" / "prometheus" / "alerts.yml"
PROMETHEUS_CONFIG = ROOT / "config" / "prometheus" / "prometheus.yml"
DASHBOARDS = sorted((ROOT / "config" / "grafana").glob("*.json"))
# on PATH, or where scripts/setup.sh puts it
PROMTOOL = shutil.which("promtool") or next(iter((ROOT / "var" / "bin").glob("promtool")), None)

# Prometheus's own series about a scrape, never on a /metrics page
SCRAPE_SERIES = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}

_KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
             "offset", "bool", "inf", "nan"}  # fmt: skip
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w:.$])[A-Za-z_:][\w:]*")
_SUFFIXES = ("_bucket", "_count", "_sum", "_created")


def metric_names(expr: str) -> set[str]:
    expr = _STRING.sub('""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers, Grafana's ${var} too
    expr = _GROUPING.sub("", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # ranges and subqueries
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables ($__rate_interval)
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        word, rest = match.group(), expr[match.end() :].lstrip()
        if rest.startswith("(") or word.lower() in _KEYWORDS:
            continue  # a function or an aggregation (grouping removed above), or a keyword
        names.add(word)
    return names


def exposed(text: str) -> dict[str, str]:
    """name -> type of every metric a /metrics page declares (a sample without HELP/TYPE: `untyped`)."""
    names: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            names[name] = kind
        elif line.startswith("# HELP "):
            names.setdefault(line.split(maxsplit=3)[2], "untyped")
        elif line and not line.startswith("#"):
            names.setdefault(re.split(r"[{ ]", line, maxsplit=1)[0], "untyped")
    return names


def serves(names: dict[str, str], metric: str) -> bool:
    """Whether a page with these declared names serves `metric` (a histogram's `_bucket`, `_count` and
    `_sum`, a counter's `_total` and `_created`)."""
    if metric in names:
        return True
    for suffix in _SUFFIXES:
        base = metric.removesuffix(suffix)
        if base != metric and names.get(base) in ("histogram", "summary", "counter"):
            return True
    return metric.endswith("_total") and names.get(metric.removesuffix("_total")) == "counter"


def load_alerts() -> dict[str, Any]:
    return dict(yaml.safe_load(ALERTS.read_text()))


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_alerts()["groups"] for rule in group["rules"]]


def dashboard_exprs(dashboard: dict[str, Any]) -> list[str]:
    """Every PromQL expression of a dashboard: its panels' targets (rows' nested panels too) and its
    query variables."""
    exprs: list[str] = []

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            exprs.extend(target["expr"] for target in panel.get("targets", []) if target.get("expr"))
            walk(panel.get("panels", []))

    walk(dashboard.get("panels", []))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def load_dashboard(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def named_metrics() -> dict[str, set[str]]:
    """metric -> the files (and alert or panel) that name it."""
    named: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            named.setdefault(name, set()).add(f"alerts.yml:{rule['alert']}")
    for path in DASHBOARDS:
        for expr in dashboard_exprs(load_dashboard(path)):
            for name in metric_names(_grafana_query(expr)):
                named.setdefault(name, set()).add(path.name)
    return named


def _grafana_query(expr: str) -> str:
    """A variable query `label_values(metric, label)` names `metric`."""
    match = re.fullmatch(r"\s*label_values\(\s*([\w:]+)\s*(?:\{[^}]*\})?\s*,\s*\w+\s*\)\s*", expr)
    return match.group(1) if match else expr
