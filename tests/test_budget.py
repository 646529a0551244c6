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
    # the final fit: the user's 15 epochs (15 x 160 rows' steps take 4 epochs of 640 rows, fewer than 15)
    assert sub["final_epochs"] == 15 and len(rep.history_after) == 15 and rep.recipe.epochs == 15
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


def test_final_epochs_translate_the_chosen_steps_to_all_rows():
    # the user's epochs on all rows already give more steps than 3x the epochs on a ninth of the rows
    assert B.final_epochs(60, 20, 111_380, 1_000_000) == 20
    # the chosen epochs unchanged: the user's epochs
    assert B.final_epochs(20, 20, 111_380, 1_000_000) == 20
    # more steps than the user's on all rows (n < 3 m): the chosen steps, in epochs of n rows (ceil)
    assert B.final_epochs(60, 20, 100_000, 150_000) == 40
    assert B.final_epochs(45, 5, 160, 640) == 12
    # early stopping at epoch 10 on a ninth of the rows: the same steps, at least one epoch
    assert B.final_epochs(10, 20, 111_380, 1_000_000, early_stopped=True) == 2
    assert B.final_epochs(3, 20, 1000, 1_000_000, early_stopped=True) == 1
    with pytest.raises(ValueError, match="epochs and rows"):
        B.final_epochs(0, 20, 10, 100)


def test_large_data_final_fit_trains_the_rule_s_epochs_on_all_rows(small_rule):
    """A recipe chosen with more epochs than the user's on the subsample trains the same optimizer steps
    on all training rows (here more than the user's epochs, since n is only 3 m), once; the rows of
    validation_split stay out of it and measure it."""
    from fitdoctor import repair
    from fitdoctor.experiments.budget import plan_budget
    from fitdoctor.fix.large_data import repair_on_subsample
    from fitdoctor.fix.training import predict_mse

    X, y = _target_scale_problem(640)
    seen = {}

    def longer_choice(*args, **kwargs):  # the subsample's repair, its choice trained 30 epochs instead of 3
        seen.update(kwargs)
        rep = repair(*args, **kwargs)
        rep.recipe = rep.recipe.replace(epochs=30)
        return rep

    bud = plan_budget(640, 4, 16, seed=0)
    assert bud.m == 160
    rep = repair_on_subsample(longer_choice, _linear_model(), X, y, bud, dropped=[], seed=0, epochs=3, batch_size=16,
                              validation_split=0.25)
    assert seen["_budget"] is False and seen["_final_fit"] is False  # no retraining on the experiment rows
    sub = rep.budget_["subsample"]
    # the last 160 rows are the user's validation rows: the final fit trains on the first 480
    assert sub["final_rows"] == 480
    assert sub["chosen_epochs"] == 30 and sub["final_epochs"] == 10  # ceil(30 x 160 / 480)
    assert rep.recipe.epochs == 10 and len(rep.history_after) == 10
    assert rep.retrained_on_all_rows
    # the chosen recipe, not the user's, trained on the rows: the target-scale problem is fitted
    assert predict_mse(rep.model, X[:480], y[:480]) == pytest.approx(rep.after_loss, rel=1e-5)
    assert rep.after_loss < 0.05 * np.var(y)
    # ... and checked on the held-out validation rows it never saw
    assert sub["final_val_mse"] == pytest.approx(predict_mse(rep.model, X[480:], y[480:]), rel=1e-5)
    assert sub["final_val_mse"] < 0.05 * np.var(y[480:])
    assert set(rep.budget_["stage_seconds"]) >= {"confirm (second size)", "final (all rows)"}
    assert any("10 epochs on 480 rows" in n for n in rep.report.notes)
