"""fix.py writes the repair's regularisation and capacity changes (Recipe.l2, dropout, width) as plain Keras."""
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from fitdoctor.fix.interventions import Recipe  # noqa: E402
from fitdoctor.fix.script import dense_stack, render_fix_script  # noqa: E402
from fitdoctor.fix.training import arch_model, predict_mse, train_plain  # noqa: E402


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 2)) * [3.0, 0.5] + [10.0, -2.0]
    y = 1.5 * X[:, 0] - 4.0 * X[:, 1] + 0.2 * rng.standard_normal(64)
    return X, y


def _user_model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(16, activation="relu"), keras.layers.Dense(1)])


def _script(tmp_path, recipe, X, y):
    arch = arch_model(_user_model(), (2,), recipe, 0, {})  # the model the repair trains for this recipe
    rep = SimpleNamespace(recipe=recipe, _X=X, _y=y, feature_names=["a", "b"], _arch_model=arch, applied=[],
                          target_name="y", after_loss=1.0, optimum=1.0, seed=0)
    np.savez(tmp_path / "data.npz", X=X, y=y)
    text = render_fix_script(rep)
    (tmp_path / "fix.py").write_text(text)
    return text, arch


def _run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = "jax"
    out = subprocess.run([sys.executable, str(tmp_path / "fix.py"), "--save"], capture_output=True, text=True,
                         env=env, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("final training MSE:")][-1]
    return float(line.split(":")[1]), keras.saving.load_model(tmp_path / "model_from_fix.keras", compile=False)


def _dense(model):
    found = []
    for layer in model.layers:
        if hasattr(layer, "layers"):
            found += _dense(layer)
        elif type(layer).__name__ in ("Dense", "Dropout"):
            found.append(layer)
    return found


def test_l2_dropout_and_width_are_written_as_keras_code_and_the_script_trains_them(tmp_path):
    X, y = _data()
    recipe = Recipe(optimizer="adam", learning_rate=1e-2, epochs=40, batch_size=16, scale_x=True, scale_y=True,
                    l2=1e-3, dropout=0.1, width=4)
    text, arch = _script(tmp_path, recipe, X, y)
    assert "keras.layers.Dense(4, activation='relu', kernel_regularizer=keras.regularizers.L2(l2=0.001))" in text
    assert text.count("keras.layers.Dropout(0.1)") == 2  # after each hidden Dense layer
    assert "# narrow_network: every hidden Dense layer has 4 units" in text and "# add_dropout" in text
    assert "initial_model.keras" not in text  # the architecture is code, not a saved file
    mse, saved = _run(tmp_path)
    layers = _dense(saved)
    kinds = [(type(l).__name__, getattr(l, "units", None)) for l in layers]
    assert kinds == [("Dense", 4), ("Dropout", None), ("Dense", 4), ("Dropout", None), ("Dense", 1)]
    for l in layers:
        if type(l).__name__ == "Dense":
            assert l.kernel_regularizer is not None and l.kernel_regularizer.l2 == pytest.approx(1e-3)
    # the script's training reaches what the same recipe reaches in fitdoctor's own plain fit
    ref = predict_mse(train_plain(_user_model(), X, y, recipe, seed=0, cache={}).model, X, y)
    assert mse < 0.1 * np.var(y) and ref < 0.1 * np.var(y)
    assert mse == pytest.approx(ref, rel=0.5)


def test_the_linear_model_and_removed_regularisers(tmp_path):
    X, y = _data()
    keras.utils.set_random_seed(0)
    recipe = Recipe(optimizer="adam", learning_rate=5e-2, epochs=60, batch_size=16, scale_x=True, scale_y=True,
                    width=0, l2=0.0)
    text, arch = _script(tmp_path, recipe, X, y)
    assert "# linear_model" in text and "# remove_regularization" in text
    assert dense_stack(arch) == ["keras.layers.Dense(1)"]
    mse, saved = _run(tmp_path)
    assert [type(l).__name__ for l in _dense(saved)] == ["Dense"]
    assert mse < 0.05 * np.var(y)  # the data is linear: the linear model fits it


def test_a_regularised_user_model_keeps_its_penalty_in_the_script():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)),
                              keras.layers.Dense(8, activation="relu", kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.5),
                                                 bias_regularizer=keras.regularizers.L2(0.25)),
                              keras.layers.Dense(1)])
    lines = dense_stack(model)
    assert lines[0] == ("keras.layers.Dense(8, activation='relu', kernel_regularizer=keras.regularizers.L1L2(l1=0.01, l2=0.5), "
                        "bias_regularizer=keras.regularizers.L2(l2=0.25))")
    rebuilt = eval("keras.Sequential([keras.Input((2,)), " + ", ".join(lines) + "])", {"keras": keras})
    assert rebuilt.layers[0].kernel_regularizer.get_config() == model.layers[0].kernel_regularizer.get_config()
