"""Self-contained HTML reports: one file, CSS inline, figures embedded as base64 PNG, no script.

Every renderer reads its result defensively (``getattr``): a piece a result does not hold skips
its figure or table instead of failing. All text that comes from the user (feature names, labels,
messages, snippets) goes through :func:`html.escape`.

Public functions: :func:`render_report_html`, :func:`render_comparison_html`,
:func:`render_repair_html`, :func:`render_lr_finder_html`, :func:`render_demo_html`.
"""
from __future__ import annotations

import base64
import datetime as _dt
import io
import math
from html import escape
from typing import Any, Callable, Sequence

import numpy as np

from .text import fmt, lr_stop_text, optimum_is_zero, summary_line

#: a run "converges" when it ends within this factor of the optimum
CONVERGED_GAP = 1.1
#: pixels per inch of the embedded PNG figures
DPI = 110
#: matplotlib settings of the embedded figures. Figures are about 5.4 inches (600 px) wide and shown
#: at their natural size, never stretched; on a 390 px phone they shrink to about 0.6x, so the
#: smallest text (11.5 pt = 17.6 px in the image) stays above 10 CSS px there.
_RC = {"font.size": 12, "axes.titlesize": 12.5, "axes.labelsize": 12, "legend.fontsize": 11.5,
       "xtick.labelsize": 11.5, "ytick.labelsize": 11.5, "legend.title_fontsize": 11.5}
#: the smallest text a figure may hold, in points (checked when the figure is drawn)
MIN_FONT_PT = 11.5
#: default size of a figure, inches
FIGSIZE = (5.4, 3.6)

_CSS = """
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;
 color:#1d2125;background:#f4f5f7}
main{max-width:1000px;margin:0 auto;padding:12px 14px 40px}
h1{font-size:1.45rem;margin:.6em 0 .3em}
h2{font-size:1.2rem;margin:1.4em 0 .4em;border-bottom:1px solid #d0d5dc;padding-bottom:.2em}
h3{font-size:1.05rem;margin:1.1em 0 .3em}
h4{font-size:1rem;margin:.8em 0 .2em}
p,li,figcaption,.msg{overflow-wrap:break-word}
.sub{color:#5a6370;font-size:.9rem;margin-top:0}
.verdict{background:#fff;border:1px solid #d0d5dc;border-left:8px solid #888;border-radius:8px;
 padding:10px 14px;margin:12px 0}
.verdict .headline{font-size:1.2rem;font-weight:700;margin:0 0 .2em}
.verdict p{margin:.25em 0}
.verdict.good{border-left-color:#2e7d32}.verdict.good .headline{color:#1b5e20}
.verdict.bad{border-left-color:#c62828}.verdict.bad .headline{color:#b71c1c}
.verdict.partial{border-left-color:#ef6c00}.verdict.partial .headline{color:#bf5700}
.card{background:#fff;border:1px solid #d0d5dc;border-radius:8px;padding:8px 14px 10px;margin:12px 0}
.card h3{margin-top:.3em}
.finding.error{border-left:5px solid #c62828}.finding.warning{border-left:5px solid #ef6c00}
.finding.info{border-left:5px solid #1565c0}
.badge{display:inline-block;padding:0 7px;border-radius:10px;font-size:.78rem;font-weight:600;
 vertical-align:middle;white-space:nowrap;margin-left:2px}
.badge.error{background:#fde0e0;color:#9b1c1c}.badge.warning{background:#ffe8cc;color:#8a4200}
.badge.info{background:#dbe9fb;color:#0d47a1}.badge.ok{background:#dcf2dd;color:#1b5e20}
.badge.no{background:#eceff1;color:#455a64}
.code{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#5a6370}
code,pre{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,"Liberation Mono",monospace;font-size:.86rem}
p code,li code,td code,h3 code{background:#eef0f3;padding:0 3px;border-radius:3px}
pre{background:#20232a;color:#f0f0f0;padding:10px 12px;border-radius:6px;overflow-x:auto;margin:.4em 0;
 max-width:100%}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%;margin:.4em 0}
table{border-collapse:collapse;font-size:.88rem;background:#fff}
th,td{border-bottom:1px solid #e3e6ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f5;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.best td{background:#eef8ee}
td.text{min-width:14em}
table.kv{width:100%;max-width:560px;table-layout:fixed}
table.kv td{overflow-wrap:anywhere;white-space:normal;min-width:0}
table.kv td.num{text-align:left}
figure{margin:14px 0}
figure img{display:block;max-width:100%;height:auto;background:#fff;border:1px solid #d0d5dc;
 border-radius:6px}
figcaption{font-size:.88rem;color:#4a525c;margin-top:4px;max-width:820px}
nav ul{padding-left:1.2em}
footer{color:#6b737d;font-size:.8rem;margin-top:2em}
@media (max-width:600px){table.stack thead{display:none}table.stack,table.stack tbody,table.stack tr,
 table.stack td{display:block;width:100%}table.stack tr{border-bottom:2px solid #d0d5dc;padding:4px 0}
 table.stack td{border:0;padding:1px 8px;text-align:left;white-space:normal;min-width:0}
 table.stack td::before{content:attr(data-label) ": ";font-weight:600;color:#4a525c}
 body{font-size:15px}main{padding:8px 10px 30px}h1{font-size:1.25rem}
 .verdict .headline{font-size:1.05rem}.card{padding:6px 10px 8px}}
"""


# -- small pieces ---------------------------------------------------------------------------------
def ratio_text(g: float | None) -> str:
    """A loss ratio for people: ``1,280x``, ``3.4x``, ``inf`` for a diverged run."""
    if g is None:
        return "n/a"
    try:
        g = float(g)
    except (TypeError, ValueError):
        return escape(str(g))
    if not math.isfinite(g):
        return "infinitely"
    if g >= 1000:
        return f"{g:,.0f}x"
    if g >= 10:
        return f"{g:.3g}x"
    return f"{g:.2f}x"


def _num(x) -> str:
    return escape(fmt(x))


def _finite(x) -> bool:
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def _cell(v: Any) -> str:
    """One table cell value: numbers right-aligned with 4 significant digits, text escaped."""
    if isinstance(v, np.bool_):
        v = bool(v)
    if isinstance(v, bool) or v is None:
        return f"<td>{('yes' if v else 'no') if isinstance(v, bool) else ''}</td>"
    if isinstance(v, (int, float, np.integer, np.floating)):
        if not math.isfinite(float(v)):
            return f'<td class="num">{"infinite" if float(v) == float(v) else "not a number"}</td>'
        return f'<td class="num">{_num(v)}</td>'
    if isinstance(v, (list, tuple)) and v and all(isinstance(x, dict) for x in v):
        return "<td>" + "<br>".join(escape(_dict_words(x)) for x in list(v)[:8]) + "</td>"
    if isinstance(v, dict):
        return f"<td>{escape(_dict_words(v))}</td>"
    if isinstance(v, (list, tuple)):
        return f"<td>{escape(_short_list(v))}</td>"
    text = str(v)
    if text in ("inf", "-inf", "nan"):  # a non-finite number that travelled as a string
        text = {"inf": "infinite", "-inf": "minus infinite", "nan": "not a number"}[text]
    return f'<td class="text">{escape(text)}</td>' if len(text) > 40 else f"<td>{escape(text)}</td>"


def _dict_words(d: dict) -> str:
    """``{'layer': 'dense', 'kernel_std': 0.0498}`` as ``layer dense, kernel std 0.0498``."""
    def one(x):
        if isinstance(x, bool):
            return "yes" if x else "no"
        if isinstance(x, (int, float, np.integer, np.floating)):
            return fmt(x)
        return str(x)
    return ", ".join(f"{evidence_label(k)} {one(x)}" for k, x in d.items())


def _short_list(v: Sequence, limit: int = 8) -> str:
    items = [fmt(x) if isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool) else str(x)
             for x in list(v)[:limit]]
    more = f", ... ({len(v)} in all)" if len(v) > limit else ""
    return "[" + ", ".join(items) + more + "]"


#: evidence keys in words, with units ("target units" = the target's own units)
EVIDENCE_LABELS = {
    "steps_needed": "optimizer steps needed", "steps_given": "optimizer steps given",
    "epochs_needed": "epochs needed", "ratio_needed_to_given": "steps needed / steps given",
    "parameter": "parameter that must travel farthest", "distance": "distance it must travel (its own units)",
    "learning_rate": "learning rate", "steps_needed_with_standardized_targets": "steps needed with standardised targets",
    "target_mean": "target mean (target units)", "target_std": "target standard deviation (target units)",
    "exact": "bound is exact (linear model)", "lr_max_stable": "largest stable plain-SGD learning rate, 2/lambda_max",
    "learning_rate_ceiling": "learning rate above which adaptive steps overshoot",
    "learning_rate_needed": "learning rate that would fit the steps given", "lambda_max": "largest curvature (lambda_max)",
    "growth_per_step": "loss growth per step (factor)", "mean": "mean (target units)", "std": "standard deviation (target units)",
    "rms": "root mean square (target units)", "min": "smallest value (target units)", "max": "largest value (target units)",
    "mean_over_std": "mean / standard deviation", "condition_number": "condition number of the inputs",
    "condition_number_standardized": "condition number after standardising", "improvement": "fewer steps by a factor of",
    "least_squares_mse": "least-squares MSE (target units squared)", "nonlinear_mse": "nonlinear reference MSE (target units squared)",
    "mean_predictor_mse": "mean predictor MSE (target units squared)", "mse_floor": "lowest reachable MSE (target units squared)",
    "predicted_final_loss": "predicted final loss", "floor": "loss floor used (target units squared)",
    "floor_source": "where the floor comes from", "rows": "rows (counting from 0)", "n_rows": "rows affected",
    "epochs_needed_more": "more epochs needed", "epochs_planned": "epochs planned", "epochs_run": "epochs run",
    "relative_drop_over_tail": "loss drop over the last epochs (fraction)", "window": "epochs looked at",
    "n_total_rows": "rows in all", "n_nan_cells": "empty or NaN cells", "n_inf_cells": "infinite cells",
    "row_fraction": "share of rows", "columns": "cells by column", "kernel_std": "kernel standard deviation",
    "glorot_std": "Glorot standard deviation", "ratio": "ratio", "constant": "all weights equal",
    "initial_prediction_std_over_target_std": "spread of the first predictions / spread of the targets",
    "initial_predictions_finite": "first predictions are finite", "gain": "improvement factor",
    "scale_ratio": "largest / smallest feature scale", "skewness": "skewness", "skewness_after_log": "skewness of log(y)",
    "max_robust_z": "largest robust z-score", "share_of_squared_deviation": "share of the squared deviation",
    "z_limit": "robust z-score limit",
}


def evidence_label(key: str) -> str:
    """An evidence key (``probe_curve.floor_source``) as words (``probe curve: where the floor comes from``)."""
    parts = str(key).split(".")
    last = EVIDENCE_LABELS.get(parts[-1], parts[-1].replace("_", " "))
    return ": ".join([p.replace("_", " ") for p in parts[:-1]] + [last])


def _kv_table(headers: Sequence[str], rows: Sequence[tuple[str, Any]]) -> str:
    """A two-column key/value table that wraps instead of growing wider than the screen."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = "".join(f"<tr><td>{escape(str(k))}</td>{_cell(v)}</tr>" for k, v in rows)
    return f'<table class="kv"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[Any]], *, row_classes: Sequence[str] | None = None,
           stack: bool = False) -> str:
    """A table; ``stack=True`` lays each row out as a small card of "header: value" lines on a narrow
    screen (no column is cut off or hidden behind a sideways scroll)."""
    head = "".join(f"<th>{escape(str(h))}</th>" for h in headers)
    body = []
    for i, row in enumerate(rows):
        cls = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        cells = [_cell(v) for v in row]
        if stack:
            cells = [c.replace("<td", f'<td data-label="{escape(str(h))}"', 1) for c, h in zip(cells, headers)]
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    kind = ' class="stack"' if stack else ""
    return f'<div class="scroll"><table{kind}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _flatten(evidence: dict, prefix: str = "") -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    for k, v in evidence.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.extend(_flatten(v, key + "."))
        else:
            out.append((key, v))
    return out


def figure_legibility(fig) -> dict[str, float]:
    """What a drawn figure offers a reader: its smallest text (pixels of the saved image) and
    whether a legend covers the data area of an axes (1) or not (0)."""
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    sizes = [t.get_fontsize() for t in fig.findobj(Text)
             if t.get_visible() and t.get_text().strip() and t.get_figure() is not None]
    overlap = 0
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is None or not leg.get_visible():
            continue
        a, b = ax.get_window_extent(renderer), leg.get_window_extent(renderer)
        if a.overlaps(b):
            overlap = 1
    return {"min_font_px": min(sizes) * fig.dpi / 72 if sizes else 0.0, "legend_overlap": overlap}


def _figure(draw: Callable[[Any], Any], *, fig_id: str, caption: str, figsize=FIGSIZE, ncols: int = 1,
            nrows: int = 1, alt: str = "") -> str:
    """Draw with ``draw(ax)`` (or ``draw(axes)`` for several axes) on an Agg figure; embed it as PNG.

    The image carries its natural width and, as data attributes, its smallest text in image pixels
    and whether a legend overlaps the data (see :func:`figure_legibility`), so a browser can tell how
    large the text is on screen. Any error while drawing skips the figure (an HTML comment says
    why) rather than losing the report.
    """
    try:
        import matplotlib
        from matplotlib.figure import Figure

        from matplotlib.backends.backend_agg import FigureCanvasAgg

        with matplotlib.rc_context(_RC):
            fig = Figure(figsize=figsize, dpi=DPI)
            FigureCanvasAgg(fig)
            n = nrows * ncols
            axes = fig.subplots(nrows, ncols) if n > 1 else fig.add_subplot(1, 1, 1)
            draw(axes)
            # legends sit outside the axes: the layout leaves them out, the saved image grows to hold them
            legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
            for leg in legends:
                leg.set_in_layout(False)
            fig.tight_layout()
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", pad_inches=0.08,
                        bbox_extra_artists=legends)
            legible = figure_legibility(fig)
        png = buf.getvalue()
        width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
        data = base64.b64encode(png).decode("ascii")
    except Exception as exc:  # a figure is never worth losing the report for
        return f"<!-- figure {escape(fig_id)} skipped: {escape(type(exc).__name__)}: {escape(str(exc))[:200]} -->"
    return (f'<figure class="plot" id="{escape(fig_id)}"><img src="data:image/png;base64,{data}" '
            f'width="{width}" height="{height}" data-min-font-px="{legible["min_font_px"]:.1f}" '
            f'data-legend-overlap="{legible["legend_overlap"]}" '
            f'alt="{escape(alt or caption)}"><figcaption>{caption}</figcaption></figure>')


def _page(title: str, body: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M")
    try:
        from .. import __version__ as version
    except Exception:  # pragma: no cover
        version = "?"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head>"
            f"<body><main>{body}<footer>Written by fitdoctor {escape(str(version))} on {stamp}. "
            "Self-contained: no network needed to view this file.</footer></main></body></html>\n")


def _verdict_box(kind: str, headline: str, details: Sequence[str]) -> str:
    lines = "".join(f"<p>{d}</p>" for d in details if d)
    return f'<div class="verdict {kind}" role="status"><p class="headline">{escape(headline)}</p>{lines}</div>'


# -- verdicts -------------------------------------------------------------------------------------
def _optimum_name(linear: bool) -> str:
    return "least-squares optimum" if linear else "best reference optimum"


def _run_curve(report) -> dict:
    """The training curve a report holds: the probe of a check, or the monitored run's loss."""
    probe = getattr(report, "probe", None) or {}
    if probe:
        return probe
    data = getattr(report, "data", None) or {}
    if data.get("loss"):
        return {"loss": data["loss"], "final_loss": data.get("final_loss"), "gap": data.get("gap")}
    return {}


def report_verdict(report) -> tuple[str, str, list[str]]:
    """(kind, headline, detail lines as HTML) for a :class:`fitdoctor.Report`."""
    findings = list(getattr(report, "findings", []))
    problems = [f for f in findings if f.severity in ("error", "warning")]
    probe = _run_curve(report)
    linear = bool((getattr(report, "model", None) or {}).get("is_linear", True))
    source = getattr(report, "source", "check")
    subject = {"check": "The probe", "fix": "Training as configured"}.get(source, "The run")
    if source == "check" and probe.get("steps"):
        subject = f"The probe ({int(probe['steps']):,} optimizer steps)"
    gap = probe.get("gap")
    try:
        gap = report.gap if report.gap is not None else gap
    except Exception:
        pass
    gap = float(gap) if _finite(gap) or gap in ("inf", float("inf")) else None
    zero_optimum = optimum_is_zero(report)
    if zero_optimum:
        gap = None
    final = probe.get("final_loss")
    diverged = bool(probe.get("diverged")) or (final is not None and not _finite(final))
    opt = None
    try:
        opt = report.optimum
    except Exception:
        opt = None
    details = []
    if zero_optimum and probe:
        details.append(f"{escape(subject)} ended at MSE {_num(probe.get('final_loss'))}; the optimum is 0 (the targets "
                       "are an exact linear function of the inputs), so no ratio to it is given.")
    if probe and diverged:
        details.append(f"{escape(subject)} diverged: its loss became NaN or infinite "
                       f"(the {_optimum_name(linear)} is {_num(opt)}).")
    elif gap is not None and _finite(gap):
        if gap > 1.01:
            details.append(f"{escape(subject)} ended <strong>{ratio_text(gap)} above the {_optimum_name(linear)}</strong> "
                           f"(MSE {_num(final)} vs {_num(opt)}).")
        else:
            details.append(f"{escape(subject)} ended at the {_optimum_name(linear)}: MSE {_num(final)} vs {_num(opt)} "
                           f"({ratio_text(gap)}).")
    converged = None if (gap is None and not diverged) else (not diverged and gap is not None and gap <= CONVERGED_GAP)
    n = len(problems)
    if problems:
        fixable = sum(f.fixable for f in problems)
        confirmed = sum(bool(f.confirmed) for f in problems)
        extra = f"{fixable} fixable" + (f", {confirmed} confirmed by experiment" if confirmed else "")
        if converged:
            kind, headline = "partial", f"Converges, but {n} problem{'s' if n != 1 else ''} found ({extra})"
        else:
            kind, headline = "bad", f"Does not converge: {n} problem{'s' if n != 1 else ''} found ({extra})"
    elif converged or converged is None:
        kind = "good"
        headline = ("Healthy: this training converges. No problems found"
                    if converged else "No problems found by the checks")
        info = len(findings)
        if info:
            headline += f" ({info} note{'s' if info != 1 else ''})"
    else:
        kind, headline = "partial", f"No rule fired, but the run is {ratio_text(gap)} above the optimum"
    details.append(escape(summary_line(findings)) + ".")
    return kind, headline, details


# -- findings -------------------------------------------------------------------------------------
#: which figure makes a finding visible (finding name -> figure key)
_FIGURE_FOR = {
    "feature-scale": "scales", "ill-conditioned": "scales", "target-scale": "scales", "constant-feature": "scales",
    "duplicate-feature": "scales", "outliers": "target", "skewed-target": "target",
}


def _finding_card(f, fig_ids: dict[str, str], level: int) -> str:
    sev = escape(f.severity)
    badges = f'<span class="badge {sev}">{sev}</span>'
    if f.confirmed is True:
        badges += '<span class="badge ok">confirmed by experiment</span>'
    elif f.confirmed is False:
        badges += '<span class="badge no">not confirmed by experiment</span>'
    if f.fixable:
        badges += '<span class="badge info">fixable</span>'
    h = f"h{level}"
    out = [f'<div class="card finding {sev}" id="finding-{escape(f.name)}">',
           f'<{h}><span class="code">{escape(f.code)}</span> <code class="name">{escape(f.name)}</code> {badges}</{h}>',
           f'<p class="msg">{escape(f.message)}' + (f" (from epoch {int(f.epoch)})" if f.epoch is not None else "") + "</p>"]
    if f.evidence:
        rows = [(evidence_label(k), v) for k, v in _flatten(f.evidence) if v is not None and v != ""]
        out.append(_kv_table(["measured", "value"], rows))
    if f.fix is not None:
        safety = "safe to apply automatically" if f.fix.safe else "review before applying"
        out.append(f"<p><strong>Fix:</strong> {escape(f.fix.title)} <span class=\"sub\">({safety})</span></p>")
        if f.fix.snippet:
            out.append(f"<pre><code>{escape(f.fix.snippet)}</code></pre>")
    key = _FIGURE_FOR.get(f.name, "curves")
    if key in fig_ids:
        out.append(f'<p class="sub">See the figure <a href="#{fig_ids[key]}">{escape(_FIG_TITLES[key])}</a>.</p>')
    out.append("</div>")
    return "\n".join(out)


_FIG_TITLES = {"curves": "training curves", "scales": "feature scales", "target": "target distribution",
               "pred": "predicted vs actual", "lr": "learning rates"}


def _findings_section(findings, fig_ids: dict[str, str], level: int) -> str:
    if not findings:
        return ""
    h = f"h{level}"
    cards = "\n".join(_finding_card(f, fig_ids, level + 1) for f in findings)
    return f"<{h}>Findings, most important first</{h}>\n{cards}"


def _reference_rows(reference) -> list[tuple[str, Any]]:
    if reference is None:
        return []
    rows = [("mean predictor (variance of y): a model that learned nothing", reference.mean_mse),
            ("least squares (closed form): the best any linear model can reach", reference.linear_mse)]
    if getattr(reference, "nonlinear_mse", None) is not None:
        rows.append((f"nonlinear reference: {reference.nonlinear_model or 'out-of-fold'}", reference.nonlinear_mse))
    return rows


def _reference_section(reference, level: int, extra: Sequence[tuple[str, Any]] = ()) -> str:
    rows = list(extra) + _reference_rows(reference)
    if not rows:
        return ""
    return (f"<h{level}>Reference losses</h{level}><p class=\"sub\">Training MSE in the target's own units on the "
            "complete rows: what is achievable on this data.</p>" + _table(["reference", "MSE"], rows))


def _notes_section(notes, level: int) -> str:
    if not notes:
        return ""
    items = "".join(f"<li>{escape(str(n))}</li>" for n in notes)
    return f"<h{level}>Notes</h{level}><ul>{items}</ul>"


def _config_line(config) -> str:
    if not config:
        return ""
    keys = ("optimizer", "learning_rate", "loss", "epochs", "batch_size")
    parts = [f"{k.replace('_', ' ')} <code>{escape(fmt(config[k]) if isinstance(config[k], float) else str(config[k]))}</code>"
             for k in keys if config.get(k) is not None]
    return f"<p class=\"sub\">Configuration: {', '.join(parts)}.</p>" if parts else ""


# -- figures of a report --------------------------------------------------------------------------
def _report_figures(report, prefix: str, *, data_source=None) -> tuple[list[str], dict[str, str]]:
    """The figures of a report: training curves, feature scales, target distribution."""
    from .plots import FeatureScalesDisplay, TargetDistributionDisplay, TrainingCurvesDisplay

    figs, ids = [], {}
    probe = _run_curve(report)
    if probe.get("loss"):
        n_var = len(probe.get("variants") or [])
        what = ("of a short probe with your configuration" if getattr(report, "probe", None)
                else "of the monitored run")
        cap = (f"Training loss per epoch (original units, log scale) {what}"
               + (f" and with each of {n_var} suggested fixes" if n_var else "")
               + "; the horizontal lines are the reference optima. A curve that flattens far above the least-squares "
               "line has not converged.")
        s = _figure(lambda ax: TrainingCurvesDisplay.from_report(report, ax=ax), fig_id=f"{prefix}fig-curves", caption=cap)
        if s.startswith("<figure"):
            ids["curves"] = f"{prefix}fig-curves"
        figs.append(s)
    data = getattr(report, "data", None) or {}
    if data.get("feature_rms"):
        s = _figure(lambda ax: FeatureScalesDisplay.from_report(report, ax=ax), fig_id=f"{prefix}fig-scales",
                    figsize=(5.4, max(2.8, 0.42 * (len(data["feature_rms"]) + 1) + 1.8)),
                    caption="Root mean square of each input column and of the target as given (orange) and after "
                            "standardising (green), log scale. Columns far from 1 slow gradient descent down.")
        if s.startswith("<figure"):
            ids["scales"] = f"{prefix}fig-scales"
        figs.append(s)
    if data.get("target_sample"):
        s = _figure(lambda ax: TargetDistributionDisplay.from_report(report, ax=ax), fig_id=f"{prefix}fig-target",
                    caption="Distribution of the target; red marks outliers (robust z-score "
                            "|y - median| / (1.4826 MAD) above 5).")
        if s.startswith("<figure"):
            ids["target"] = f"{prefix}fig-target"
        figs.append(s)
    return figs, ids


def _figures_section(figs: Sequence[str], level: int) -> str:
    figs = [f for f in figs if f]
    if not figs:
        return ""
    return f"<h{level}>Figures</h{level}>\n" + "\n".join(figs)


# -- report ---------------------------------------------------------------------------------------
def report_fragment(report, *, level: int = 2, prefix: str = "") -> str:
    """The body of a report (no page around it), headings from ``h{level}``."""
    kind, headline, details = report_verdict(report)
    figs, ids = _report_figures(report, prefix)
    probe = _run_curve(report)
    extra = []
    if probe.get("final_loss") is not None:
        extra.append((f"{'probe' if getattr(report, 'source', 'check') == 'check' else 'run'} (final MSE)",
                      probe.get("final_loss")))
    lead = figs.pop(0) if "curves" in ids else ""  # the curve that shows the verdict comes first
    parts = [_verdict_box(kind, headline, details), _config_line(getattr(report, "config", None)), lead,
             _findings_section(getattr(report, "findings", []), ids, level),
             _figures_section(figs, level),
             _reference_section(getattr(report, "reference", None), level, extra),
             _notes_section(getattr(report, "notes", []), level)]
    return "\n".join(p for p in parts if p)


def render_report_html(report) -> str:
    """One self-contained HTML page for a :class:`fitdoctor.Report` (``check``, ``check-log``, Monitor)."""
    src = getattr(report, "source", "check")
    title = {"check": "fitdoctor check", "fix": "fitdoctor fix"}.get(src, f"fitdoctor {src}")
    body = f"<h1>{escape(title)}: why training does (not) converge</h1>\n" + report_fragment(report)
    return _page(title, body)


# -- comparison -----------------------------------------------------------------------------------
def comparison_fragment(comparison, *, level: int = 2, prefix: str = "") -> str:
    from .plots import TrainingCurvesDisplay

    df = getattr(comparison, "results_", None)
    runs = list(getattr(comparison, "runs_", []))
    optimum = getattr(comparison, "optimum_", None)
    linear = bool(getattr(comparison, "linear_model_", True))
    parts = []
    if df is not None and len(df):
        gaps = df["gap"].astype(float).to_numpy() if "gap" in df else np.full(len(df), np.nan)
        finals = df["final_loss"].astype(float).to_numpy() if "final_loss" in df else np.full(len(df), np.nan)
        order = np.argsort(np.where(np.isfinite(finals), finals, np.inf))
        if "rank" in df:  # ranked on held-out rows
            order = np.argsort(df["rank"].to_numpy(), kind="stable")
        best = int(order[0])
        n_conv = int(np.sum(np.isfinite(gaps) & (gaps <= CONVERGED_GAP)))
        n_div = int(df["diverged"].astype(bool).sum()) if "diverged" in df else 0
        label = str(df["label"].iloc[best]) if "label" in df else f"run {best}"
        if n_conv:
            kind, headline = "good" if n_conv == len(df) else "partial", \
                f"{n_conv} of {len(df)} configurations converge (within {CONVERGED_GAP:g}x of the optimum)"
        else:
            kind, headline = "bad", f"None of the {len(df)} configurations converges"
        details = [f"Best: <code>{escape(label)}</code>, final MSE {_num(finals[best])}, "
                   f"<strong>{ratio_text(gaps[best])} the {_optimum_name(linear)}</strong> ({_num(optimum)})."]
        worst = int(order[-1])
        if len(df) > 1:
            details.append(f"Worst: <code>{escape(str(df['label'].iloc[worst]))}</code>, "
                           + (f"final MSE {_num(finals[worst])}, {ratio_text(gaps[worst])} the optimum."
                              if _finite(finals[worst]) else "diverged (NaN or infinite)."))
        if n_div:
            details.append(f"{n_div} configuration{'s' if n_div != 1 else ''} diverged.")
        if getattr(comparison, "validation_", None):
            vals = df["val_loss"].astype(float).to_numpy() if "val_loss" in df else np.full(len(df), np.nan)
            vopt = float(comparison.val_optimum_)
            details.append(f"Ranked by held-out MSE ({escape(comparison.validation_)}): the best's held-out MSE is "
                           f"{_num(vals[best])}, <strong>{ratio_text(vals[best] / vopt if vopt > 0 else np.nan)} the "
                           f"held-out optimum</strong> ({escape(str(comparison.val_optimum_kind_))}) {_num(vopt)}.")
        parts.append(_verdict_box(kind, headline, details))
        cols = [c for c in ("label", "final_loss", "best_loss", "gap", "val_loss", "epochs_to_optimum", "diverged", "engine")
                if c in df]
        def show(c, v):
            if c == "gap":
                return ratio_text(v) if _finite(v) else "diverged"
            if c == "epochs_to_optimum":
                return int(v) if _finite(v) else "never"
            if c in ("final_loss", "best_loss", "val_loss") and not _finite(v):
                return "diverged"
            return v

        rows = [[show(c, df[c].iloc[i]) for c in cols] for i in order]
        classes = ["best" if i == best else "" for i in order]
        headers = [{"final_loss": "final MSE", "best_loss": "best MSE", "gap": "final / optimum", "val_loss": "held-out MSE",
                    "epochs_to_optimum": f"epochs to {CONVERGED_GAP:g}x optimum"}.get(c, c) for c in cols]
        parts.append(f"<h{level}>Results, best first</h{level}>" + _table(headers, rows, row_classes=classes, stack=True))
    if runs:
        parts.append(f"<h{level}>Figures</h{level}>")
        val_curves = getattr(comparison, "val_curves_", None) or []
        if val_curves and all(c is not None for c in val_curves):
            parts.append(_figure(lambda ax: TrainingCurvesDisplay.from_comparison(comparison, ax=ax, heldout=True),
                                 fig_id=f"{prefix}fig-heldout-curves", figsize=(5.4, 3.8),
                                 caption="Held-out MSE per epoch of every configuration (original units, log scale; "
                                         f"{escape(str(getattr(comparison, 'validation_', '')))}) and the references "
                                         "measured on the same held-out rows as horizontal lines."))
        parts.append(_figure(lambda ax: TrainingCurvesDisplay.from_comparison(comparison, ax=ax, heldout=False),
                             fig_id=f"{prefix}fig-curves", figsize=(5.4, 3.8),
                             caption="Training MSE per epoch of every configuration (original units, log scale) "
                                     "and the reference optima as horizontal lines."))
    parts.append(_reference_section(getattr(comparison, "reference_", None), level))
    return "\n".join(p for p in parts if p)


def render_comparison_html(comparison) -> str:
    """One self-contained HTML page for a :class:`fitdoctor.Comparison`."""
    body = "<h1>fitdoctor compare: which configuration converges</h1>\n" + comparison_fragment(comparison)
    return _page("fitdoctor compare", body)


# -- learning-rate finder -------------------------------------------------------------------------
def lr_finder_fragment(finder, *, level: int = 2, prefix: str = "", current_lr: float | None = None,
                       optimum: float | None = None) -> str:
    """The body of an lr-find page. ``optimum`` (the least-squares MSE of the same data, when the loss is
    MSE) is drawn as a horizontal line; by default the finder's ``optimum_`` when it has one."""
    from .plots import LRFinderDisplay

    sugg = getattr(finder, "suggestion_", None)
    rng = getattr(finder, "range_", None)
    details = []
    if rng is not None:
        details.append(f"Readings agree on the range {_num(rng[0])} to {_num(rng[1])}.")
    stop = lr_stop_text(finder)
    if stop:
        details.append(escape(stop[0].upper() + stop[1:]) + ".")
    notes = list(getattr(finder, "notes_", None) or [])
    details += [escape(n[0].upper() + n[1:]) + "." for n in notes]
    parts = [_verdict_box("good" if sugg is not None and not notes else "partial",
                          f"Suggested learning rate: {fmt(sugg)}" if sugg is not None else "No learning rate suggested",
                          details)]
    if getattr(finder, "lrs_", None) is not None:
        parts.append(_figure(lambda ax: LRFinderDisplay.from_finder(finder, current_lr=current_lr, optimum=optimum, ax=ax),
                             fig_id=f"{prefix}fig-lr",
                             caption="Learning-rate range test: the learning rate grows every step; the loss "
                                     "(smoothed) against it, and the suggestion."))
    return "\n".join(parts)


def render_lr_finder_html(finder, *, current_lr: float | None = None, optimum: float | None = None) -> str:
    body = ("<h1>fitdoctor lr-find: learning-rate range test</h1>\n"
            + lr_finder_fragment(finder, current_lr=current_lr, optimum=optimum))
    return _page("fitdoctor lr-find", body)


# -- repair ---------------------------------------------------------------------------------------
def _repair_verdict(repair) -> tuple[str, str, list[str]]:
    before = getattr(repair, "before_loss", None)
    after = getattr(repair, "after_loss", None)
    optimum = getattr(repair, "optimum", None)
    kind_name = getattr(repair, "optimum_kind", "least squares")
    reached = bool(getattr(repair, "reached_optimum", False))
    applied = list(getattr(repair, "applied", []))
    if reached and not applied:
        kind, headline = "good", "Healthy: this training converges. Nothing to fix"
    elif reached:
        kind, headline = "good", f"Repaired: the model now reaches the {kind_name} optimum"
    elif applied:
        kind, headline = "partial", "Partly repaired: better, but not at the optimum"
    else:
        kind, headline = "bad", "Not repaired: no fix helped measurably"
    details = []
    if _finite(before) and _finite(optimum) and optimum:
        details.append(f"Before: training MSE {_num(before)}, <strong>{ratio_text(before / optimum)} the {escape(kind_name)} "
                       f"optimum</strong> ({_num(optimum)}).")
    elif before is not None:
        details.append(f"Before: training as configured ends with MSE <strong>{_num(before)}</strong> "
                       "(the loss became NaN or infinite).")
        base = _ablation_baseline(repair)
        if base is not None and _finite(optimum) and optimum:
            details.append(f"Even without the rows holding NaN or infinite values, your configuration ends at MSE {_num(base)}, "
                           f"<strong>{ratio_text(base / optimum)} the {escape(kind_name)} optimum</strong>.")
    if _finite(after) and _finite(optimum) and optimum:
        details.append(f"After: training MSE {_num(after)}, {ratio_text(after / optimum)} the optimum.")
    if applied:
        details.append("Applied: " + ", ".join(f"<code>{escape(a.name)}</code>" for a in applied) + ".")
    msg = getattr(repair, "message", "")
    if msg:
        details.append(escape(msg))
    for r in getattr(repair, "reasons", []) or []:
        details.append(escape(str(r)))
    budget = _budget_text(getattr(repair, "budget_", None))
    if budget:
        details.append(escape(budget))
    return kind, headline, details


def _budget_text(budget) -> str | None:
    """The repair's budget line ("budget: ..."), drawn from its ``budget_`` dict."""
    if not budget:
        return None
    from .text import budget_line

    return budget_line(budget)


def _ablation_baseline(repair) -> float | None:
    """Final MSE of the ablation's baseline run (the user's configuration on the complete rows)."""
    for row in getattr(repair, "ablation_", None) or []:
        if row.get("role") == "baseline" and _finite(row.get("final_mse")):
            return float(row["final_mse"])
    return None


def _repair_data(repair):
    X = getattr(repair, "_X", None)
    y = getattr(repair, "_y", None)
    if X is None or y is None:
        return None, None
    X = np.asarray(X, dtype=float)
    return X.reshape(len(X), -1), np.asarray(y, dtype=float).reshape(len(X), -1)[:, 0]


def _lr_sweep(repair):
    """(lrs, final MSE) of the ablation's "all fixes" runs at each learning rate, sorted by rate."""
    pts = {}
    for row in getattr(repair, "ablation_", None) or getattr(repair, "ablation", None) or []:
        if row.get("role") == "all" and row.get("learning_rate") is not None:
            v = row.get("final_mse")
            pts[float(row["learning_rate"])] = float(v) if _finite(v) else float("nan")
    if len(pts) < 3:
        return None
    lrs = sorted(pts)
    return lrs, [pts[k] for k in lrs]


def repair_fragment(repair, *, level: int = 2, prefix: str = "") -> str:
    from .plots import (FeatureScalesDisplay, LRFinderDisplay, PredictionErrorDisplay, TargetDistributionDisplay,
                        TrainingCurvesDisplay)

    kind, headline, details = _repair_verdict(repair)
    report = getattr(repair, "report", None)
    X, y = _repair_data(repair)
    names = list(getattr(repair, "feature_names", []) or [])
    tname = getattr(repair, "target_name", "target") or "target"
    figs: list[str] = []
    ids: dict[str, str] = {}

    def add(key: str, html_: str) -> None:
        figs.append(html_)
        if html_.startswith("<figure"):
            ids[key] = f"{prefix}fig-{key}"

    if getattr(repair, "history_before", None) or getattr(repair, "history_after", None):
        hb = np.asarray(getattr(repair, "history_before", []) or [], dtype=float)
        note = (" Before the repair the loss is NaN from the first epoch (marked in the legend): rows with NaN "
                "poison every weight." if len(hb) and not np.isfinite(hb).any() else "")
        add("curves", _figure(lambda ax: TrainingCurvesDisplay.from_repair(repair, ax=ax), fig_id=f"{prefix}fig-curves",
                              caption="Training MSE per epoch (original units, log scale) with your configuration and "
                                      "with the repair; horizontal lines are the reference optima." + note))
    if X is not None:
        add("scales", _figure(lambda ax: FeatureScalesDisplay.from_data(X, y, feature_names=names or None,
                                                                         target_name=tname, ax=ax),
                              fig_id=f"{prefix}fig-scales", figsize=(5.4, max(2.8, 0.42 * (X.shape[1] + 1) + 1.8)),
                              caption="Root mean square of each input column and of the target as given (orange) "
                                      "and after standardising (green), log scale."))
        add("target", _figure(lambda ax: TargetDistributionDisplay.from_data(y, target_name=tname, ax=ax),
                              fig_id=f"{prefix}fig-target",
                              caption="Distribution of the target; red marks outliers (robust z above 5)."))
    if X is not None and getattr(repair, "model", None) is not None:
        def draw_pred(axes):
            d = PredictionErrorDisplay.from_repair(repair, ax=axes[0])
            d.plot(ax=axes[1], kind="residual_vs_predicted")

        add("pred", _figure(draw_pred, fig_id=f"{prefix}fig-pred", nrows=2, figsize=(5.4, 7.2),
                            caption="The repaired model on the training rows: predicted against actual (top; the "
                                    "dotted diagonal is a perfect fit) and residuals (bottom)."))
    sweep = _lr_sweep(repair)
    if sweep is not None:
        user_lr = getattr(getattr(repair, "user_recipe", None), "learning_rate", None)
        chosen = getattr(getattr(repair, "recipe", None), "learning_rate", None)

        def draw_lr(ax):
            LRFinderDisplay(lrs=sweep[0], losses=sweep[1], suggestion=chosen, current_lr=user_lr,
                            title="Final MSE of the repaired recipe at each learning rate", loss_label="final MSE",
                            suggestion_label="chosen", marker="o", optimum=getattr(repair, "optimum", None),
                            optimum_label=f"{getattr(repair, 'optimum_kind', 'least squares')} optimum").plot(ax=ax)

        add("lr", _figure(draw_lr, fig_id=f"{prefix}fig-lr",
                          caption="The ablation's learning-rate scan: the chosen fixes trained at each learning rate; "
                                  "the green line is the rate the repair chose, the red one yours."))

    parts = [_verdict_box(kind, headline, details)]
    if "curves" in ids:  # the curve that shows the verdict comes first
        parts.append(figs.pop(0))
    applied = list(getattr(repair, "applied", []))
    if applied:
        rows = []
        for a in applied:
            eff = getattr(a, "effect", None)
            shown = ("" if eff is None else ratio_text(eff) if _finite(eff)
                     else "without it the loss is NaN or infinite")
            rows.append((getattr(a, "name", "?"), shown,
                         getattr(a, "loss_with", None), getattr(a, "loss_without", None),
                         getattr(a, "description", ""), getattr(a, "evidence", "")))
        parts.append(f"<h{level}>What was changed, and what each change is worth</h{level}>"
                     "<p class=\"sub\">MSE with the fix and with it left out (everything else equal); "
                     "effect = how many times worse the run is without it.</p>"
                     + _table(["fix", "effect", "MSE with", "MSE without", "what it does", "runs compared"], rows,
                              stack=True))
    if report is not None:
        parts.append(_findings_section(getattr(report, "findings", []), ids, level))
    parts.append(_figures_section(figs, level))
    ablation = list(getattr(repair, "ablation_", None) or getattr(repair, "ablation", None) or [])
    if ablation:
        optimum = getattr(repair, "optimum", None)
        cols = ["label", "role", "learning_rate", "scale_x", "scale_y", "loss", "epochs", "final_mse", "diverged"]
        finals = [float(r["final_mse"]) if _finite(r.get("final_mse")) else float("inf") for r in ablation]
        best = int(np.argmin(finals))
        rows = []
        for r in ablation:
            row = [r.get(c) for c in cols]
            g = float(r["final_mse"]) / optimum if _finite(r.get("final_mse")) and _finite(optimum) and optimum else None
            row.insert(8, ratio_text(g) if g is not None else "diverged")
            rows.append(row)
        headers = ["run", "role", "learning rate", "scale x", "scale y", "loss", "epochs", "final MSE", "final / optimum",
                   "diverged"]
        parts.append(f"<h{level}>Ablation: every training run of the repair</h{level}>"
                     + _table(headers, rows, row_classes=["best" if i == best else "" for i in range(len(rows))],
                              stack=True))
    extra = []
    if _finite(getattr(repair, "after_loss", None)):
        extra.append(("repaired model (final MSE)", repair.after_loss))
    parts.append(_reference_section(getattr(repair, "reference", None), level, extra))
    if report is not None:
        parts.append(_notes_section(getattr(report, "notes", []), level))
    return "\n".join(p for p in parts if p)


def render_repair_html(repair) -> str:
    """One self-contained HTML page for a :class:`fitdoctor.Repair` (``fitdoctor fix``)."""
    body = "<h1>fitdoctor fix: why training did not converge, and the repair</h1>\n" + repair_fragment(repair)
    return _page("fitdoctor fix", body)


# -- demo: several results on one page ------------------------------------------------------------
def _kind_of(obj) -> str:
    if hasattr(obj, "history_after") and hasattr(obj, "applied"):
        return "repair"
    if hasattr(obj, "runs_"):
        return "comparison"
    if hasattr(obj, "lrs_"):
        return "lr_finder"
    if hasattr(obj, "findings"):
        return "report"
    raise TypeError(f"cannot render {type(obj).__name__}: expected a Report, Comparison, Repair or LRFinder")


def _headline(obj) -> str:
    kind = _kind_of(obj)
    if kind == "report":
        return report_verdict(obj)[1]
    if kind == "repair":
        return _repair_verdict(obj)[1]
    if kind == "lr_finder":
        s = getattr(obj, "suggestion_", None)
        return f"suggested learning rate {fmt(s)}" if s is not None else "no suggestion"
    return "comparison"


def render_demo_html(sections: Sequence[tuple[str, str, Any]], *, title: str = "fitdoctor demo") -> str:
    """One page covering several results: ``sections`` is a list of (title, description, result).

    A result is a Report, Comparison, Repair or LRFinder; each gets a section with its own verdict,
    findings and figures, and a table of contents at the top.
    """
    toc, bodies = [], []
    for i, (sec_title, desc, obj) in enumerate(sections):
        anchor = f"s{i + 1}"
        kind = _kind_of(obj)
        frag = {"report": report_fragment, "comparison": comparison_fragment, "repair": repair_fragment,
                "lr_finder": lr_finder_fragment}[kind](obj, level=3, prefix=f"{anchor}-")
        try:
            head = _headline(obj)
        except Exception:
            head = ""
        toc.append(f'<li><a href="#{anchor}">{escape(str(sec_title))}</a>'
                   + (f" <span class=\"sub\">{escape(head)}</span>" if head and kind != "comparison" else "") + "</li>")
        desc_html = "".join(f"<p>{escape(p.strip())}</p>" for p in str(desc or "").split("\n\n") if p.strip())
        bodies.append(f'<section id="{anchor}"><h2>{escape(str(sec_title))}</h2>{desc_html}\n{frag}</section>')
    body = (f"<h1>{escape(title)}</h1><p class=\"sub\">{len(sections)} section{'s' if len(sections) != 1 else ''}: "
            "what fitdoctor finds, measures and repairs.</p>"
            f"<nav><ul>{''.join(toc)}</ul></nav>\n" + "\n".join(bodies))
    return _page(title, body)


# -- notebooks ------------------------------------------------------------------------------------
#: the class of the element a notebook output is drawn in; the page's CSS is scoped to it
NOTEBOOK_CLASS = "fitdoctor-output"
#: widest a notebook output grows (a notebook cell is about 900-1200 px wide)
NOTEBOOK_MAX_WIDTH = 900


def scope_css(css: str, scope: str) -> str:
    """``css`` with every selector limited to elements under ``scope`` (``html``/``body``/``main``
    become ``scope`` itself), so that a notebook output does not restyle the notebook around it."""
    out: list[str] = []
    i = 0
    while True:
        j = css.find("{", i)
        if j < 0:
            break
        selector = css[i:j].strip()
        if selector.startswith("@"):  # @media: scope the rules inside
            depth, k = 1, j + 1
            while depth:
                depth += {"{": 1, "}": -1}.get(css[k], 0)
                k += 1
            out.append(selector + "{" + scope_css(css[j + 1:k - 1], scope) + "}")
            i = k
            continue
        k = css.index("}", j)
        parts = []
        for sel in selector.split(","):
            sel = sel.strip()
            if sel in ("html", "body", "main"):
                parts.append(scope)
            elif sel == "*":
                parts.append(f"{scope},{scope} *")
            else:
                parts.append(f"{scope} {sel}")
        out.append(",".join(parts) + "{" + css[j + 1:k] + "}")
        i = k + 1
    return "\n".join(out)


_NB_TITLES = {"report": "fitdoctor report", "comparison": "fitdoctor compare", "repair": "fitdoctor repair",
              "lr_finder": "fitdoctor lr-find"}
_nb_counter = 0


def notebook_html(obj) -> str:
    """A result (Report, Comparison, Repair, LRFinder) as one self-contained HTML block for a notebook
    cell (``_repr_html_``): the same fragments as the HTML report, CSS scoped to the block, no script,
    figures embedded, at most :data:`NOTEBOOK_MAX_WIDTH` px wide."""
    global _nb_counter
    _nb_counter += 1
    kind = _kind_of(obj)
    prefix = f"fd{_nb_counter}-"  # element ids stay unique when a notebook shows many results
    frag = {"report": report_fragment, "comparison": comparison_fragment, "repair": repair_fragment,
            "lr_finder": lr_finder_fragment}[kind](obj, level=3, prefix=prefix)
    title = _NB_TITLES[kind]
    if kind == "report" and getattr(obj, "source", "check") != "check":
        title = f"fitdoctor report ({getattr(obj, 'source', '')})"
    scope = f".{NOTEBOOK_CLASS}"
    css = scope_css(_CSS, scope) + (f"\n{scope}{{max-width:{NOTEBOOK_MAX_WIDTH}px;padding:6px 10px 10px;"
                                    "border-radius:8px;font-size:15px}"
                                    f"\n{scope} h3{{font-size:1.1rem}}")
    return (f'<div class="{NOTEBOOK_CLASS}" data-kind="{kind}"><style>{css}</style>'
            f'<p class="sub"><strong>{escape(title)}</strong></p>\n{frag}</div>')
