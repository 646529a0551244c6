"""The subsampling rule for large data (experiments/budget.py) and repair on a subsample."""
import numpy as np
import pytest

from fitdoctor.experiments import budget as B


def test_rule_takes_the_largest_floor_capped_by_n():
    # rows per parameter dominate a 5,569-parameter MLP
    assert B.experiment_rows(10**6, 5569, 32) == 20 * 5569
    # one epoch of 1,000 steps dominates a tiny model with a large batch
    assert B.experiment_rows(10**6, 21, 256) == 1000 * 256
    # the minimum dominates a tiny model with batch 1
    assert B.experiment_rows(10**6, 3, 1) == 2000
    # never more rows than there are
    assert B.experiment_rows(5000, 5569, 32) == 5000
    # unknown parameters and batch: Keras's default batch
    assert B.experiment_rows(10**6, None, None) == 32 * 1000


def test_small_data_is_not_subsampled():
    b = B.plan_budget(1500, 100, 32, seed=0)
    assert not b.subsampled
    assert b.m == 1500 and np.array_equal(b.rows, np.arange(1500))
    assert len(b.confirm_rows) == 0
    assert "all 1,500 rows" in b.describe()


def test_large_data_gives_seeded_nested_sorted_rows():
    b = B.plan_budget(200_000, 500, 32, seed=3)
    assert b.subsampled and b.m == 32_000
    assert np.all(np.diff(b.rows) > 0) and b.rows[-1] < 200_000
    assert len(b.confirm_rows) == b.m // B.SECOND_SIZE_DIVISOR
    assert np.isin(b.confirm_rows, b.rows).all()
    again = B.plan_budget(200_000, 500, 32, seed=3)
    assert np.array_equal(again.rows, b.rows) and np.array_equal(again.confirm_rows, b.confirm_rows)
    other = B.plan_budget(200_000, 500, 32, seed=4)
    assert not np.array_equal(other.rows, b.rows)
    d = b.to_dict()
    assert d["m"] == 32_000 and d["confirm_m"] == 8_000 and d["n_rows"] == 200_000 and d["subsampled"]


def test_choices_agree_compares_the_ranking_on_both_sizes():
    assert B.choices_agree({"a": 1.0, "b": 2.0}, {"a": 5.0, "b": 9.0})
    assert not B.choices_agree({"a": 1.0, "b": 2.0}, {"a": 9.0, "b": 5.0})
    # a tie within the tolerance agrees with either order
    assert B.choices_agree({"a": 1.0, "b": 2.0}, {"a": 5.0, "b": 4.95}, tolerance=0.02)
    assert not B.choices_agree({"a": 1.0, "b": 2.0}, {"a": 5.0, "b": 4.0}, tolerance=0.02)
    # a diverged run ranks last
    assert B.choices_agree({"a": 1.0, "b": float("nan")}, {"a": 3.0, "b": float("inf")})
    assert not B.choices_agree({"a": float("nan"), "b": 1.0}, {"a": 1.0, "b": 3.0})


def test_negative_rows_are_refused():
    with pytest.raises(ValueError, match="n_rows"):
        B.experiment_rows(-1, 10, 32)


@pytest.fixture
def small_rule(monkeypatch):
    """The rule scaled down so that a few hundred rows count as large data (tests stay fast)."""
    monkeypatch.setattr(B, "MIN_ROWS", 160)
    monkeypatch.setattr(B, "ROWS_PER_PARAMETER", 1)
    monkeypatch.setattr(B, "STEPS_PER_EPOCH", 1)


def _target_scale_problem(n):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, 3))
    y = 5000.0 + 800.0 * (X @ np.array([1.0, -2.0, 0.5])) + rng.normal(0, 80.0, n)
    return X, y


def _linear_model():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    return model


def test_repair_on_large_data_experiments_on_a_subsample_and_trains_once_on_all_rows(small_rule):
    from fitdoctor import repair
    from fitdoctor.fix.training import predict_mse

    X, y = _target_scale_problem(640)
    rep = repair(_linear_model(), X, y, epochs=15, batch_size=16)
    sub = rep.budget_["subsample"]
    assert sub["subsampled"] and sub["m"] == 160 and sub["n_rows"] == 640 and sub["confirm_m"] == 40
    assert rep.retrained_on_all_rows
    # after_loss is measured on ALL rows with the returned model
    assert predict_mse(rep.model, X, y) == pytest.approx(rep.after_loss, rel=1e-5)
    # the target-scale problem is repaired, and the two sizes rank the choice the same way
    assert rep.after_loss < 0.05 * np.var(y)
    assert sub["agree"] is True
    assert sub["second"]["chosen recipe"] < sub["second"]["your configuration"]
    assert any("experiments on a seeded 160 of 640 rows" in n for n in rep.report.notes)
    # save() writes the user's rows, not the subsample
    assert len(rep._y) == 640


def test_repair_below_the_rule_is_not_subsampled(small_rule):
    from fitdoctor import repair

    X, y = _target_scale_problem(150)
    rep = repair(_linear_model(), X, y, epochs=5, batch_size=16)
    assert "subsample" not in (rep.budget_ or {})
