"""repair(): causes confirmed by experiment, losses measured on the returned model, portable output."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import INCOME_CSV

PY = sys.executable
SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))
INCOME_OPTIMUM = 1.3046e6  # least squares on the 18 complete rows of income.csv (seed 003)


def _keras():
    import keras

    return keras


def _mse(model, X, y):
    pred = np.asarray(model.predict(X.astype(np.float32), verbose=0), np.float64).reshape(-1)
    return float(np.mean((pred - y) ** 2))


@pytest.fixture(scope="module")
def income_repair():
    keras = _keras()
    from fitdoctor.data.loading import load_dataset
    from fitdoctor import repair

    ds = load_dataset(INCOME_CSV, "income")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    weights = [w.copy() for w in model.get_weights()]
    rep = repair(model, ds.X, ds.y, epochs=200, batch_size=32, feature_names=ds.feature_names, target_name="income")
    return rep, model, weights, ds


@pytest.mark.slow
def test_income_reaches_least_squares_in_dollars(income_repair):
    rep, model, weights, ds = income_repair
    ok = np.isfinite(ds.X).all(axis=1)
    assert rep.reference.n_rows == 18
    assert rep.reference.linear_mse == pytest.approx(INCOME_OPTIMUM, rel=1e-4)
    # measured by predicting with the returned model, in dollars
    measured = _mse(rep.model, ds.X[ok], ds.y[ok])
    assert measured == pytest.approx(rep.after_loss, rel=1e-6)
    assert measured <= 1.01 * rep.reference.linear_mse
    assert rep.reached_optimum
    # target standardisation kept, with its measured effect (much worse without it)
    st = next(a for a in rep.applied if a.name == "scale_targets")
    assert st.loss_without > 100 * st.loss_with
    assert st.description
    # the NaN rows were dropped and reported
    assert rep.dropped_rows == [6, 14]
    assert "drop_nonfinite_rows" in rep.applied_names
    # the user's model is untouched
    assert all(np.array_equal(a, b) for a, b in zip(weights, model.get_weights()))
    assert type(model.optimizer).__name__ == "Adam" and float(model.optimizer.learning_rate) == pytest.approx(0.01)
    # findings confirmed by the experiment
    confirmed = {f.fix.intervention for f in rep.report.findings if f.confirmed and f.fix}
    assert "scale_targets" in confirmed
    # at least 8 configurations were tried
    assert rep.n_candidates >= 8 and len(rep.ablation) >= 8


@pytest.mark.slow
def test_saved_model_and_fix_script_run_without_fitdoctor(income_repair, tmp_path):
    rep, _, _, ds = income_repair
    paths = rep.save(str(tmp_path))
    for name in ("model.keras", "report.json", "fix.py", "data.npz"):
        assert (tmp_path / name).exists()
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["after_loss"] == pytest.approx(rep.after_loss)
    assert "fitdoctor" not in (tmp_path / "fix.py").read_text().split('"""', 2)[2].replace("fitdoctor fix", "")
    # a fresh process, without fitdoctor on the path: predictions in dollars
    code = ("import sys, numpy as np, keras\n"
            "assert 'fitdoctor' not in sys.modules\n"
            f"m = keras.saving.load_model({paths['model']!r})\n"
            f"d = np.load({paths['data']!r}); X, y = d['X'], d['y']\n"
            "ok = np.isfinite(X).all(axis=1)\n"
            "p = m.predict(X[ok].astype('float32'), verbose=0).reshape(-1)\n"
            "print(float(np.mean((p - y[ok]) ** 2)), float(p.min()), float(p.max()))\n"
            "assert 'fitdoctor' not in sys.modules\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = "jax"
    out = subprocess.run([PY, "-c", code], capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    mse, lo, hi = map(float, out.stdout.split()[-3:])
    assert mse == pytest.approx(rep.after_loss, rel=1e-4)
    assert 20_000 < lo and hi < 80_000  # dollars, not standardised units
    # fix.py reproduces the loss within 5%
    out = subprocess.run([PY, str(tmp_path / "fix.py")], capture_output=True, text=True, env=env, cwd=str(tmp_path),
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("final training MSE")][-1]
    assert float(line.split(":")[1]) == pytest.approx(rep.after_loss, rel=0.05)
    assert "dropped rows [6, 14]" in out.stdout


def _example_repair(name, **kw):
    from fitdoctor.examples import load_example
    from fitdoctor import repair

    ex = load_example(name)
    model = ex.compiled_model(0)
    return ex, repair(model, ex.X, ex.y, epochs=ex.epochs, batch_size=ex.batch_size, **kw)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scaling", "learning-rate"])
def test_seed_000_linear_examples_reach_least_squares(name):
    ex, rep = _example_repair(name)
    assert _mse(rep.model, ex.X, ex.y) == pytest.approx(rep.after_loss, rel=1e-6)
    # issue 12: judged on held-out rows, against least squares fitted on the same training rows
    assert rep.after_val_loss <= 1.10 * rep.heldout_references["least squares"]
    assert rep.before_loss > rep.after_loss
    assert rep.reached_optimum


@pytest.mark.slow
def test_seed_000_capacity_example_reaches_the_noise_floor_with_added_capacity():
    from fitdoctor.examples import capacity_example

    # 100 fresh rows of the same sine judge the verdict: a 20-row split of the example's own 100 rows
    # cannot resolve the 10% margin of "within 10% of the held-out optimum" (measured 1.16x there)
    fresh = capacity_example(seed=1)
    ex, rep = _example_repair("capacity", noise_floor=0.04, validation_data=(fresh.X, fresh.y))
    assert rep.validation_loss["how"].startswith("validation_data")
    assert rep.reference.nonlinear_mse < 0.5 * rep.reference.linear_mse  # the reason capacity is added
    assert "add_capacity" in rep.applied_names
    assert _mse(rep.model, ex.X, ex.y) <= 1.10 * ex.noise_floor
    assert rep.reached_optimum


@pytest.mark.slow
def test_sigmoid_output_on_dollar_targets_is_repaired():
    keras = _keras()
    from fitdoctor import repair

    rng = np.random.default_rng(1)
    X = np.c_[rng.uniform(23, 58, 40), rng.uniform(1, 17, 40)]
    y = np.clip(30600 - 87 * X[:, 0] + 2180 * X[:, 1] + rng.normal(0, 1150, 40), 27_840, 63_600)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="mse")
    rep = repair(model, X, y, epochs=200)
    assert rep.before_loss > 100 * rep.reference.linear_mse  # a sigmoid cannot reach 27,840
    assert "replace_output_activation" in rep.applied_names
    assert rep.model.layers[-1].name == "unscale_y" or rep.after_loss < 1.01 * rep.reference.linear_mse
    assert _mse(rep.model, X, y) <= 1.01 * rep.reference.linear_mse
    assert model.layers[-1].get_config()["activation"] == "sigmoid"  # the user's model is untouched


@pytest.mark.slow
def test_healthy_model_has_nothing_to_fix():
    keras = _keras()
    from fitdoctor import repair

    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 3))
    y = X @ np.array([0.5, -1.0, 0.3]) + 0.1 * rng.standard_normal(64)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="mse")
    rep = repair(model, X, y, epochs=100, batch_size=16)
    assert rep.applied == []
    assert "nothing to fix" in rep.message
    assert rep.after_loss == pytest.approx(rep.before_loss)
    assert rep.after_loss <= 1.01 * rep.reference.linear_mse
    assert [type(l).__name__ for l in rep.model.layers] == ["Dense"]  # same architecture, no added layers


def test_nothing_helps_is_reported_honestly():
    """Pure noise targets: no fix can beat the mean predictor, and the repair says so."""
    keras = _keras()
    from fitdoctor import repair

    rng = np.random.default_rng(3)
    X = rng.standard_normal((48, 2))
    y = rng.standard_normal(48)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-4), loss="mse")  # far too slow to converge
    rep = repair(model, X, y, epochs=30, batch_size=48)
    assert _mse(rep.model, X, y) == pytest.approx(rep.after_loss, rel=1e-6)
    if rep.reached_optimum:  # the verdict is made on held-out rows (issue 12)
        assert rep.after_val_loss <= 1.10 * rep.val_optimum
    else:
        assert rep.reasons  # it says how far it got and why


@pytest.mark.slow
def test_cli_fix_writes_outputs_and_exits_0(tmp_path):
    out = tmp_path / "fixed"
    env = dict(os.environ, PYTHONPATH=SRC, KERAS_BACKEND="jax")
    proc = subprocess.run([PY, "-c", "import sys; from fitdoctor.cli import main; sys.exit(main())", "fix", INCOME_CSV,
                           "--target", "income", "--optimizer", "adam", "--lr", "0.01", "--epochs", "200",
                           "--output", str(out), "--format", "json"],
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["reached_optimum"] and result["after_loss"] <= 1.01 * INCOME_OPTIMUM
    assert "scale_targets" in [a["name"] for a in result["applied"]]
    assert (out / "model.keras").exists() and (out / "fix.py").exists()


def test_cli_fix_bad_input_exits_2(tmp_path):
    env = dict(os.environ, PYTHONPATH=SRC, KERAS_BACKEND="jax")
    proc = subprocess.run([PY, "-c", "import sys; from fitdoctor.cli import main; sys.exit(main())", "fix", INCOME_CSV,
                           "--target", "incme", "--output", str(tmp_path / "o")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2
    assert "income" in proc.stderr and "Traceback" not in proc.stderr


def test_learning_rate_is_judged_on_the_low_end_of_its_last_epochs():
    """An oscillating high rate whose last epoch happens to be high still scores what it reaches."""
    from fitdoctor.fix.interventions import Recipe
    from fitdoctor.fix.repair import _tail_mse
    from fitdoctor.fix.training import Trial

    smooth = [10.0 - 0.09 * e for e in range(100)]                       # ends at 1.09, no oscillation
    oscillating = [10.0 * 0.9**e for e in range(80)] + [0.04, 0.3] * 10   # ends at 0.3, reaches 0.04
    diverged = [1.0] * 90 + [float("inf")] * 10
    trial = lambda curve: Trial("t", Recipe(), (), final_mse=curve[-1], mse=curve)  # noqa: E731
    assert _tail_mse(trial(smooth)) == pytest.approx(smooth[-1])
    assert _tail_mse(trial(oscillating)) == pytest.approx(0.04)
    assert _tail_mse(trial(oscillating)) < _tail_mse(trial(smooth)) < oscillating[-1] * 10
    assert _tail_mse(trial(diverged)) == float("inf")


def test_a_held_out_gain_must_exceed_its_noise_and_the_number_of_candidates():
    """The keep rule: >= MIN_GAIN lower held-out MSE AND a paired per-row difference above 2 standard
    errors, Bonferroni-corrected for the candidates compared on the same rows."""
    from fitdoctor.fix.repair import heldout_gain, significance_threshold, significant_gain

    rng = np.random.default_rng(0)
    base = rng.chisquare(1, 32)
    halved = 0.5 * base                                     # every row better: a real gain
    noisy = np.abs(base + rng.normal(0.0, 1.5, 32)) * 0.8   # 20% lower on average, row by row noise
    gain, z = heldout_gain(halved, base)
    assert gain == pytest.approx(0.5) and z > 4
    assert significant_gain(halved, base, n_compared=20)
    _, z_noisy = heldout_gain(noisy, base)
    assert z_noisy < significance_threshold(1)  # this draw's gain is within the held-out noise
    assert not significant_gain(noisy, base)
    assert not significant_gain(0.95 * base, base)  # consistent but below MIN_GAIN (10%)
    assert significance_threshold(1) == pytest.approx(2.0)
    assert 2.9 < significance_threshold(20) < 3.2  # the best of 20 on the same rows needs more
    # a baseline with a non-finite row loses to any finite candidate; a non-finite candidate never wins
    assert significant_gain(base, np.where(np.arange(32) == 3, np.inf, base))
    assert not significant_gain(np.where(np.arange(32) == 3, np.inf, halved), base)


def test_a_user_configuration_that_does_not_fit_its_training_rows_may_count_them_as_evidence():
    from fitdoctor.fix.repair import significant_gain

    rng = np.random.default_rng(1)
    base_val = rng.chisquare(1, 20) + 0.3
    cand_val = base_val * rng.uniform(0.0, 1.3, 20)  # 17% lower, but within the noise of 20 rows
    base_tr = rng.chisquare(1, 80) + 0.3
    cand_tr = base_tr * rng.uniform(0.3, 1.0, 80)   # every training row fits better
    assert not significant_gain(cand_val, base_val, n_compared=8)
    assert significant_gain(cand_val, base_val, n_compared=8, train=(cand_tr, base_tr))
    # a candidate that fits the training rows worse (a smaller model) never takes this route
    assert not significant_gain(cand_val, base_val, n_compared=8, train=(base_tr * 1.2, base_tr))
