"""Small seeded problems that provoke (firing) or avoid (healthy) each rule before training.

Fixtures are data: a Scenario holds X, y, an optional model factory and the configuration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from fitdoctor.diagnosis import build_context


@dataclass
class Scenario:
    X: np.ndarray
    y: np.ndarray
    model: Callable[[], Any] | None = None
    config: dict = field(default_factory=dict)
    nonlinear: bool = False

    def context(self):
        model = self.model() if self.model else None
        cfg = {"optimizer": "adam", "learning_rate": 0.01, "epochs": 200, "batch_size": 32, **self.config}
        # the nonlinear reference (cross-validated boosting) is only needed by underfit-capacity
        return build_context(model, self.X.copy(), self.y.copy(), nonlinear_reference=self.nonlinear, **cfg)

    def with_(self, **kw) -> "Scenario":
        d = {"X": self.X, "y": self.y, "model": self.model, "config": dict(self.config), "nonlinear": self.nonlinear}
        cfg = kw.pop("config", {})
        d.update(kw)
        d["config"].update(cfg)
        return Scenario(**d)


def healthy_linear(n: int = 200, p: int = 3, seed: int = 0) -> Scenario:
    """Standardised inputs, standardised targets, a linear relation with noise: nothing to find."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, p))
    y = X @ rng.uniform(0.5, 1.0, p) + 0.3 * rng.standard_normal(n)
    y = (y - y.mean()) / y.std()
    return Scenario(X, y)


def dense_model(units=(), activation="relu", out_activation=None, n_inputs=3, seed=0, loss="mse", **dense_kw):
    def make():
        import keras

        keras.utils.set_random_seed(seed)
        layers = [keras.Input((n_inputs,))]
        layers += [keras.layers.Dense(u, activation=activation, name=f"hidden_{i}", **dense_kw)
                   for i, u in enumerate(units)]
        layers += [keras.layers.Dense(1, activation=out_activation, name="output", **({} if units else dense_kw))]
        m = keras.Sequential(layers)
        m.compile(optimizer=keras.optimizers.Adam(0.01), loss=loss)
        return m
    return make


def _custom_mse():
    """A Loss subclass whose ``call`` broadcasts y_true (n,) against y_pred (n, 1) (Keras aligns the ranks
    for a plain function given to compile, not for a Loss subclass's own call)."""
    import keras

    class CustomMSE(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    return CustomMSE()


def firing(name: str) -> Scenario:
    h = healthy_linear()
    X, y = h.X, h.y
    rng = np.random.default_rng(1)
    if name == "nan-inf-data":
        X = X.copy(); X[[3, 17], 1] = np.nan
        return h.with_(X=X)
    if name == "constant-feature":
        return h.with_(X=np.c_[X, np.full(len(X), 4.0)])
    if name == "duplicate-feature":
        return h.with_(X=np.c_[X, X[:, 0]])
    if name == "feature-scale":
        return h.with_(X=X * np.array([1000.0, 1.0, 0.5]))
    if name == "ill-conditioned":
        return h.with_(X=np.c_[X[:, :2], 2000 + 3 * X[:, 2]])
    if name == "target-scale":
        return h.with_(y=y * 1e6)
    if name == "skewed-target":
        return h.with_(y=np.exp(1.5 * y))
    if name == "outliers":
        y2 = y.copy(); y2[[5, 50, 150]] = 60.0
        return h.with_(y=y2)
    if name == "output-activation-range":
        return h.with_(y=30000 + 8000 * y, model=dense_model(out_activation="sigmoid"))
    if name == "wrong-loss":
        return h.with_(config={"loss": "binary_crossentropy"})
    if name == "shape-broadcast":
        return h.with_(model=dense_model(loss=_custom_mse()))
    if name == "underfit-capacity":
        x = rng.random((150, 1))
        return Scenario(x, 5 * np.sin(2 * np.pi * x[:, 0]) + 0.2 * rng.standard_normal(150), nonlinear=True)
    if name == "bad-init":
        import keras
        return h.with_(model=dense_model(units=(16,), kernel_initializer=keras.initializers.Constant(5.0)))
    if name == "over-regularization":
        import keras
        return h.with_(model=dense_model(kernel_regularizer=keras.regularizers.l2(10.0)))
    if name == "adam-large-target":
        return h.with_(y=50000 + 9000 * y, config={"optimizer": "adam", "learning_rate": 0.01, "epochs": 50})
    if name == "lr-too-high":
        return h.with_(config={"optimizer": "sgd", "learning_rate": 5.0})
    if name == "lr-too-low":
        return h.with_(config={"optimizer": "adam", "learning_rate": 1e-5, "epochs": 20})
    if name == "too-few-epochs":
        return h.with_(config={"optimizer": "sgd", "learning_rate": 0.1, "epochs": 2, "batch_size": 200})
    if name == "batch-size":
        return h.with_(config={"optimizer": "sgd", "learning_rate": 0.1, "epochs": 3, "batch_size": 500})
    if name == "dying-relu":
        import keras
        return h.with_(model=dense_model(units=(16,), bias_initializer=keras.initializers.Constant(-20.0)))
    if name == "predicts-constant":
        return h.with_(model=dense_model(out_activation="softmax"))
    raise KeyError(name)


#: rules that can be judged before training (the others are judged on a training run)
STATIC_RULES = [
    "nan-inf-data", "constant-feature", "duplicate-feature", "feature-scale", "ill-conditioned", "target-scale",
    "skewed-target", "outliers", "output-activation-range", "wrong-loss", "shape-broadcast", "underfit-capacity",
    "bad-init", "over-regularization", "adam-large-target", "lr-too-high", "lr-too-low", "too-few-epochs",
    "batch-size", "dying-relu", "predicts-constant",
]


def healthy(name: str) -> Scenario:
    """The healthy counterpart: same kind of model, nothing wrong."""
    h = healthy_linear()
    h.nonlinear = name == "underfit-capacity"
    if name in ("output-activation-range", "predicts-constant", "shape-broadcast", "over-regularization"):
        return h.with_(model=dense_model())
    if name in ("bad-init", "dying-relu"):
        return h.with_(model=dense_model(units=(16,)))
    return h


def run_rule(rule, scenario: Scenario):
    return rule.detect(scenario.context())


def _standardise(a):
    return (a - a.mean(axis=0)) / a.std(axis=0)


def fixed(name: str) -> Scenario | None:
    """The firing scenario after applying the rule's fix (None when the fix is not a data/config change)."""
    f = firing(name)
    X, y = f.X, f.y
    if name == "nan-inf-data":
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        return f.with_(X=X[ok], y=y[ok])
    if name == "constant-feature":
        return f.with_(X=X[:, :-1])
    if name == "duplicate-feature":
        return f.with_(X=X[:, :-1])
    if name in ("feature-scale", "ill-conditioned"):
        return f.with_(X=_standardise(X))
    if name in ("target-scale", "adam-large-target"):
        return f.with_(y=_standardise(y))
    if name in ("skewed-target", "outliers"):
        return f.with_(config={"loss": "huber"})
    if name == "output-activation-range":
        return f.with_(model=dense_model(), y=y)
    if name == "wrong-loss":
        return f.with_(config={"loss": "mse"})
    if name == "shape-broadcast":
        return f.with_(y=y.reshape(-1, 1))
    if name == "underfit-capacity":
        return f.with_(model=dense_model(units=(32, 32), n_inputs=1))
    if name == "bad-init":
        return healthy(name)
    if name == "over-regularization":
        import keras
        return f.with_(model=dense_model(kernel_regularizer=keras.regularizers.l2(1e-6)))
    if name == "lr-too-high":
        return f.with_(config={"learning_rate": 0.1})
    if name == "lr-too-low":
        return f.with_(config={"learning_rate": 1e-2})
    if name == "too-few-epochs":
        return f.with_(config={"epochs": 200})
    if name == "batch-size":
        return f.with_(config={"batch_size": 32})
    if name == "dying-relu":
        return healthy(name)
    if name == "predicts-constant":
        return f.with_(model=dense_model())
    return None
