"""Learning-rate sweeps (used by ``find_lr``): one optimizer step per learning rate, vectorised over seeds."""
from __future__ import annotations

import json
from typing import Sequence

import numpy as np

from ..errors import InputError
from ..model.replica import clone_with_state
from .prepared import _base_model, _Data, _prepare_data, vectorized_unsupported_reason
from .programs import _compile_and_run
from .specs import RunSpec, _validate_specs, make_loss, make_optimizer, per_sample_loss
from .stepper import _stack, _Stepper, shuffled_batches


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
