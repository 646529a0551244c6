"""compare and find_lr judge on held-out rows (issue 12): validation_data, validation_split, or a split of their own."""
import json
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from fitdoctor.cli import main  # noqa: E402
from fitdoctor.errors import InputError  # noqa: E402
from fitdoctor.experiments import build_trained_model, compare, find_lr  # noqa: E402

GRID = {"optimizer": ["sgd"], "learning_rate": [1e-1, 1e-3], "scale_x": [True]}


def _data(n, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 3))
    y = X @ np.array([2.0, -1.0, 0.5]) + 3.0 + 0.3 * rng.standard_normal(n)
    return X, y


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])


def _ls_heldout(Xtr, ytr, Xv, yv):
    A = np.c_[Xtr, np.ones(len(Xtr))]
    coef = np.linalg.lstsq(A, ytr, rcond=None)[0]
    return float(np.mean((np.c_[Xv, np.ones(len(Xv))] @ coef - yv) ** 2))


def test_validation_data_ranks_runs_on_those_rows_with_references_on_the_same_rows():
    X, y = _data(120)
    Xv, yv = _data(40, seed=1)
    model = _model()
    cmp = compare(model, X, y, grid=GRID, epochs=15, validation_data=(Xv, yv))
    assert cmp.validation_kind_ == "validation_data" and cmp.n_rows_ == 120 and cmp.n_val_rows_ == 40
    for run, val in zip(cmp.runs_, cmp.results_["val_loss"]):  # each run's trained model, measured on Xv
        pred = np.asarray(build_trained_model(model, run)(Xv.astype("float32")))[:, 0]
        assert val == pytest.approx(np.mean((pred - yv) ** 2), rel=1e-4)
    assert cmp.heldout_references_["least squares"] == pytest.approx(_ls_heldout(X, y, Xv, yv), rel=1e-6)
    assert cmp.heldout_references_["mean predictor"] == pytest.approx(np.mean((yv - y.mean()) ** 2), rel=1e-9)
    assert cmp.val_optimum_kind_ == "least squares"  # a linear model is judged against least squares
    r = cmp.results_
    assert list(r.sort_values("val_loss")["rank"]) == [1, 2]
    assert cmp.best_run() is cmp.runs_[int(np.argmin(r["val_loss"]))]
    assert r["val_gap"].min() == pytest.approx(r["val_loss"].min() / cmp.val_optimum_)
    data = json.loads(cmp.to_json())
    assert data["validation"]["kind"] == "validation_data" and len(data["runs"][0]) and "val_mse" in data["runs"][0]


def test_validation_split_keeps_the_last_rows_out_of_training():
    X, y = _data(80)
    model = _model()
    cmp = compare(model, X, y, grid={"scale_x": [True]}, epochs=10, validation_split=0.25)
    assert cmp.validation_kind_ == "validation_split" and cmp.n_rows_ == 60 and cmp.n_val_rows_ == 20
    assert "the last 20 of 80 rows" in cmp.validation_
    pred = np.asarray(build_trained_model(model, cmp.runs_[0])(X.astype("float32")))[:, 0]
    # the curve is measured on the 60 training rows, the held-out loss on the last 20
    assert cmp.runs_[0].final_mse == pytest.approx(np.mean((pred[:60] - y[:60]) ** 2), rel=1e-3)
    assert cmp.results_["val_loss"][0] == pytest.approx(np.mean((pred[60:] - y[60:]) ** 2), rel=1e-4)
    assert cmp.heldout_references_["least squares"] == pytest.approx(_ls_heldout(X[:60], y[:60], X[60:], y[60:]), rel=1e-6)


def test_without_validation_it_holds_out_rows_itself_and_says_so():
    X, y = _data(150)
    cmp = compare(_model(), X, y, grid={"scale_x": [True]}, epochs=5, seed=3)
    assert cmp.validation_kind_ == "hold-out" and "seeded" in cmp.validation_ and "seed 3" in cmp.validation_
    assert cmp.n_rows_ == 120 and cmp.n_val_rows_ == 30
    Xs, ys = X[:60], y[:60]  # small data: K-fold, the curves on every row
    small = compare(_model(), Xs, ys, grid={"scale_x": [True]}, epochs=5)
    assert small.validation_kind_ == "k-fold" and "5-fold cross-validation" in small.validation_
    assert small.n_rows_ == 60 and small.n_val_rows_ == 60  # every row held out once
    assert np.isfinite(small.results_["val_loss"]).all()


@pytest.mark.parametrize("kw, match", [
    ({"validation_data": np.zeros((3, 3))}, "validation_data must be a tuple"),
    ({"validation_data": (np.zeros((3, 2)), np.zeros(3))}, "X_val.shape=(3, 2)"),
    ({"validation_data": (np.full((3, 3), np.nan), np.zeros(3))}, "NaN"),
    ({"validation_split": 1.5}, "validation_split must be between 0 and 1"),
])
def test_bad_validation_input_is_an_input_error(kw, match):
    X, y = _data(30)
    with pytest.raises(InputError, match=match.replace("(", r"\(").replace(")", r"\)")):
        compare(_model(), X, y, grid={"scale_x": [True]}, epochs=2, **kw)


def test_find_lr_checks_its_readings_on_held_out_rows():
    X, y = _data(160)
    Xv, yv = _data(40, seed=2)
    f = find_lr(_model(), X, y, optimizer="sgd", validation_data=(Xv, yv), steps=30)
    assert f.validation_kind_ == "validation_data"
    assert set(f.validation_losses_) == {f.range_[0], f.suggestion_, f.range_[1]}
    assert all(np.isfinite(v) for v in f.validation_losses_.values())
    assert f.validated_suggestion_ == min(f.validation_losses_, key=f.validation_losses_.get)
    # a reading trained for the sweep's steps on standardised-enough data beats the mean predictor on held-out rows
    assert min(f.validation_losses_.values()) < f.heldout_references_["mean predictor"]
    split = find_lr(_model(), X, y, optimizer="sgd", validation_split=0.2, steps=30)
    assert split.validation_kind_ == "validation_split" and "the last 32 of 160 rows" in split.validation_
    assert json.loads(split.to_json())["validation"]["kind"] == "validation_split"


def test_cli_compare_and_lr_find_take_validation_split(tmp_path, capsys):
    X, y = _data(100)
    path = tmp_path / "d.csv"
    np.savetxt(path, np.c_[X, y], delimiter=",", header="a,b,c,y", comments="")
    rc = main(["compare", str(path), "--target", "y", "--lr", "1e-2", "--optimizers", "sgd", "--epochs", "5",
               "--validation-split", "0.2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert out.splitlines()[0] == "held-out rows: validation_split=0.2 (the last 20 of 100 rows, as Keras takes them)"
    assert "held-out MSE" in out and "best on held-out rows: sgd lr=0.01" in out
    rc = main(["lr-find", str(path), "--target", "y", "--steps", "20", "--validation-split", "0.3"])
    out = capsys.readouterr().out
    assert rc == 0 and "held-out check (validation_split=0.3 (the last 30 of 100 rows" in out
    assert main(["compare", str(path), "--target", "y", "--validation-split", "1.2"]) == 2
    assert "fraction between 0 and 1" in capsys.readouterr().err


def test_held_out_curves_end_at_each_runs_held_out_loss_and_are_what_plot_draws():
    """Per-epoch held-out MSE (val_curves_): its last epoch is the run's held-out MSE, the plot draws it
    against the held-out references, and K-fold pools the folds' curves over every held-out row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, y = _data(150)
    cmp = compare(_model(), X, y, grid=GRID, epochs=12)
    assert cmp.validation_kind_ == "hold-out"
    for curve, val, run in zip(cmp.val_curves_, cmp.results_["val_loss"], cmp.runs_):
        assert len(curve) == 12 == len(run.mse)
        assert curve[-1] == pytest.approx(val, rel=1e-3)
    slow = int(np.argmax(cmp.results_["val_loss"]))  # sgd at 1e-3: still far above the optimum after 12 epochs
    assert cmp.val_curves_[slow][0] > cmp.val_curves_[slow][-1] > 1.5 * cmp.heldout_references_["least squares"]
    ax = cmp.plot(heldout=True)
    assert "held-out" in ax.get_ylabel()
    drawn = {line.get_label().split(" (")[0]: line.get_ydata() for line in ax.get_lines()}
    np.testing.assert_allclose(drawn[cmp.runs_[slow].spec.label()], cmp.val_curves_[slow], rtol=1e-9)
    ls = cmp.heldout_references_["least squares"]
    assert any(lbl.startswith("least squares") and np.allclose(v, ls) for lbl, v in drawn.items())
    ax_train = cmp.plot()  # default: the training curves
    assert "training" in ax_train.get_ylabel()
    train_lines = [line.get_ydata() for line in ax_train.get_lines() if len(line.get_ydata()) == 12]
    assert len(train_lines) == 2 and not any(np.allclose(v, cmp.val_curves_[slow]) for v in train_lines)
    plt.close("all")
    assert json.loads(cmp.to_json())["runs"][0]["val_curve"][-1] == pytest.approx(cmp.results_["val_loss"][0], rel=1e-3)
    page = cmp.to_html()  # the HTML report shows the held-out curves beside the training curves
    assert 'id="fig-heldout-curves"' in page and 'id="fig-curves"' in page

    small = compare(_model(), X[:60], y[:60], grid={"scale_x": [True]}, epochs=6)
    assert small.validation_kind_ == "k-fold"
    assert len(small.val_curves_[0]) == 6
    assert small.val_curves_[0][-1] == pytest.approx(small.results_["val_loss"][0], rel=1e-3)


def test_the_best_named_is_the_best_on_held_out_rows_not_on_training_rows():
    """A 64-unit MLP on 24 rows of pure noise: the high rate fits the training rows best and predicts new
    rows worst. compare's one-line summary (used by `fitdoctor demo`) names the held-out best."""
    from fitdoctor.reporting.text import comparison_best_line

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((24, 4)), rng.standard_normal(24)
    Xv, yv = rng.standard_normal((40, 4)), rng.standard_normal(40)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    cmp = compare(model, X, y, grid={"optimizer": ["adam"], "learning_rate": [3e-2, 1e-4]}, epochs=150, batch_size=8,
                  validation_data=(Xv, yv))
    r = cmp.results_
    by_train, by_val = r.loc[r["final_loss"].idxmin(), "label"], r.loc[r["val_loss"].idxmin(), "label"]
    assert by_train != by_val  # the case this test is about
    line = comparison_best_line(cmp)
    assert f"best on held-out rows (validation_data (40 rows)): {by_val}," in line
    assert by_train not in line
