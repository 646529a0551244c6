"""Report: the findings of one diagnosis, the reference optimum, and what was measured."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from .findings import Finding, sort_findings, to_jsonable
from .reference import Reference


@dataclass
class Report:
    """Result of :func:`fitdoctor.diagnose` or :func:`fitdoctor.diagnose_history`.

    ``findings`` are ordered most important first. ``reference`` holds the reference losses
    (mean predictor, least squares, nonlinear). ``probe`` holds the short training run's curve
    when one was made (``{"loss": [...], "final_loss": ..., "gap": ...}``). ``data`` holds
    summary statistics used by the renderers (feature scales, target sample).
    """

    findings: list[Finding] = field(default_factory=list)
    reference: Reference | None = None
    config: dict[str, Any] | None = None
    model: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    probe: dict[str, Any] | None = None
    data: dict[str, Any] = field(default_factory=dict)
    source: str = "check"

    def __post_init__(self) -> None:
        self.findings = sort_findings(list(self.findings))

    # -- queries ------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return [f.name for f in self.findings]

    def get(self, name_or_code: str) -> list[Finding]:
        return [f for f in self.findings if name_or_code in (f.name, f.code)]

    def __contains__(self, name_or_code: str) -> bool:
        return bool(self.get(name_or_code))

    @property
    def has_problems(self) -> bool:
        """True when any finding is a warning or an error (the CLI exits 1)."""
        return any(f.severity in ("error", "warning") for f in self.findings)

    @property
    def optimum(self) -> float | None:
        if self.reference is None:
            return None
        linear = bool((self.model or {}).get("is_linear", True))
        return self.reference.optimum(linear=linear)

    @property
    def gap(self) -> float | None:
        """Final loss of the probe (or the run) over the optimum, when both are known."""
        if self.probe and self.reference is not None and self.probe.get("final_loss") is not None:
            linear = bool((self.model or {}).get("is_linear", True))
            return self.reference.gap(float(self.probe["final_loss"]), linear=linear)
        return None

    # -- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({
            "source": self.source,
            "findings": [f.to_dict() for f in self.findings],
            "reference": self.reference.to_dict() if self.reference else None,
            "optimum": self.optimum,
            "gap": self.gap,
            "config": self.config,
            "model": self.model,
            "notes": self.notes,
            "probe": self.probe,
            "data": self.data,
            "summary": {
                "errors": sum(f.severity == "error" for f in self.findings),
                "warnings": sum(f.severity == "warning" for f in self.findings),
                "info": sum(f.severity == "info" for f in self.findings),
                "fixable": sum(f.fixable for f in self.findings),
            },
        })

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Report":
        return cls(
            findings=[Finding.from_dict(f) for f in d.get("findings", [])],
            reference=Reference.from_dict(d["reference"]) if d.get("reference") else None,
            config=d.get("config"), model=d.get("model"), notes=list(d.get("notes", [])),
            probe=d.get("probe"), data=d.get("data", {}), source=d.get("source", "check"),
        )

    def to_text(self) -> str:
        from .reporting.text import render_report_text

        return render_report_text(self)

    def to_markdown(self) -> str:
        from .reporting.markdown import render_report_markdown

        return render_report_markdown(self)

    def to_html(self) -> str:
        from .reporting.html import render_report_html

        return render_report_html(self)

    # -- display ------------------------------------------------------------------------------
    def __repr__(self) -> str:
        counts = [(sum(f.severity == s for f in self.findings), s) for s in ("error", "warning", "info")]
        parts = [f"{n} {s}{'s' if n != 1 else ''}" for n, s in counts if n]
        text = f"<Report from {self.source}: " + (", ".join(parts) if parts else "no findings")
        gap = self.gap
        if gap is not None and gap == gap and gap != float("inf"):
            text += f"; run ended at {gap:,.0f}x the optimum" if gap >= 100 else f"; run ended at {gap:.3g}x the optimum"
        return text + ">"

    def _repr_html_(self) -> str:
        """The report as a notebook cell shows it: the HTML report's verdict, findings and figures."""
        from .reporting.html import notebook_html

        return notebook_html(self)
