"""Plain-text rendering in the ruff style: one line a finding, then a summary line."""
from __future__ import annotations

from ..findings import Finding


def fmt(x) -> str:
    """A number in at most 4 significant digits (scientific when large or small)."""
    if x is None:
        return "n/a"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if v != v:
        return "nan"
    if v in (float("inf"), float("-inf")):
        return "inf" if v > 0 else "-inf"
    if v == 0:
        return "0"
    if 1e-3 <= abs(v) < 1e5:
        return f"{v:.4g}"
    return f"{v:.3g}"


def finding_line(f: Finding) -> str:
    marks = ""
    if f.fixable:
        marks += " [*]"
    if f.confirmed:
        marks += " (confirmed)"
    elif f.confirmed is False:
        marks += " (not confirmed by the probe)"
    where = f" (from epoch {f.epoch})" if f.epoch is not None else ""
    return f"{f.code} {f.name}: {f.message}{where}{marks}"


def summary_line(findings: list[Finding]) -> str:
    problems = [f for f in findings if f.severity in ("error", "warning")]
    if not problems:
        info = len(findings)
        return "All checks passed" + (f" ({info} note{'s' if info != 1 else ''})" if info else "")
    fixable = sum(f.fixable for f in problems)
    n = len(problems)
    return f"Found {n} problem{'s' if n != 1 else ''}, {fixable} fixable"


def reference_line(report) -> str | None:
    ref = report.reference
    if ref is None:
        return None
    parts = [f"mean predictor {fmt(ref.mean_mse)}", f"least squares {fmt(ref.linear_mse)}"]
    if ref.nonlinear_mse is not None:
        parts.append(f"nonlinear reference {fmt(ref.nonlinear_mse)}")
    line = "Reference MSE: " + ", ".join(parts)
    if report.gap is not None:
        line += f"; probe ended at {fmt(report.probe['final_loss'])} = {fmt(report.gap)}x the optimum"
    return line


def render_report_text(report) -> str:
    lines = [f"note: {n}" for n in report.notes]
    lines += [finding_line(f) for f in report.findings]
    ref = reference_line(report)
    if ref:
        lines.append(ref)
    lines.append(summary_line(report.findings))
    return "\n".join(lines) + "\n"
