"""``make lint``'s promtool step: check the alerting rules of deploy/ and run their tests.

The rules ship as a Prometheus Operator ``PrometheusRule``; promtool reads plain rule
files, so the object's ``spec`` is written to a temporary ``rules.yaml`` first. The alert
unit tests (``rules.test.yaml`` beside the object) run against a copy without annotations:
they pin when each alert fires and with which labels; the annotations' templates are
checked by ``promtool check rules``, and their runbook links by tests/unit/test_monitoring.py.

promtool comes with Debian's ``prometheus`` package (or set ``$PROMTOOL``). Without it this
says so and passes, so that a machine without root or apt still runs ``make lint``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

__all__ = ["RULES", "find_promtool", "main", "plain_rules"]

RULES = (
    Path(__file__).resolve().parents[2]
    / "deploy"
    / "k8s"
    / "components"
    / "monitoring"
    / "prometheusrule.yaml"
)


def find_promtool() -> str | None:
    return os.environ.get("PROMTOOL") or shutil.which("promtool")


def plain_rules(prometheus_rule: Path, *, annotations: bool = True) -> dict[str, Any]:
    """The rule file promtool reads: the PrometheusRule's spec (its ``groups``)."""
    obj = yaml.safe_load(prometheus_rule.read_text(encoding="utf-8"))
    if obj.get("kind") != "PrometheusRule":
        raise ValueError(f"{prometheus_rule}: not a PrometheusRule")
    spec: dict[str, Any] = obj["spec"]
    if not annotations:
        for group in spec["groups"]:
            for rule in group["rules"]:
                rule.pop("annotations", None)
    return spec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("rules", nargs="?", type=Path, default=RULES, help="a PrometheusRule")
    args = parser.parse_args(argv)
    promtool = find_promtool()
    if promtool is None:
        print(
            "promtool not found (apt-get install prometheus, or set PROMTOOL): "
            f"skipping the checks of {args.rules.name}"
        )
        return 0
    tests = args.rules.with_name("rules.test.yaml")
    with tempfile.TemporaryDirectory(prefix="promrules-") as tmp:
        checked = Path(tmp) / "rules.yaml"
        _dump(checked, plain_rules(args.rules))
        steps = [[promtool, "check", "rules", str(checked)]]
        if tests.exists():
            bare = Path(tmp) / "bare-rules.yaml"
            _dump(bare, plain_rules(args.rules, annotations=False))
            suite = yaml.safe_load(tests.read_text(encoding="utf-8"))
            suite["rule_files"] = [str(bare)]
            copied = Path(tmp) / tests.name
            _dump(copied, suite)
            steps.append([promtool, "test", "rules", str(copied)])
        failed = 0
        for step in steps:
            print(f"$ promtool {' '.join(step[1:3])} {args.rules.name}", flush=True)
            failed |= subprocess.run(step, check=False).returncode
    return 1 if failed else 0


def _dump(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
