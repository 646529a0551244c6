"""The self-contained HTML report: verdict, findings, figures, escaping, robustness (no browser here)."""
from __future__ import annotations

import re

import numpy as np
import pytest

from conftest import INCOME_CSV
from fitdoctor.findings import Finding, Fix
from fitdoctor.reference import compute_reference
from fitdoctor.report import Report
from fitdoctor.reporting.html import (render_comparison_html, render_demo_html, render_lr_finder_html,
                                      render_report_html)

FIGURE = re.compile(r'<figure class="plot" id="([^"]+)"><img src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


def figures(page: str) -> dict[str, int]:
    """Embedded figures: id -> size of the PNG in bytes."""
    import base64

    out = {}
    for fid, data in FIGURE.findall(page):
        png = base64.b64decode(data)
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        out[fid] = len(png)
    return out


def assert_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert '<meta name="viewport"' in page
    assert not re.search(r'(src|href)\s*=\s*"(https?:)?//', page)
    assert "<script" not in page.lower() and "<link" not in page.lower()


@pytest.fixture(scope="module")
def healthy_report():
    """Standardised inputs, noise sd 0.5, Adam at 0.05: the probe reaches least squares."""
    from fitdoctor.diagnosis import diagnose

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.5 * rng.normal(size=200)
    return diagnose(None, X, y, optimizer="adam", learning_rate=0.05, epochs=100, nonlinear_reference=False, seed=0)


@pytest.fixture(scope="module")
def income_report():
    from fitdoctor.data.loading import load_dataset
    from fitdoctor.diagnosis import diagnose

    ds = load_dataset(INCOME_CSV, "income")
    return diagnose(None, ds.X, ds.y, optimizer="adam", learning_rate=0.01, epochs=200, seed=0,
                    feature_names=ds.feature_names, target_name=ds.target_name)


@pytest.mark.slow  # ~11 s: the first training of the module pays for JAX's start
def test_healthy_run_says_so_plainly_and_shows_its_curves(healthy_report):
    assert not healthy_report.has_problems
    assert healthy_report.gap <= 1.1  # measured: the probe ends within 10% of least squares
    page = healthy_report.to_html()
    assert_self_contained(page)
    assert 'class="verdict good"' in page
    assert "Healthy: this training converges. No problems found" in page
    assert "All checks passed" in page
    figs = figures(page)
    assert "fig-curves" in figs and figs["fig-curves"] > 10_000
    assert 'class="card finding' not in page
    # the verdict comes before the curves, the curves before anything else
    assert page.index("Healthy:") < page.index('id="fig-curves"') < page.index("Reference losses")


def test_income_check_report_has_verdict_findings_and_figures(income_report):
    page = render_report_html(income_report)
    assert_self_contained(page)
    gap = income_report.gap
    assert gap > 100  # Adam at 0.01 on incomes of ~40,000: the probe stays far above least squares
    assert 'class="verdict bad"' in page and "Does not converge" in page
    assert f"{gap:,.0f}x above the least-squares optimum" in page
    # every finding, in the report's order (most important first), with its evidence and fix
    names = re.findall(r'<code class="name">([^<]+)</code>', page)
    assert names == income_report.names and len(names) >= 3
    for f in income_report.findings:
        if f.fix and f.fix.snippet:
            from html import escape

            assert escape(f.fix.snippet) in page
    figs = figures(page)
    assert {"fig-curves", "fig-scales", "fig-target"} <= set(figs)
    # each data finding points at the figure that shows it
    assert 'href="#fig-scales"' in page and 'href="#fig-curves"' in page


def test_user_text_is_escaped():
    evil = "<script>alert(1)</script>"
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 2))
    y = X[:, 0] * 3 + rng.normal(size=30)
    y[:3] = [80, 90, -70]  # three outliers
    report = Report(
        findings=[Finding("D107", "outliers", "warning", f"message {evil}", {"rows": [0, 1, 2], "note": evil},
                          fix=Fix(f"title {evil}", f"snippet({evil!r})"))],
        reference=compute_reference(X, y, nonlinear=False), config={"optimizer": evil, "learning_rate": 0.01},
        notes=[f"note {evil}"],
        data={"feature_names": [evil, "b&c"], "feature_rms": np.sqrt((X**2).mean(0)).tolist(),
              "feature_std": X.std(0).tolist(), "feature_mean": X.mean(0).tolist(), "target_sample": y.tolist(),
              "target_mean": float(y.mean()), "target_std": float(y.std()), "target_name": evil})
    page = render_report_html(report)
    assert evil not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower()
    assert {"fig-scales", "fig-target"} <= set(figures(page))  # drawn from report.data alone


def test_missing_pieces_skip_figures_instead_of_failing():
    empty = render_report_html(Report())
    assert_self_contained(empty)
    assert "No problems found by the checks" in empty and figures(empty) == {}
    # a malformed curve: that figure is skipped with a comment, the rest of the report is there
    broken = Report(findings=[Finding("O304", "too-few-epochs", "warning", "stopped early")],
                    probe={"loss": ["not", "a", "number"], "final_loss": 1.0})
    page = render_report_html(broken)
    assert "<!-- figure fig-curves skipped" in page
    assert '<code class="name">too-few-epochs</code>' in page


def test_comparison_report_ranks_runs_against_the_optimum():
    import keras

    from fitdoctor.experiments import compare

    rng = np.random.default_rng(0)
    X = rng.normal(size=(64, 3))
    y = 1000 * (X @ np.array([1.0, -2.0, 0.5])) + 5000 + 50 * rng.normal(size=64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    cmp = compare(model, X, y, grid={"scale_y": [False, True], "learning_rate": [0.01, 0.1]}, epochs=40, seed=0)
    page = render_comparison_html(cmp)
    assert_self_contained(page)
    assert "fig-curves" in figures(page)
    results = page[page.index("Results, best first"):page.index("Reference losses")]
    labels = re.findall(r"<tr(?: class=\"best\")?><td(?: data-label=\"[^\"]*\")?>([^<]+)</td>", results)
    df = cmp.results_.sort_values("final_loss")
    assert labels == list(df["label"])  # best first
    best = df.iloc[0]
    assert f"Best: <code>{best['label']}</code>" in page and best["scale_y"]
    assert page.count('<tr class="best">') == 1


def test_lr_finder_and_demo_page_share_one_file():
    import keras

    from fitdoctor.experiments import find_lr

    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=128)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    finder = find_lr(model, X, y)
    single = render_lr_finder_html(finder)
    assert "fig-lr" in figures(single) and "Suggested learning rate: " in single
    reference = compute_reference(X, y, nonlinear=False)
    rep = Report(reference=reference, probe={"loss": [3.0, 1.0, 0.2, 0.011], "final_loss": 0.011},
                 model={"is_linear": True})
    page = render_demo_html([("First <example>", "what it shows\n\nsecond paragraph", rep),
                             ("Learning rate", "range test", finder)])
    assert_self_contained(page)
    assert "First &lt;example&gt;" in page and page.count("<section id=") == 2
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # anchors of the sections never collide
    assert {"s1-fig-curves", "s2-fig-lr"} <= set(figures(page))
    assert '<a href="#s1">' in page and '<a href="#s2">' in page


def test_monitored_run_report_shows_its_curve_against_the_optimum():
    """A Report of diagnose_history: the run's own curve, verdict from its final loss."""
    from fitdoctor.monitor import diagnose_history

    rng = np.random.default_rng(0)
    X = rng.normal(size=(100, 2))
    y = X @ np.array([3.0, -1.0]) + 10 + 0.3 * rng.normal(size=100)
    ref = compute_reference(X, y, nonlinear=False)
    # a curve that decays onto least squares, and one stuck far above it
    good = list(ref.linear_mse + (ref.mean_mse * 1.5) * np.exp(-np.arange(60) / 4))
    stuck = list(ref.mean_mse * 1.2 + 0.01 * np.exp(-np.arange(60) / 20))
    good_page = render_report_html(diagnose_history(good, X=X, y=y, optimizer="adam", learning_rate=0.01))
    stuck_report = diagnose_history(stuck, X=X, y=y, optimizer="adam", learning_rate=0.01)
    stuck_page = render_report_html(stuck_report)
    assert "fig-curves" in figures(good_page) and "fig-curves" in figures(stuck_page)
    assert "Healthy: this training converges" in good_page and "of the monitored run" in good_page
    assert 'class="verdict good"' not in stuck_page
    gap = stuck[-1] / ref.linear_mse
    assert f"ended <strong>{gap:.3g}x above the least-squares optimum" in stuck_page
