"""Trace: what the training-time rules read about one training run.

A plain data object, filled live by :class:`fitdoctor.Monitor` or after the fact by
:meth:`Trace.from_history` (a Keras ``History``, a dict of lists, a list of losses, or the pandas
frame of a ``CSVLogger`` file).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..model.inspect import ADAPTIVE
from ..reference import Reference
from . import curves

#: losses whose value is a mean squared error, comparable with var(y) and the reference optimum
MSE_LOSSES = {"mse", "mean_squared_error"}
#: column names a CSVLogger / History uses for the learning rate
_LR_KEYS = ("learning_rate", "lr")


@dataclass
class Sample:
    """Statistics measured on the fixed sample batch at one step."""

    epoch: int
    step: int                                   # global optimizer step (0 = before training)
    loss: float | None = None                   # loss on the sample batch
    grad_norm: float | None = None              # global gradient norm
    grad_norms: dict[str, float] = field(default_factory=dict)      # per layer
    weight_norms: dict[str, float] = field(default_factory=dict)    # per layer
    update_ratios: dict[str, float] = field(default_factory=dict)   # ||dW|| / ||W|| per step, per layer
    dead_relu: dict[str, float] = field(default_factory=dict)       # fraction of units zero on every row
    sample_rows: int | None = None              # rows the activation statistics were measured on
    saturation: float | None = None             # fraction of outputs at the bound of a bounded activation
    pred_std: float | None = None
    pred_mean: float | None = None
    pred_spread: float | None = None            # std(predictions) / std(y)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Trace:
    """One training run, as the rules' ``detect_training(trace)`` see it.

    Per epoch: ``loss``, ``val_loss``, ``lr``. Run facts: ``steps_per_epoch``, ``epochs_planned``,
    ``optimizer`` (lower-case Keras name), ``learning_rate``, ``loss_name``. What is achievable:
    ``reference`` (a :class:`~fitdoctor.reference.Reference` or None), ``y_var``, ``y_mean``,
    ``is_linear``. Sampled on a fixed small batch every few steps: ``samples``. Non-finite loss:
    ``nonfinite_step`` / ``nonfinite_epoch`` (where it began) and ``nonfinite_inputs`` (True when
    the data held non-finite values, False when it did not, None when unknown).
    """

    loss: list[float] = field(default_factory=list)
    val_loss: list[float] | None = None
    lr: list[float] | None = None
    steps_per_epoch: int | None = None
    epochs_planned: int | None = None
    optimizer: str | None = None
    learning_rate: float | None = None
    loss_name: str | None = "mse"
    reference: Reference | None = None
    y_var: float | None = None
    y_mean: float | None = None
    is_linear: bool | None = None
    output_activation: str | None = None
    samples: list[Sample] = field(default_factory=list)
    nonfinite_inputs: bool | None = None
    nonfinite_inputs_evidence: dict[str, Any] = field(default_factory=dict)
    #: True only when the training data itself was checked for NaN/inf (a message may then say
    #: "the inputs were finite"); False when nothing looked at the data
    inputs_checked: bool = False
    nonfinite_step: int | None = None
    nonfinite_epoch: int | None = None
    stopped_on_nan: bool = False
    restored_epoch: int | None = None
    monitor: str = "loss"
    patience: int = 10
    min_delta: float = 0.0
    initial_weight_max: float | None = None
    truncated: bool = False    # a probe: the curve is the start of a longer planned run
    step_loss: list[float] | None = None   # per-step (batch) losses, when the Monitor recorded them
    cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    # -- derived quantities --------------------------------------------------------------------
    @property
    def epochs_run(self) -> int:
        return len(self.loss)

    @property
    def finite_loss(self) -> np.ndarray:
        return curves.finite_prefix(self.loss)

    @property
    def adaptive(self) -> bool | None:
        return None if self.optimizer is None else self.optimizer in ADAPTIVE

    @property
    def mse_comparable(self) -> bool:
        """The loss is an MSE in the target's units: comparable with var(y) and the optimum."""
        return self.loss_name is None or self.loss_name in MSE_LOSSES

    @property
    def variance(self) -> float | None:
        """var(y): from the reference when there is one, else ``y_var``."""
        if self.reference is not None:
            return float(self.reference.mean_mse)
        return None if self.y_var is None else float(self.y_var)

    @property
    def optimum(self) -> float | None:
        """Best achievable training MSE for this model (None when unknown or the loss is not MSE)."""
        if self.reference is None or not self.mse_comparable:
            return None
        return float(self.reference.optimum(linear=self.is_linear is not False))

    def gap(self, loss: float) -> float | None:
        """loss / optimum (None when the optimum is unknown)."""
        if self.optimum is None:
            return None
        return float(self.reference.gap(loss, linear=self.is_linear is not False))

    def far_from_optimum(self, loss: float, factor: float = 2.0) -> bool | None:
        """loss >= factor x optimum; without a reference, loss >= var(y) / factor x ... judged
        against the mean predictor (loss >= var(y)); None when neither is known."""
        g = self.gap(loss)
        if g is not None:
            return g >= factor
        v = self.variance
        if v is not None and self.mse_comparable:
            return loss >= v
        return None

    @property
    def planned(self) -> int:
        return int(self.epochs_planned or self.epochs_run)

    def to_dict(self) -> dict[str, Any]:
        d = {k: v for k, v in self.__dict__.items() if k not in ("reference", "samples", "cache", "step_loss")}
        d["reference"] = self.reference.to_dict() if self.reference else None
        d["samples"] = [s.to_dict() for s in self.samples]
        return d

    # -- construction from a finished run ----------------------------------------------------------
    @classmethod
    def from_history(cls, history_or_losses, *, reference: Reference | None = None, y=None,
                     optimizer: str | None = None, learning_rate: float | None = None,
                     epochs: int | None = None, steps_per_epoch: int | None = None,
                     is_linear: bool | None = None, y_var: float | None = None,
                     loss_name: str | None = None, monitor: str = "loss") -> "Trace":
        """Build a trace from a Keras ``History``, a dict of lists, a list of losses, or a
        ``CSVLogger`` frame (columns epoch, loss, val_loss, learning_rate ...)."""
        cols, params, model = _columns(history_or_losses)
        if monitor not in cols:
            raise InputError(f"the history has no {monitor!r} column; available: {', '.join(sorted(cols)) or 'none'}")
        loss = [float(v) for v in cols[monitor]]
        if not loss:
            raise InputError("the history holds no epochs: pass the History that model.fit returned, or a list of losses")
        val_key = "val_" + monitor if monitor != "loss" else "val_loss"
        val = [float(v) for v in cols[val_key]] if val_key in cols else None
        lr = next(([float(v) for v in cols[k]] for k in _LR_KEYS if k in cols), None)
        if model is not None:
            from ..model.inspect import canonical_loss, describe_model, read_training_config

            try:
                cfg = read_training_config(model)
                optimizer = optimizer or (cfg.optimizer if getattr(model, "optimizer", None) is not None else None)
                learning_rate = learning_rate if learning_rate is not None else (lr[0] if lr else cfg.learning_rate)
                loss_name = loss_name or (canonical_loss(model.loss) if getattr(model, "loss", None) is not None else None)
                if is_linear is None:
                    is_linear = describe_model(model).is_linear
            except Exception:  # a model we cannot read: keep what we were given
                pass
        if params:
            epochs = epochs or params.get("epochs")
            steps_per_epoch = steps_per_epoch or params.get("steps")
        y_mean = None
        if y is not None:
            ya = np.asarray(y, dtype=np.float64).reshape(-1)
            ya = ya[np.isfinite(ya)]
            if len(ya):
                y_var = float(np.var(ya)) if y_var is None else y_var
                y_mean = float(np.mean(ya))
        if learning_rate is None and lr:
            learning_rate = lr[0]
        return cls(loss=loss, val_loss=val, lr=lr, steps_per_epoch=steps_per_epoch,
                   epochs_planned=epochs or len(loss), optimizer=optimizer.lower() if optimizer else None,
                   learning_rate=learning_rate, loss_name=loss_name or "mse", reference=reference,
                   y_var=y_var if y_var is not None else (reference.mean_mse if reference else None),
                   y_mean=y_mean, is_linear=is_linear, monitor=monitor,
                   nonfinite_epoch=curves.first_nonfinite(loss))


def _columns(obj) -> tuple[dict[str, list], dict, Any]:
    """(columns, params, model) from any of the accepted history forms."""
    params, model = {}, None
    if hasattr(obj, "history") and isinstance(getattr(obj, "history"), dict):  # keras History
        params = dict(getattr(obj, "params", None) or {})
        model = getattr(obj, "model", None)
        obj = obj.history
    if hasattr(obj, "to_dict") and hasattr(obj, "columns"):  # pandas DataFrame
        frame = obj
        return {str(c): frame[c].astype(float).tolist() for c in frame.columns if _numeric(frame[c])}, params, model
    if isinstance(obj, dict):
        return {str(k): list(v) for k, v in obj.items()}, params, model
    try:
        arr = np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError(f"cannot read a loss curve from {type(obj).__name__}: pass a keras History, a dict of lists, "
                         "a list of losses or a CSVLogger DataFrame") from None
    if arr.ndim != 1:
        raise InputError(f"a list of losses must be one-dimensional. Received shape {arr.shape}")
    return {"loss": arr.tolist()}, params, model


def _numeric(series) -> bool:
    try:
        series.astype(float)
        return True
    except (TypeError, ValueError):
        return False


def is_finite(v) -> bool:
    return v is not None and math.isfinite(float(v))
