"""deploy/'s alerts and dashboard use only what the daemon exports, and lead to their runbook.

The exported names and label names are read from the Prometheus registry after importing
the daemon (every module that defines a metric), not from a list kept here.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import consumer.ingress.metrics
import consumer.metrics
import consumer.service.daemon
from consumer.config import load_settings
from consumer.devtools import promrules
from tests.support import REPO

MONITORING = REPO / "deploy" / "k8s" / "components" / "monitoring"
RULES = MONITORING / "prometheusrule.yaml"
DASHBOARD = MONITORING / "cover-consumer.json"
RUNBOOK = REPO / "deploy" / "README.md"

PREFIX = "cover_consumer_"
# Labels Prometheus attaches to every scraped series (the PodMonitor's target labels).
TARGET_LABELS = {"namespace", "pod", "job", "instance", "container", "endpoint", "service"}
_METRIC = re.compile(rf"\b{PREFIX}[a-z0-9_]+")
# `metric{a="x", b=~"y"}`: the label names of one selector.
_SELECTOR = re.compile(rf"\b({PREFIX}[a-z0-9_]+)\{{([^}}]*)\}}")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
# `by (a, b) (metric` or `by (a, b) (rate(metric`: labels aggregated over one metric.
_BY = re.compile(rf"\bby\s*\(([^)]*)\)\s*\(\s*(?:[a-z_]+\(\s*)?({PREFIX}[a-z0-9_]+)")


def _exported() -> dict[str, set[str]]:
    """Every series name the daemon exposes, with the label names it carries."""
    labels_of = {
        name: set(getattr(collector, "_labelnames", ()))  # prometheus_client keeps them here
        for name, collector in REGISTRY._names_to_collectors.items()
    }
    series: dict[str, set[str]] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith(PREFIX):
            continue
        labels = labels_of.get(family.name, set())
        if family.type == "counter":
            names = {f"{family.name}_total"}
        elif family.type == "histogram":
            names = {f"{family.name}_{suffix}" for suffix in ("bucket", "count", "sum")}
            series[f"{family.name}_bucket"] = labels | {"le"}
        elif family.type == "info":
            names = {f"{family.name}_info"}
        else:
            names = {family.name}
        for name in names:
            series.setdefault(name, labels)
    return series


def _rules() -> list[dict[str, Any]]:
    spec = yaml.safe_load(RULES.read_text(encoding="utf-8"))["spec"]
    return [rule for group in spec["groups"] for rule in group["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [rule for rule in _rules() if "alert" in rule]


def _dashboard_queries(*, variables: bool = True) -> list[str]:
    """The panels' queries, and those of the dashboard's variables unless told not to."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    queries = [t["expr"] for p in panels(dashboard["panels"]) for t in p.get("targets", [])]
    if variables:
        queries += [v["definition"] for v in dashboard["templating"]["list"] if "definition" in v]
    return queries


def _queries() -> dict[str, list[str]]:
    return {
        "prometheusrule.yaml": [rule["expr"] for rule in _rules()],
        "cover-consumer.json": _dashboard_queries(),
    }


def test_every_metric_the_rules_and_the_dashboard_use_is_exported() -> None:
    exported = _exported()
    missing = {
        f"{name} ({where})"
        for where, queries in _queries().items()
        for query in queries
        for name in _METRIC.findall(query)
        if name not in exported
    }
    assert not missing, f"used but not exported: {sorted(missing)}"


def test_every_label_the_rules_and_the_dashboard_use_is_one_the_metric_has() -> None:
    exported = _exported()
    wrong = set()
    for where, queries in _queries().items():
        for query in queries:
            used = [(m, _MATCHER.findall(sel)) for m, sel in _SELECTOR.findall(query)]
            used += [(m, [lb.strip() for lb in by.split(",")]) for by, m in _BY.findall(query)]
            for metric, labels in used:
                unknown = set(labels) - exported.get(metric, set()) - TARGET_LABELS - {""}
                wrong |= {f"{metric}{{{label}}} ({where})" for label in unknown}
    assert not wrong, f"labels the daemon does not export: {sorted(wrong)}"


def test_the_checks_above_see_the_metrics_of_consumer_metrics() -> None:
    # Guards the two tests above against passing on an empty registry reading.
    exported = _exported()
    assert "cover_consumer_dead_letters_total" in exported
    assert exported["cover_consumer_lag_records"] == {"topic", "partition"}
    assert "le" in exported["cover_consumer_handler_duration_seconds_bucket"]
    assert consumer.metrics.LAG is not None


def _anchors(markdown: str) -> set[str]:
    """GitHub/GitLab heading anchors: lower case, punctuation dropped, spaces to dashes."""
    headings = re.findall(r"^#+\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h).strip().lower().replace(" ", "-") for h in headings}


def test_every_alert_links_its_own_section_of_the_runbook() -> None:
    anchors = _anchors(RUNBOOK.read_text(encoding="utf-8"))
    for alert in _alerts():
        url: str = alert["annotations"]["runbook_url"]
        assert url.split("#", 1)[0].endswith("deploy/README.md"), alert["alert"]
        assert url.split("#", 1)[1] == alert["alert"].lower(), alert["alert"]
        assert alert["alert"].lower() in anchors, f"no section {alert['alert']} in {RUNBOOK}"


def test_every_alert_has_a_severity_and_a_summary() -> None:
    for alert in _alerts():
        assert alert["labels"]["severity"] in ("critical", "warning"), alert["alert"]
        assert alert["annotations"]["summary"], alert["alert"]


def test_the_alerts_watch_the_configured_main_topic() -> None:
    settings = load_settings(REPO / "config" / "consumer.yaml")
    topics = {t for rule in _rules() for t in re.findall(r'topic="([^"]*)"', rule["expr"])}
    assert topics == {settings.kafka.topic}


def test_every_panel_query_is_scoped_to_the_chosen_namespace() -> None:
    queries = _dashboard_queries(variables=False)
    unscoped = [
        query
        for query in queries
        for _, selector in _SELECTOR.findall(query)
        if 'namespace="$namespace"' not in selector
    ]
    bare = [q for q in queries if _METRIC.search(q) and not _SELECTOR.search(q)]
    assert unscoped + bare == []


def test_dashboard_panel_ids_are_unique() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] == "cover-consumer"


def test_promtool_step_skips_with_a_message_when_promtool_is_absent(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PROMTOOL", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")

    assert promrules.main([]) == 0
    assert "promtool not found" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_step_fails_on_a_broken_rule(tmp_path: Path) -> None:
    broken = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    broken["spec"]["groups"][1]["rules"][0]["expr"] = "sum by (namespace) ("
    path = tmp_path / "prometheusrule.yaml"
    path.write_text(yaml.safe_dump(broken), encoding="utf-8")

    assert promrules.main([str(path)]) == 1


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_step_passes_on_the_shipped_rules_and_their_tests() -> None:
    assert promrules.main([]) == 0
