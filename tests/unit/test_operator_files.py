"""config/prometheus/ and config/grafana/ parse and are well formed; promtool checks them where it exists.
That every metric they name exists on a running worker is tests/e2e/test_operator_metrics.py."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.operator_files import (
    ALERTS,
    DASHBOARDS,
    PROMETHEUS_CONFIG,
    PROMTOOL,
    SCRAPE_SERIES,
    alert_rules,
    dashboard_exprs,
    exposed,
    load_alerts,
    load_dashboard,
    metric_names,
    named_metrics,
    serves,
)

ALERTS_TEST = ALERTS.with_name("alerts_test.yml")
promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool is not installed (scripts/setup.sh fetches it)"
)
_DURATION = re.compile(r"([0-9]+(ms|s|m|h|d|w|y))+")


def test_the_alert_rules_parse_and_each_rule_is_complete() -> None:
    groups = [group["name"] for group in load_alerts()["groups"]]
    assert len(groups) == len(set(groups)), "group names repeat"
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names repeat"
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        assert "for" not in rule or _DURATION.fullmatch(rule["for"]), rule["alert"]
        assert metric_names(rule["expr"]), rule["alert"]


def test_the_alerts_cover_what_issue_10_asks() -> None:
    """Freshness, lag, DLQ growth, reconciliation differences, worker restarts and 5xx."""
    by_metric = named_metrics()
    for metric in ("ua_pipeline_freshness_seconds", "ua_consumer_lag_messages", "ua_dead_letter_messages_total",
                   "ua_dlq_messages", "ua_reconcile_missing_events", "process_start_time_seconds",
                   "ua_flink_job_restarts_total", "ua_capture_requests_total", "ua_query_requests_total"):  # fmt: skip
        assert any(where.startswith("alerts.yml:") for where in by_metric.get(metric, ())), metric
    five_xx = [rule["expr"] for rule in alert_rules() if 'status=~"5.."' in rule["expr"]]
    assert {name for expr in five_xx for name in metric_names(expr)} == {
        "ua_capture_requests_total",
        "ua_query_requests_total",
    }


def test_the_prometheus_config_loads_the_rules_and_names_the_jobs_the_rules_select() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [ALERTS.name]
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert all(job.startswith("user-analytics-") for job in jobs)
    assert {j.removeprefix("user-analytics-") for j in jobs} == {
        "capture",
        "persons",
        "writer",
        "query",
        "dlq",
        "flink",
    }


@promtool
def test_promtool_checks_the_rules_and_the_config() -> None:
    for command in (["check", "rules", str(ALERTS)], ["check", "config", str(PROMETHEUS_CONFIG)]):
        done = subprocess.run([str(PROMTOOL), *command], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr


@promtool
def test_the_alerts_fire_on_the_series_of_alerts_test_yml(tmp_path: Path) -> None:
    """`promtool test rules`: each alert fires on made-up series of its failure, and not on healthy ones.
    Against a copy of the rules without annotations: promtool compares them exactly, and the test file
    would have to repeat their text."""
    rules = load_alerts()
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    (tmp_path / ALERTS.name).write_text(yaml.safe_dump(rules, sort_keys=False))
    shutil.copy(ALERTS_TEST, tmp_path / ALERTS_TEST.name)
    done = subprocess.run([str(PROMTOOL), "test", "rules", ALERTS_TEST.name], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_firing_case_in_alerts_test_yml() -> None:
    tests = yaml.safe_load(ALERTS_TEST.read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert fired == {rule["alert"] for rule in alert_rules()}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: Path(p).name)
def test_the_dashboard_parses_and_each_panel_is_complete(path: Path) -> None:
    dashboard = load_dashboard(path)
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (
        variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    )
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        refs = [t["refId"] for t in panel["targets"]]
        assert refs and len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert metric_names(target["expr"]), (panel["title"], target["expr"])
    # no two panels overlap
    cells = [(p["gridPos"]["x"] + dx, p["gridPos"]["y"] + dy) for p in panels
             for dx in range(p["gridPos"]["w"]) for dy in range(p["gridPos"]["h"])]  # fmt: skip
    assert len(cells) == len(set(cells)), "panels overlap"
    assert len(dashboard_exprs(dashboard)) > len(panels)


def test_every_named_metric_is_the_pipelines_or_a_scrapes() -> None:
    for name in named_metrics():
        assert name.startswith(("ua_", "process_", "python_")) or name in SCRAPE_SERIES, name


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ('sum by (stage) (rate(ua_x_total{stage=~"a|b"}[5m])) > 0', {"ua_x_total"}),
        ("time() - max(ua_ts_seconds) > 3 * 3600", {"ua_ts_seconds"}),
        ("rate(a[5m] offset 1h) / on(job) group_left(instance) up", {"a", "up"}),
        ("sum(rate(b_total[1m])) by (stage) unless c", {"b_total", "c"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(h_bucket{job=~"$job"}[$__rate_interval])))',
            {"h_bucket"},
        ),
        ("1e3 < d", {"d"}),
    ],
)
def test_metric_names_reads_the_metrics_of_an_expression(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_exposed_and_serves_read_help_and_type_lines() -> None:
    page = (
        "# HELP ua_a_total a\n# TYPE ua_a_total counter\n"  # a labelled counter without children
        "# HELP ua_h_seconds h\n# TYPE ua_h_seconds histogram\n"
        "# HELP ua_g g\n# TYPE ua_g gauge\nua_g 1.0\n"
    )
    names = exposed(page)
    assert serves(names, "ua_a_total") and serves(names, "ua_h_seconds_bucket") and serves(names, "ua_g")
    assert not serves(names, "ua_g_bucket") and not serves(names, "ua_missing")
