"""Train many configurations of one model: vectorised on JAX, sequential ``model.fit`` elsewhere.

Every run starts from the model's own current weights (clones or stateless copies; the model is
never modified) and sees the same data in the same way ``model.fit(X, y, epochs, batch_size,
shuffle=True)`` would: a fresh permutation every epoch, a last partial batch, the Keras
optimizers' own update rules and defaults, the epoch loss reported as the batch-size-weighted
mean of the batch losses.

The vectorised engine (the ``"vectorized"`` engine) groups runs that share optimizer class, loss,
batch size and epochs; inside a group the parameters, optimizer states (learning rate included)
and input/target standardisations are stacked and trained together with ``jax.vmap`` over
``model.stateless_call`` / ``optimizer.stateless_apply``, with ``jax.lax.scan`` over batches and
epochs, all under one ``jax.jit``. Runs in a group share the shuffling order (one permutation per
epoch from ``seed``), which makes them comparable. The last partial batch is padded to the batch
size and masked out of the loss, so its gradient is that of the mean over its real rows.

Where the engine cannot express the model (not the JAX backend, batch-dependent layers such as
BatchNormalization, a model that fails to trace) the runs are sequential ``model.fit`` calls on
clones, and the result says so (``engine="sequential"``, ``note``).
"""
from __future__ import annotations

import contextlib
import functools
import gc
import itertools
import json
from collections import OrderedDict
from dataclasses import dataclass, field, asdict
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..model.inspect import (architecture_signature, canonical_loss, check_target_varies, loss_display_name,
                             optimizer_settings)
from ..model.replica import clone_model, clone_with_state, copy_state, dummy_inputs, finalize_state

#: a run has diverged when its MSE is non-finite or ends above this multiple of its initial MSE
DIVERGENCE_FACTOR = 1e3
#: layers whose output for one row depends on the other rows of the batch (padding would change it)
_BATCH_DEPENDENT = {"BatchNormalization", "GroupNormalization", "UnitNormalization_batch"}
ENGINES = ("auto", "vectorized", "sequential")


@dataclass(frozen=True)
class RunSpec:
    """One training configuration."""

    optimizer: str = "adam"        # Keras optimizer name
    learning_rate: float = 1e-3
    loss: str = "mse"              # Keras loss name (mse, mae, huber, log_cosh, ...)
    huber_delta: float = 1.0       # in the units the model is trained in (standardised when scale_y)
    scale_x: bool = False          # standardise inputs (mean/std of the training X)
    scale_y: bool = False          # standardise targets; predictions are inverted back to original units
    epochs: int = 100
    batch_size: int = 32
    clipnorm: float | None = None
    momentum: float = 0.0          # SGD only
    #: the user's optimizer, fully (keras.optimizers.serialize as JSON): used while its class is ``optimizer``
    optimizer_config: str | None = None
    #: the user's loss object (Loss instance/subclass, function): used while its name is ``loss``
    loss_object: Any = None

    def label(self) -> str:
        parts = [self.optimizer, f"lr={self.learning_rate:g}"]
        if self.loss != "mse":
            parts.append(f"huber(delta={self.huber_delta:g})" if self.loss == "huber" and self.loss_object is None
                         else self.loss)
        settings = optimizer_settings(self.optimizer_config) if _config_class(self.optimizer_config) == self.optimizer else {}
        for k, v in settings.items():
            if k == "schedule":
                parts.append(f"schedule={v.get('class_name', 'schedule')}")
            elif k not in ("momentum", "clipnorm") or not getattr(self, k, None):
                parts.append(f"{k}={v:g}" if isinstance(v, float) else (k if v is True else f"{k}={v}"))
        if self.momentum:
            parts.append(f"momentum={self.momentum:g}")
        if self.clipnorm:
            parts.append(f"clipnorm={self.clipnorm:g}")
        if self.scale_x:
            parts.append("scale_x")
        if self.scale_y:
            parts.append("scale_y")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["optimizer_config"] = None if self.optimizer_config is None else json.loads(self.optimizer_config)
        d["loss_object"] = None if self.loss_object is None else loss_display_name(self.loss_object)
        return d

    @property
    def uses_user_loss(self) -> bool:
        return self.loss_object is not None and canonical_loss(self.loss_object) == canonical_loss(self.loss)

    @property
    def uses_user_optimizer(self) -> bool:
        return _config_class(self.optimizer_config) == self.optimizer

    @property
    def has_schedule(self) -> bool:
        if not self.uses_user_optimizer:
            return False
        return isinstance(json.loads(self.optimizer_config)["config"].get("learning_rate"), dict)


def _config_class(optimizer_config: str | None) -> str | None:
    if not optimizer_config:
        return None
    return str(json.loads(optimizer_config).get("class_name", "")).lower()


@dataclass
class RunResult:
    """What one run measured. Curves are per epoch; ``mse`` is always in the original target units."""

    spec: RunSpec
    loss: np.ndarray        # training loss as model.fit reports it (x y_std**2 for mse, x y_std for mae when scale_y)
    mse: np.ndarray         # MSE on the full training data after each epoch, original units
    final_mse: float
    best_mse: float
    diverged: bool
    weights: list[np.ndarray]   # final trainable weights, in model.trainable_variables order
    x_mean: np.ndarray | None = None
    x_std: np.ndarray | None = None
    y_mean: float | None = None
    y_std: float | None = None
    engine: str = "vectorized"
    initial_mse: float = float("nan")   # MSE of the starting weights, original units
    note: str = ""                      # why the sequential engine was used, when it was
    non_trainable_weights: list[np.ndarray] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.spec.label()


# --------------------------------------------------------------------------------------------
# helpers shared by both engines


def _keras():
    import keras

    return keras


def make_optimizer(spec: RunSpec):
    """A fresh Keras optimizer for ``spec``: the user's full optimizer config while the spec keeps its
    class (learning rate, clipnorm and SGD momentum from the spec on top; a learning-rate schedule
    is kept and starts at the spec's rate), else the named optimizer with its Keras defaults."""
    keras = _keras()
    if spec.uses_user_optimizer:
        ser = json.loads(spec.optimizer_config)
        cfg = dict(ser["config"])
        lr = cfg.get("learning_rate")
        if isinstance(lr, dict):
            lr = json.loads(json.dumps(lr))
            lr.setdefault("config", {})["initial_learning_rate"] = float(spec.learning_rate)
            cfg["learning_rate"] = lr
        else:
            cfg["learning_rate"] = float(spec.learning_rate)
        if spec.clipnorm and not cfg.get("global_clipnorm") and not cfg.get("clipvalue"):
            cfg["clipnorm"] = float(spec.clipnorm)
        if spec.momentum and spec.optimizer == "sgd":
            cfg["momentum"] = float(spec.momentum)
        try:
            return keras.optimizers.deserialize({**ser, "config": cfg})
        except Exception:  # an optimizer Keras cannot rebuild from its config: its class defaults below
            pass
    cfg: dict[str, Any] = {"learning_rate": float(spec.learning_rate)}
    if spec.clipnorm:
        cfg["clipnorm"] = float(spec.clipnorm)
    if spec.momentum and spec.optimizer == "sgd":
        cfg["momentum"] = float(spec.momentum)
    try:
        return keras.optimizers.get({"class_name": spec.optimizer, "config": cfg})
    except (ValueError, TypeError):
        raise InputError(f"unknown optimizer {spec.optimizer!r}: use a Keras optimizer name such as adam, sgd, rmsprop, adagrad "
                         f"(Received optimizer={spec.optimizer!r})") from None


def make_loss(spec: RunSpec) -> Callable:
    """The loss ``model.compile`` gets for ``spec``: the user's object as given (a ``Loss`` instance
    or subclass, a function) while the spec keeps its name, else the Keras loss of that name."""
    if spec.uses_user_loss:
        return spec.loss_object
    return _builtin_loss(spec)


def per_sample_loss(spec: RunSpec) -> Callable:
    """The per-sample loss ``f(y_true, y_pred) -> (batch, ...)`` the vectorised engine masks and averages.

    A ``Loss`` object contributes its unreduced ``call``; a plain function is used as it is (one
    that reduces over the batch itself cannot be masked: the engine then fails to trace and the
    runs go sequential, saying why).
    """
    keras = _keras()
    if spec.uses_user_loss:
        obj = spec.loss_object
        if isinstance(obj, keras.losses.Loss):
            def unreduced(y_true, y_pred):
                y_pred = keras.ops.convert_to_tensor(y_pred)
                y_true = keras.ops.cast(y_true, y_pred.dtype)
                return obj.call(y_true, y_pred)

            return unreduced
        return obj
    return _builtin_loss(spec)


def _builtin_loss(spec: RunSpec) -> Callable:
    keras = _keras()
    name = canonical_loss(spec.loss)
    if name == "huber":
        delta = float(spec.huber_delta)

        def huber(y_true, y_pred):
            return keras.losses.huber(y_true, y_pred, delta=delta)

        return huber
    try:
        fn = keras.losses.get(name)
    except (ValueError, TypeError):
        fn = None
    if fn is None or not callable(fn):
        raise InputError(f"unknown loss {spec.loss!r}: use a Keras loss name such as mse, mae, huber, log_cosh, "
                         f"or pass the loss function or Loss object itself (Received loss={spec.loss!r})")
    return fn


def _validate_specs(specs: Sequence[RunSpec]) -> None:
    checked = set()
    for s in specs:
        if not (np.isfinite(s.learning_rate) and s.learning_rate > 0):
            raise InputError(f"learning rates must be positive numbers (Received learning_rate={s.learning_rate!r})")
        if int(s.epochs) < 1 or int(s.batch_size) < 1:
            raise InputError(f"epochs and batch_size must be positive (Received epochs={s.epochs!r}, batch_size={s.batch_size!r})")
        kind = (s.optimizer, s.clipnorm, s.momentum, s.loss, s.huber_delta, s.optimizer_config, id(s.loss_object))
        if kind not in checked:  # building a Keras optimizer costs a millisecond: once per kind
            make_optimizer(s)
            make_loss(s)
            checked.add(kind)


@dataclass
class _Data:
    X: np.ndarray   # float32 (n, ...) raw: (n, d) tables, (n, steps, d) sequences, (n, h, w, c) images
    y: np.ndarray   # float32, shaped like the model output: (n,) or (n, k)
    x_mean: np.ndarray  # (d,) over every axis but the last (the features)
    x_std: np.ndarray
    y_mean: np.ndarray  # (k,) per target column
    y_std: np.ndarray

    def _y_stat(self, values: np.ndarray, scale: bool, neutral: float) -> np.ndarray:
        v = values if scale else np.full(len(values), neutral)
        return np.asarray(v if self.y.ndim >= 2 else v[0], dtype=np.float32)

    def norm(self, spec: RunSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        d = self.X.shape[-1]
        xm = self.x_mean if spec.scale_x else np.zeros(d, np.float32)
        xs = self.x_std if spec.scale_x else np.ones(d, np.float32)
        return xm, xs, self._y_stat(self.y_mean, spec.scale_y, 0.0), self._y_stat(self.y_std, spec.scale_y, 1.0)

    def transformed(self, spec: RunSpec) -> tuple[np.ndarray, np.ndarray]:
        xm, xs, ym, ys = self.norm(spec)
        return (self.X - xm) / xs, (self.y - ym) / ys

    @property
    def y_table(self) -> np.ndarray:
        """The targets as (n, k) float64, original units."""
        return self.y.reshape(len(self.y), -1).astype(np.float64)


def _prepare_data(base, X, y) -> _Data:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
    outputs = getattr(base, "outputs", None) or []
    out_shape = tuple(outputs[0].shape) if outputs else (None, y.shape[1])
    out_units = int(np.prod([d for d in out_shape[1:] if d is not None])) if len(out_shape) > 1 else 1
    if y.shape[1] != out_units and not (y.shape[1] == 1 and out_units == 1):
        raise InputError(f"the model predicts {out_units} value(s) per row but y has {y.shape[1]} column(s) "
                         f"(Received y.shape={y.shape})")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise InputError("X and y must be finite: drop the rows with NaN or infinite values first (Dataset.dropna())")
    if len(X) < 1:
        raise InputError("no rows to train on")
    check_target_varies(y)
    axes = tuple(range(X.ndim - 1))  # every axis but the features
    x_std = X.std(axis=axes)
    x_std[x_std == 0] = 1.0
    y_std = y.std(axis=0)
    y_std[y_std == 0] = 1.0
    y_model = y if len(out_shape) >= 2 else y[:, 0]
    if len(out_shape) > 2:  # (n, steps, k) outputs
        y_model = y.reshape((len(y),) + tuple(int(d) for d in out_shape[1:]))
    return _Data(
        X=X.astype(np.float32),
        y=y_model.astype(np.float32),
        x_mean=X.mean(axis=axes).astype(np.float32),
        x_std=x_std.astype(np.float32),
        y_mean=y.mean(axis=0),
        y_std=y_std,
    )


def _base_model(model, X: np.ndarray, seed: int):
    """A clone of ``model`` carrying its current weights (built on X when the model is not)."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    try:
        base = clone_model(model)
    except Exception as exc:  # subclassed models without get_config
        raise InputError(f"cannot clone the model ({type(exc).__name__}): give a Sequential or functional Keras model") from None
    if not base.built:
        if getattr(model, "inputs", None):
            base(dummy_inputs(model))
        else:
            base.build((None,) + tuple(np.shape(X)[1:]))
    if model.built:
        copy_state(model, base)  # every variable (adapted statistics included), then finalize_state
    return base


def _batch_dependent_layers(model) -> list[str]:
    found = []
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []) or [])
        if type(layer).__name__ in _BATCH_DEPENDENT:
            found.append(type(layer).__name__)
    return found


def vectorized_unsupported_reason(model) -> str | None:
    """Why the vectorised engine cannot train ``model`` (None when it can)."""
    keras = _keras()
    if keras.backend.backend() != "jax":
        return f"the vectorised engine needs the JAX backend (KERAS_BACKEND={keras.backend.backend()})"
    bad = _batch_dependent_layers(model)
    if bad:
        return f"{bad[0]} mixes rows within a batch, which the vectorised engine does not reproduce"
    return None


def _converted_loss(curve: np.ndarray, spec: RunSpec, y_std) -> np.ndarray:
    """The training loss in original units (several targets: scaled by the mean of their factors)."""
    curve = np.asarray(curve, dtype=np.float64)
    y_std = np.asarray(y_std, dtype=np.float64)
    if spec.scale_y and not spec.uses_user_loss:
        name = canonical_loss(spec.loss)
        if name == "mse":
            return curve * float(np.mean(y_std**2))
        if name == "mae":
            return curve * float(np.mean(y_std))
    return curve


def _plain(v: np.ndarray):
    """One target: a float (as before); several: an array."""
    v = np.asarray(v, dtype=np.float64)
    return float(v.reshape(-1)[0]) if v.size == 1 else v


def _result(spec, loss_curve, mse_curve, mse0, weights, ntw, data: _Data, engine, note="") -> RunResult:
    mse_curve = np.asarray(mse_curve, dtype=np.float64)
    finite = mse_curve[np.isfinite(mse_curve)]
    final = float(mse_curve[-1]) if len(mse_curve) else float("nan")
    diverged = bool(len(finite) < len(mse_curve) or (np.isfinite(mse0) and final > DIVERGENCE_FACTOR * max(mse0, 1e-300)))
    return RunResult(
        spec=spec,
        loss=_converted_loss(loss_curve, spec, data.y_std),
        mse=mse_curve,
        final_mse=final,
        best_mse=float(finite.min()) if len(finite) else float("inf"),
        diverged=diverged,
        weights=[np.asarray(w) for w in weights],
        x_mean=data.x_mean.astype(np.float64) if spec.scale_x else None,
        x_std=data.x_std.astype(np.float64) if spec.scale_x else None,
        y_mean=_plain(data.y_mean) if spec.scale_y else None,
        y_std=_plain(data.y_std) if spec.scale_y else None,
        engine=engine,
        initial_mse=float(mse0),
        note=note,
        non_trainable_weights=[np.asarray(w) for w in ntw],
    )


# --------------------------------------------------------------------------------------------
# sequential engine: model.fit on a clone per run


def _predict(model, X: np.ndarray, chunk: int = 65536) -> np.ndarray:
    keras = _keras()
    outs = [keras.ops.convert_to_numpy(model(X[i:i + chunk], training=False)) for i in range(0, len(X), chunk)]
    return np.concatenate(outs).reshape(len(X), -1).astype(np.float64)


def _mse_orig(model, Xs, y_orig, ym, ys) -> float:
    """MSE in original units, averaged over rows and target columns; ``y_orig`` is (n, k)."""
    with np.errstate(over="ignore", invalid="ignore"):
        pred = _predict(model, Xs) * np.reshape(ys, (1, -1)) + np.reshape(ym, (1, -1))
        return float(np.mean((pred - y_orig) ** 2))


def _run_sequential(base, data: _Data, spec: RunSpec, seed: int, note: str = "") -> RunResult:
    keras = _keras()
    Xs, ys_ = data.transformed(spec)
    _, _, ym, ysd = data.norm(spec)
    y_orig = data.y_table
    m = clone_with_state(base)
    loss_fn = make_loss(spec)
    m.compile(optimizer=make_optimizer(spec), loss=loss_fn)
    mse0 = _mse_orig(m, Xs, y_orig, ym, ysd)
    curve: list[float] = []

    class _EpochMSE(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append(_mse_orig(self.model, Xs, y_orig, ym, ysd))

    keras.utils.set_random_seed(seed)
    hist = m.fit(Xs, ys_, epochs=int(spec.epochs), batch_size=int(spec.batch_size), shuffle=True,
                 verbose=0, callbacks=[_EpochMSE()])
    weights = [keras.ops.convert_to_numpy(v.value) for v in m.trainable_variables]
    ntw = [keras.ops.convert_to_numpy(v.value) for v in m.non_trainable_variables]
    return _result(spec, hist.history["loss"], curve, mse0, weights, ntw, data, "sequential", note)


# --------------------------------------------------------------------------------------------
# vectorised engine


def _group_key(spec: RunSpec, fused: bool = False):
    """Runs with equal keys train in one vmapped program; fused runs of any of the fused optimizers share one."""
    user_loss = id(spec.loss_object) if spec.uses_user_loss else None
    shape = (canonical_loss(spec.loss), float(spec.huber_delta), user_loss, int(spec.batch_size), int(spec.epochs))
    if fused:
        return ("fused",) + shape
    # a schedule has no learning-rate variable to set per run: each rate is its own group
    return ((spec.optimizer,) + shape + (spec.clipnorm, float(spec.momentum),
            spec.optimizer_config if spec.uses_user_optimizer else None,
            float(spec.learning_rate) if spec.has_schedule else None))


def shuffled_batches(n: int, batch_size: int, n_epochs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch permutations cut into batches: indices (E, S, B) and a mask (E, S, B) of real rows.

    The last partial batch is padded with row 0 and a mask of 0.
    """
    rng = np.random.default_rng(seed)
    steps = -(-n // batch_size)
    idx = np.zeros((n_epochs, steps * batch_size), np.int32)
    mask = np.zeros((n_epochs, steps * batch_size), np.float32)
    for e in range(n_epochs):
        idx[e, :n] = rng.permutation(n)
        mask[e, :n] = 1.0
    return idx.reshape(n_epochs, steps, batch_size), mask.reshape(n_epochs, steps, batch_size)


class _Stepper:
    """Stateless pieces of one training step for a model, a Keras optimizer (template) and a loss."""

    fused = False

    def __init__(self, base, optimizer, loss_fn):
        self.base = base
        self.opt = optimizer
        self.loss_fn = loss_fn
        optimizer.build(base.trainable_variables)
        self.lr_pos = [i for i, v in enumerate(optimizer.variables)
                       if v is getattr(optimizer, "_learning_rate", None) or v.name == "learning_rate"]
        schedule = isinstance(getattr(optimizer, "_learning_rate", None),
                              _keras().optimizers.schedules.LearningRateSchedule)
        if schedule and not self.lr_pos:
            self.lr_pos = None  # the schedule computes the rate from the iteration count (one rate per group)
        elif len(self.lr_pos) != 1:
            raise RuntimeError("cannot locate the optimizer's learning-rate variable")
        else:
            self.lr_pos = self.lr_pos[0]

    def model_state(self):
        tv = [v.value for v in self.base.trainable_variables]
        ntv = [v.value for v in self.base.non_trainable_variables]
        return tv, ntv

    def initial_state(self):
        tv, ntv = self.model_state()
        return tv, ntv, [v.value for v in self.opt.variables]

    def stacked_optimizer_states(self, specs: Sequence[RunSpec]):
        """The optimizer state of every run, stacked on a first axis (learning rates set by ``with_lr``)."""
        return _stack([v.value for v in self.opt.variables], len(specs))

    def with_lr(self, ov, lr):
        import jax.numpy as jnp

        ov = list(ov)
        if self.lr_pos is None:
            return ov
        ov[self.lr_pos] = jnp.asarray(lr, dtype=ov[self.lr_pos].dtype)
        return ov

    def update(self, ov, grads, tv):
        return self.opt.stateless_apply(ov, grads, tv)

    def step(self, tv, ntv, ov, xb, yb, mb):
        """One optimizer step on a (masked) batch: returns new state and the batch loss."""
        import jax
        import jax.numpy as jnp

        def objective(tv_):
            pred, ntv2, losses = self.base.stateless_call(tv_, ntv, xb, training=True, return_losses=True)
            per = jnp.reshape(self.loss_fn(yb, pred), (xb.shape[0], -1)).mean(axis=1)
            per = jnp.where(mb > 0, per, 0.0)
            value = jnp.sum(per) / jnp.maximum(jnp.sum(mb), 1.0)
            for extra in losses:
                value = value + extra
            return value, ntv2

        (value, ntv2), grads = jax.value_and_grad(objective, has_aux=True)(tv)
        tv2, ov2 = self.update(ov, grads, tv)
        return tv2, ntv2, ov2, value

    def full_mse(self, tv, ntv, X, y, xm, xs, ym, ys):
        """MSE on all rows, in original target units (inference mode)."""
        import jax.numpy as jnp

        pred, _ = self.base.stateless_call(tv, ntv, (X - xm) / xs, training=False)
        pred = jnp.reshape(pred, y.shape) * ys + ym
        return jnp.mean((pred - y) ** 2)


# One update rule that reproduces Keras's SGD (with momentum), Adam, RMSprop and Adagrad, so that
# runs of different optimizers share ONE compiled program (compilation, not training, is what a
# grid of small models costs). Per run and per weight tensor, with t = 1, 2, ...:
#
#     g     <- g * clip / max(||g||, clip)                 when clipnorm is set (Keras clip_by_norm)
#     m     <- m + (g - m) * (1 - b1)                        (b1 = 0: m = g)
#     v     <- keep * v + add * g**2                         (v starts at v0)
#     alpha  = lr * scale * (sqrt(1 - b2**t) / (1 - b1**t) if bias else 1)
#     w     <- w - alpha * m / (sqrt(v + eps_in) + eps_out)
#
#   Adam      b1=beta_1  keep=beta_2 add=1-beta_2  eps_in=0        eps_out=epsilon bias  v0=0
#   RMSprop   b1=0       keep=rho    add=1-rho     eps_in=epsilon  eps_out=0             v0=0
#   Adagrad   b1=0       keep=1      add=1         eps_in=epsilon  eps_out=0             v0=initial_accumulator_value
#   SGD       b1=momentum keep=add=0               eps_in=1        eps_out=0             scale=1/(1-momentum)
#
# (Keras's SGD momentum buffer is m_k = momentum * m_(k-1) - lr * g_k, which for a constant learning
# rate equals -lr / (1 - momentum) times the moving average above.) Anything else (Nesterov,
# AMSGrad, centred RMSprop, weight decay, EMA, other optimizers) uses the Keras optimizer itself.
_FUSED_KEYS = ("lr", "b1", "keep", "add", "eps_in", "eps_out", "bias", "scale", "clip")


def fused_coefficients(spec: RunSpec) -> dict[str, float] | None:
    """The fused update rule's coefficients for ``spec`` (None when the rule cannot express it)."""
    config = spec.optimizer_config if spec.uses_user_optimizer else None
    c = _fused_coefficients(spec.optimizer, spec.clipnorm, float(spec.momentum), config)
    return None if c is None else {**c, "lr": float(spec.learning_rate)}


@functools.lru_cache(maxsize=64)
def _fused_coefficients(optimizer: str, clipnorm: float | None, momentum: float,
                        optimizer_config: str | None = None) -> dict[str, float] | None:
    """Coefficients of the fused rule, or None when the optimizer has any setting the rule cannot
    express (then Keras's own ``stateless_apply`` runs it)."""
    opt = make_optimizer(RunSpec(optimizer=optimizer, clipnorm=clipnorm, momentum=momentum,
                                 optimizer_config=optimizer_config))
    cfg = opt.get_config()
    if any(cfg.get(k) for k in ("clipvalue", "global_clipnorm", "weight_decay", "use_ema",
                                "gradient_accumulation_steps", "loss_scale_factor")):
        return None
    if isinstance(cfg.get("learning_rate"), dict) or not isinstance(cfg.get("learning_rate"), (int, float)):
        return None  # a learning-rate schedule
    kind = type(opt).__name__
    c = {"lr": float(cfg["learning_rate"]), "b1": 0.0, "keep": 0.0, "add": 0.0, "eps_in": 0.0, "eps_out": 0.0,
         "bias": 0.0, "scale": 1.0, "clip": float(cfg.get("clipnorm") or 0.0), "v0": 0.0}
    if kind == "Adam" and not cfg.get("amsgrad"):
        c.update(b1=cfg["beta_1"], keep=cfg["beta_2"], add=1.0 - cfg["beta_2"], eps_out=cfg["epsilon"], bias=1.0)
    elif kind == "RMSprop" and not cfg.get("centered") and not cfg.get("momentum"):
        c.update(keep=cfg["rho"], add=1.0 - cfg["rho"], eps_in=cfg["epsilon"])
    elif kind == "Adagrad":
        c.update(keep=1.0, add=1.0, eps_in=cfg["epsilon"], v0=cfg["initial_accumulator_value"])
    elif kind == "SGD" and not cfg.get("nesterov") and 0.0 <= cfg.get("momentum", 0.0) < 1.0:
        c.update(b1=float(cfg.get("momentum") or 0.0), eps_in=1.0, scale=1.0 / (1.0 - float(cfg.get("momentum") or 0.0)))
    else:
        return None
    return {k: float(v) for k, v in c.items()}


class _FusedStepper(_Stepper):
    """A step with the fused update rule: the optimizer is data (per-run coefficients), not code."""

    fused = True

    def __init__(self, base, loss_fn):
        self.base = base
        self.loss_fn = loss_fn

    def _state(self, coef: dict[str, float]):
        tv, _ = self.model_state()
        m = [np.zeros(np.shape(w), np.float32) for w in tv]
        v = [np.full(np.shape(w), coef["v0"], np.float32) for w in tv]
        return {"m": m, "v": v, "t": np.float32(0.0), "c": {k: np.float32(coef[k]) for k in _FUSED_KEYS}}

    def initial_state(self, spec: RunSpec | None = None):
        tv, ntv = self.model_state()
        return tv, ntv, self._state(fused_coefficients(spec or RunSpec()))

    def stacked_optimizer_states(self, specs: Sequence[RunSpec]):
        states = [self._state(fused_coefficients(s)) for s in specs]
        import jax

        return jax.tree_util.tree_map(lambda *a: np.stack(a), *states)

    def with_lr(self, ov, lr):
        c = dict(ov["c"])
        c["lr"] = lr
        return {**ov, "c": c}

    def update(self, ov, grads, tv):
        import jax.numpy as jnp

        c, t = ov["c"], ov["t"] + 1.0
        alpha = c["lr"] * c["scale"] * jnp.where(c["bias"] > 0, jnp.sqrt(1.0 - c["keep"] ** t) / (1.0 - c["b1"] ** t), 1.0)
        new_w, new_m, new_v = [], [], []
        for w, g, m, v in zip(tv, grads, ov["m"], ov["v"]):
            g = g.astype(w.dtype)
            norm = jnp.sqrt(jnp.sum(g * g))
            g = jnp.where(c["clip"] > 0, g * c["clip"] / jnp.maximum(norm, c["clip"]), g)
            m = m + (g - m) * (1.0 - c["b1"])
            v = c["keep"] * v + c["add"] * g * g
            new_w.append(w - alpha * m / (jnp.sqrt(v + c["eps_in"]) + c["eps_out"]))
            new_m.append(m)
            new_v.append(v)
        return new_w, {"m": new_m, "v": new_v, "t": t, "c": c}


def _fusable(base, spec: RunSpec) -> bool:
    if fused_coefficients(spec) is None:
        return False
    return all(str(v.dtype) == "float32" for v in base.trainable_variables)


def _make_stepper(base, spec: RunSpec, fused: bool) -> _Stepper:
    if fused:
        return _FusedStepper(base, per_sample_loss(spec))
    return _Stepper(base, make_optimizer(spec), per_sample_loss(spec))


def _stack(values: list, n: int) -> list[np.ndarray]:
    """``n`` copies of each array, stacked on a new first axis (numpy: no device program)."""
    return [np.ascontiguousarray(np.broadcast_to(np.asarray(v), (n,) + tuple(np.shape(v)))) for v in values]


#: XLA options for the engine's programs: they run for milliseconds, so compile time dominates.
#: Measured on this CPU for the 16-run benchmark grid: compiling takes 0.32 s with XLA's defaults,
#: 0.23 s at backend optimisation level 0, and 0.08 s when XLA's CPU fusion emitters are also
#: turned off (the older elemental emitters generate less LLVM IR); the programs' run time is
#: unchanged at this size. Tried in order; an XLA build that rejects an option gets the next set.
_COMPILER_OPTIONS = (
    {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False},
    {"xla_backend_optimization_level": 0},
    {},
)
#: programs with more arithmetic than this (runs x rows passed forward, in training and in
#: the per-epoch evaluations, x parameters) compile at XLA's default optimisation level instead
#: (fusion emitters still off, which halves compilation): level 0 makes the generated code 4-10x
#: slower per step. Measured on this CPU: 16 runs of a 2-32-32-1 MLP on 10,000 rows for 10 epochs
#: (work 4e9) ran 1.93 s at level 0, 0.5 s optimised; 8 runs of a 20-64-64-1 MLP on 1,000 rows for
#: 20 epochs (work 2e9) 1.1-1.4 s vs 0.17 s, compiling 1.9-2.1 s instead of 1.5-2.5 s (a busy machine);
#: the 16-run income grid (work 5e5) runs equally fast either way and compiles fastest at level 0.
OPTIMISE_ABOVE_WORK = 1e8
_OPTIMISED_COMPILER_OPTIONS = ({"xla_cpu_use_fusion_emitters": False}, {})


def _group_program(base, data: _Data, specs: list[RunSpec], seed: int, fused: bool = False):
    """The vmapped training function of one group, its arguments, and how to turn outputs into results."""
    import jax
    import jax.numpy as jnp

    spec0 = specs[0]
    n, R = len(data.X), len(specs)
    E, B = int(spec0.epochs), int(spec0.batch_size)
    stepper = _make_stepper(base, spec0, fused)
    tv0, ntv0 = stepper.model_state()
    norms = [data.norm(s) for s in specs]
    xm = np.stack([a[0] for a in norms])
    xs = np.stack([a[1] for a in norms])
    ym = np.array([a[2] for a in norms], np.float32)
    ys = np.array([a[3] for a in norms], np.float32)
    lrs = np.array([s.learning_rate for s in specs], np.float32)
    idx, mask = shuffled_batches(n, B, E, seed)
    counts = mask.sum(axis=2)  # (E, S) real rows per batch

    # vmap the step and the evaluation (not the scans): tracing stays cheap
    def step_one(tv, ntv, ov, xm, xs, ym, ys, X, Y, ib, mb):
        return stepper.step(tv, ntv, ov, (X[ib] - xm) / xs, (Y[ib] - ym) / ys, mb)

    def mse_one(tv, ntv, xm, xs, ym, ys, X, Y):
        return stepper.full_mse(tv, ntv, X, Y, xm, xs, ym, ys)

    step_all = jax.vmap(step_one, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None, None, None))
    mse_all = jax.vmap(mse_one, in_axes=(0, 0, 0, 0, 0, 0, None, None))

    def fn(tv, ntv, ov, lr, xm, xs, ym, ys, X, Y, idx, mask, counts):
        ov = jax.vmap(stepper.with_lr)(ov, lr)

        def batch(carry, inp):
            tv, ntv, ov = carry
            ib, mb = inp
            tv, ntv, ov, values = step_all(tv, ntv, ov, xm, xs, ym, ys, X, Y, ib, mb)
            return (tv, ntv, ov), values

        def epoch(carry, inp):
            ib, mb, cnt = inp
            carry, values = jax.lax.scan(batch, carry, (ib, mb))  # values: (S, R)
            ep_loss = jnp.sum(values * cnt[:, None], axis=0) / jnp.sum(cnt)
            return carry, (ep_loss, mse_all(carry[0], carry[1], xm, xs, ym, ys, X, Y))

        mse0 = mse_all(tv, ntv, xm, xs, ym, ys, X, Y)
        (tv, ntv, ov), (losses, mses) = jax.lax.scan(epoch, (tv, ntv, ov), (idx, mask, counts))
        return tv, ntv, losses.T, mses.T, mse0

    args = (_stack(tv0, R), _stack(ntv0, R), stepper.stacked_optimizer_states(specs), lrs, xm, xs, ym, ys,
            data.X, data.y, idx, mask, counts)

    def finalize(out) -> list[RunResult]:
        tv, ntv, losses, mses, mse0 = out
        tv = [np.asarray(v) for v in tv]
        ntv = [np.asarray(v) for v in ntv]
        losses, mses, mse0 = np.asarray(losses), np.asarray(mses), np.asarray(mse0)
        return [_result(s, losses[r], mses[r], float(mse0[r]), [v[r] for v in tv], [v[r] for v in ntv], data,
                        "vectorized") for r, s in enumerate(specs)]

    return fn, args, finalize


#: compiled programs of this process, keyed by everything that shapes them (see _program_key)
_PROGRAM_CACHE: "OrderedDict[Any, Any]" = OrderedDict()
_PROGRAM_CACHE_SIZE = 32


def _program_key(kind: str, base, groups: list[list[RunSpec]], args, fused: Sequence[bool] | None = None) -> Any:
    import jax

    try:
        signature = architecture_signature(base)
    except Exception:  # a model that cannot describe itself: compile every time
        return None
    leaves = jax.tree_util.tree_leaves(args)
    fused = list(fused) if fused is not None else [False] * len(groups)
    return (kind, signature, tuple((_group_key(g[0], f), len(g)) for g, f in zip(groups, fused)),
            tuple((tuple(np.shape(a)), str(getattr(a, "dtype", type(a)))) for a in leaves))


@contextlib.contextmanager
def _no_gc():
    """Pause Python's cyclic garbage collector while tracing: tracing allocates many small objects,
    and with TensorFlow and Keras loaded each full collection walks a large heap (measured: a third
    of a first compilation's time). Nothing is leaked: collection resumes afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compile(lowered, optimise: bool = False):
    option_sets = _OPTIMISED_COMPILER_OPTIONS if optimise else _COMPILER_OPTIONS
    for i, options in enumerate(option_sets):
        try:
            return lowered.compile(compiler_options=options) if options else lowered.compile()
        except Exception:  # an XLA build without one of the options: try the next set
            if i == len(option_sets) - 1:
                raise


def _training_work(base, data: _Data, groups: list[list[RunSpec]]) -> float:
    """Runs x rows passed forward (padded training batches + per-epoch evaluation) x parameters."""
    n_params = sum(int(np.prod(v.shape)) for v in base.trainable_variables)
    n = len(data.X)
    return float(sum(len(g) * int(g[0].epochs) * (-(-n // int(g[0].batch_size)) * int(g[0].batch_size) + n)
                     for g in groups) * n_params)


def _compile_and_run(fn, args, key=None, optimise: bool = False):
    """jit, lower and compile ``fn`` for ``args`` (reusing a program compiled for the same key), run it."""
    import jax

    compiled = _PROGRAM_CACHE.get(key) if key is not None else None
    if compiled is None:
        with _no_gc():
            lowered = jax.jit(fn).lower(*args)
            compiled = _compile(lowered, optimise)
        if key is not None:
            _PROGRAM_CACHE[key] = compiled
            while len(_PROGRAM_CACHE) > _PROGRAM_CACHE_SIZE:
                _PROGRAM_CACHE.popitem(last=False)
    else:
        _PROGRAM_CACHE.move_to_end(key)
    return compiled(*args)


def _run_vectorized_groups(base, data: _Data, groups: list[list[RunSpec]], seed: int,
                           fused: Sequence[bool]) -> list[list[RunResult]]:
    """Train all groups in ONE compiled program (one XLA compilation instead of one per group)."""
    programs = [_group_program(base, data, specs, seed, f) for specs, f in zip(groups, fused)]
    fns = [p[0] for p in programs]

    def all_groups(all_args):
        return [f(*a) for f, a in zip(fns, all_args)]

    all_args = ([p[1] for p in programs],)
    outs = _compile_and_run(all_groups, all_args, key=_program_key("train", base, groups, all_args, fused),
                            optimise=_training_work(base, data, groups) > OPTIMISE_ABOVE_WORK)
    return [p[2](o) for p, o in zip(programs, outs)]


# --------------------------------------------------------------------------------------------


def train_runs(model, X, y, specs: list[RunSpec], *, seed: int = 0, engine: str = "auto",
               callback: Callable[[int, int], None] | None = None, executor=None) -> list[RunResult]:
    """Train ``model`` once per spec, from its current weights; return one RunResult per spec, in order.

    ``engine``: ``"auto"`` (vectorised where possible, else sequential), ``"vectorized"`` (raise
    when impossible) or ``"sequential"`` (``model.fit`` on a clone per run).
    ``executor``: where the runs train (:mod:`fitdoctor.experiments.executors`): ``"auto"``/None
    (this process on JAX, a JAX worker process on other backends), ``"inprocess"``, ``"worker"``,
    ``"ray"`` or an ``Executor``.
    ``callback(done, total)`` is called as runs finish. The model is never modified.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)} (Received engine={engine!r})")
    specs = list(specs)
    if not specs:
        return []
    _validate_specs(specs)
    from .executors import get_executor  # the executor seam

    runner = get_executor(executor, engine=engine)
    if runner is not None:
        return runner.run(model, X, y, specs, seed=seed, engine=engine, callback=callback)
    base = _base_model(model, np.asarray(X), seed)
    data = _prepare_data(base, X, y)
    total = len(specs)
    results: list[RunResult | None] = [None] * total
    done = 0

    reason = vectorized_unsupported_reason(base) if engine != "sequential" else "sequential engine requested"
    if engine == "vectorized" and reason:
        raise InputError(f"the vectorised engine cannot train this model: {reason}")

    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(_group_key(s, reason is None and _fusable(base, s)), []).append(i)
    members = list(groups.values())
    fused = {id(m): key[0] == "fused" for key, m in groups.items()}

    def store(idx_list, group_results):
        nonlocal done
        for i, r in zip(idx_list, group_results):
            results[i] = r
        done += len(idx_list)
        if callback is not None:
            callback(done, total)

    pending = members
    notes = {id(m): reason or "" for m in members}
    if reason is None:
        try:
            outs = _run_vectorized_groups(base, data, [[specs[i] for i in m] for m in members], seed,
                                          [fused[id(m)] for m in members])
            for m, out in zip(members, outs):
                store(m, out)
            pending = []
        except InputError:
            raise
        except Exception:  # find the group(s) the engine cannot express, train the others vectorised
            pending = []
            for m in members:
                try:
                    store(m, _run_vectorized_groups(base, data, [[specs[i] for i in m]], seed, [fused[id(m)]])[0])
                except InputError:
                    raise
                except Exception as exc:
                    if engine == "vectorized":
                        raise
                    msg = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
                    notes[id(m)] = f"vectorised engine failed ({type(exc).__name__}: {msg})"
                    pending.append(m)
    for m in pending:
        for i in m:
            results[i] = _run_sequential(base, data, specs[i], seed, notes[id(m)])
            done += 1
            if callback is not None:
                callback(done, total)
    return results  # type: ignore[return-value]


#: a replica is trusted when its first-epoch training loss agrees with a plain ``model.fit`` of a copy
#: over the same batches within this relative tolerance (float32 sums in another order differ ~1e-6)
REPLICA_TOLERANCE = 1e-3
#: layers that draw random numbers in training: the engine and model.fit draw different masks
_RANDOM_LAYERS = {"Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
                  "GaussianDropout", "AlphaDropout", "RandomFlip", "RandomRotation", "RandomZoom",
                  "RandomTranslation", "RandomContrast", "RandomCrop"}
_PLAIN_LAYERS = {"InputLayer", "Dense", "Activation"}


def replica_check_needed(model) -> bool:
    """True when the model holds more than Dense layers (state a copy could lose, other layer kinds)."""
    from ..model.replica import walk_layers

    kinds = {type(l).__name__ for l in walk_layers(model) if not hasattr(l, "layers")}
    return bool(kinds - _PLAIN_LAYERS) or bool(getattr(model, "non_trainable_weights", []))


def verify_replica(model, X, y, result: RunResult, *, seed: int = 0) -> tuple[bool | None, str]:
    """Check a vectorised run against a plain ``model.fit`` of a faithful copy of ``model``.

    The copy trains one epoch with ``result.spec`` over the same batches in the same order
    (``shuffle=False`` on the engine's first permutation); its epoch loss must agree with the
    run's first-epoch loss within :data:`REPLICA_TOLERANCE`. Returns (agrees, a sentence saying
    what was compared); ``agrees`` is None when the check does not apply.
    """
    from ..model.replica import walk_layers

    if result.engine != "vectorized" or not len(result.loss):
        return None, "replica check not applicable (runs trained with model.fit)"
    random_layers = sorted({type(l).__name__ for l in walk_layers(model)} & _RANDOM_LAYERS)
    if random_layers:
        return None, f"replica check skipped: {random_layers[0]} draws different random masks in the engine and in model.fit"
    keras = _keras()
    spec = result.spec
    base = _base_model(model, np.asarray(X), seed)
    data = _prepare_data(base, X, y)
    idx, mask = shuffled_batches(len(data.X), int(spec.batch_size), 1, seed)
    order = idx[0].reshape(-1)[mask[0].reshape(-1) > 0]
    Xs, ys = data.transformed(spec)
    copy = clone_with_state(base)
    copy.compile(optimizer=make_optimizer(spec), loss=make_loss(spec))
    hist = copy.fit(Xs[order], ys[order], epochs=1, batch_size=int(spec.batch_size), shuffle=False, verbose=0)
    fit_loss = float(_converted_loss(hist.history["loss"], spec, data.y_std)[0])
    run_loss = float(result.loss[0])
    if not (np.isfinite(fit_loss) and np.isfinite(run_loss)):
        agrees = np.isfinite(fit_loss) == np.isfinite(run_loss)
    else:
        agrees = abs(fit_loss - run_loss) <= REPLICA_TOLERANCE * max(abs(fit_loss), abs(run_loss), 1e-30)
    return bool(agrees), (f"replica check: first-epoch loss {run_loss:.6g} (engine) vs {fit_loss:.6g} (model.fit of a "
                          f"copy, same batches); tolerance {REPLICA_TOLERANCE:g} relative")


def build_trained_model(model, result: RunResult):
    """A plain Keras model with ``result``'s weights: raw inputs in, original target units out.

    Standardisation is expressed with standard layers (``Normalization`` in front when the run
    scaled X, ``Normalization(invert=True)`` behind when it scaled y), so ``keras.saving.load_model``
    loads the saved model without fitdoctor. The model is not compiled.
    """
    keras = _keras()
    inner = clone_model(model)
    if not inner.built:
        n_in = len(result.x_mean) if result.x_mean is not None else None
        if n_in is None:
            raise InputError("build the model (give it an Input) before build_trained_model")
        inner.build((None, n_in))
    if model.built:
        copy_state(model, inner)
    if len(result.weights) != len(inner.trainable_variables):
        raise InputError(f"the result holds {len(result.weights)} weight arrays but the model has "
                         f"{len(inner.trainable_variables)} trainable variables: pass the model the run was trained from")
    for var, w in zip(inner.trainable_variables, result.weights):
        var.assign(np.asarray(w))
    if result.non_trainable_weights and len(result.non_trainable_weights) == len(inner.non_trainable_variables):
        for var, w in zip(inner.non_trainable_variables, result.non_trainable_weights):
            var.assign(np.asarray(w))
    finalize_state(inner)  # adapted preprocessing layers recompute what their call uses
    if not result.spec.scale_x and not result.spec.scale_y:
        return inner
    if getattr(inner, "inputs", None):
        in_shape = tuple(inner.inputs[0].shape[1:])
    else:
        in_shape = (len(result.x_mean),)
    inp = keras.Input(in_shape, name="raw_inputs")
    h = inp
    if result.spec.scale_x:
        h = keras.layers.Normalization(mean=np.asarray(result.x_mean, np.float32),
                                       variance=np.asarray(result.x_std, np.float32) ** 2, name="scale_x")(h)
    out = inner(h)
    if result.spec.scale_y:
        out = keras.layers.Normalization(mean=np.atleast_1d(np.asarray(result.y_mean, np.float32)),
                                         variance=np.atleast_1d(np.asarray(result.y_std, np.float32)) ** 2,
                                         invert=True, name="unscale_y")(out)
    return keras.Model(inp, out, name=f"{inner.name}_trained")


def grid_specs(grid: dict[str, list], base: RunSpec) -> list[RunSpec]:
    """The product of the grid's lists, each applied on top of ``base``."""
    from dataclasses import replace

    keys = list(grid)
    return [replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]


# --------------------------------------------------------------------------------------------
# learning-rate sweeps (used by find_lr): one optimizer step per learning rate


def without_schedule(spec: RunSpec) -> RunSpec:
    """``spec`` with a constant learning rate in place of the user's schedule (all else kept)."""
    from dataclasses import replace

    if not spec.has_schedule:
        return spec
    ser = json.loads(spec.optimizer_config)
    ser["config"]["learning_rate"] = float(spec.learning_rate)
    return replace(spec, optimizer_config=json.dumps(ser, sort_keys=True))


def sweep_batches(n: int, batch_size: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` consecutive batches of shuffled epochs, as (T, B) indices and mask."""
    per_epoch = -(-n // batch_size)
    idx, mask = shuffled_batches(n, batch_size, -(-steps // per_epoch), seed)
    return idx.reshape(-1, batch_size)[:steps], mask.reshape(-1, batch_size)[:steps]


def sweep_losses(model, X, y, spec: RunSpec, lrs: np.ndarray, *, seeds: Sequence[int] = (0,),
                 engine: str = "auto") -> tuple[np.ndarray, str]:
    """Batch losses of a learning-rate sweep: step t uses ``lrs[t]`` on the t-th batch.

    One sweep per seed (the seed sets the batch order), all from the model's current weights; the
    loss of a step is measured in the forward pass before its update (in the units trained in).
    Returns (losses of shape (len(seeds), len(lrs)), engine used).
    """
    _validate_specs([spec])
    spec = without_schedule(spec)  # the sweep sets the rate of every step itself
    lrs = np.asarray(lrs, dtype=np.float32)
    base = _base_model(model, np.asarray(X), seeds[0])
    data = _prepare_data(base, X, y)
    n, B, T = len(data.X), int(spec.batch_size), len(lrs)
    batches = [sweep_batches(n, B, T, s) for s in seeds]
    reason = vectorized_unsupported_reason(base) if engine != "sequential" else "sequential engine requested"
    if reason is None:
        try:
            return _sweep_vectorized(base, data, spec, lrs, batches), "vectorized"
        except InputError:
            raise
        except Exception:
            if engine == "vectorized":
                raise
    elif engine == "vectorized":
        raise InputError(f"the vectorised engine cannot train this model: {reason}")
    return np.stack([_sweep_sequential(base, data, spec, lrs, b) for b in batches]), "sequential"


def _sweep_vectorized(base, data: _Data, spec: RunSpec, lrs, batches) -> np.ndarray:
    import jax

    stepper = _Stepper(base, make_optimizer(spec), per_sample_loss(spec))
    tv0, ntv0, ov0 = stepper.initial_state()
    xm, xs, ym, ys = data.norm(spec)
    idx = np.stack([b[0] for b in batches])
    mask = np.stack([b[1] for b in batches])
    R = len(batches)

    def sweep_one(tv, ntv, ov, idx, mask, lrs, X, Y):
        def step(carry, inp):
            tv, ntv, ov = carry
            ib, mb, lr = inp
            ov = stepper.with_lr(ov, lr)
            tv, ntv, ov, value = stepper.step(tv, ntv, ov, (X[ib] - xm) / xs, (Y[ib] - ym) / ys, mb)
            return (tv, ntv, ov), value

        _, values = jax.lax.scan(step, (tv, ntv, ov), (idx, mask, lrs))
        return values

    fn = jax.vmap(sweep_one, in_axes=(0, 0, 0, 0, 0, None, None, None))
    out = _compile_and_run(fn, (_stack(tv0, R), _stack(ntv0, R), _stack(ov0, R), idx, mask, lrs, data.X, data.y))
    return np.asarray(out, dtype=np.float64)


def _sweep_sequential(base, data: _Data, spec: RunSpec, lrs, batch) -> np.ndarray:
    keras = _keras()
    idx, mask = batch
    Xs, ys_ = data.transformed(spec)
    m = clone_with_state(base)
    opt = make_optimizer(spec)
    m.compile(optimizer=opt, loss=make_loss(spec))
    out = np.full(len(lrs), np.nan)
    for t, lr in enumerate(lrs):
        rows = idx[t][mask[t] > 0]
        opt.learning_rate = float(lr)
        m.reset_metrics()
        logs = m.train_on_batch(Xs[rows], ys_[rows], return_dict=True)
        out[t] = float(logs["loss"])
        if not np.isfinite(out[t]):
            break
    return out
