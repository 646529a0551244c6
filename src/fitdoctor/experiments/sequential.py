"""The sequential engine: one ``model.fit`` on a faithful clone per run, the MSE measured after every epoch."""
from __future__ import annotations

import numpy as np

from ..model.replica import clone_with_state
from .prepared import _Data, _result
from .specs import RunResult, RunSpec, _keras, make_loss, make_optimizer


def _predict(model, X: np.ndarray, chunk: int = 65536) -> np.ndarray:
    keras = _keras()
    outs = [keras.ops.convert_to_numpy(model(X[i:i + chunk], training=False)) for i in range(0, len(X), chunk)]
    return np.concatenate(outs).reshape(len(X), -1).astype(np.float64)


def _mse_orig(model, Xs, y_orig, ym, ys) -> float:
    """MSE in original units, averaged over rows and target columns; ``y_orig`` is (n, k)."""
    with np.errstate(over="ignore", invalid="ignore"):
        pred = _predict(model, Xs) * np.reshape(ys, (1, -1)) + np.reshape(ym, (1, -1))
        return float(np.mean((pred - y_orig) ** 2))


def _run_sequential(base, data: _Data, spec: RunSpec, seed: int, note: str = "", keep_best: bool = False) -> RunResult:
    keras = _keras()
    Xs, ys_ = data.transformed(spec)
    xm, xsd, ym, ysd = data.norm(spec)
    y_orig = data.y_table
    m = clone_with_state(base)
    loss_fn = make_loss(spec)
    m.compile(optimizer=make_optimizer(spec), loss=loss_fn)
    mse0 = _mse_orig(m, Xs, y_orig, ym, ysd)
    curve: list[float] = []
    has_val = data.Xv is not None
    if has_val:
        Xvs, yv_orig = (data.Xv - xm) / xsd, data.yv.reshape(len(data.yv), -1).astype(np.float64)
        val0 = _mse_orig(m, Xvs, yv_orig, ym, ysd)
    val_curve: list[float] = []
    best: list = []  # [epoch, weights, non-trainable weights, held-out MSE]

    class _EpochMSE(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append(_mse_orig(self.model, Xs, y_orig, ym, ysd))
            if has_val:
                val_curve.append(_mse_orig(self.model, Xvs, yv_orig, ym, ysd))
                if keep_best and np.isfinite(val_curve[-1]) and (not best or val_curve[-1] < best[3]):
                    best[:] = [epoch + 1, [keras.ops.convert_to_numpy(v.value) for v in self.model.trainable_variables],
                               [keras.ops.convert_to_numpy(v.value) for v in self.model.non_trainable_variables],
                               val_curve[-1]]

    callbacks = [_EpochMSE()]
    stopper = None
    if spec.early_stopping_patience is not None:
        stopper = keras.callbacks.EarlyStopping(monitor="loss", patience=int(spec.early_stopping_patience),
                                                min_delta=0.0, restore_best_weights=True)
        callbacks.append(stopper)
    if spec.reduce_lr_patience is not None:
        callbacks.append(keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=float(spec.reduce_lr_factor),
                                                           patience=int(spec.reduce_lr_patience),
                                                           min_lr=float(spec.reduce_lr_min)))
    keras.utils.set_random_seed(seed)
    hist = m.fit(Xs, ys_, epochs=int(spec.epochs), batch_size=int(spec.batch_size), shuffle=True,
                 verbose=0, callbacks=callbacks)
    weights = [keras.ops.convert_to_numpy(v.value) for v in m.trainable_variables]
    ntw = [keras.ops.convert_to_numpy(v.value) for v in m.non_trainable_variables]
    return _result(spec, hist.history["loss"], curve, mse0, weights, ntw, data, "sequential", note,
                   val_curve=val_curve if has_val else None, val0=val0 if has_val else float("nan"),
                   best=tuple(best[:3]) if best else None,
                   final_epoch=stopper.best_epoch + 1 if stopper is not None and stopper.best_weights is not None else None)
