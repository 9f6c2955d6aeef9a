"""The verdict of a contract diff: every change, most severe first, the bump it needs and whether
the new version's number says so (`ContractDiff`), as one line, a table or JSON.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from onnxlambda_cli.contract_diff.answer_changes import (
    baseline_changes,
    evidence_changes,
    metric_changes,
    output_changes,
)
from onnxlambda_cli.contract_diff.contract import (
    BUMP_OF,
    BUMP_ORDER,
    CLASSIFICATION,
    LEVELS,
    SEMVER,
    Bump,
    Change,
    Contract,
    Level,
)
from onnxlambda_cli.contract_diff.request_changes import feature_changes, input_changes, model_changes


@dataclass(frozen=True, slots=True)
class ContractDiff:
    old: Contract
    new: Contract
    changes: list[Change]
    notes: list[str] = field(default_factory=list)

    @property
    def level(self) -> Level | None:
        """The most severe level among the changes (None: identical)."""
        present = {c.level for c in self.changes}
        return next((lvl for lvl in LEVELS if lvl in present), None)

    @property
    def classification(self) -> str:
        return CLASSIFICATION[self.level]

    @property
    def required_bump(self) -> Bump:
        return "none" if self.level is None else BUMP_OF[self.level]

    @property
    def actual_bump(self) -> str:
        return version_bump(self.old.version, self.new.version)

    @property
    def bump_ok(self) -> bool:
        actual = self.actual_bump
        if actual == "downgrade":
            return False
        return BUMP_ORDER[actual] >= BUMP_ORDER[self.required_bump]

    def verdict(self) -> str:
        """One line: what changed, what it needs, whether the version says so."""
        old, new = self.old.version, self.new.version
        need = self.required_bump
        head = f"{self.new.name} {old} -> {new}: {self.classification}"
        if self.level is None:
            return f"{head} (no change){'' if old == new else f', {self.actual_bump} bump: ok'}"
        if need == "none":
            return f"{head}; no bump needed: ok" if self.bump_ok else f"{head}; {new} is a downgrade: REFUSED"
        wanted = f"needs a {need} bump (at least {next_version(old, need)})"
        actual = self.actual_bump
        given = "no bump" if actual == "none" else f"a {actual}" + ("" if actual == "downgrade" else " bump")
        return f"{head}; {wanted}, {new} is {given}: {'ok' if self.bump_ok else 'REFUSED'}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old.ref(),
            "new": self.new.ref(),
            "classification": self.classification,
            "required_bump": self.required_bump,
            "actual_bump": self.actual_bump,
            "bump_ok": self.bump_ok,
            "verdict": self.verdict(),
            "changes": [c.to_dict() for c in self.changes],
            "notes": list(self.notes),
        }


def parse_version(version: str) -> tuple[int, int, int]:
    match = SEMVER.fullmatch(version)
    if not match:
        raise ValueError(f"{version!r} is not a MAJOR.MINOR.PATCH version")
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def version_bump(old: str, new: str) -> str:
    """'major' | 'minor' | 'patch' | 'none' (equal) | 'downgrade' (new is older)."""
    a, b = parse_version(old), parse_version(new)
    if b == a:
        return "none"
    if b < a:
        return "downgrade"
    if b[0] > a[0]:
        return "major"
    if b[1] > a[1]:
        return "minor"
    return "patch"


def next_version(old: str, bump: Bump) -> str:
    major, minor, patch = parse_version(old)
    if bump == "major":
        return f"{major + 1}.0.0"
    if bump == "minor":
        return f"{major}.{minor + 1}.0"
    if bump == "patch":
        return f"{major}.{minor}.{patch + 1}"
    return old


def diff(old: Contract, new: Contract) -> ContractDiff:
    """Every difference between two contracts, classified (see the module docstring)."""
    changes: list[Change] = []
    notes: list[str] = []
    changes += model_changes(old, new)
    changes += feature_changes(old, new)
    changes += input_changes(old, new)
    changes += output_changes(old.output, new.output)
    changes += metric_changes(old, new)
    if old.baselines is None or new.baselines is None:
        notes.append("baselines not compared: a GET /model body does not carry them")
    elif old.baselines != new.baselines:
        changes += baseline_changes(old.baselines, new.baselines)
    changes += evidence_changes(old, new)
    order = {lvl: i for i, lvl in enumerate(LEVELS)}
    changes.sort(key=lambda c: order[c.level])  # stable: within a level, the order found
    return ContractDiff(old, new, changes, notes)


def format_table(result: ContractDiff, sources: Sequence[str] = ()) -> str:
    """A plain-text table of every change, most severe first, and the verdict line."""
    lines: list[str] = []
    if sources:
        lines.append(f"old: {sources[0]}")
        if len(sources) > 1:
            lines.append(f"new: {sources[1]}")
    rows = [("LEVEL", "BUMP", "WHERE", "CHANGE", "OLD", "NEW", "WHY")]
    rows += [(c.level, BUMP_OF[c.level], c.where, c.what, c.old, c.new, c.why) for c in result.changes]
    if result.changes:
        widths = [max(len(r[i]) for r in rows) for i in range(6)]
        for r in rows:
            lines.append("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(r[:6])) + "  " + r[6])
    else:
        lines.append("no differences")
    lines += [f"note: {n}" for n in result.notes]
    lines.append(result.verdict())
    return "\n".join(lines)


__all__ = ["ContractDiff", "diff", "format_table", "next_version", "parse_version", "version_bump"]
