"""Tiny seeded models and data for the conformance matrix (tests/test_conformance_matrix.py).

Importable by a fresh process (the subclassed model's class is registered, as a user's own model
class must be importable to load it); the losses are deliberately NOT registered.
"""
import numpy as np

import keras

#: 100 rows: the experiments hold out one seeded split of 20 rows (below 100 rows they run 5 folds, and with
#: 19 training rows a Conv1D body learns nothing a held-out comparison can tell from noise)
N_ROWS = 100
STEPS, FEATURES = 12, 3
MODELS = ("sequential", "two_inputs", "two_outputs", "subclassed")
BODIES = ("dense", "lstm", "conv1d", "bn_dropout_l2", "normalization")
LOSSES = ("mse", "huber", "function", "loss_subclass")
Y_SHAPES = ("n", "n1", "n3")
OPTIMIZERS = ("sgd_nesterov", "adamw_schedule")


def rmse_loss(y_true, y_pred):
    """A plain Python loss function (unregistered)."""
    return keras.ops.sqrt(keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1) + 1e-9)


class ScaledAbsoluteError(keras.losses.Loss):
    """An unregistered Loss subclass."""

    def call(self, y_true, y_pred):
        return 0.5 * keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)


def make_loss(kind):
    return {"mse": "mse", "huber": keras.losses.Huber(delta=2.0), "function": rmse_loss,
            "loss_subclass": ScaledAbsoluteError()}[kind]


def make_optimizer(kind):
    if kind == "sgd_nesterov":
        return keras.optimizers.SGD(learning_rate=0.01, momentum=0.9, nesterov=True)
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=20, decay_rate=0.9)
    return keras.optimizers.AdamW(learning_rate=schedule, clipnorm=1.0)


def make_data(body, y_shape, seed=0):
    """(X, y): sequences (n, 12, 3) for LSTM/Conv1D bodies, else a (n, 4) table with one large column.

    The sequence target is one every sequence body can learn: a mean over the time steps (what a Conv1D
    with global average pooling sees) plus the last step (what an LSTM remembers best).
    """
    rng = np.random.default_rng(seed)
    if body in ("lstm", "conv1d"):
        X = rng.normal(size=(N_ROWS, STEPS, FEATURES))
        base = 3.0 * (X[:, :, 0] - 0.5 * X[:, :, 1]).mean(axis=1) + 0.5 * X[:, -1, 2]
    else:
        X = rng.normal(size=(N_ROWS, 4)) * np.array([1.0, 2.0, 0.5, 30.0]) + np.array([0.0, 1.0, 0.0, 100.0])
        base = X[:, 0] + 0.5 * X[:, 1] - X[:, 2] + 0.02 * (X[:, 3] - 100.0)
    cols = np.c_[base, 0.5 * base + 0.2 * rng.normal(size=N_ROWS), -base + 0.1 * rng.normal(size=N_ROWS)]
    cols = cols + 0.05 * rng.normal(size=cols.shape)
    y = {"n": cols[:, 0], "n1": cols[:, :1], "n3": cols}[y_shape]
    return X, y


def _body(body, x, X):
    L = keras.layers
    if body == "dense":
        return L.Dense(6, activation="tanh")(x)
    if body == "lstm":
        return L.LSTM(4)(x)
    if body == "conv1d":
        return L.GlobalAveragePooling1D()(L.Conv1D(4, 3, activation="relu")(x))
    if body == "bn_dropout_l2":
        h = L.Dense(6, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3))(x)
        h = L.BatchNormalization()(h)
        return L.Dropout(0.1)(h)
    if body == "normalization":
        norm = L.Normalization()
        norm.adapt(X)
        return L.Dense(6, activation="tanh")(norm(x))
    raise ValueError(body)


@keras.saving.register_keras_serializable(package="fitdoctor_conformance")
class SubclassedRegressor(keras.Model):
    """A subclassed model with a Dense (or LSTM) body."""

    def __init__(self, units=6, outputs=1, recurrent=False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.n_outputs, self.recurrent = units, outputs, recurrent
        self.body = keras.layers.LSTM(units) if recurrent else keras.layers.Dense(units, activation="tanh")
        self.head = keras.layers.Dense(outputs)

    def call(self, x):
        return self.head(self.body(x))

    def get_config(self):
        return {**super().get_config(), "units": self.units, "outputs": self.n_outputs, "recurrent": self.recurrent}


def make_model(kind, body, X, k, *, loss, optimizer, seed=0):
    """The user's compiled model: ``kind`` x ``body`` with ``k`` outputs."""
    keras.utils.set_random_seed(seed)
    row = X.shape[1:]
    if kind == "subclassed":
        model = SubclassedRegressor(outputs=k, recurrent=body in ("lstm", "conv1d"))
        model(np.zeros((1,) + row, "float32"))
    elif kind == "sequential":
        inp = keras.Input(row)
        model = keras.Sequential([keras.Input(row)] + _sequential_layers(body, X) + [keras.layers.Dense(k)])
        del inp
    elif kind == "two_inputs":
        a, b = keras.Input(row, name="a"), keras.Input(row, name="b")
        h = keras.layers.Concatenate()([_body(body, a, X), _body("dense" if len(row) == 1 else body, b, X)])
        model = keras.Model([a, b], keras.layers.Dense(k)(h))
    elif kind == "two_outputs":
        x = keras.Input(row)
        h = _body(body, x, X)
        model = keras.Model(x, [keras.layers.Dense(k, name="out_a")(h), keras.layers.Dense(k, name="out_b")(h)])
    else:
        raise ValueError(kind)
    model.compile(optimizer=optimizer, loss=loss)
    return model


def _sequential_layers(body, X):
    L = keras.layers
    if body == "dense":
        return [L.Dense(6, activation="tanh")]
    if body == "lstm":
        return [L.LSTM(4)]
    if body == "conv1d":
        return [L.Conv1D(4, 3, activation="relu"), L.GlobalAveragePooling1D()]
    if body == "bn_dropout_l2":
        return [L.Dense(6, activation="relu", kernel_regularizer=keras.regularizers.L2(1e-3)),
                L.BatchNormalization(), L.Dropout(0.1)]
    if body == "normalization":
        norm = L.Normalization()
        norm.adapt(X)
        return [norm, L.Dense(6, activation="tanh")]
    raise ValueError(body)


def model_inputs(kind, X):
    """X as the model takes it (two inputs: the same rows twice)."""
    return [X, X] if kind == "two_inputs" else X


def model_targets(kind, y):
    return [y, y] if kind == "two_outputs" else y


def side_by_side(values, n):
    """A list of arrays (several inputs, outputs or predictions) as one (n, columns) float64 table."""
    parts = values if isinstance(values, (list, tuple)) else [values]
    return np.concatenate([np.asarray(p, dtype=np.float64).reshape(n, -1) for p in parts], axis=1)
