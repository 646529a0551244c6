from fitdoctor.rules import get_rule
from rule_fixtures import dense_model, firing, healthy

RULE = get_rule("underfit-capacity")


def test_linear_model_on_a_sine_fires_with_both_references():
    [f] = RULE.detect(firing("underfit-capacity").context())
    assert f.evidence["least_squares_mse"] > 2 * f.evidence["nonlinear_mse"]
    assert f.fix.intervention == "add_capacity"


def test_quiet_on_linear_data_and_for_a_model_with_hidden_relu_layers():
    assert RULE.detect(healthy("underfit-capacity").context()) == []
    s = firing("underfit-capacity")
    assert RULE.detect(s.with_(model=dense_model(units=(16,), n_inputs=1)).context()) == []


# -- sequence models: linearity is judged per layer kind (a linear Conv1D or SimpleRNN is a linear model) --------

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import keras  # noqa: E402

from fitdoctor.diagnosis import build_context  # noqa: E402
from fitdoctor.model.inspect import describe_model  # noqa: E402

L = keras.layers
SEQUENCE_BODIES = {
    "linear_conv1d": lambda: [L.Conv1D(4, 3), L.GlobalAveragePooling1D()],
    "linear_simple_rnn": lambda: [L.SimpleRNN(4, activation=None)],
    "relu_conv1d": lambda: [L.Conv1D(4, 3, activation="relu"), L.GlobalAveragePooling1D()],
    "lstm": lambda: [L.LSTM(4)],
    "linear_conv1d_max_pooled": lambda: [L.Conv1D(4, 3), L.GlobalMaxPooling1D()],
}


def _sequence_case(body, seed=0):
    """120 windows (4 steps x 2 features: a nonlinear reference in well under a second); the target is
    |x| of the last step's first feature."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(120, 4, 2))
    y = 2.0 * np.abs(X[:, -1, 0]) + 0.05 * rng.normal(size=120)
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4, 2))] + SEQUENCE_BODIES[body]() + [L.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    return model, X, y


@pytest.mark.parametrize("body", ["linear_conv1d", "linear_simple_rnn"])
def test_fires_on_a_linear_sequence_model_on_nonlinear_data(body):
    model, X, y = _sequence_case(body)
    assert describe_model(model).is_linear is True
    ctx = build_context(model, X, y, optimizer="adam", learning_rate=0.01, epochs=20, batch_size=32)
    [f] = RULE.detect(ctx)
    # least squares on the flattened windows bounds every linear model of them from below
    assert f.evidence["least_squares_mse"] > 2 * f.evidence["nonlinear_mse"]


@pytest.mark.parametrize("body", ["relu_conv1d", "lstm", "linear_conv1d_max_pooled"])
def test_quiet_on_a_nonlinear_sequence_model(body):
    model, X, y = _sequence_case(body)
    assert describe_model(model).is_linear is False
    ctx = build_context(model, X, y, optimizer="adam", learning_rate=0.01, epochs=20, batch_size=32)
    assert ctx.reference.linear_mse > 2 * ctx.reference.nonlinear_mse  # the data alone would fire it
    assert RULE.detect(ctx) == []


def test_fan_in_of_convolution_and_recurrent_kernels_follows_keras():
    model, _, _ = _sequence_case("linear_conv1d")
    conv, _, dense = describe_model(model).layers
    assert (conv.class_name, conv.fan_in) == ("Conv1D", 3 * 2)  # kernel (3, 2, 4): width x input channels
    assert (dense.class_name, dense.fan_in) == ("Dense", 4)
    lstm = describe_model(_sequence_case("lstm")[0]).layers[0]
    assert (lstm.class_name, lstm.fan_in) == ("LSTM", 2)  # kernel (2, 16): the input features
