"""Every training-time finding, provoked by a tiny seeded model under fitdoctor.Monitor."""
import numpy as np
import pytest

keras = pytest.importorskip("keras")
import fitdoctor  # noqa: E402


def _data(n=64, d=3, seed=0, noise=0.1):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d)).astype(np.float32)
    y = (X @ np.arange(1, d + 1) + noise * rng.standard_normal(n)).astype(np.float32)
    return X, y


def _fit(layers, X, y, *, opt, epochs, batch_size=16, monitor=None, **fit_kw):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), *layers])
    model.compile(optimizer=opt, loss="mse")
    mon = monitor or fitdoctor.Monitor(X_sample=X, y_sample=y)
    hist = model.fit(X, y, epochs=epochs, batch_size=batch_size, verbose=0, callbacks=[mon], **fit_kw)
    return mon, hist, model


def _only(mon, name):
    found = [f for f in mon.findings_ if f.name == name]
    assert found, f"{name} not found; got {[f.name for f in mon.findings_]}"
    return found[0]


def test_huge_constant_initializer_gives_exploding_gradients_not_nan_data():
    X, y = _data()
    big = keras.initializers.Constant(10.0)
    mon, hist, model = _fit([keras.layers.Dense(16, kernel_initializer=big),
                             keras.layers.Dense(16, kernel_initializer=big),
                             keras.layers.Dense(1, kernel_initializer=big)],
                            X, y, opt=keras.optimizers.SGD(0.01), epochs=5)
    f = _only(mon, "exploding-gradients")
    assert f.epoch == 0 and f.step is not None
    assert "nan-inf-data" not in [g.name for g in mon.findings_]
    assert len(hist.history["loss"]) == 1  # stopped on the NaN epoch


def test_nan_row_gives_nan_inf_data_and_restores_finite_weights():
    X, y = _data(n=64)
    X[37, 1] = np.nan
    mon, hist, model = _fit([keras.layers.Dense(1)], X, y, opt=keras.optimizers.Adam(0.01), epochs=4)
    f = _only(mon, "nan-inf-data")
    assert f.epoch == 0
    assert "exploding-gradients" not in [g.name for g in mon.findings_]
    assert mon.history_.stopped_on_nan


def test_nan_row_detected_without_sample_data_from_the_jump():
    X, y = _data(n=64)
    Xb = X.copy()
    Xb[50, 0] = np.nan  # in a later epoch's batch order it appears after finite batches
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    mon = fitdoctor.Monitor(X_sample=X[:32], y_sample=y[:32])  # finite rows only
    model.fit(Xb, y, epochs=3, batch_size=8, verbose=0, callbacks=[mon], shuffle=False)
    f = _only(mon, "nan-inf-data")
    assert f.epoch == 0 and f.step == 50 // 8
    assert np.isfinite(np.concatenate([w.ravel() for w in model.get_weights()])).all() or mon.history_.restored_epoch is None


def test_learning_rate_10_diverges():
    X, y = _data(n=64)
    mon, hist, _ = _fit([keras.layers.Dense(1)], X, y, opt=keras.optimizers.SGD(10.0), epochs=5)
    f = _only(mon, "lr-too-high")
    assert f.epoch == 0
    assert f.evidence["ratio"] >= 10


def test_sgd_on_small_batches_at_a_high_rate_oscillates():
    X, y = _data(n=64)
    mon, hist, _ = _fit([keras.layers.Dense(1)], X, y, opt=keras.optimizers.SGD(0.5), epochs=60, batch_size=4)
    f = _only(mon, "lr-too-high")
    loss = np.asarray(hist.history["loss"])
    assert np.isfinite(loss).all() and loss[-1] < loss[0]            # it bounces, it does not diverge
    assert f.evidence["sign_change_fraction"] >= 0.5 and f.evidence["relative_amplitude"] >= 0.1
    assert f.evidence["gap"] > 2                                      # and it stays well above the optimum
    first_jump = int(np.flatnonzero(loss[1:] >= 1.1 * loss[:-1])[0]) + 1
    assert f.epoch == first_jump


def test_adam_at_a_tiny_rate_crawls_and_a_10x_rate_cannot_beat_the_bound():
    X, y = _data(n=64)
    mon, hist, _ = _fit([keras.layers.Dense(1)], X, y, opt=keras.optimizers.Adam(1e-3), epochs=100)
    f = _only(mon, "lr-too-low")
    assert f.evidence["gap"] > 100 and f.evidence["epochs_needed_total"] > 100
    assert f.epoch == 100 - 20                                        # the tail window: the last 20% of the run
    assert "adam-large-target" not in [g.name for g in mon.findings_]  # zero-mean targets: not the offset crawl
    # "a 10x larger learning rate would need at least ~N epochs": Adam moves a weight <= ~lr per step
    mon10, hist10, _ = _fit([keras.layers.Dense(1)], X, y, opt=keras.optimizers.Adam(1e-2),
                            epochs=int(f.evidence["epochs_needed_total"] / 10))
    assert hist10.history["loss"][-1] > 1.05 * f.evidence["floor"]


def test_softmax_on_one_unit_predicts_constant():
    X, y = _data(n=64)
    mon, _, _ = _fit([keras.layers.Dense(1, activation="softmax")], X, y, opt=keras.optimizers.Adam(0.01), epochs=3)
    f = _only(mon, "predicts-constant")
    assert f.epoch == 0
    assert f.evidence["prediction_spread"] == 0.0
    assert f.evidence["loss_over_var_y"] >= 0.8


def test_negative_bias_kills_relu_units():
    X, y = _data(n=64)
    mon, _, _ = _fit([keras.layers.Dense(16, activation="relu", bias_initializer=keras.initializers.Constant(-10.0)),
                      keras.layers.Dense(1)], X, y, opt=keras.optimizers.Adam(0.01), epochs=3)
    f = _only(mon, "dying-relu")
    assert f.epoch == 0
    assert f.evidence["dead_fraction_by_layer"][f.evidence["layer"]] == 1.0


def test_deep_sigmoid_stack_vanishes():
    X, y = _data(n=64)
    layers = [keras.layers.Dense(8, activation="sigmoid") for _ in range(8)] + [keras.layers.Dense(1)]
    mon, _, _ = _fit(layers, X, y, opt=keras.optimizers.SGD(0.01), epochs=4)
    f = _only(mon, "vanishing-gradients")
    assert f.epoch == 0
    assert f.evidence["ratio"] <= 1e-3


def test_adam_on_income_targets_needs_many_more_epochs():
    ex = fitdoctor.load_example("income")
    ok = np.isfinite(ex.X).all(axis=1)
    X = ex.X[ok]
    Xs = ((X - X.mean(0)) / X.std(0)).astype(np.float32)
    y = ex.y[ok].astype(np.float32)
    mon, _, _ = _fit([keras.layers.Dense(1)], Xs, y, opt=keras.optimizers.Adam(0.01), epochs=30, batch_size=32)
    f = _only(mon, "adam-large-target")
    assert f.evidence["epochs_needed"] > 1e5
    assert f.epoch is not None


def test_too_few_epochs_and_underfit_on_seed_examples():
    ex = fitdoctor.load_example("learning-rate")
    mon, _, _ = _fit([keras.layers.Dense(1)], ex.X, ex.y, opt=keras.optimizers.Adam(0.01), epochs=40, batch_size=32)
    f = _only(mon, "too-few-epochs")
    assert f.evidence["epochs_needed_more"] > 0
    assert f.epoch == 40 - f.evidence["window"]

    cap = fitdoctor.load_example("capacity")
    mon, hist, _ = _fit([keras.layers.Dense(1)], cap.X, cap.y, opt=keras.optimizers.Adam(0.1), epochs=60, batch_size=32)
    f = _only(mon, "underfit-capacity")
    assert f.evidence["reached_least_squares"]
    assert hist.history["loss"][f.epoch] <= 1.25 * f.evidence["least_squares_mse"]


@pytest.mark.slow
def test_validation_loss_rising_is_overfit():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((40, 4)).astype(np.float32)
    y = (X[:, 0] + rng.standard_normal(40)).astype(np.float32)
    Xv = rng.standard_normal((40, 4)).astype(np.float32)
    yv = (Xv[:, 0] + rng.standard_normal(40)).astype(np.float32)
    mon, hist, _ = _fit([keras.layers.Dense(128, activation="relu"), keras.layers.Dense(128, activation="relu"),
                         keras.layers.Dense(1)], X, y, opt=keras.optimizers.Adam(0.01), epochs=120, batch_size=40,
                        validation_data=(Xv, yv), monitor=fitdoctor.Monitor(X_sample=X, y_sample=y, patience=10))
    f = _only(mon, "overfit")
    val = hist.history["val_loss"]
    assert f.evidence["best_epoch"] == int(np.argmin(val)) and f.epoch == f.evidence["best_epoch"] + 1
    assert val[-1] > 1.1 * min(val)


def test_healthy_run_has_no_warning_or_error():
    X, y = _data(n=128, noise=0.3)
    mon, _, _ = _fit([keras.layers.Dense(1)], X, y, opt=keras.optimizers.Adam(0.1), epochs=40, batch_size=32)
    assert [f.name for f in mon.findings_ if f.severity in ("error", "warning")] == []
    assert mon.history_.samples and mon.history_.samples[-1].grad_norm is not None
