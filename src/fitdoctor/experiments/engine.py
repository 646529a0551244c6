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

This module runs runs (:func:`train_runs`) and checks replicas; the pieces live beside it:
:mod:`.specs` (what a run is), :mod:`.prepared` (data and the base copy), :mod:`.sequential`,
:mod:`.stepper` and :mod:`.programs` (the two engines), :mod:`.sweep` (learning-rate sweeps);
model export is :mod:`fitdoctor.fix.export`. The names below are re-exported for callers.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..model.replica import clone_with_state
from .prepared import _base_model, _converted_loss, _prepare_data, _with_validation, vectorized_unsupported_reason
from .programs import _run_vectorized_groups
from .programs import OPTIMISE_ABOVE_WORK, clear_program_cache  # noqa: F401  (re-exported)
from .sequential import _run_sequential
from .specs import ENGINES, RunResult, RunSpec, _validate_specs, make_loss, make_optimizer
from .specs import DIVERGENCE_FACTOR, grid_specs, per_sample_loss  # noqa: F401  (re-exported)
from .stepper import _fusable, _group_key, fused_coefficients, shuffled_batches  # noqa: F401
from .sweep import sweep_batches, sweep_losses, without_schedule  # noqa: F401


def train_runs(model, X, y, specs: list[RunSpec], *, seed: int = 0, engine: str = "auto",
               callback: Callable[[int, int], None] | None = None, executor=None,
               validation_data=None, keep_best: bool = False) -> list[RunResult]:
    """Train ``model`` once per spec, from its current weights; return one RunResult per spec, in order.

    ``engine``: ``"auto"`` (vectorised where possible, else sequential), ``"vectorized"`` (raise
    when impossible) or ``"sequential"`` (``model.fit`` on a clone per run).
    ``executor``: where the runs train (:mod:`fitdoctor.experiments.executors`): ``"auto"``/None
    (this process on JAX, a JAX worker process on other backends), ``"inprocess"``, ``"worker"``,
    ``"ray"`` or an ``Executor``.
    ``validation_data=(X_val, y_val)``: held-out rows (original units) every run measures after each
    epoch (``RunResult.val_mse``, ``initial_val_mse``); they never train. ``keep_best=True`` (needs
    ``validation_data``): each run also keeps the weights of its epoch with the lowest held-out MSE
    (``RunResult.best_epoch``, ``best_weights``, ``best_non_trainable_weights``).
    ``callback(done, total)`` is called as runs finish. The model is never modified.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)} (Received engine={engine!r})")
    specs = list(specs)
    if not specs:
        return []
    _validate_specs(specs)
    if keep_best and validation_data is None:
        raise InputError("keep_best=True needs validation_data=(X_val, y_val): the best epoch is the one with the "
                         "lowest held-out MSE")
    from .executors import get_executor  # the executor seam

    runner = get_executor(executor, engine=engine)
    if runner is not None:
        options = {} if validation_data is None else {"validation_data": validation_data, "keep_best": bool(keep_best)}
        if options and not _takes_options(runner.run):
            raise InputError(f"the executor {runner!r} cannot measure held-out rows: its run() takes no **options "
                             "(validation_data, keep_best); add them and pass them on to train_runs")
        return runner.run(model, X, y, specs, seed=seed, engine=engine, callback=callback, **options)
    base = _base_model(model, np.asarray(X), seed)
    data = _prepare_data(base, X, y)
    if validation_data is not None:
        data = _with_validation(data, validation_data)
    total = len(specs)
    results: list[RunResult | None] = [None] * total
    done = 0

    reason = (vectorized_unsupported_reason(base, exact_batches=True) if engine != "sequential"
              else "sequential engine requested")
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
                                          [fused[id(m)] for m in members], keep_best)
            for m, out in zip(members, outs):
                store(m, out)
            pending = []
        except InputError:
            raise
        except Exception:  # find the group(s) the engine cannot express, train the others vectorised
            pending = []
            for m in members:
                try:
                    store(m, _run_vectorized_groups(base, data, [[specs[i] for i in m]], seed, [fused[id(m)]],
                                                    keep_best)[0])
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
            results[i] = _run_sequential(base, data, specs[i], seed, notes[id(m)], keep_best)
            done += 1
            if callback is not None:
                callback(done, total)
    return results  # type: ignore[return-value]


def _takes_options(run: Callable) -> bool:
    """Whether an executor's ``run`` accepts ``validation_data``/``keep_best`` (``**options``)."""
    from ..model.replica import accepts_keyword

    return accepts_keyword(run, "validation_data")


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
    """A plain Keras model with ``result``'s weights (see :func:`fitdoctor.fix.export.build_trained_model`)."""
    from ..fix.export import build_trained_model as export

    return export(model, result)
