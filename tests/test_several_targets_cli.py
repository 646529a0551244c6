"""``fitdoctor check`` and ``fitdoctor fix`` with ``--target a,b`` keep every named target column (issue 11)."""
import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import keras

from fitdoctor.cli import main
from fitdoctor.data.loading import load_dataset
from fitdoctor.errors import InputError


def _two_target_csv(path, n=60):
    """Two targets of very different units, both linear in the features."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(n, 3)) * np.array([1.0, 10.0, 100.0])
    a = X @ np.array([1.0, 0.1, 0.01]) * 1000 + 5000 + rng.normal(size=n)
    b = X @ np.array([-2.0, 0.3, 0.0]) + 0.1 * rng.normal(size=n)
    frame = pd.DataFrame(np.c_[X[:, :1], a, X[:, 1:], b], columns=["x0", "a", "x1", "x2", "b"])
    frame.to_csv(path, index=False)
    return frame


def test_load_dataset_keeps_every_named_target_in_order(tmp_path):
    frame = _two_target_csv(tmp_path / "two.csv")
    ds = load_dataset(str(tmp_path / "two.csv"), "b,a", several_targets=True)
    assert ds.y.shape == (60, 2) and ds.target_names == ["b", "a"] and ds.feature_names == ["x0", "x1", "x2"]
    np.testing.assert_array_equal(ds.y, frame[["b", "a"]].to_numpy())
    with pytest.raises(InputError, match="several target columns"):  # commands that take one target say so
        load_dataset(str(tmp_path / "two.csv"), "a,b")
    with pytest.raises(InputError, match="'c' is not in"):
        load_dataset(str(tmp_path / "two.csv"), "a,c", several_targets=True)


def test_check_with_two_targets_judges_both(tmp_path, capsys):
    _two_target_csv(tmp_path / "two.csv")
    code = main(["check", str(tmp_path / "two.csv"), "--target", "a,b", "--no-probe", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code in (0, 1)
    assert report["data"]["target_name"] == "a,b" and report["data"]["feature_names"] == ["x0", "x1", "x2"]
    assert report["model"]["output_units"] == 2  # the assumed linear model predicts both columns
    assert any("2 target columns" in n for n in report["notes"])


_RELOAD = """
import os, sys
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np, pandas as pd, keras
model = keras.saving.load_model(sys.argv[1])
frame = pd.read_csv(sys.argv[2])
pred = np.asarray(model.predict(frame[["x0", "x1", "x2"]].to_numpy(), verbose=0), dtype=np.float64)
np.save(sys.argv[3], pred)
print("fitdoctor" in sys.modules)
"""


@pytest.mark.slow  # a repair of a linear model on 60 rows (~15 s)
def test_fix_with_two_targets_saves_a_model_that_predicts_both_in_original_units(tmp_path, capsys):
    frame = _two_target_csv(tmp_path / "two.csv")
    out = tmp_path / "out"
    code = main(["fix", str(tmp_path / "two.csv"), "--target", "a,b", "--epochs", "40", "--output", str(out)])
    assert code in (0, 1), capsys.readouterr().err
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([sys.executable, "-c", _RELOAD, str(out / "model.keras"), str(tmp_path / "two.csv"),
                          str(tmp_path / "pred.npy")], capture_output=True, text=True, env=env, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "False"  # loaded without fitdoctor
    pred = np.load(tmp_path / "pred.npy")
    Y = frame[["a", "b"]].to_numpy()
    assert pred.shape == (60, 2)
    mse = ((pred - Y) ** 2).mean(axis=0)
    # both columns in their own units: far below each column's variance (a: ~1e6, b: ~40)
    assert (mse < 0.01 * Y.var(axis=0)).all(), mse


def test_fix_refuses_a_model_with_fewer_outputs_than_targets(tmp_path, capsys):
    _two_target_csv(tmp_path / "two.csv")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(tmp_path / "one.keras")
    code = main(["fix", str(tmp_path / "two.csv"), "--target", "a,b", "--model", str(tmp_path / "one.keras"),
                 "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "predicts 1 value(s) per row but --target names 2 columns" in err, err


def _rmse(y_true, y_pred):  # unregistered: a fresh process (the CLI) cannot locate it
    return keras.ops.sqrt(keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1))


def test_check_loads_a_model_compiled_with_an_unregistered_loss(tmp_path, capsys):
    frame = _two_target_csv(tmp_path / "two.csv").drop(columns=["b"])
    frame.to_csv(tmp_path / "one.csv", index=False)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9, nesterov=True), loss=_rmse)
    model.save(tmp_path / "m.keras")
    code = main(["check", str(tmp_path / "one.csv"), "--target", "a", "--model", str(tmp_path / "m.keras"),
                 "--no-probe", "--format", "json"])
    captured = capsys.readouterr()
    assert code in (0, 1), captured.err
    report = json.loads(captured.out)
    note = next(n for n in report["notes"] if "Keras cannot find" in n)
    assert "_rmse" in note and "optimizer settings kept" in note
    assert report["config"]["optimizer"] == "sgd" and report["config"]["momentum"] == 0.9
