"""Issue 11 item 8: fix.py reproduces the repaired training of a model with several inputs or outputs in plain
Keras: it trains your inputs and outputs (X and y cut into one array each), compiles the per-output losses with
their loss_weights, and keeps the optimizer's settings. The flat replica fitdoctor trains minimises exactly what
``model.fit`` of the user's model minimises (loss_weights included)."""
import json
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

import keras

from fitdoctor.fix.interventions import Recipe
from fitdoctor.fix.script import render_fix_script
from fitdoctor.fix.training import arch_model, predict_mse, train_plain
from fitdoctor.model.inspect import read_training_config
from fitdoctor.model.multi_io import flatten_problem

N = 48

# runs fix.py as a user would (argv: fix.py --save), then reports what its trainer minimised, without fitdoctor
_DRIVER = """
import json, runpy, sys
import numpy as np
script, out = sys.argv[1], sys.argv[2]
sys.argv = [script, "--save"]
g = runpy.run_path(script, run_name="__main__")
trainer = g["trainer"]
x_in = g["X_in"] if "X_in" in g else g["X"]
y_fit = g["split"](g["y_train"], g["OUTPUTS"]) if "OUTPUTS" in g and len(g["OUTPUTS"]) > 1 else g["y_train"]
loss = trainer.evaluate(x_in, y_fit, verbose=0, return_dict=True)["loss"]
pred = trainer.predict(x_in, verbose=0)
pred = pred if isinstance(pred, list) else [pred]
np.save(out + ".npy", np.concatenate([p.reshape(len(g["X"]), -1) for p in pred], axis=1))
json.dump({"loss": float(loss), "y_train": np.asarray(g["y_train"]).tolist()}, open(out + ".json", "w"))
"""


def _two_outputs(loss_weights=None):
    keras.utils.set_random_seed(0)
    a = keras.Input((3,), name="a")
    h = keras.layers.Dense(8, activation="relu")(a)
    model = keras.Model(a, [keras.layers.Dense(1, name="price")(h), keras.layers.Dense(2, name="size")(h)])
    model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9, nesterov=True),
                  loss=["mse", keras.losses.Huber(delta=2.0)], loss_weights=loss_weights)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(N, 3))
    y1 = (X @ [1.0, -1.0, 0.5] + 0.1 * rng.normal(size=N)).reshape(-1, 1)
    y2 = np.c_[2.0 * X[:, 0], X[:, 1] - X[:, 2]]
    return model, X, [y1, y2]


def _two_inputs():
    keras.utils.set_random_seed(0)
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], keras.layers.Dense(1)(h))
    model.compile(optimizer=keras.optimizers.Adam(0.01, amsgrad=True), loss="mse")
    rng = np.random.default_rng(1)
    A, B = rng.normal(size=(N, 3)), rng.normal(size=(N, 2))
    return model, [A, B], A @ [1.0, -1.0, 0.5] + B @ [2.0, 1.0] + 0.1 * rng.normal(size=N)


def _rep(model, X, y, tmp_path, **changes):
    """What repair hands render_fix_script for this model (the flat replica's recipe and architecture)."""
    flat = flatten_problem(model, X, y)
    recipe = Recipe.from_config(read_training_config(flat.model), epochs=8).replace(batch_size=16, **changes)
    arch = arch_model(flat.model, tuple(flat.X.shape[1:]), recipe, 0, {})
    rep = SimpleNamespace(recipe=recipe, _X=flat.X, _y=flat.y, feature_names=[], _arch_model=arch, applied=[],
                          target_name="y", after_loss=1.0, optimum=1.0, seed=0, io_layout=flat.layout)
    np.savez(tmp_path / "data.npz", X=flat.X, y=flat.y)
    arch.save(tmp_path / "initial_model.keras")
    text = render_fix_script(rep)
    (tmp_path / "fix.py").write_text(text)
    return text, flat, recipe


def _run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["KERAS_BACKEND"] = "jax"
    out = subprocess.run([sys.executable, "-c", _DRIVER, str(tmp_path / "fix.py"), str(tmp_path / "driver")],
                         capture_output=True, text=True, env=env, cwd=str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    line = [l for l in out.stdout.splitlines() if l.startswith("final training MSE:")][-1]
    info = json.loads((tmp_path / "driver.json").read_text())
    info["mse"] = float(line.split(":")[1])
    info["pred"] = np.load(tmp_path / "driver.npy")
    info["saved"] = keras.saving.load_model(tmp_path / "model_from_fix.keras", compile=False)
    return info


def test_the_flat_replica_minimises_what_fit_of_the_user_model_minimises_with_loss_weights():
    model, X, y = _two_outputs(loss_weights=[1.0, 10.0])
    flat = flatten_problem(model, X, y)
    user = model.evaluate(X, y, verbose=0, return_dict=True)["loss"]
    replica = flat.model.evaluate(flat.X, flat.y, verbose=0, return_dict=True)["loss"]
    assert replica == pytest.approx(user, rel=1e-5)
    unweighted, _, _ = _two_outputs()
    assert abs(unweighted.evaluate(X, y, verbose=0)[0] - user) > 0.1 * user  # the weights matter here
    assert any("loss_weights 1, 10" in n for n in flat.notes)


def test_fix_script_trains_the_two_output_model_with_its_losses_weights_and_optimizer(tmp_path):
    model, X, y = _two_outputs(loss_weights=[1.0, 3.0])
    text, flat, recipe = _rep(model, X, y, tmp_path)
    assert "loss=['mse', keras.losses.Huber(delta=2.0)]" in text and "loss_weights=[1.0, 3.0]" in text
    assert "momentum=0.9" in text and "nesterov=True" in text
    assert "SumOfOutputLosses" not in text.split('"""', 2)[2]
    info = _run(tmp_path)
    saved = info["saved"]
    assert [tuple(o.shape[1:]) for o in saved.outputs] == [(1,), (2,)]
    assert list(saved.output_names) == ["price", "size"]  # named as the user's outputs
    pred = saved.predict(X, verbose=0)
    assert isinstance(pred, list) and pred[0].shape == (N, 1) and pred[1].shape == (N, 2)
    # what the script's trainer minimises is fitdoctor's sum of output losses on the same predictions
    y_train = np.asarray(info["y_train"], np.float32)
    fd_loss = float(recipe.loss_object(y_train, info["pred"].astype(np.float32)))
    assert info["loss"] == pytest.approx(fd_loss, rel=1e-4)
    # and its training reproduces fitdoctor's own plain fit of the recipe (same start, same batches)
    ref = predict_mse(train_plain(flat.model, flat.X, flat.y, recipe, seed=0, cache={}).model, flat.X, flat.y)
    assert info["mse"] == pytest.approx(ref, rel=1e-3)
    start = predict_mse(keras.saving.load_model(tmp_path / "initial_model.keras"), flat.X, flat.y)
    assert info["mse"] < 0.5 * start  # the loss went down


def test_fix_script_trains_the_two_input_model_on_a_list_of_arrays(tmp_path):
    model, X, y = _two_inputs()
    text, flat, recipe = _rep(model, X, y, tmp_path, scale_x=True, scale_y=True)
    assert "X_in = split(X, INPUTS)" in text and "amsgrad=True" in text
    info = _run(tmp_path)
    saved = info["saved"]
    assert [tuple(i.shape[1:]) for i in saved.inputs] == [(3,), (2,)]
    pred = saved.predict(X, verbose=0)  # the user's two arrays, as they give them
    assert pred.shape == (N, 1)
    assert float(np.mean((pred[:, 0] - y) ** 2)) == pytest.approx(info["mse"], rel=1e-4)
    ref = predict_mse(train_plain(flat.model, flat.X, flat.y, recipe, seed=0, cache={}).model, flat.X, flat.y)
    assert info["mse"] == pytest.approx(ref, rel=1e-3)
    assert info["mse"] < 0.5 * float(np.var(y))


def test_a_loss_the_repair_chose_is_the_mean_over_every_output_column(tmp_path):
    """replace_loss on a two-output model: the flat Huber is the mean over the 3 columns, i.e. each output's
    Huber times its share of the columns."""
    model, X, y = _two_outputs()
    text, _, _ = _rep(model, X, y, tmp_path, loss="huber", huber_delta=1.5)
    assert "loss=[keras.losses.Huber(delta=1.5), keras.losses.Huber(delta=1.5)]" in text
    assert f"loss_weights=[{1 / 3!r}, {2 / 3!r}]" in text


@pytest.mark.slow
def test_repair_of_a_two_input_two_output_model_saves_a_fix_script_that_trains_it(tmp_path):
    import fitdoctor

    keras.utils.set_random_seed(0)
    a, b = keras.Input((3,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Concatenate()([a, b]))
    model = keras.Model([a, b], [keras.layers.Dense(1, name="price")(h), keras.layers.Dense(2, name="size")(h)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=["mse", "mae"], loss_weights=[1.0, 2.0])
    rng = np.random.default_rng(2)
    A, B = rng.normal(size=(N, 3)), rng.normal(size=(N, 2))
    y = [(A @ [1.0, -1.0, 0.5]).reshape(-1, 1), np.c_[B[:, 0], 2.0 * A[:, 1]]]
    rep = fitdoctor.repair(model, [A, B], y, epochs=4, validation_split=0.25)
    assert rep.io_layout.several_inputs and rep.io_layout.several_outputs
    rep.save(tmp_path)
    text = (tmp_path / "fix.py").read_text()
    assert "loss=['mse', 'mae']" in text or "keras.losses.Huber" in text  # the user's losses, or the repair's choice
    info = _run(tmp_path)
    saved = info["saved"]
    assert [tuple(i.shape[1:]) for i in saved.inputs] == [(3,), (2,)]
    assert list(saved.output_names) == ["price", "size"]
    assert np.isfinite(info["mse"]) and info["mse"] < np.mean(np.c_[y[0], y[1]].var(axis=0))
