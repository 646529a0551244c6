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
    elif expected == "dying-relu":  # only dead units answer a leaky activation that keeps every weight
        assert "leaky" in probe["experiment"] and "leaky" in probe["separating_experiment"]
    else:
        assert "re-initialised" in probe["experiment"]


def test_leaky_arm_keeps_the_weights_and_swaps_only_relu():
    import keras
    from fitdoctor.diagnosis import leaky_model

    model = _mlp(keras, binit=keras.initializers.Constant(-3.0))
    copy = leaky_model(model)
    acts = [l.get_config()["activation"] for l in copy.layers]
    assert acts == ["leaky_relu", "leaky_relu", "linear"]
    for a, b in zip(model.get_weights(), copy.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert [l.get_config()["activation"] for l in model.layers] == ["relu", "relu", "linear"]  # the user's model untouched
    X, _ = _data()
    # dead on every row under ReLU, alive (negative, non-zero) under the leaky copy
    assert np.all(np.asarray(model.layers[0](X[:16].astype("float32"))) == 0)
    assert np.all(np.asarray(copy.layers[0](X[:16].astype("float32"))) < 0)
