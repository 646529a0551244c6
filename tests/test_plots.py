"""Plots that stay readable with many runs, and the words around them (no browser, no training)."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from fitdoctor.findings import Finding  # noqa: E402
from fitdoctor.reporting.html import figure_legibility  # noqa: E402
from fitdoctor.reporting.plots import LRFinderDisplay, TrainingCurvesDisplay, curve_styles  # noqa: E402
from fitdoctor.reporting.text import lr_stop_text, render_report_text, summary_line  # noqa: E402


def _axes(figsize=(5.4, 3.6)):
    fig = Figure(figsize=figsize, dpi=110)
    FigureCanvasAgg(fig)
    return fig.add_subplot()


@pytest.mark.parametrize("n", [1, 8, 9, 16, 32])
def test_every_curve_has_its_own_style(n):
    styles = curve_styles(n)
    assert len(set(styles)) == n


def _sixteen_curves():
    epochs = np.arange(1, 101)
    curves = {}
    for i in range(15):
        curves[f"run {i}"] = list(10.0 * (1 + i) * np.exp(-epochs / (10 + 5 * i)) + 1.0)
    curves["run 15 exploding"] = list(10.0 * np.exp(epochs * 0.6))  # reaches ~1e26
    curves["run 16 copy of run 3"] = list(curves["run 3"])
    return curves


def test_sixteen_runs_clip_to_converging_runs_and_say_what_is_hidden():
    curves = _sixteen_curves()
    disp = TrainingCurvesDisplay(curves=curves, references={"least squares": 1.0, "mean predictor": 40.0}).plot(ax=_axes())
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    # the exploding run is marked, and does not set the y-range
    assert "run 15 exploding" in disp.diverged_
    assert any(lab.startswith("run 15 exploding (diverged)") for lab in labels)
    lo, hi = disp.ax_.get_ylim()
    assert hi < 1e4, f"the y-axis reaches {hi:g}: a diverged run stretched it"
    assert max(max(c) for k, c in curves.items() if "exploding" not in k) <= hi
    # the optimum is a line of its own
    assert any(lab.startswith("least squares") for lab in labels)
    assert lo < 1.0 < hi
    # a curve hidden under another says so
    assert disp.coincident_ == {"run 16 copy of run 3": "run 3"}
    assert "run 16 copy of run 3 (coincides with run 3)" in labels
    # distinct styles, legend clear of the data area
    assert len(set(disp.styles_.values())) == len(curves)
    disp.figure_.tight_layout()
    assert figure_legibility(disp.figure_)["legend_overlap"] == 0


def test_a_legend_inside_the_axes_is_measured_as_overlapping():
    ax = _axes()
    ax.plot([1, 2], [1, 2], label="a")
    ax.legend(loc="center")
    assert figure_legibility(ax.figure)["legend_overlap"] == 1


def test_lr_plot_draws_the_optimum_and_where_the_sweep_stopped():
    lrs = np.geomspace(1e-5, 1, 50)
    losses = 100 / (1 + lrs * 100) + 2
    disp = LRFinderDisplay(lrs=lrs, losses=losses, suggestion=1e-2, optimum=2.0, stopped_at=1.0).plot(ax=_axes())
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert any(lab.startswith("least-squares optimum 2") for lab in labels)
    assert any(lab.startswith("sweep stopped at 1") for lab in labels)


def test_lr_stop_words_follow_the_curve():
    falling = SimpleNamespace(diverged_at_=0.628, losses_=np.linspace(10, 1, 30))
    turned = SimpleNamespace(diverged_at_=0.628, losses_=np.r_[np.linspace(10, 1, 25), np.linspace(1.5, 6, 5)])
    assert "still falling" in lr_stop_text(falling) and "diverged" not in lr_stop_text(falling)
    assert "blew up" in lr_stop_text(turned)
    assert lr_stop_text(SimpleNamespace(diverged_at_=None, losses_=np.ones(3))) is None


def _finding(code, name, severity, fixable=True):
    from fitdoctor.findings import Fix

    return Finding(code=code, name=name, severity=severity, message=f"{name} happened", evidence={},
                   fix=Fix("do it", "", safe=True) if fixable else None)


def test_text_output_shows_severity_and_counts_what_it_printed():
    from fitdoctor.report import Report

    findings = [_finding("O301", "adam-large-target", "error"), _finding("D105", "target-scale", "warning"),
                _finding("D104", "ill-conditioned", "warning"), _finding("M205", "bad-init", "info", fixable=False)]
    text = render_report_text(Report(findings=findings))
    lines = [ln for ln in text.splitlines() if ln[:1] in "DMOT" and ln[1:4].isdigit()]
    assert len(lines) == 4
    for ln, f in zip(sorted(lines), sorted(findings, key=lambda f: f.code)):
        assert f"[{f.severity}]" in ln
    last = text.splitlines()[-1]
    assert last == "Found 3 problems (1 error, 2 warnings) and 1 note, 3 fixable"
    assert summary_line([findings[-1]]) == "All checks passed (1 note)"
