"""Data as the engines see it (:class:`_Data`: raw arrays, standardisations, target table), the base copy of
the user's model every run starts from, and the assembly of a :class:`RunResult` from curves and weights."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import InputError
from ..model.inspect import canonical_loss, check_target_varies
from ..model.replica import clone_model, copy_state, dummy_inputs
from .specs import _BATCH_DEPENDENT, DIVERGENCE_FACTOR, RunResult, RunSpec, _keras


@dataclass
class _Data:
    X: np.ndarray   # float32 (n, ...) raw: (n, d) tables, (n, steps, d) sequences, (n, h, w, c) images
    y: np.ndarray   # float32, shaped like the model output: (n,) or (n, k)
    x_mean: np.ndarray  # (d,) over every axis but the last (the features)
    x_std: np.ndarray
    y_mean: np.ndarray  # (k,) per target column
    y_std: np.ndarray
    Xv: np.ndarray | None = None  # held-out rows (float32, shaped like X), measured after every epoch
    yv: np.ndarray | None = None  # their targets, shaped like y, original units

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


def _with_validation(data: _Data, validation_data) -> _Data:
    """``data`` with held-out rows ``(X_val, y_val)`` (original units) that every run measures after each epoch."""
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
        raise InputError("validation_data must be a tuple (X_val, y_val) "
                         f"(Received validation_data of type {type(validation_data).__name__})")
    Xv = np.asarray(validation_data[0], dtype=np.float64)
    if Xv.ndim == 1:
        Xv = Xv.reshape(-1, 1)
    if len(Xv) < 1 or Xv.shape[1:] != data.X.shape[1:]:
        raise InputError(f"validation_data must hold rows shaped like X (Received X_val.shape={Xv.shape}, "
                         f"X.shape={data.X.shape})")
    yv = np.asarray(validation_data[1], dtype=np.float64)
    if yv.size != len(Xv) * int(np.prod(data.y.shape[1:], dtype=int)):
        raise InputError(f"validation_data's y must have one target row per row of X_val (Received y_val.shape={yv.shape})")
    yv = yv.reshape((len(Xv),) + data.y.shape[1:])
    if not (np.isfinite(Xv).all() and np.isfinite(yv).all()):
        raise InputError("validation_data must be finite: drop the rows with NaN or infinite values first")
    return replace(data, Xv=Xv.astype(np.float32), yv=yv.astype(np.float32))


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


def vectorized_unsupported_reason(model, *, exact_batches: bool = False) -> str | None:
    """Why the vectorised engine cannot train ``model`` (None when it can).

    ``exact_batches``: the program trains every batch at its true size (:func:`train_runs` does: the
    last, partial batch of an epoch is its own step for models with batch-dependent layers), so a
    layer that mixes rows within a batch (BatchNormalization) sees what it sees in ``model.fit``.
    The learning-rate sweep pads its batches and keeps refusing such layers."""
    keras = _keras()
    if keras.backend.backend() != "jax":
        return f"the vectorised engine needs the JAX backend (KERAS_BACKEND={keras.backend.backend()})"
    bad = _batch_dependent_layers(model)
    if bad and not exact_batches:
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


def _result(spec, loss_curve, mse_curve, mse0, weights, ntw, data: _Data, engine, note="", *,
            val_curve=None, val0: float = float("nan"), best=None, final_epoch: int | None = None) -> RunResult:
    """The RunResult of one run; ``val_curve``: held-out MSE per epoch; ``best``: (epoch, weights,
    non-trainable weights) of the epoch with the lowest held-out MSE, or None; ``final_epoch``: the
    epoch whose weights the run returns when not its last (EarlyStopping restored them)."""
    mse_curve = np.asarray(mse_curve, dtype=np.float64)
    finite = mse_curve[np.isfinite(mse_curve)]
    final = float(mse_curve[-1]) if len(mse_curve) else float("nan")
    if final_epoch is not None and 0 < final_epoch <= len(mse_curve):
        final = float(mse_curve[final_epoch - 1])
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
        val_mse=None if val_curve is None else np.asarray(val_curve, dtype=np.float64),
        initial_val_mse=float(val0) if val_curve is not None else float("nan"),
        best_epoch=None if best is None else int(best[0]),
        best_weights=None if best is None else [np.asarray(w) for w in best[1]],
        best_non_trainable_weights=None if best is None else [np.asarray(w) for w in best[2]],
    )
