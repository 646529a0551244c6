"""Several targets of different scales get a truthful gap: the noiseless floor is per target, so a large
noiseless target does not lift the "optimum" above what the model reaches on the others."""
import numpy as np
import pytest

from fitdoctor.reference import NOISELESS_FRACTION, Reference, combine_targets, compute_reference


def _two_scales(n=200, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    big_noiseless = 1e3 * (X @ [1.0, -1.0, 0.5])
    small_noisy = X[:, 0] + 0.1 * rng.normal(size=n)
    return X, np.c_[big_noiseless, small_noisy]


def test_every_target_column_is_measured_and_the_floor_is_the_smallest_targets():
    X, Y = _two_scales()
    ref = compute_reference(X, Y, nonlinear=False)
    cols = [compute_reference(X, Y[:, j], nonlinear=False) for j in range(2)]
    assert ref.linear_mse == pytest.approx(np.mean([c.linear_mse for c in cols]))
    assert ref.mean_mse == pytest.approx(np.mean(Y.var(axis=0)))
    assert ref.target_mean_mse == pytest.approx(tuple(Y.var(axis=0)))
    assert ref.floors == pytest.approx(tuple(NOISELESS_FRACTION * Y.var(axis=0)))
    assert ref.floor == pytest.approx(NOISELESS_FRACTION * Y[:, 1].var())
    # the small noisy target's optimum is what the model can reach: it is above the floor, so it is the optimum
    noise_part = cols[1].linear_mse / 2
    assert ref.effective_optimum(linear=True) == pytest.approx(ref.linear_mse)
    assert ref.effective_optimum(linear=True) == pytest.approx(noise_part, rel=1e-3)
    # the old rule (1e-6 of the mean var(y)) put the "optimum" ~100x above it
    assert NOISELESS_FRACTION * ref.mean_mse > 100 * ref.effective_optimum(linear=True)


def test_a_model_at_the_optimum_of_both_targets_has_a_gap_near_one():
    X, Y = _two_scales()
    ref = compute_reference(X, Y, nonlinear=False)
    A = np.c_[X, np.ones(len(X))]
    fit = A @ np.linalg.lstsq(A, Y, rcond=None)[0]
    mse = float(np.mean((fit - Y) ** 2))
    assert ref.gap(mse, linear=True) == pytest.approx(1.0, rel=1e-6)


def test_all_noiseless_targets_still_have_no_ratio_to_zero():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 2))
    Y = np.c_[1.8 * X[:, 0] + 32, 500.0 * X[:, 1]]
    ref = compute_reference(X, Y, nonlinear=False)
    assert ref.noiseless(linear=True)
    assert ref.effective_optimum(linear=True) == pytest.approx(NOISELESS_FRACTION * Y[:, 0].var())
    assert np.isfinite(ref.gap(1e-3, linear=True))


def test_one_target_is_unchanged_and_the_reference_round_trips():
    X, Y = _two_scales()
    one = compute_reference(X, Y[:, 1], nonlinear=False)
    assert one.target_mean_mse == () and one.floor == pytest.approx(NOISELESS_FRACTION * one.mean_mse)
    assert combine_targets([one]) is one
    both = compute_reference(X, Y, nonlinear=False)
    assert Reference.from_dict(both.to_dict()) == both
    assert Reference.from_dict(one.to_dict()) == one
