"""Plain-text rendering in the ruff style: one line a finding, then a summary line."""
from __future__ import annotations

import math

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
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "infinite" if v > 0 else "minus infinite"
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
    return f"{f.code} {f.name}: [{f.severity}] {f.message}{where}{marks}"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n != 1 else ''}"


def summary_line(findings: list[Finding]) -> str:
    """What the finding lines above it hold, counted: errors and warnings are problems, info a note."""
    problems = [f for f in findings if f.severity in ("error", "warning")]
    info = len(findings) - len(problems)
    notes = f" and {_count(info, 'note')}" if info else ""
    if not problems:
        return "All checks passed" + (f" ({_count(info, 'note')})" if info else "")
    errors = sum(f.severity == "error" for f in problems)
    kinds = ", ".join(x for x in (_count(errors, "error") if errors else "",
                                  _count(len(problems) - errors, "warning") if len(problems) > errors else "") if x)
    fixable = sum(f.fixable for f in findings)
    return f"Found {_count(len(problems), 'problem')} ({kinds}){notes}, {fixable} fixable"


def reference_line(report) -> str | None:
    ref = report.reference
    if ref is None:
        return None
    parts = [f"mean predictor {fmt(ref.mean_mse)}", f"least squares {fmt(ref.linear_mse)}"]
    if ref.nonlinear_mse is not None:
        parts.append(f"nonlinear reference {fmt(ref.nonlinear_mse)}")
    line = "Reference MSE: " + ", ".join(parts)
    if ref.n_targets > 1:
        line += " (means over the targets; " + "; ".join(
            f"{name}: {_reference_triple(r)}" for name, r in zip(target_labels(report), ref.per_target())) + ")"
    final = (report.probe or {}).get("final_loss")
    if final is not None and optimum_is_zero(report):
        line += (f"; probe ended at {fmt(final)} (the optimum is 0: the targets are an exact linear function "
                 "of the inputs, so no ratio to it is given)")
    elif report.gap is not None and math.isfinite(report.gap):
        line += f"; probe ended at {fmt(final)} = {fmt(report.gap)}x the optimum"
    elif final is not None:
        line += f"; probe ended at {fmt(final)} (diverged)"
    return line


def target_labels(report) -> list[str]:
    """The target columns' names (y0, y1, ... where the data did not name them)."""
    ref = report.reference
    names = str((report.data or {}).get("target_name") or "").split(",")
    return names if len(names) == ref.n_targets else [f"y{j}" for j in range(ref.n_targets)]


def _reference_triple(r: dict) -> str:
    text = f"mean {fmt(r['mean_mse'])}, least squares {fmt(r['linear_mse'])}"
    return text + (f", nonlinear {fmt(r['nonlinear_mse'])}" if r["nonlinear_mse"] is not None else "")


#: an optimum below this fraction of the variance of the targets counts as 0 (rounding error)
ZERO_OPTIMUM = 1e-12


def optimum_is_zero(report) -> bool:
    """Whether the report's optimum is 0 up to rounding: a ratio to it means nothing then."""
    ref = getattr(report, "reference", None)
    opt = getattr(report, "optimum", None)
    if ref is None or opt is None:
        return False
    return float(opt) <= ZERO_OPTIMUM * max(float(ref.mean_mse), 1e-300)


def render_report_text(report) -> str:
    lines = [f"note: {n}" for n in report.notes]
    lines += [finding_line(f) for f in report.findings]
    ref = reference_line(report)
    if ref:
        lines.append(ref)
    lines.append(summary_line(report.findings))
    return "\n".join(lines) + "\n"


def still_falling(losses, tail: int = 5) -> bool:
    """Whether a curve's last ``tail`` finite points still go down (the last is the lowest of them)."""
    if losses is None:
        return False
    import numpy as np

    v = np.asarray(losses, dtype=float)
    v = v[np.isfinite(v)][-tail:]
    return bool(len(v) >= 2 and v[-1] <= v.min() and v[-1] < v[0])


def lr_stop_text(finder) -> str | None:
    """Why a learning-rate sweep stopped where it did, in words (None when it ran to ``end_lr``).

    The sweep stops when one step's loss jumps far above its lowest value. When the smoothed curve
    is still falling there, calling it "diverged" would contradict the plot, so the sentence says
    what happened instead.
    """
    div = getattr(finder, "diverged_at_", None)
    if div is None:
        return None
    if still_falling(getattr(finder, "losses_", None)):
        return (f"the sweep stopped at learning rate {fmt(div)}: the loss of one step jumped far above its lowest "
                f"value there, while the smoothed curve was still falling; rates just below {fmt(div)} may still "
                "train, and the suggestion stays well below them")
    return f"the loss blew up from learning rate {fmt(div)} on: the smoothed curve turns up before that rate"


def budget_line(budget: dict | None) -> str | None:
    """One line for the reports: what the repair spent, as a ratio to one plain fit where measured."""
    if not budget:
        return None
    parts = [f"{budget['wall_seconds']:.1f} s", f"{budget['runs']} training runs",
             f"{budget['epochs_trained']} epochs (the work of {budget['fit_equivalents']:.3g} plain fits)"]
    if budget.get("rungs"):
        parts.append("successive halving " + " -> ".join(f"{r['candidates']} at {r['epochs']} epochs" for r in budget["rungs"]))
    if budget.get("ratio_to_fit") is not None:
        parts.append(f"{budget['ratio_to_fit']:.2g}x one plain fit ({budget['fit_seconds']:.2g} s)")
    return "budget: " + ", ".join(parts)


def comparison_best_line(cmp) -> str:
    """One line naming a comparison's best run: the lowest HELD-OUT MSE (``rank`` 1, ``best_run()``),
    with its training MSE beside it (a run can fit its training rows best and still predict new rows worse)."""
    best = cmp.best_run()
    row = cmp.results_.loc[cmp.results_["rank"] == 1].iloc[0]
    val, opt = float(row["val_loss"]), float(cmp.val_optimum_)
    ratio = f"{val / opt:.3g}x" if opt > 0 and math.isfinite(val) else "n/a"
    return (f"compare: {len(cmp.runs_)} runs; best on held-out rows ({cmp.validation_}): {best.spec.label()}, "
            f"held-out MSE {fmt(val)} ({ratio} the held-out {cmp.val_optimum_kind_} optimum {fmt(opt)}); "
            f"its final training MSE {fmt(best.final_mse)}")
