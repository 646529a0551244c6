"""What a run is: the run description (:class:`RunSpec`), what a run returns (:class:`RunResult`), and the
Keras optimizer and loss a description stands for (the one place that turns a description into Keras objects)."""
from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..model.inspect import canonical_loss, loss_display_name, optimizer_settings

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
    #: when set: Keras's ``EarlyStopping(monitor="loss", patience=..., restore_best_weights=True)``
    early_stopping_patience: int | None = None
    #: when set: Keras's ``ReduceLROnPlateau(monitor="loss", factor=reduce_lr_factor, patience=...,
    #: min_lr=reduce_lr_min)`` (min_delta 1e-4, no cooldown)
    reduce_lr_patience: int | None = None
    reduce_lr_factor: float = 0.5
    reduce_lr_min: float = 0.0

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
        if self.early_stopping_patience is not None:
            parts.append(f"early_stopping(patience={self.early_stopping_patience})")
        if self.reduce_lr_patience is not None:
            parts.append(f"reduce_lr_on_plateau(patience={self.reduce_lr_patience}, factor={self.reduce_lr_factor:g})")
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
    #: with ``validation_data``: the held-out MSE after each epoch (original units, mean over rows and
    #: target columns; the same scale as ``mse``) and before the first; None/NaN without held-out rows
    val_mse: np.ndarray | None = None
    initial_val_mse: float = float("nan")
    #: with ``keep_best=True``: the epoch (1..epochs) of the lowest finite held-out MSE (the first on ties)
    #: and the weights after it (None when every epoch's held-out MSE was non-finite)
    best_epoch: int | None = None
    best_weights: list[np.ndarray] | None = None
    best_non_trainable_weights: list[np.ndarray] | None = None

    @property
    def label(self) -> str:
        return self.spec.label()


# --------------------------------------------------------------------------------------------
# the Keras objects a description stands for


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
        for name in ("early_stopping_patience", "reduce_lr_patience"):
            value = getattr(s, name)
            if value is not None and int(value) < 1:
                raise InputError(f"{name} must be a positive number of epochs (Received {name}={value!r})")
        if s.reduce_lr_patience is not None:
            if not 0.0 < float(s.reduce_lr_factor) < 1.0:
                raise InputError(f"reduce_lr_factor must be between 0 and 1 (Received reduce_lr_factor={s.reduce_lr_factor!r})")
            if s.has_schedule:
                raise InputError("ReduceLROnPlateau cannot set the rate of a learning-rate schedule "
                                 "(Received reduce_lr_patience with a schedule)")
        kind = (s.optimizer, s.clipnorm, s.momentum, s.loss, s.huber_delta, s.optimizer_config, id(s.loss_object))
        if kind not in checked:  # building a Keras optimizer costs 1-2 ms: once per kind (and process)
            _optimizer_kind_of(s)
            make_loss(s)
            checked.add(kind)


def _optimizer_kind_of(spec: RunSpec) -> tuple[str, dict]:
    """:func:`_optimizer_kind` of ``spec``'s optimizer settings."""
    config = spec.optimizer_config if spec.uses_user_optimizer else None
    return _optimizer_kind(spec.optimizer, spec.clipnorm, float(spec.momentum), config)


@functools.lru_cache(maxsize=64)
def _optimizer_kind(optimizer: str, clipnorm: float | None, momentum: float,
                    optimizer_config: str | None) -> tuple[str, dict]:
    """(class name, ``get_config()``) of the optimizer :func:`make_optimizer` builds for these settings
    (at the default rate; raises its InputError for an unknown one): built once per process and
    kind, shared by the spec check and the fused update's coefficients. The dict is not to be modified."""
    opt = make_optimizer(RunSpec(optimizer=optimizer, clipnorm=clipnorm, momentum=momentum,
                                 optimizer_config=optimizer_config))
    return type(opt).__name__, opt.get_config()


def grid_specs(grid: dict[str, list], base: RunSpec) -> list[RunSpec]:
    """The product of the grid's lists, each applied on top of ``base``."""
    from dataclasses import replace

    keys = list(grid)
    return [replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]
