"""The Rule base class: one diagnostic, one small unit.

Every rule has a stable ``code`` (family letter + number), a kebab-case ``name`` naming the
problem, a default ``severity``, and a docstring with the sections What it does / Why is this
bad? / Example / Use instead (optionally Fix safety and References). ``fitdoctor explain`` and
``docs/rules.md`` are rendered from that docstring.

A rule can look at two things:

* ``detect(ctx)`` -- the data and configuration before training (:class:`fitdoctor.context.Context`);
* ``detect_training(trace)`` -- a training run, live or after the fact
  (:class:`fitdoctor.monitor.trace.Trace`).

Both return a list of :class:`~fitdoctor.findings.Finding`; a rule that has nothing to say about
one of them returns ``[]``.
"""
from __future__ import annotations

import inspect
import re
from typing import Any, ClassVar

from ..findings import Finding, Fix

FAMILIES = {
    "D": "data",
    "M": "model",
    "O": "optimization",
    "T": "training dynamics",
}
REQUIRED_SECTIONS = ("What it does", "Why is this bad?", "Example", "Use instead")
OPTIONAL_SECTIONS = ("Fix safety", "References")
_SECTION_RE = re.compile(r"^## (.+?)\s*$", re.MULTILINE)


class Rule:
    code: ClassVar[str] = ""
    name: ClassVar[str] = ""
    severity: ClassVar[str] = "warning"

    # -- the two detection entry points -------------------------------------------------------
    def detect(self, ctx) -> list[Finding]:  # pragma: no cover - default
        return []

    def detect_training(self, trace) -> list[Finding]:  # pragma: no cover - default
        return []

    # -- helpers ------------------------------------------------------------------------------
    @property
    def family(self) -> str:
        return FAMILIES[self.code[0]]

    def finding(
        self,
        message: str,
        evidence: dict[str, Any] | None = None,
        *,
        fix: Fix | None = None,
        severity: str | None = None,
        epoch: int | None = None,
        step: int | None = None,
    ) -> Finding:
        return Finding(
            code=self.code,
            name=self.name,
            severity=severity or self.severity,
            message=message,
            evidence=evidence or {},
            fix=fix,
            epoch=epoch,
            step=step,
        )

    @classmethod
    def docs(cls) -> dict[str, str]:
        """The docstring's sections, keyed by heading ("summary" holds the first paragraph)."""
        return parse_sections(inspect.getdoc(cls) or "")

    @classmethod
    def summary(cls) -> str:
        return cls.docs().get("summary", "").strip()

    def __repr__(self) -> str:
        return f"<Rule {self.code} {self.name}>"


def parse_sections(doc: str) -> dict[str, str]:
    """Split a rule docstring into its ``## Heading`` sections."""
    parts = _SECTION_RE.split(doc)
    out = {"summary": parts[0].strip()}
    for heading, body in zip(parts[1::2], parts[2::2]):
        out[heading.strip()] = body.strip()
    return out
