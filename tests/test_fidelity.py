"""Fidelity (issue 11): experiments train faithful replicas, the run configuration travels whole,
the saved model is the model."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import keras

import fitdoctor
from conftest import INCOME_CSV
from fitdoctor.experiments.engine import RunSpec, build_trained_model, train_runs
from fitdoctor.model.inspect import read_training_config
from fitdoctor.model.replica import clone_with_state, state_snapshot

_PREDICT = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, keras
model = keras.saving.load_model(sys.argv[1])
np.save(sys.argv[3], np.asarray(model.predict(np.load(sys.argv[2]), verbose=0), dtype=np.float64))
"""


def reload_predict(model_path, X, tmp_path):
    """Predictions of ``model_path`` loaded in a fresh process that does not import fitdoctor."""
    xp, out = str(tmp_path / "X_in.npy"), str(tmp_path / "pred_out.npy")
    np.save(xp, np.asarray(X, np.float32))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", _PREDICT, str(model_path), xp, out], capture_output=True, text=True,
                         env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return np.load(out)


def max_rel_diff(a, b):
    a, b = np.asarray(a, np.float64).reshape(-1), np.asarray(b, np.float64).reshape(-1)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1e-6)))


def income():
    df = pd.read_csv(INCOME_CSV).dropna()
    return df.drop(columns=["income"]).to_numpy(float), df["income"].to_numpy(float)


def lstsq_mse(X, y):
    A = np.c_[X, np.ones(len(X))]
    w = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(np.mean((A @ w - y) ** 2))


def normalized_model(X, lr=0.01, seed=0):
    keras.utils.set_random_seed(seed)
    norm = keras.layers.Normalization()
    norm.adapt(X)
    model = keras.Sequential([keras.Input((X.shape[1],)), norm, keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    return model


# -- a faithful replica -------------------------------------------------------------------------------------------


def test_replica_keeps_adapted_normalization_statistics():
    X, _ = income()
    model = normalized_model(X)
    copy = clone_with_state(model)
    np.testing.assert_allclose(copy.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-6)
    # the adapted mean really is in use (a Normalization without it would pass the raw ages through)
    seen = keras.ops.convert_to_numpy(copy.layers[0](X.astype(np.float32)))
    assert np.abs(seen.mean(axis=0)).max() < 1e-4 and np.abs(seen.std(axis=0) - 1).max() < 1e-3


def test_replica_keeps_batchnorm_moving_statistics():
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 3.0, size=(64, 3))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
                              keras.layers.Dense(1)])
    model.compile("adam", "mse")
    model.fit(X, X.sum(axis=1), epochs=3, verbose=0)  # moving statistics move away from 0 / 1
    bn = model.layers[1]
    assert np.abs(np.asarray(bn.moving_mean)).max() > 1e-2
    copy = clone_with_state(model)
    np.testing.assert_allclose(copy.predict(X, verbose=0), model.predict(X, verbose=0), rtol=1e-5, atol=1e-6)


def test_income_normalization_tutorial_pattern_no_false_alarms_and_saved_model_is_the_model(tmp_path):
    X, y = income()
    model = normalized_model(X)
    before = state_snapshot(model)
    report = fitdoctor.diagnose(model, X, y, epochs=200)
    names = {f.name for f in report.findings}
    assert "feature-scale" not in names and "ill-conditioned" not in names
    rep = fitdoctor.repair(model, X, y, epochs=200)
    assert "scale_inputs" not in rep.applied_names  # the model standardises its inputs already
    paths = rep.save(tmp_path / "out")
    in_memory = np.asarray(rep.model.predict(X, verbose=0), np.float64)
    reloaded = reload_predict(paths["model"], X, tmp_path)
    assert max_rel_diff(in_memory, reloaded) <= 1e-5
    ratio = float(np.mean((reloaded.reshape(-1) - y) ** 2)) / lstsq_mse(X, y)
    assert ratio <= 1.01
    for a, b in zip(before, state_snapshot(model)):  # the user's model is unchanged
        np.testing.assert_array_equal(a, b)


def test_build_trained_model_with_normalization_front_layer_round_trips(tmp_path):
    X, y = income()
    model = normalized_model(X)
    res = train_runs(model, X, y, [RunSpec(optimizer="adam", learning_rate=0.1, epochs=5, scale_y=True)])[0]
    trained = build_trained_model(model, res)
    path = tmp_path / "m.keras"
    trained.save(path)
    pred = trained.predict(X, verbose=0)
    assert max_rel_diff(pred, reload_predict(path, X, tmp_path)) <= 1e-5
    # the in-memory model predicts what the engine measured (the replica normalised as the user's model does)
    assert np.mean((np.asarray(pred, np.float64).reshape(-1) - y) ** 2) == pytest.approx(res.final_mse, rel=1e-3)


# -- one description of a training run --------------------------------------------------------------------------


def _small_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)


def _mlp(opt, loss="mse", seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=opt, loss=loss)
    return model


def test_optimizer_config_travels_whole():
    sched = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.5)
    opt = keras.optimizers.AdamW(learning_rate=sched, clipnorm=1.0, weight_decay=0.01, amsgrad=True)
    cfg = read_training_config(_mlp(opt))
    settings = cfg.optimizer_settings
    assert settings["clipnorm"] == 1.0 and settings["weight_decay"] == 0.01 and settings["amsgrad"] is True
    assert settings["schedule"]["class_name"] == "ExponentialDecay"
    assert cfg.learning_rate == pytest.approx(0.01)


def test_sgd_nesterov_baseline_equals_plain_fit_and_fix_script_keeps_it(tmp_path):
    X, y = _small_data()
    n = len(X)
    opt = keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True)
    model = _mlp(opt)
    rep = fitdoctor.repair(model, X, y, epochs=15, batch_size=n)  # full batches: no shuffling order to differ
    # the same configuration by hand, with plain Keras
    plain = _mlp(keras.optimizers.SGD(learning_rate=0.05, momentum=0.9, nesterov=True))
    curve = []

    class EpochMSE(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            pred = np.asarray(self.model.predict(X, verbose=0), np.float64).reshape(-1)
            curve.append(float(np.mean((pred - y) ** 2)))

    plain.fit(X, y, epochs=15, batch_size=n, verbose=0, callbacks=[EpochMSE()])
    np.testing.assert_allclose(rep.history_before, curve, rtol=1e-4)
    # and plain SGD would not have matched: the test can tell the two apart
    plain_sgd = _mlp(keras.optimizers.SGD(learning_rate=0.05))
    h = plain_sgd.fit(X, y, epochs=15, batch_size=n, verbose=0)
    assert abs(h.history["loss"][-1] - curve[-1]) > 1e-3
    rep.save(tmp_path / "out")
    script = (tmp_path / "out" / "fix.py").read_text()
    assert "momentum=0.9" in script and "nesterov=True" in script


def rmse(y_true, y_pred):
    return keras.ops.sqrt(keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1) + 1e-9)


class HalfAbsoluteError(keras.losses.Loss):  # deliberately not registered with Keras
    def call(self, y_true, y_pred):
        return 0.5 * keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)


@pytest.mark.parametrize("loss, name", [(rmse, "rmse"), (HalfAbsoluteError(), "HalfAbsoluteError")])
def test_custom_losses_run_everywhere_and_export_without_them(loss, name, tmp_path):
    X, y = _small_data()
    model = _mlp(keras.optimizers.Adam(0.01), loss)
    report = fitdoctor.diagnose(model, X, y, epochs=10)
    assert any(f"custom loss `{name}`: not judged" in n for n in report.notes)
    assert "wrong-loss" not in {f.name for f in report.findings}
    cmp = fitdoctor.compare(model, X, y, epochs=5, grid={"learning_rate": [0.01, 0.1]})
    assert np.isfinite(cmp.results_["final_loss"]).all()
    lr = fitdoctor.find_lr(model, X, y, steps=20)
    assert lr.suggestion_ > 0
    rep = fitdoctor.repair(model, X, y, epochs=10)
    assert "replace_loss" not in rep.applied_names
    paths = rep.save(tmp_path / "out")
    pred = reload_predict(paths["model"], X, tmp_path)  # loads in a process that never saw the loss
    assert max_rel_diff(rep.model.predict(X, verbose=0), pred) <= 1e-5
    script = (tmp_path / "out" / "fix.py").read_text()
    defines = f"def {name}(" if name == "rmse" else f"class {name}("
    assert defines in script and f"your loss `{name}`" in script


def test_custom_loss_is_what_the_engine_trains_with():
    """The engine's curve with the user's loss differs from the built-in MSE's curve (the loss is used)."""
    X, y = _small_data()
    spec_mse = RunSpec(optimizer="sgd", learning_rate=0.1, epochs=5, batch_size=64)
    spec_user = RunSpec(optimizer="sgd", learning_rate=0.1, epochs=5, batch_size=64, loss="half_absolute_error",
                        loss_object=HalfAbsoluteError())
    model = _mlp("sgd")
    a, b = train_runs(model, X, y, [spec_mse, spec_user])
    sequential = train_runs(model, X, y, [spec_user], engine="sequential")[0]
    assert not np.allclose(a.loss, b.loss)
    np.testing.assert_allclose(b.loss, sequential.loss, rtol=1e-3)  # both engines train the same loss


# -- no ratio to zero -------------------------------------------------------------------------------------------

_BAD_NUMBER = r"(?<![A-Za-z0-9+/])(?:inf|nan|Infinity|NaN|0x)(?![A-Za-z0-9+/])|\binfx\b"


def test_noiseless_data_has_no_ratio_to_zero():
    import re

    x = np.linspace(-40.0, 100.0, 50).reshape(-1, 1)
    y = 1.8 * x[:, 0] + 32.0  # Fahrenheit from Celsius: least squares reaches ~1e-28
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(0.1), "mse")
    report = fitdoctor.diagnose(model, x, y, epochs=50)
    cmp = fitdoctor.compare(model, x, y, epochs=20, grid={"scale_y": [False, True]})
    rep = fitdoctor.repair(model, x, y, epochs=50)
    assert np.isfinite(cmp.results_["gap"]).all() and cmp.results_["gap"].max() < 1e12
    assert np.isfinite(rep.ratio) and rep.optimum >= 1e-6 * np.var(y) * 0.999
    messages = [f.message for f in report.findings] + list(report.notes) + [rep.message, *rep.reasons]
    messages += [report.to_text(), report.to_markdown(), rep.report.to_text()]
    for text in messages:
        assert not re.search(_BAD_NUMBER, text), text
    for text in (report.to_json(), cmp.to_json(), rep.to_json()):
        json.loads(text)  # valid JSON (no NaN/Infinity literals)
        assert not re.search(r"\b(?:NaN|Infinity)\b", text)


@pytest.mark.parametrize("call", ["diagnose", "compare", "find_lr", "repair"])
def test_constant_target_is_an_input_error(call):
    from fitdoctor.errors import InputError

    X, _ = _small_data(20)
    model = _mlp("adam")
    kwargs = {"compare": {"epochs": 2}, "repair": {"epochs": 2}, "diagnose": {}, "find_lr": {}}[call]
    with pytest.raises(InputError, match="target is constant"):
        getattr(fitdoctor, call)(model, X, np.full(20, 3.0), **kwargs)


# -- the replica is checked before it is trusted ----------------------------------------------------------------


@pytest.mark.parametrize("body", ["normalization", "lstm", "conv1d"])
def test_probe_checks_its_replica_against_a_plain_fit(body):
    import conformance_models as cm

    X, y = cm.make_data(body, "n1")
    model = cm.make_model("sequential", body, X, 1, loss="mse", optimizer=cm.make_optimizer("sgd_nesterov"))
    report = fitdoctor.diagnose(model, X, y, epochs=5)
    assert report.probe["replica"]["agrees"] is True, report.probe["replica"]


def test_replica_check_catches_a_replica_that_lost_state():
    """A run trained from a copy whose Normalization lost its adapted statistics disagrees with model.fit."""
    from fitdoctor.experiments.engine import verify_replica

    rng = np.random.default_rng(0)
    X = rng.normal(100.0, 30.0, size=(48, 2))
    y = (X[:, 0] - 100.0) / 30.0 - 0.5 * (X[:, 1] - 100.0) / 30.0  # the inputs decide the loss
    model = normalized_model(X)
    res = train_runs(model, X, y, [RunSpec(optimizer="sgd", learning_rate=0.1, epochs=1, batch_size=8)])[0]
    agrees, _ = verify_replica(model, X, y, res)
    assert agrees is True
    broken = normalized_model(X)
    broken.layers[0].adapt(X * 10.0)  # another model's statistics: the run above is not its replica
    assert verify_replica(broken, X, y, res)[0] is False


def test_a_subclassed_sequence_model_trained_on_scaled_targets_is_exported_with_its_row_shape():
    """A subclassed model has no ``inputs``: the exported model's raw input takes the (steps, features)
    shape the model was built with (the sequential engine does not record input moments when X is not
    scaled), and predicts in the original units."""
    import conformance_models as cm

    rng = np.random.default_rng(0)
    X = rng.normal(size=(16, 5, 2))
    y = 1e4 * X[:, -1, 0] + 1e4
    keras.utils.set_random_seed(0)
    model = cm.SubclassedRegressor(units=3, outputs=1, recurrent=True)
    model(np.zeros((1, 5, 2), "float32"))
    res = train_runs(model, X, y, [RunSpec(optimizer="adam", learning_rate=0.01, epochs=2, batch_size=8,
                                           scale_y=True)])[0]
    trained = build_trained_model(model, res)
    assert tuple(trained.inputs[0].shape[1:]) == (5, 2)
    pred = np.asarray(trained.predict(X.astype("float32"), verbose=0), np.float64).reshape(-1)
    assert np.mean((pred - y) ** 2) == pytest.approx(res.final_mse, rel=1e-3)


def _normalized_linear(scale, rng):
    X = rng.normal(size=(200, 3)) * scale + scale
    y = X.sum(axis=1) / scale
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(X)
    model = keras.Sequential([keras.Input((3,)), norm, keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    return model, X, y


def test_models_of_one_architecture_with_other_adapted_statistics_do_not_share_a_program():
    """An adapted Normalization keeps its statistics as constants of the compiled program: a second
    model of the same architecture adapted on other data must not reuse the first one's program
    (it did, and diverged where model.fit reached a loss of 12)."""
    from fitdoctor.experiments.programs import clear_program_cache

    rng = np.random.default_rng(0)
    first, XA, yA = _normalized_linear(1.0, rng)
    second, XB, yB = _normalized_linear(100.0, rng)
    spec = [RunSpec(optimizer="sgd", learning_rate=0.01, epochs=3, batch_size=32)]
    train_runs(first, XA, yA, spec)
    after_other = train_runs(second, XB, yB, spec)[0]
    clear_program_cache()
    alone = train_runs(second, XB, yB, spec)[0]
    assert after_other.engine == alone.engine == "vectorized"
    np.testing.assert_allclose(after_other.loss, alone.loss, rtol=1e-6)


def test_the_compiled_inference_call_of_one_architecture_uses_each_models_own_statistics():
    """call_model compiles one program per architecture; two Normalization models adapted on other
    data predict what their own eager calls predict."""
    from fitdoctor.model.replica import call_model

    rng = np.random.default_rng(1)
    for scale in (1.0, 100.0):
        model, X, _ = _normalized_linear(scale, rng)
        eager = np.asarray(model(X.astype("float32"), training=False), dtype=np.float64)
        np.testing.assert_allclose(call_model(model, X), eager, rtol=1e-5, atol=1e-6)


@keras.saving.register_keras_serializable(package="fitdoctor_tests")
class _NoTrainingArgument(keras.Model):
    """A subclassed model whose ``call`` takes no ``training`` argument (as many users write it)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.LSTM(4)
        self.out = keras.layers.Dense(1)

    def call(self, x):
        return self.out(self.hidden(x))


def test_a_subclassed_call_without_training_runs_on_the_vectorised_engine_as_model_fit_does():
    """stateless_call hands its keywords to call itself: the engine passes ``training`` only to a call
    that takes it, as Keras's own trainer does (it failed with a TypeError and went sequential)."""
    from fitdoctor.experiments.replica_check import check_replica

    rng = np.random.default_rng(2)
    X = rng.normal(size=(64, 6, 2)).astype("float32")
    y = X[:, :, 0].mean(axis=1)
    keras.utils.set_random_seed(0)
    model = _NoTrainingArgument()
    model(X[:1])
    model.compile(optimizer="adam", loss="mse")
    spec = RunSpec(optimizer="adam", learning_rate=0.01, epochs=2, batch_size=16)
    result = train_runs(model, X, y, [spec])[0]
    assert result.engine == "vectorized", result.note
    check = check_replica(model, X, y, spec)
    assert check.agrees is True, check.check


@pytest.mark.slow  # a repair and a run of fix.py in a fresh process
def test_fix_script_of_a_subclassed_model_imports_its_class_and_reproduces_the_repair(tmp_path):
    """fix.py of a subclassed model imports the module that registers the user's class (load_model of the
    architecture file needs it), runs without fitdoctor and reaches the repaired training MSE."""
    import re

    import conformance_models as cm

    X, y = cm.make_data("dense", "n")
    model = cm.make_model("subclassed", "dense", X, 1, loss="mse",
                          optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True))
    rep = fitdoctor.repair(model, X, y * 1e4 + 1e4, epochs=20)
    rep.save(tmp_path / "out")
    script = (tmp_path / "out" / "fix.py").read_text()
    assert "import conformance_models  # registers your class `SubclassedRegressor`" in script
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.path.dirname(__file__)  # the user's own module on their path, fitdoctor not
    run = subprocess.run([sys.executable, str(tmp_path / "out" / "fix.py")], capture_output=True, text=True, env=env,
                         timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-2000:]
    mse = float(re.search(r"final training MSE: (\S+)", run.stdout).group(1))
    assert mse <= 1.5 * rep.after_loss, (mse, rep.after_loss)  # plain model.fit: other batches than the engine's
