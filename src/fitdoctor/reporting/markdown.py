"""Markdown rendering of a report."""
from __future__ import annotations

import json

from .text import fmt, optimum_is_zero, summary_line, target_labels


def render_report_markdown(report) -> str:
    out = ["# fitdoctor report", "", f"**{summary_line(report.findings)}**", ""]
    ref = report.reference
    if ref is not None:
        out += ["## Reference losses (MSE, target units)", "", "| reference | MSE |", "|---|---|",
                f"| mean predictor (var y) | {fmt(ref.mean_mse)} |", f"| least squares | {fmt(ref.linear_mse)} |"]
        if ref.nonlinear_mse is not None:
            out.append(f"| {ref.nonlinear_model} | {fmt(ref.nonlinear_mse)} |")
        if report.gap is not None and not optimum_is_zero(report) and report.gap != float("inf"):
            out.append(f"| probe run (final) | {fmt(report.probe['final_loss'])} ({fmt(report.gap)}x the optimum) |")
        out.append("")
        if ref.n_targets > 1:  # the rows above are means over the targets
            out += ["Per target:", "", "| target | mean predictor (var y) | least squares | nonlinear reference |",
                    "|---|---|---|---|"]
            out += [f"| {name} | {fmt(r['mean_mse'])} | {fmt(r['linear_mse'])} | "
                    f"{'n/a' if r['nonlinear_mse'] is None else fmt(r['nonlinear_mse'])} |"
                    for name, r in zip(target_labels(report), ref.per_target())]
            out.append("")
    if report.notes:
        out += ["## Notes", ""] + [f"- {n}" for n in report.notes] + [""]
    if report.findings:
        out += ["## Findings", ""]
    for f in report.findings:
        conf = " (confirmed by experiment)" if f.confirmed else ""
        where = f", from epoch {f.epoch}" if f.epoch is not None else ""
        out += [f"### {f.code} `{f.name}` ({f.severity}{where}){conf}", "", f.message, ""]
        if f.evidence:
            out += ["Evidence:", "", "```json", json.dumps(f.evidence, indent=1), "```", ""]
        if f.fix:
            out += [f"Fix ({'safe' if f.fix.safe else 'review first'}): {f.fix.title}", ""]
            if f.fix.snippet:
                out += ["```python", f.fix.snippet, "```", ""]
    return "\n".join(out)
