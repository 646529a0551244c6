"""repair() chooses candidates and writes its verdict on held-out rows (issue 12)."""
import numpy as np
import pytest


def _keras():
    import keras

    return keras


def _mse(model, X, y):
    pred = np.asarray(model.predict(np.asarray(X, np.float32), verbose=0), np.float64).reshape(-1)
    return float(np.mean((pred - y) ** 2))


def _problem(rng, n):
    X = rng.uniform(-2, 2, (n, 3))
    y = X @ np.array([1.5, -2.0, 0.5]) + np.sin(X[:, 0]) + 0.5 * rng.standard_normal(n)
    return X, y


def test_holdout_plan_kfold_for_small_data_and_split_for_large():
    from fitdoctor.heldout import holdout_plan as _holdout

    small = _holdout(20, 0, None, seed=0)
    assert small.kind == "k-fold" and len(small.folds) == 5 and small.retrain_all
    held = np.concatenate([va for _, va in small.folds])
    assert sorted(held.tolist()) == list(range(20))  # every row is held out exactly once
    for tr, va in small.folds:
        assert not set(tr) & set(va)
    large = _holdout(500, 0, None, seed=0)
    assert large.kind == "hold-out" and len(large.folds[0][1]) == 100
    keras_split = _holdout(50, 0, 0.2, seed=0)
    assert keras_split.folds[0][1].tolist() == list(range(40, 50))  # Keras: the last rows
    given = _holdout(30, 10, None, seed=0)
    assert given.kind == "validation_data" and given.folds[0][1].tolist() == list(range(30, 40))


def test_bad_validation_split_is_an_input_error():
    from fitdoctor.errors import InputError
    from fitdoctor.heldout import holdout_plan as _holdout

    with pytest.raises(InputError):
        _holdout(20, 0, 1.5, seed=0)


@pytest.mark.slow
def test_twenty_rows_and_a_64_unit_mlp_beat_the_mean_predictor_on_test_rows():
    keras = _keras()
    from fitdoctor import repair

    rng = np.random.default_rng(1)
    X, y = _problem(rng, 20)
    X_test, y_test = _problem(rng, 500)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    rep = repair(model, X, y, epochs=100, batch_size=8)
    assert rep.rows_per_parameter == pytest.approx(16 / 321)  # 16 training rows per fold, 321 parameters
    assert any("rows per trainable parameter" in n for n in rep.report.notes)
    assert "cross-validation" in rep.validation
    assert _mse(rep.model, X_test, y_test) < np.mean((y_test - y.mean()) ** 2)
    # never worse on held-out rows than the user's own configuration
    assert rep.after_val_loss <= rep.before_val_loss


def test_given_validation_data_judges_the_candidates():
    keras = _keras()
    from fitdoctor import repair

    rng = np.random.default_rng(2)
    X = rng.standard_normal((60, 2))
    y = X @ np.array([2.0, -1.0]) + 0.1 * rng.standard_normal(60)
    Xv = rng.standard_normal((20, 2))
    yv = Xv @ np.array([2.0, -1.0]) + 0.1 * rng.standard_normal(20)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss="mse")
    rep = repair(model, X, y, epochs=60, batch_size=16, validation_data=(Xv, yv))
    assert rep.validation.startswith("validation_data (20 rows)")
    assert not rep.retrained_on_all_rows
    # the reported held-out loss is the returned model's MSE on the given rows
    assert _mse(rep.model, Xv, yv) == pytest.approx(rep.after_val_loss, rel=1e-4)
    assert rep.after_val_loss <= rep.before_val_loss


def test_a_change_that_does_not_help_on_held_out_rows_is_not_kept():
    """A healthy standardised model: whatever repair tries, it returns the user's configuration
    unless the held-out MSE falls by at least 10 %."""
    keras = _keras()
    from fitdoctor import repair
    from fitdoctor.fix.repair import MIN_GAIN

    rng = np.random.default_rng(4)
    X = rng.standard_normal((80, 3))
    y = X @ np.array([0.5, -1.0, 0.3]) + 0.3 * rng.standard_normal(80)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.03), loss="mse")
    rep = repair(model, X, y, epochs=60, batch_size=16)
    if rep.applied:
        assert rep.after_val_loss < (1 - MIN_GAIN) * rep.before_val_loss
    else:
        assert rep.recipe == rep.user_recipe
        assert "nothing" in rep.message


@pytest.mark.slow
def test_l2_of_one_on_every_layer_is_removed_on_held_out_data():
    keras = _keras()
    from fitdoctor import repair

    rng = np.random.default_rng(5)
    X = rng.standard_normal((120, 3))
    y = X @ np.array([2.0, -1.5, 1.0]) + 0.2 * rng.standard_normal(120)
    keras.utils.set_random_seed(0)
    reg = keras.regularizers.L2(1.0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(16, activation="tanh", kernel_regularizer=reg),
                              keras.layers.Dense(1, kernel_regularizer=reg)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    from fitdoctor import diagnose

    first = diagnose(model, X, y, epochs=80, batch_size=16).findings[0]  # named first, by the removal experiment
    assert first.name == "over-regularization" and first.confirmed is True
    assert first.evidence["probe"]["experiment"] == "regularisers removed"
    assert first.evidence["probe"]["with_fix_mse"] < 0.5 * first.evidence["probe"]["baseline_mse"]
    rep = repair(model, X, y, epochs=80, batch_size=16)
    assert "over-regularization" in rep.report.names
    assert set(rep.applied_names) & {"remove_regularization", "l2_penalty"}
    assert rep.after_val_loss < 0.5 * rep.before_val_loss


def test_diagnose_measures_the_references_on_the_validation_split():
    from fitdoctor import diagnose

    rng = np.random.default_rng(0)
    X = rng.standard_normal((100, 3))
    y = X @ np.array([1.0, 2.0, 3.0]) + rng.standard_normal(100)
    report = diagnose(None, X, y, validation_split=0.2, probe=False)
    assert report.data["n_rows"] == 80  # the last 20 rows are held out, as Keras holds them out
    refs = report.data["heldout_references"]
    assert refs["least squares"] < 0.2 * refs["mean predictor"]
    assert any("20 held-out rows" in n for n in report.notes)
    assert any(n.startswith("no model given: assumed a linear model") for n in report.notes)


def test_check_without_a_model_says_first_which_model_it_assumed(capsys):
    from conftest import INCOME_CSV
    from fitdoctor.cli import main

    from fitdoctor.diagnosis import ARCHITECTURE_RULES

    main(["check", INCOME_CSV, "--target", "income", "--no-probe"])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("assumed model: Dense(1)")
    # the rules that depend on the architecture are skipped with a note naming them, not judged on the guess
    note = next(line for line in lines if "rules that depend on the architecture were skipped" in line)
    assert all(name in note for name in ARCHITECTURE_RULES)
    main(["check", INCOME_CSV, "--target", "income", "--no-probe", "--format", "json"])
    import json

    out = json.loads(capsys.readouterr().out)
    assert out["model"]["assumed"] is True
    assert not {f["name"] for f in out["findings"]} & ARCHITECTURE_RULES


def _bundled(name):
    """(X, y, compiled model, epochs, batch) of a bundled problem: a fitdoctor example, or scikit-learn's
    diabetes data unscaled into a Dense(32, relu) MLP (a learner's typical 'no scaling' mistake)."""
    keras = _keras()
    if name == "diabetes no scaling":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True, scaled=False)
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        return X, y, model, 200, 32
    from fitdoctor.examples import load_example

    ex = load_example(name)
    ok = np.isfinite(ex.X).all(axis=1) & np.isfinite(ex.y)
    return ex.X[ok], ex.y[ok], ex.compiled_model(0), ex.epochs, ex.batch_size


@pytest.mark.slow
@pytest.mark.parametrize("name", ["learning-rate", "diabetes no scaling"])
def test_on_bundled_data_the_repaired_test_mse_is_never_worse_than_the_users(name):
    """Issue 12 acceptance: an 80/20 train/test split of bundled data; repair sees the training rows only.
    The repaired model's test MSE is not above the user's configuration trained as configured, and (the
    benchmark's target, benchmarks/bench_heldout.py) within 1.1x of LinearRegression's."""
    keras = _keras()
    from sklearn.linear_model import LinearRegression

    from fitdoctor import repair

    X, y, model, epochs, batch = _bundled(name)
    order = np.random.default_rng(0).permutation(len(y))
    te, tr = np.sort(order[:len(y) // 5]), np.sort(order[len(y) // 5:])
    user = keras.models.clone_model(model)
    user.set_weights(model.get_weights())
    user.compile(optimizer=keras.optimizers.get(keras.optimizers.serialize(model.optimizer)), loss="mse")
    user.fit(X[tr], y[tr], epochs=epochs, batch_size=batch, verbose=0)
    rep = repair(model, X[tr], y[tr], epochs=epochs, batch_size=batch)
    user_test, repaired_test = _mse(user, X[te], y[te]), _mse(rep.model, X[te], y[te])
    linear_test = float(np.mean((LinearRegression().fit(X[tr], y[tr]).predict(X[te]) - y[te]) ** 2))
    assert repaired_test <= user_test
    assert repaired_test <= 1.1 * linear_test
