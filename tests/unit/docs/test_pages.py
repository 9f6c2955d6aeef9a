"""The pages keep their shape: a short front page that leads to every page, a runbook entry for
every alarm the template defines, decision records with context, decision and consequences."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from onnxlambda_cli.cloudformation import load_template
from tests.conftest import ROOT
from tests.unit.docs import markdown

README = ROOT / "README.md"
DOCS = ROOT / "docs"
RUNBOOK = DOCS / "monitoring.md"
DECISIONS = sorted((DOCS / "decisions").glob("[0-9][0-9][0-9][0-9]-*.md"))


def test_the_readme_is_a_front_page() -> None:
    # GIVEN the README THEN it stays a front page: short, and no lab notebook (commit hashes)
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert not re.search(r"`[0-9a-f]{7,40}`", text), "history belongs in docs/decisions/"


def test_the_readme_leads_to_every_page() -> None:
    # GIVEN every page under docs/ THEN the README links each one
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for line in markdown.prose(README)
        for target in markdown.links(line.text)
        if not re.match(r"[a-z]+:", target) and target.partition("#")[0]
    }
    assert [markdown.name(p) for p in DOCS.rglob("*.md") if p.resolve() not in linked] == []


def alarms() -> list[str]:
    template: dict[str, Any] = load_template((ROOT / "template.yaml").read_text())
    kinds = {"AWS::CloudWatch::Alarm", "AWS::CloudWatch::CompositeAlarm"}
    return sorted(name for name, r in template["Resources"].items() if r["Type"] in kinds)


def runbook_entries() -> set[str]:
    """The alarms the runbook section of docs/monitoring.md has a heading for."""
    text = RUNBOOK.read_text()
    runbook = text[text.index("\n## Runbook") :]
    return set(re.findall(r"^#{3,4} `(\w+)`", runbook, re.M))


def test_the_template_defines_alarms() -> None:
    assert len(alarms()) >= 10  # the check below would pass vacuously on a template it cannot read


@pytest.mark.parametrize("alarm", alarms())
def test_every_alarm_has_a_runbook_entry(alarm: str) -> None:
    # GIVEN an alarm in template.yaml THEN docs/monitoring.md's runbook says what it means and what to do
    assert alarm in runbook_entries(), f"add a `### \\`{alarm}\\`` entry to the runbook in {RUNBOOK.name}"


def test_the_runbook_names_no_alarm_the_template_lacks() -> None:
    assert runbook_entries() - set(alarms()) == set()


@pytest.mark.parametrize("record", DECISIONS, ids=lambda p: p.name)
def test_every_decision_record_has_context_decision_consequences(record: Path) -> None:
    headings = {line.text.strip() for line in markdown.prose(record) if line.text.startswith("## ")}
    assert {"## Context", "## Decision", "## Consequences"} <= headings


def test_decisions_are_numbered_in_order() -> None:
    numbers = [int(p.name[:4]) for p in DECISIONS]
    assert numbers == list(range(1, len(numbers) + 1))
