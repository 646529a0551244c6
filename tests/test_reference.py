"""The reference optimum: least squares by streaming normal equations agrees with an SVD solve."""
import numpy as np
import pytest

from fitdoctor.reference import compute_reference, least_squares


def test_streaming_least_squares_matches_numpy_lstsq_with_offsets_and_many_rows():
    rng = np.random.default_rng(0)
    n = 150_000  # more than two streaming chunks
    X = np.c_[2000 + 3 * rng.standard_normal(n), rng.standard_normal(n) * 1e3, rng.random(n)]
    y = X @ [2.0, -0.01, 5.0] + 40_000 + rng.standard_normal(n)
    coef, intercept, mse = least_squares(X, y)
    A = np.c_[X, np.ones(n)]
    sol, *_ = np.linalg.lstsq(A, y, rcond=None)
    np.testing.assert_allclose(coef, sol[:3], rtol=1e-6)
    assert np.isclose(intercept, sol[3], rtol=1e-6)
    assert np.isclose(mse, np.mean((A @ sol - y) ** 2), rtol=1e-6)


def test_collinear_columns_fall_back_to_svd_and_exact_fits_are_measured():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(500)
    X = np.c_[x, x]                       # singular normal equations
    y = 3 * x + 1                         # a perfect fit: MSE must be ~0, not a rounding residue
    coef, intercept, mse = least_squares(X, y)
    assert np.isclose(coef.sum(), 3.0) and np.isclose(intercept, 1.0) and mse < 1e-20


def test_reference_ignores_non_finite_rows_and_reports_the_mean_predictor():
    X = np.c_[np.arange(10.0)]
    y = 2 * np.arange(10.0)
    X[3, 0] = np.nan
    ref = compute_reference(X, y, nonlinear=False)
    ok = np.arange(10) != 3
    assert ref.n_rows == 9 and np.isclose(ref.mean_mse, np.var(y[ok])) and ref.linear_mse < 1e-20
    # an optimum of 0 (noiseless data) is floored at 1e-6 var(y): the gap is against var(y), never a division by 0
    assert ref.noiseless(linear=True)
    assert ref.gap(1e-3, linear=True) == pytest.approx(1e-3 / (1e-6 * np.var(y[ok])))


def test_several_targets_keep_each_targets_references_and_the_reports_show_them():
    """References are per output: each column's mean-predictor, least-squares and nonlinear MSE equal
    that column's own reference; the text and markdown reports list them under the targets' names."""
    import fitdoctor

    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 3))
    Y = np.c_[X @ [1.0, 2.0, 3.0] + rng.normal(size=200), 1000 * np.sin(X[:, 0])]
    report = fitdoctor.diagnose(None, X, Y, probe=False, target_name="price,demand")
    per = report.reference.per_target()
    assert len(per) == 2
    for j, entry in enumerate(per):
        alone = compute_reference(X, Y[:, j], seed=0)
        assert entry["mean_mse"] == pytest.approx(alone.mean_mse, rel=1e-9)
        assert entry["linear_mse"] == pytest.approx(alone.linear_mse, rel=1e-9)
        assert entry["nonlinear_mse"] == pytest.approx(alone.nonlinear_mse, rel=1e-9)
    assert per[0]["linear_mse"] < 2 < per[1]["linear_mse"]  # noise 1 vs a nonlinear target in the thousands
    text = report.to_text()
    assert "price: mean" in text and "demand: mean" in text
    assert "| price |" in report.to_markdown() and "| demand |" in report.to_markdown()
