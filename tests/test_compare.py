"""fitdoctor.compare and the `fitdoctor compare` command, on seed 003's income data."""
import json
import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from conftest import INCOME_CSV  # noqa: E402
from fitdoctor.cli import main  # noqa: E402
from fitdoctor.data.loading import load_dataset  # noqa: E402
from fitdoctor.errors import InputError  # noqa: E402
from fitdoctor.examples import load_example  # noqa: E402
from fitdoctor.experiments import build_trained_model, compare  # noqa: E402
from fitdoctor.reference import least_squares  # noqa: E402

SEED_003_GRID = {"optimizer": ["adam", "sgd"], "learning_rate": [1e-2, 1e-3], "scale_x": [True], "scale_y": [False, True]}


def income_csv():
    ds, dropped = load_dataset(INCOME_CSV, "income").dropna()
    return ds.X, ds.y, dropped


def seed_model(d, seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((d,)), keras.layers.Dense(1)])


@pytest.fixture(scope="module")
def seed_003():
    X, y, _ = income_csv()
    model = seed_model(X.shape[1])
    return compare(model, X, y, grid=SEED_003_GRID, epochs=200, batch_size=32), model, X, y


def test_seed_003_finding_on_measured_numbers(seed_003):
    cmp, _, X, y = seed_003
    opt = least_squares(X, y)[2]
    assert cmp.optimum_ == pytest.approx(opt)
    assert 1.2e6 < opt < 1.4e6  # 1.30e6 on the 18 complete rows
    r = cmp.results_.set_index("label")
    # without target scaling Adam ends orders of magnitude above the optimum, at both rates
    assert r.loc["adam lr=0.01 scale_x", "final_loss"] > 100 * opt
    assert r.loc["adam lr=0.001 scale_x", "final_loss"] > 100 * opt
    # SGD at 1e-2 comes much closer
    assert r.loc["sgd lr=0.01 scale_x", "final_loss"] < 5 * opt
    assert r.loc["sgd lr=0.01 scale_x", "final_loss"] < r.loc["adam lr=0.01 scale_x", "final_loss"] / 100
    # with standardised targets the best run ends within 5% of the optimum and reaches 1.1x
    scaled = r[r.scale_y]
    assert scaled.final_loss.min() < 1.05 * opt
    assert np.isfinite(scaled.epochs_to_optimum).any()
    assert not np.isfinite(r.loc["adam lr=0.01 scale_x", "epochs_to_optimum"])
    assert len(cmp.runs_) == 8 and set(r.engine) == {"vectorized"}


def test_losses_are_in_original_units(seed_003):
    cmp, model, X, y = seed_003
    for run in cmp.runs_:
        if run.spec.scale_y and not run.diverged:
            pred = np.asarray(build_trained_model(model, run)(X.astype(np.float32)))[:, 0]
            assert np.mean((pred - y) ** 2) == pytest.approx(run.final_mse, rel=1e-3)
    row = cmp.results_.iloc[0]
    assert row.final_loss == cmp.runs_[0].mse[-1]
    assert row.best_loss == np.min(cmp.runs_[0].mse)


def test_json_and_plot(seed_003):
    import matplotlib

    matplotlib.use("Agg")
    cmp = seed_003[0]
    data = json.loads(cmp.to_json())
    assert len(data["runs"]) == 8 and len(data["runs"][0]["mse"]) == 200
    assert data["optimum"] == pytest.approx(cmp.optimum_)
    ax = cmp.plot()
    assert ax.get_yscale() == "log" and cmp.ax_ is ax
    assert any(np.allclose(line.get_ydata(), cmp.optimum_) for line in ax.get_lines())
    # one line per run (each with its own label), plus the reference optima as horizontal lines
    labels = [line.get_label() for line in ax.get_lines()]
    assert sum(any(lab.startswith(r.spec.label()) for lab in labels) for r in cmp.runs_) == 8
    assert len({lab for lab in labels if not lab.startswith("_")}) == len([l for l in labels if not l.startswith("_")])


def test_grid_defaults_come_from_the_compiled_model():
    ex = load_example("learning-rate")
    model = ex.compiled_model(0)  # adam, lr 0.01
    cmp = compare(model, ex.X, ex.y, grid={"scale_y": [False, True]}, epochs=3)
    assert [(r.spec.optimizer, r.spec.learning_rate, r.spec.scale_y) for r in cmp.runs_] == [("adam", 0.01, False), ("adam", 0.01, True)]


@pytest.mark.parametrize("grid, match", [
    ({"optimiser": ["adam"]}, "Received grid key='optimiser'"),
    ({"lr": [0.1]}, "allowed keys are optimizer, learning_rate, scale_x, scale_y, loss"),
    ({"learning_rate": [-1.0]}, "learning_rate=-1.0"),
    ({"scale_x": ["yes"]}, "scale_x takes booleans"),
    ({"optimizer": []}, "empty list"),
])
def test_grid_validation(grid, match):
    ex = load_example("learning-rate")
    with pytest.raises(InputError, match=match):
        compare(ex.build_model(0), ex.X, ex.y, grid=grid, epochs=2)


def test_cli_compare_json_drops_empty_rows_with_a_notice(tmp_path, capsys):
    out = tmp_path / "results.json"
    rc = main(["compare", INCOME_CSV, "--target", "income", "--optimizers", "adam,sgd", "--lr", "1e-2",
               "--scale-x", "yes", "--scale-y", "both", "--epochs", "50", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0
    assert "dropped 2 rows with empty cells: rows 6, 14" in err
    data = json.loads(out.read_text())
    assert [r["label"] for r in data["runs"]] == ["adam lr=0.01 scale_x", "adam lr=0.01 scale_x scale_y",
                                                 "sgd lr=0.01 scale_x", "sgd lr=0.01 scale_x scale_y"]
    assert data["n_rows"] == 18


def test_cli_compare_png_and_text(tmp_path, capsys):
    out = tmp_path / "curves.png"
    rc = main(["compare", INCOME_CSV, "--target", "income", "--lr", "1e-2,1e-3", "--epochs", "20", "-o", str(out)])
    assert rc == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc = main(["compare", INCOME_CSV, "--target", "income", "--optimizers", "sgd", "--lr", "1e-3", "--scale-x", "yes", "--epochs", "5"])
    text = capsys.readouterr().out
    assert rc == 0 and "sgd lr=0.001 scale_x" in text and "least-squares optimum" in text


@pytest.mark.parametrize("argv, match", [
    (["--lr", "fast"], "--lr takes comma-separated numbers"),
    (["--optimizers", "adamm"], "unknown optimizer 'adamm'"),
    (["--target", "incme"], "did you mean 'income'"),
    (["-o", "out.xlsx"], "--output must end in"),
])
def test_cli_compare_usage_errors_exit_2(argv, match, capsys):
    args = ["compare", INCOME_CSV, "--target", "income", "--epochs", "2"] + argv
    assert main(args) == 2
    assert match in capsys.readouterr().err
