"""The seeds' experiments, run as their code is written, with fitdoctor.Monitor attached.

Each test states what the measured curve shows (against the least-squares optimum computed here
with numpy) and asserts that the Monitor names exactly that, not what the seeds' prose claims.
"""
import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")
import fitdoctor  # noqa: E402
from conftest import INCOME_CSV  # noqa: E402


def _least_squares_mse(X, y):
    A = np.c_[X, np.ones(len(X))]
    coef = np.linalg.lstsq(A, y, rcond=None)[0]
    return float(np.mean((y - A @ coef) ** 2))


def _run(layers, X, y, optimizer, epochs):
    """The seed's ``model.compile(optimizer=..., loss='mse'); model.fit(X, y, epochs=...)``: batch 32."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), *layers])
    model.compile(optimizer=optimizer, loss="mse")
    mon = fitdoctor.Monitor(X_sample=X, y_sample=y)
    hist = model.fit(X, y, epochs=epochs, verbose=0, callbacks=[mon])
    loss = np.asarray(hist.history["loss"])
    return {f.name: f for f in mon.findings_}, loss, loss[-1] / _least_squares_mse(X, y)


def _problems(found):
    return sorted(n for n, f in found.items() if f.severity in ("warning", "error"))


def test_seed_000_example_1_unscaled_features_crawl_and_scaled_ones_leave_the_offset():
    ex = fitdoctor.load_example("scaling")
    found, loss, gap = _run([keras.layers.Dense(1)], ex.X, ex.y, "adam", 200)
    # measured: still falling steadily at 10^7x the optimum after 200 epochs
    assert gap > 1e6 and loss[-1] < 0.8 * loss[0] and np.all(np.diff(loss) < 0)
    assert {"lr-too-low", "too-few-epochs"} <= set(found)
    assert found["too-few-epochs"].evidence["epochs_needed_total"] > 200

    Xs = (ex.X - ex.X.mean(0)) / ex.X.std(0)
    found, loss, gap = _run([keras.layers.Dense(1)], Xs, ex.y, "adam", 200)
    # measured: scaling X removes the 10^7, but the targets' mean (6.4, std 0.86) still has to be
    # walked to at ~lr per step: a straight line in sqrt(loss), thousands of x above the optimum
    assert 100 < gap < 1e5
    f = found["adam-large-target"]
    assert f.evidence["fit_r2"] > 0.99 and f.evidence["epochs_needed"] > 10 * 200


def test_seed_000_example_2_lr_0_1_is_healthy_and_0_01_is_too_slow():
    ex = fitdoctor.load_example("learning-rate")
    found, loss, gap = _run([keras.layers.Dense(1)], ex.X, ex.y, keras.optimizers.Adam(0.1), 100)
    assert gap < 1.05                     # measured: 0.1 ends within 5% of the optimum
    assert _problems(found) == []
    found, loss, gap = _run([keras.layers.Dense(1)], ex.X, ex.y, keras.optimizers.Adam(0.01), 100)
    assert gap > 1.2 and loss[-10] > loss[-1]   # measured: 0.01 is still falling, well above it
    assert "too-few-epochs" in found and "lr-too-high" not in found


def test_seed_000_example_3_linear_model_underfits_and_relu_model_loses_units():
    ex = fitdoctor.load_example("capacity")
    found, loss, gap = _run([keras.layers.Dense(1)], ex.X, ex.y, "adam", 1000)
    f = found["underfit-capacity"]
    assert f.evidence["gain"] > 10        # a nonlinear fit is >10x better than any line
    found, loss, gap = _run([keras.layers.Dense(10, activation="relu"), keras.layers.Dense(1)], ex.X, ex.y, "adam", 1000)
    # measured: below the best line, but a plateau far above the noise floor (0.04), with
    # half or more of the ten ReLU units dead
    assert gap < 1.0 and loss[-1] > 10 * ex.noise_floor
    f = found["dying-relu"]
    assert max(f.evidence["dead_fraction_by_layer"].values()) >= 0.5
    assert "underfit-capacity" not in found


@pytest.mark.parametrize("lr", [1e-2, 1e-3])
def test_seed_003_adam_on_dollar_targets_needs_millions_of_epochs(lr):
    X, y = _income_as_written()
    found, loss, gap = _run([keras.layers.Dense(1, activation="linear")], X, y, keras.optimizers.Adam(lr), 200)
    assert gap > 500                      # measured: ~1,290x the optimum after 200 epochs
    f = found["adam-large-target"]
    # the bias must reach ~40,000 at ~lr per step: ~(4e4 / lr) epochs of one step
    assert 0.3 * 4e4 / lr < f.evidence["epochs_needed"] < 3 * 4e4 / lr


def test_seed_003_sgd_is_not_adam_large_target():
    X, y = _income_as_written()
    found, loss, gap = _run([keras.layers.Dense(1, activation="linear")], X, y, keras.optimizers.SGD(1e-2), 200)
    assert gap < 3                        # measured: ~2x the optimum, still falling
    assert "adam-large-target" not in found
    assert "too-few-epochs" in found


def _income_as_written():
    """Seed 003: the CSV without its two incomplete rows, inputs through an adapted Normalization."""
    df = pd.read_csv(INCOME_CSV).dropna()
    X = df.drop(columns=["income"]).to_numpy(np.float64)
    norm = keras.layers.Normalization(axis=-1)
    norm.adapt(X)
    return np.asarray(norm(X), dtype=np.float64), df["income"].to_numpy(np.float64)
