"""Rules written for Dense stacks (bad-init, dying-relu, output-activation-range) on LSTM and Conv1D
models: they fire where the layer's own measure says so and stay quiet otherwise, or say in a
note that they do not apply (never a guess)."""
import numpy as np
import pytest

import keras

from fitdoctor.diagnosis import build_context
from fitdoctor.rules import get_rule

STEPS, FEATURES = 12, 3


def _data(n=64, seed=0, scale=1.0, offset=0.0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, STEPS, FEATURES))
    y = X[:, -3:, :].sum(axis=(1, 2)) + 0.1 * rng.normal(size=n)
    return X, y * scale + offset


def _model(layers, seed=0):
    keras.utils.set_random_seed(seed)
    m = keras.Sequential([keras.Input((STEPS, FEATURES))] + layers)
    m.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    return m


def _ctx(model, X, y):
    return build_context(model, X, y, optimizer="adam", learning_rate=0.01, epochs=20, batch_size=32,
                         nonlinear_reference=False)


L = keras.layers


# -- bad-init ------------------------------------------------------------------------------
def test_bad_init_fires_on_an_lstm_recurrent_kernel_far_from_glorot():
    X, y = _data()
    m = _model([L.LSTM(8, recurrent_initializer=keras.initializers.RandomNormal(stddev=20.0)), L.Dense(1)])
    [f] = get_rule("bad-init").detect(_ctx(m, X, y))
    worst = max(f.evidence["layers"], key=lambda d: d["ratio"])
    assert worst["kind"] == "LSTM" and worst["weight"] == "recurrent_kernel" and worst["ratio"] > 10


def test_bad_init_fires_on_a_conv1d_kernel_with_its_receptive_field_fans():
    X, y = _data()
    m = _model([L.Conv1D(8, 3, activation="relu", kernel_initializer=keras.initializers.RandomNormal(stddev=1e-4)),
                L.GlobalAveragePooling1D(), L.Dense(1)])
    [f] = get_rule("bad-init").detect(_ctx(m, X, y))
    conv = next(d for d in f.evidence["layers"] if d["kind"] == "Conv1D")
    # Keras's fans of a (3, 3, 8) kernel: in 3*3 = 9, out 8*3 = 24
    assert conv["glorot_std"] == pytest.approx(np.sqrt(2 / (9 + 24)))
    assert conv["ratio"] < 0.1


@pytest.mark.parametrize("layers", [lambda: [L.LSTM(8), L.Dense(1)],
                                    lambda: [L.Conv1D(8, 3, activation="relu"), L.GlobalAveragePooling1D(), L.Dense(1)]],
                         ids=["lstm", "conv1d"])
def test_bad_init_quiet_with_keras_default_initialisers(layers):
    X, y = _data()
    assert get_rule("bad-init").detect(_ctx(_model(layers()), X, y)) == []


def test_bad_init_says_embedding_tables_are_not_judged():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 20, size=(64, 5))
    y = X.sum(axis=1) / 20.0
    keras.utils.set_random_seed(0)
    m = keras.Sequential([keras.Input((5,), dtype="int32"),
                          L.Embedding(20, 4, embeddings_initializer=keras.initializers.Constant(3.0)),
                          L.Flatten(), L.Dense(1)])
    m.compile(optimizer="adam", loss="mse")
    ctx = _ctx(m, X, y)
    assert get_rule("bad-init").detect(ctx) == []
    assert any("bad-init: not applicable to Embedding" in n for n in ctx.notes)


# -- dying-relu ----------------------------------------------------------------------------
def test_dying_relu_fires_on_conv1d_filters_dead_at_every_position():
    X, y = _data()
    m = _model([L.Conv1D(8, 3, activation="relu", bias_initializer=keras.initializers.Constant(-50.0), name="conv"),
                L.GlobalAveragePooling1D(), L.Dense(1)])
    [f] = get_rule("dying-relu").detect(_ctx(m, X, y))
    assert f.evidence["dead_fraction_by_layer"] == {"conv": 1.0}


def test_dying_relu_quiet_on_a_healthy_conv1d():
    X, y = _data()
    m = _model([L.Conv1D(8, 3, activation="relu"), L.GlobalAveragePooling1D(), L.Dense(1)])
    assert get_rule("dying-relu").detect(_ctx(m, X, y)) == []


def test_dying_relu_counts_a_filter_not_a_position():
    """A filter that is positive at one position of one row is alive, even if zero everywhere else."""
    from fitdoctor.rules.model.layer_kinds import dead_unit_fraction
    out = np.zeros((4, 5, 2))
    out[2, 3, 1] = 0.5
    assert dead_unit_fraction(out) == 0.5


def test_dying_relu_not_applicable_to_an_lstm_with_relu():
    X, y = _data()
    m = _model([L.LSTM(8, activation="relu", bias_initializer=keras.initializers.Constant(-50.0)), L.Dense(1)])
    ctx = _ctx(m, X, y)
    assert get_rule("dying-relu").detect(ctx) == []
    assert any("dying-relu: not applicable to LSTM" in n for n in ctx.notes)


def test_dying_relu_below_minimum_rows_reports_nothing():
    X, y = _data(n=64)
    m = _model([L.Conv1D(8, 3, activation="relu", bias_initializer=keras.initializers.Constant(-50.0)),
                L.GlobalAveragePooling1D(), L.Dense(1)])
    assert get_rule("dying-relu").detect(_ctx(m, X[:4], y[:4])) == []


# -- output-activation-range ---------------------------------------------------------------
def test_output_range_fires_for_a_model_ending_in_an_lstm():
    X, y = _data(scale=100.0, offset=500.0)   # targets in the hundreds; an LSTM's output is tanh: [-1, 1]
    [f] = get_rule("output-activation-range").detect(_ctx(_model([L.LSTM(4)]), X, y))
    assert f.evidence["activation"] == "tanh" and f.evidence["fraction_outside"] == 1.0


def test_output_range_fires_for_conv1d_relu_then_global_pooling():
    X, y = _data(offset=-100.0)   # negative targets; relu then average pooling stays >= 0
    m = _model([L.Conv1D(1, 3, activation="relu"), L.GlobalAveragePooling1D()])
    [f] = get_rule("output-activation-range").detect(_ctx(m, X, y))
    assert f.evidence["activation"] == "relu"


@pytest.mark.parametrize("layers", [lambda: [L.LSTM(4), L.Dense(1)],
                                    lambda: [L.Conv1D(4, 3, activation="relu"), L.GlobalAveragePooling1D(), L.Dense(1)]],
                         ids=["lstm", "conv1d"])
def test_output_range_quiet_with_a_linear_head(layers):
    X, y = _data(scale=100.0, offset=500.0)
    assert get_rule("output-activation-range").detect(_ctx(_model(layers()), X, y)) == []


def test_output_range_not_judged_when_batchnormalization_rescales_a_bounded_output():
    X, y = _data(scale=100.0, offset=500.0)
    m = _model([L.LSTM(4), L.BatchNormalization(name="bn")])
    ctx = _ctx(m, X, y)
    assert get_rule("output-activation-range").detect(ctx) == []
    assert any("output-activation-range: not judged" in n and "'bn'" in n for n in ctx.notes)
