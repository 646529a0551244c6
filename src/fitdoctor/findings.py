"""Finding and Fix: the values every diagnostic returns.

A finding states one problem with the numbers behind it (``evidence``); a fix states the action
that removes it. Both are plain values that serialise to JSON and back.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict
from typing import Any

import numpy as np

SEVERITIES = ("error", "warning", "info")
#: finding names whose cause bounds the achievable loss (output range, loss kind, target shape, bad rows)
LOSS_BOUNDING = frozenset({"output-activation-range", "wrong-loss", "shape-broadcast", "nan-inf-data"})
_SEVERITY_RANK = {"error": 0, "warning": 1, "info": 2}


def to_jsonable(value: Any) -> Any:
    """Turn numpy scalars/arrays and non-finite floats into JSON-safe Python values."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [to_jsonable(v) for v in value.tolist()]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return v
    return value


@dataclass(frozen=True)
class Fix:
    """What to change to remove a finding.

    ``title`` states the action ("Standardise the targets"), ``snippet`` shows it in code,
    ``safe`` says whether fitdoctor may apply it automatically, and ``intervention`` names the
    repair intervention (see :mod:`fitdoctor.fix.interventions`) that implements it.
    """

    title: str
    snippet: str = ""
    safe: bool = False
    intervention: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Fix":
        return cls(**d)


@dataclass
class Finding:
    """One diagnosed problem.

    Attributes
    ----------
    code, name : the rule's stable code ("O301") and kebab-case name ("adam-large-target").
    severity : "error", "warning" or "info".
    message : one line stating the problem, with its key number.
    evidence : the numbers behind it (JSON-serialisable).
    fix : a :class:`Fix` or None.
    confirmed : None when untested, True when a controlled experiment confirmed it, False when
        the experiment did not.
    epoch, step : where a training-time finding began (None for checks before training).
    """

    code: str
    name: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fix: Fix | None = None
    confirmed: bool | None = None
    epoch: int | None = None
    step: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}. Received severity={self.severity!r}")
        self.evidence = to_jsonable(dict(self.evidence))

    @property
    def fixable(self) -> bool:
        return self.fix is not None

    @property
    def bounds_loss(self) -> bool:
        """True for a cause that bounds the achievable loss (no number of steps can remove it), as
        opposed to one that only slows training."""
        return self.name in LOSS_BOUNDING

    @property
    def improvement(self) -> float:
        """The measured improvement of the fix (baseline / with-fix loss of the probe), 0 when unmeasured."""
        probe = self.evidence.get("probe") if isinstance(self.evidence, dict) else None
        value = probe.get("improvement") if isinstance(probe, dict) else None
        if value == "inf":
            return float("inf")
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0.0

    @property
    def rank(self) -> tuple:
        """Sort key: errors first; then causes that bound the achievable loss before those that only
        slow training; confirmed before predicted; the larger measured improvement first; then by code."""
        return (_SEVERITY_RANK[self.severity], 0 if self.bounds_loss else 1, 0 if self.confirmed else 1,
                -self.improvement, self.code, self.epoch or 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "severity": self.severity,
            "message": self.message,
            "evidence": self.evidence,
            "fix": self.fix.to_dict() if self.fix else None,
            "confirmed": self.confirmed,
            "epoch": self.epoch,
            "step": self.step,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Finding":
        d = dict(d)
        fix = d.pop("fix", None)
        return cls(fix=Fix.from_dict(fix) if fix else None, **d)


def sort_findings(findings: list[Finding]) -> list[Finding]:
    """Most important first (see :attr:`Finding.rank`): severity, loss-bounding causes, confirmed, improvement."""
    return sorted(findings, key=lambda f: f.rank)
