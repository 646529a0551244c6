"""A healthy-model suite (issue 12): sound configurations on which fitdoctor must stay quiet.

``healthy_configs()`` generates 40 sound configurations (standardised data; learning rates that suit
SGD, Adam and RMSprop; MLPs of several widths; an LSTM; a BatchNormalization model; the keras.io
tutorial pattern with a Normalization layer) on synthetic data (160 rows, batch 32) and
scikit-learn's bundled diabetes data (320 rows). ``diagnose`` must report no error and no confirmed
finding on any of them. ``repair`` runs on all 40 and may change a configuration only with a held-out
gain of at least 10% beyond the held-out noise (a paired per-row comparison, Bonferroni-corrected for
the candidates compared); the issue's acceptance: it changes nothing in at least 95% of them.
Measured before that rule (issue 12): 32 of 40 changed (an MLP on 128 training rows loses to the
linear model or a narrower net by 20-35% on 32 held-out rows, at 1.5-2.4 standard errors).
"""
from __future__ import annotations

import numpy as np
import pytest

N_ROWS = 160
BATCH = 32


def _data(kind: str, seed: int):
    rng = np.random.default_rng(seed)
    if kind == "diabetes":
        from sklearn.datasets import load_diabetes

        X, y = load_diabetes(return_X_y=True)
        X = (X - X.mean(axis=0)) / X.std(axis=0)
        y = (y - y.mean()) / y.std()
        return X[:N_ROWS * 2], y[:N_ROWS * 2]
    X = rng.standard_normal((N_ROWS, 4))
    if kind == "linear":
        y = X @ np.array([0.8, -0.5, 0.3, 0.1]) + 0.3 * rng.standard_normal(N_ROWS)
    else:  # a mildly nonlinear target, as real tabular data often is
        y = X @ np.array([0.8, -0.5, 0.0, 0.1]) + 0.3 * np.tanh(2 * X[:, 2]) + 0.3 * rng.standard_normal(N_ROWS)
    y = (y - y.mean()) / y.std()
    return X, y


def _model(keras, arch: str, n_inputs: int, X):
    if arch == "linear":
        layers = [keras.layers.Dense(1)]
    elif arch.startswith("mlp"):
        width = int(arch[3:].split("-")[0])
        act = "tanh" if arch.endswith("tanh") else "relu"
        layers = [keras.layers.Dense(width, activation=act), keras.layers.Dense(1)]
    elif arch == "batchnorm":
        layers = [keras.layers.Dense(16), keras.layers.BatchNormalization(), keras.layers.Activation("relu"),
                  keras.layers.Dense(1)]
    elif arch == "tutorial":  # keras.io "regression" tutorial: Normalization + Dense(64, relu) x 2
        norm = keras.layers.Normalization()
        norm.adapt(np.asarray(X, np.float32))
        layers = [norm, keras.layers.Dense(64, activation="relu"), keras.layers.Dense(64, activation="relu"),
                  keras.layers.Dense(1)]
    else:
        raise ValueError(arch)
    return keras.Sequential([keras.Input((n_inputs,))] + layers)


#: optimizer, learning rate, epochs: rates that suit each optimizer on standardised data
_OPTIMIZERS = [("adam", 1e-2, 100), ("adam", 3e-3, 150), ("sgd", 3e-2, 150), ("rmsprop", 3e-3, 100)]
_ARCHS = ["linear", "mlp8", "mlp32", "mlp16-tanh", "batchnorm"]
_DATA = ["linear", "nonlinear"]


def healthy_configs() -> list[dict]:
    """40 sound configurations: 4 optimizers x 5 architectures x 2 synthetic datasets = 40, with the
    tutorial pattern and the LSTM replacing two of them, and diabetes for the linear model."""
    out = []
    for d in _DATA:
        for arch in _ARCHS:
            for opt, lr, epochs in _OPTIMIZERS:
                out.append({"data": d, "arch": arch, "optimizer": opt, "lr": lr, "epochs": epochs})
    # swap in the keras.io tutorial pattern, the LSTM and the bundled data (still 40 in all)
    out[0] = {"data": "diabetes", "arch": "linear", "optimizer": "adam", "lr": 1e-2, "epochs": 100}
    # 40 epochs: at 100 the 64-64 tutorial network overfits 256 training rows (measured: held-out MSE 0.648
    # against least squares' 0.4475, and an L2 penalty of 0.01 reaches 0.423, 3.4 standard errors better),
    # so it is not a sound configuration; at 40 (and 20) its held-out MSE is within 1% of least squares'
    out[1] = {"data": "diabetes", "arch": "tutorial", "optimizer": "adam", "lr": 1e-3, "epochs": 40}
    out[2] = {"data": "sequence", "arch": "lstm", "optimizer": "adam", "lr": 1e-2, "epochs": 100}
    out[3] = {"data": "diabetes", "arch": "mlp8", "optimizer": "rmsprop", "lr": 3e-3, "epochs": 100}
    return out


def build(config: dict, seed: int = 0):
    import keras

    keras.utils.set_random_seed(seed)
    if config["arch"] == "lstm":
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((N_ROWS, 6, 2))
        y = X[:, :, 0].mean(axis=1) * 2 + 0.1 * rng.standard_normal(N_ROWS)
        y = (y - y.mean()) / y.std()
        model = keras.Sequential([keras.Input((6, 2)), keras.layers.LSTM(8), keras.layers.Dense(1)])
    else:
        X, y = _data(config["data"], seed)
        model = _model(keras, config["arch"], X.shape[1], X)
    opt = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}[config["optimizer"]]
    model.compile(optimizer=opt(learning_rate=config["lr"]), loss="mse")
    return model, X, y


CONFIGS = healthy_configs()


def _id(c):
    return f"{c['data']}-{c['arch']}-{c['optimizer']}-{c['lr']:g}"


def test_the_suite_has_at_least_40_configurations():
    assert len(CONFIGS) >= 40
    assert {c["optimizer"] for c in CONFIGS} == {"adam", "sgd", "rmsprop"}
    assert {"lstm", "batchnorm", "tutorial"} <= {c["arch"] for c in CONFIGS}


@pytest.mark.parametrize("config", CONFIGS, ids=_id)
def test_diagnose_reports_no_error_and_no_confirmed_finding(config):
    from fitdoctor import diagnose

    model, X, y = build(config)
    report = diagnose(model, X, y, epochs=config["epochs"], batch_size=BATCH)
    bad = [(f.name, f.severity, f.confirmed) for f in report.findings if f.severity == "error" or f.confirmed]
    assert bad == []


@pytest.mark.slow
def test_repair_leaves_at_least_95_percent_of_healthy_configurations_unchanged():
    from fitdoctor import repair

    changed = []
    for config in CONFIGS:
        model, X, y = build(config)
        rep = repair(model, X, y, epochs=config["epochs"], batch_size=BATCH)
        if rep.recipe != rep.user_recipe:
            # a change is allowed only with a held-out gain of at least 10 %, beyond the held-out noise
            assert rep.after_val_loss <= 0.9 * rep.before_val_loss, (_id(config), rep.message)
            assert rep.validation_loss["gain_z"] > 2 or (rep.validation_loss["gain_z_with_training_rows"] or 0) > 2
            changed.append((_id(config), rep.applied_names))
        else:
            assert rep.after_val_loss == rep.before_val_loss and "nothing" in rep.message
    assert len(CONFIGS) - len(changed) >= 0.95 * len(CONFIGS), changed
