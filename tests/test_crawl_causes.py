"""Crawls with different causes are named apart by the experiment only one of them answers (issue 12)."""
import numpy as np
import pytest


def _data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((256, 4))
    y = X @ np.array([1.0, -2.0, 0.5, 1.5]) + np.sin(2 * X[:, 0]) + 0.1 * rng.standard_normal(256)
    return X, y


def _mlp(keras, kinit="glorot_uniform", binit="zeros"):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((4,)),
        keras.layers.Dense(32, activation="relu", kernel_initializer=kinit, bias_initializer=binit),
        keras.layers.Dense(32, activation="relu", kernel_initializer=kinit, bias_initializer=binit),
        keras.layers.Dense(1, kernel_initializer=kinit)])


@pytest.mark.parametrize("case, expected", [("dead-relu", "dying-relu"), ("tiny-init", "bad-init"),
                                            ("lr-1e-5", "lr-too-low")])
def test_each_crawl_is_named_first_with_its_separating_experiment(case, expected):
    import keras
    from fitdoctor import diagnose

    X, y = _data()
    if case == "dead-relu":  # a negative bias initialiser: every ReLU starts dead
        model, lr = _mlp(keras, binit=keras.initializers.Constant(-3.0)), 1e-3
    elif case == "tiny-init":  # kernels 1e-4 of the Glorot scale
        model, lr = _mlp(keras, kinit=keras.initializers.VarianceScaling(scale=1e-8)), 1e-3
    else:
        model, lr = _mlp(keras), 1e-5
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="mse")
    report = diagnose(model, X, y, epochs=50, batch_size=32)
    first = report.findings[0]
    assert first.name == expected
    assert first.confirmed is True
    probe = first.evidence["probe"]
    assert probe["with_fix_mse"] < probe["baseline_mse"]
    if expected == "lr-too-low":
        assert probe["progress_ratio"] >= 5.0  # the 10x rate made >= 5x the progress
    else:
        assert "re-initialised" in probe["experiment"]
