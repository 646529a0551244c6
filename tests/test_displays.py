"""Display objects (scikit-learn convention): from_...(...) builds and plots, plot(ax=None) returns self."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from fitdoctor.reference import compute_reference  # noqa: E402
from fitdoctor.report import Report  # noqa: E402
from fitdoctor.reporting.plots import (FeatureScalesDisplay, LRFinderDisplay, PredictionErrorDisplay,  # noqa: E402
                                       TargetDistributionDisplay, TrainingCurvesDisplay)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.normal(40, 10, 120), rng.normal(0, 0.01, 120), rng.normal(size=120)])
    y = 3 * X[:, 0] + 2000 + rng.normal(0, 5, 120)
    return X, y


def _hlines(ax) -> list[float]:
    return sorted(float(l.get_ydata()[0]) for l in ax.get_lines() if len(set(l.get_ydata())) == 1 and len(l.get_ydata()) == 2)


def test_training_curves_from_history_draws_log_curve_and_reference_lines(data):
    X, y = data
    ref = compute_reference(X, y, nonlinear=False)
    history = {"loss": [1e6, 1e4, 300.0, float("nan")]}
    disp = TrainingCurvesDisplay.from_history(history, reference=ref)
    assert disp.ax_.get_yscale() == "log" and disp.figure_ is disp.ax_.figure
    assert np.allclose(_hlines(disp.ax_), sorted([ref.mean_mse, ref.linear_mse]))
    labels = [t.get_text() for t in disp.ax_.get_legend().get_texts()]
    assert any("diverged" in t for t in labels)  # the curve ends in NaN
    # plot on a given axes returns self and draws there
    fig, ax = plt.subplots()
    assert disp.plot(ax=ax) is disp and disp.ax_ is ax


def test_training_curves_from_report_and_comparison(data):
    import keras

    from fitdoctor.experiments import compare

    X, y = data
    ref = compute_reference(X, y, nonlinear=False)
    rep = Report(reference=ref, probe={"loss": [5e6, 4e6], "final_loss": 4e6,
                                       "variants": [{"finding": "target-scale", "loss": [5e6, 20.0]}]})
    disp = TrainingCurvesDisplay.from_report(rep)
    assert len(disp.curves) == 2 and "with the fix for target-scale" in disp.curves
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    cmp = compare(model, X, y, grid={"scale_x": [False, True], "scale_y": [False, True]}, epochs=5, seed=0)
    disp = TrainingCurvesDisplay.from_comparison(cmp)
    assert set(disp.curves) == set(cmp.results_["label"])
    drawn = [l for l in disp.ax_.get_lines() if len(l.get_xdata()) == 5]
    assert len(drawn) == 4


def test_feature_scales_before_and_after(data):
    X, y = data
    disp = FeatureScalesDisplay.from_data(X, y, feature_names=["age", "tiny", "unit"], target_name="income")
    assert disp.ax_.get_xscale() == "log"
    widths = [p.get_width() for p in disp.ax_.patches]
    n = X.shape[1] + 1  # features + target
    before, after = widths[:n], widths[n:]
    expected = np.append(np.sqrt((X**2).mean(0)), np.sqrt((y**2).mean()))
    assert np.allclose(before, expected)
    assert np.allclose(after, 1.0)
    assert [t.get_text() for t in disp.ax_.get_yticklabels()] == ["age", "tiny", "unit", "income (target)"]
    # the same numbers from a Report's data summary
    rep = Report(data={"feature_names": ["age", "tiny", "unit"], "feature_rms": expected[:3].tolist(),
                       "feature_std": X.std(0).tolist(), "target_mean": float(y.mean()), "target_std": float(y.std())})
    disp2 = FeatureScalesDisplay.from_report(rep)
    assert np.allclose([p.get_width() for p in disp2.ax_.patches][:n], expected)


def test_target_distribution_marks_the_outliers():
    rng = np.random.default_rng(3)
    y = rng.normal(100, 5, 200)
    y[[5, 50, 150]] = [400, 420, -250]  # robust z far above 5
    disp = TargetDistributionDisplay.from_data(y, target_name="price")
    assert disp.n_outliers_ == 3
    marked = [l for l in disp.ax_.get_lines() if l.get_marker() == "v"]
    assert len(marked) == 1 and sorted(marked[0].get_xdata()) == [-250, 400, 420]
    clean = TargetDistributionDisplay.from_data(rng.normal(size=200))
    assert clean.n_outliers_ == 0
    with pytest.raises(ValueError, match="target sample"):
        TargetDistributionDisplay.from_report(Report())


def test_lr_finder_display_from_a_real_range_test():
    import keras

    from fitdoctor.experiments import find_lr

    rng = np.random.default_rng(0)
    X = rng.normal(size=(128, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=128)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    finder = find_lr(model, X, y)
    disp = LRFinderDisplay.from_finder(finder, current_lr=1e-4)
    assert disp.ax_.get_xscale() == "log"
    vlines = [float(l.get_xdata()[0]) for l in disp.ax_.get_lines() if len(set(l.get_xdata())) == 1]
    assert finder.suggestion_ in vlines and 1e-4 in vlines
    curve = disp.ax_.get_lines()[0]
    assert np.allclose(curve.get_xdata(), finder.lrs_)


def test_prediction_error_from_model_and_predictions():
    import keras

    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 2))
    y = X @ np.array([2.0, -1.0]) + 0.5
    X[3, 0] = np.nan  # rows with NaN are left out
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.layers[0].set_weights([np.array([[2.0], [-1.0]]), np.array([0.5])])
    disp = PredictionErrorDisplay.from_model(model, X, y, target_name="y")
    pts = disp.ax_.collections[0].get_offsets()
    assert len(pts) == 49 and np.allclose(pts[:, 0], pts[:, 1], atol=1e-4)  # exact weights: on the diagonal
    res = disp.plot(kind="residual_vs_predicted")
    assert res is disp and np.allclose(disp.ax_.collections[0].get_offsets()[:, 1], 0, atol=1e-4)
    with pytest.raises(ValueError, match="kind"):
        disp.plot(kind="nope")
    d2 = PredictionErrorDisplay.from_predictions([1.0, 2.0, 3.0], [1.0, 2.5, 2.0], kind="residual_vs_predicted")
    assert np.allclose(d2.ax_.collections[0].get_offsets()[:, 1], [0.0, -0.5, 1.0])
