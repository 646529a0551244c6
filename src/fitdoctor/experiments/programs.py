"""The vectorised engine's programs: one ``jax.jit`` over vmapped runs and scanned epochs per group of runs,
compiled with options chosen for small programs, cached per process."""
from __future__ import annotations

import contextlib
import gc
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from ..model.inspect import architecture_signature
from .prepared import _batch_dependent_layers, _Data, _result
from .specs import RunResult, RunSpec
from .stepper import _group_key, _make_stepper, _stack, fused_coefficients, shuffled_batches

#: XLA options for the engine's programs: they run for milliseconds, so compile time dominates.
#: Measured on this CPU for the 16-run benchmark grid: compiling takes 0.32 s with XLA's defaults,
#: 0.23 s at backend optimisation level 0, and 0.08 s when XLA's CPU fusion emitters are also
#: turned off (the older elemental emitters generate less LLVM IR); the programs' run time is
#: unchanged at this size. Tried in order; an XLA build that rejects an option gets the next set.
#: ``xla_cpu_parallel_codegen_split_count=1``: XLA splits a program into several LLVM modules to
#: generate code in parallel; for the engine's programs the split itself costs more than it saves
#: (measured on this 2-core CPU, CPU seconds of one compilation: the 16-run income grid 0.133 ->
#: 0.083 s, the 16-run MLP by-epoch program 0.69 -> 0.55 s; the same generated code)
_ONE_MODULE = {"xla_cpu_parallel_codegen_split_count": 1}
_COMPILER_OPTIONS = (
    {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False, **_ONE_MODULE},
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
#: Backend optimisation level 1 (not XLA's default 2) for them: the same numbers and as fast per step,
#: compiled in less time (the MLP benchmark's by-epoch program: 0.42 -> 0.30 CPU seconds).
_OPTIMISED_COMPILER_OPTIONS = (
    {"xla_backend_optimization_level": 1, "xla_cpu_use_fusion_emitters": False, **_ONE_MODULE},
    {"xla_cpu_use_fusion_emitters": False},
    {},
)

#: The per-epoch evaluations pass every row of every run forward at once, with (runs, rows, units)
#: intermediates that stream through memory. With more than this many runs x rows they pass
#: equal chunks of rows in a loop instead (at least EVAL_MIN_CHUNK rows a chunk), whose
#: intermediates stay in cache; the MSE is then taken over all rows' outputs as before (the same
#: numbers). Measured on this CPU, 16 runs of a 2-32-32-1 MLP on 10,000 rows: 24-39 ms an epoch's
#: evaluation at once, 10-12 ms in chunks of 500 to 3,334 rows, fastest in the whole program with
#: 10 chunks of 1,000 (the 10-epoch sweep: 0.87 s at once, 0.58 s in 5 chunks, 0.55 s in 10).
EVAL_CHUNK_RUN_ROWS = 16_384
EVAL_MIN_CHUNK = 1_024


def _eval_chunks(n_rows: int, n_runs: int) -> int:
    """How many equal chunks of rows the per-epoch evaluation of ``n_runs`` runs passes (1: all at once)."""
    size = max(EVAL_MIN_CHUNK, EVAL_CHUNK_RUN_ROWS // max(int(n_runs), 1))
    return -(-int(n_rows) // size) if n_rows >= 2 * size else 1


def _group_clips(specs: list[RunSpec]) -> bool:
    """Whether any run of a fused group clips its gradients (the program computes norms only then)."""
    return any((fused_coefficients(s) or {}).get("clip", 0.0) > 0 for s in specs)


#: ReduceLROnPlateau's default min_delta (Keras): an epoch loss counts as lower only by more than this
REDUCE_LR_MIN_DELTA = 1e-4


def _callback_state(specs: list[RunSpec], lrs: np.ndarray, tv0, ntv0) -> tuple[dict, dict]:
    """The per-run state and settings of the runs' EarlyStopping / ReduceLROnPlateau (empty without them).

    Both watch the epoch's training loss as ``model.fit`` logs it. State: the current learning rate
    ``lr``, epochs trained ``n``; EarlyStopping: the best loss, its epoch and weights, the epochs
    waited, ``stopped``; ReduceLROnPlateau: its best loss and epochs waited."""
    spec0, R = specs[0], len(specs)
    es, rl = spec0.early_stopping_patience is not None, spec0.reduce_lr_patience is not None
    if not (es or rl):
        return {}, {}
    state = {"lr": lrs.copy(), "n": np.zeros(R, np.int32)}
    params = {}
    if es:
        state.update(es_best=np.full(R, np.inf, np.float32), es_epoch=np.zeros(R, np.int32),
                     es_wait=np.zeros(R, np.int32), stopped=np.zeros(R, bool), es_tv=_stack(tv0, R),
                     es_ntv=_stack(ntv0, R))
        params["es_patience"] = np.array([int(s.early_stopping_patience) for s in specs], np.int32)
    if rl:
        state.update(rl_best=np.full(R, np.inf, np.float32), rl_wait=np.zeros(R, np.int32))
        params.update(rl_patience=np.array([int(s.reduce_lr_patience) for s in specs], np.int32),
                      rl_factor=np.array([s.reduce_lr_factor for s in specs], np.float32),
                      rl_min=np.array([s.reduce_lr_min for s in specs], np.float32))
    return state, params


def _where_runs(mask, a, b):
    """``a`` for the runs where ``mask`` holds, else ``b`` (``mask`` has one entry per run, the leading axis)."""
    import jax.numpy as jnp

    return jnp.where(jnp.reshape(mask, (-1,) + (1,) * (jnp.ndim(a) - 1)), a, b)


def _after_epoch(cbs: dict, cbp: dict, old, new, ep_loss, ep):
    """Keras's EarlyStopping(monitor="loss", restore_best_weights=True) and ReduceLROnPlateau(monitor="loss")
    at the end of epoch ``ep`` (1-based), per run: a stopped run keeps its state (it trains no more)."""
    import jax
    import jax.numpy as jnp

    if not cbs:
        return new, cbs

    cbs = dict(cbs)
    active = ~cbs["stopped"] if "stopped" in cbs else jnp.ones_like(cbs["n"], dtype=bool)
    new = jax.tree_util.tree_map(lambda a, b: _where_runs(active, a, b), new, old)
    cbs["n"] = cbs["n"] + active.astype(jnp.int32)
    first = ep == 1  # Keras: the first epoch is always an improvement (no best yet)
    if "stopped" in cbs:
        improved = active & ((ep_loss < cbs["es_best"]) | first)
        wait = jnp.where(improved, 0, cbs["es_wait"] + 1)
        cbs["es_best"] = jnp.where(improved, ep_loss, cbs["es_best"])
        cbs["es_epoch"] = jnp.where(improved, ep, cbs["es_epoch"])
        cbs["es_tv"] = [_where_runs(improved, a, b) for a, b in zip(new[0], cbs["es_tv"])]
        cbs["es_ntv"] = [_where_runs(improved, a, b) for a, b in zip(new[1], cbs["es_ntv"])]
        cbs["stopped"] = cbs["stopped"] | (active & ~improved & (wait >= cbp["es_patience"]) & (ep > 1))
        cbs["es_wait"] = jnp.where(active, wait, cbs["es_wait"])
    if "rl_best" in cbs:
        improved = (ep_loss + REDUCE_LR_MIN_DELTA < cbs["rl_best"]) | first
        wait = jnp.where(improved, 0, cbs["rl_wait"] + 1)
        reduce = ~improved & (wait >= cbp["rl_patience"]) & (cbs["lr"] > cbp["rl_min"]) & active
        cbs["rl_best"] = jnp.where(active & improved, ep_loss, cbs["rl_best"])
        cbs["rl_wait"] = jnp.where(active, jnp.where(reduce, 0, wait), cbs["rl_wait"])
        cbs["lr"] = jnp.where(reduce, jnp.maximum(cbs["lr"] * cbp["rl_factor"], cbp["rl_min"]), cbs["lr"])
    return new, cbs


def _group_program(base, data: _Data, specs: list[RunSpec], seed: int, fused: bool = False, by_epoch: bool = False,
                   keep_best: bool = False):
    """The vmapped training function of one group, its arguments, and how to turn outputs into results.

    ``by_epoch``: the function trains ONE epoch (arguments: the state, the epoch's batches and
    the epoch number, 1-based; epoch 0 trains nothing and measures the initial state);
    :func:`_run_by_epoch` calls it for epochs 0, 1, ..., E, so one compiled program serves every
    epoch count (successive halving's short rungs and the full runs of the same candidates).
    Either way the program holds one evaluation of the curves, which epoch 0 runs on the initial
    state (an evaluation costs compilation time: 0.08 s of the MLP benchmark's by-epoch program).

    With held-out rows (``data.Xv``) every epoch also measures each run's held-out MSE; with
    ``keep_best`` the state carries, per run, the weights of the epoch with the lowest held-out
    MSE so far (the first such epoch on ties; epochs >= 1), that MSE and that epoch. Runs with
    EarlyStopping / ReduceLROnPlateau (:class:`RunSpec`) carry those callbacks' state too.

    Arguments: ``(tv, ntv, ov, best, cbs, lr, cbp, xm, xs, ym, ys, X, Y, V, idx, mask, counts)``,
    where ``best`` is ``(tv, ntv, val, epoch)`` or ``()``, ``cbs``/``cbp`` the callbacks' state and
    settings (empty dicts without callbacks) and ``V`` is ``(Xv, Yv)`` or ``()``."""
    import jax
    import jax.numpy as jnp

    spec0 = specs[0]
    n, R = len(data.X), len(specs)
    E, B = int(spec0.epochs), int(spec0.batch_size)
    stepper = _make_stepper(base, spec0, fused)
    if stepper.fused:
        stepper.clips = _group_clips(specs)
    tv0, ntv0 = stepper.model_state()
    norms = [data.norm(s) for s in specs]
    xm = np.stack([a[0] for a in norms])
    xs = np.stack([a[1] for a in norms])
    ym = np.array([a[2] for a in norms], np.float32)
    ys = np.array([a[3] for a in norms], np.float32)
    lrs = np.array([s.learning_rate for s in specs], np.float32)
    idx, mask = shuffled_batches(n, B, E, seed)
    # a layer that mixes rows within a batch (BatchNormalization) must not see the padding of the last
    # batch: such models train that batch as its own step of n % B rows (as model.fit does)
    last_rows = n % B if _batch_dependent_layers(base) else 0
    counts = mask.sum(axis=2)  # (E, S) real rows per batch
    has_val = data.Xv is not None
    if keep_best and not has_val:
        raise ValueError("keep_best needs held-out rows")
    V = (data.Xv, data.yv) if has_val else ()
    cbs0, cbp = _callback_state(specs, lrs, tv0, ntv0)

    # vmap the step and the evaluation (not the scans): tracing stays cheap
    def step_one(tv, ntv, ov, xm, xs, ym, ys, X, Y, ib, mb):
        return stepper.step(tv, ntv, ov, (X[ib] - xm) / xs, (Y[ib] - ym) / ys, mb)

    def mse_one(tv, ntv, xm, xs, ym, ys, X, Y):
        return stepper.full_mse(tv, ntv, X, Y, xm, xs, ym, ys)

    step_all = jax.vmap(step_one, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None, None, None))
    mse_at_once = jax.vmap(mse_one, in_axes=(0, 0, 0, 0, 0, 0, None, None))
    predict_all = jax.vmap(stepper.predict, in_axes=(0, 0, None, 0, 0))
    mse_of_all = jax.vmap(stepper.mse_of, in_axes=(0, None, 0, 0))

    def mse_all(tv, ntv, xm, xs, ym, ys, X, Y):
        """Every run's MSE on all rows ``X``: at once, or the outputs in equal chunks of rows (see
        EVAL_CHUNK_RUN_ROWS), the last chunk padded with copies of row 0 and its padding dropped."""
        n_rows = X.shape[0]
        k = _eval_chunks(n_rows, R)
        if k == 1:
            return mse_at_once(tv, ntv, xm, xs, ym, ys, X, Y)
        size = -(-n_rows // k)
        pad = k * size - n_rows
        Xp = jnp.concatenate([X, jnp.broadcast_to(X[:1], (pad,) + X.shape[1:])]) if pad else X
        chunks = jnp.reshape(Xp, (k, size) + X.shape[1:])
        _, pred = jax.lax.scan(lambda c, xc: (c, predict_all(tv, ntv, xc, xm, xs)), (), chunks)  # (k, R, size, ...)
        pred = jnp.reshape(jnp.moveaxis(pred, 0, 1), (R, k * size) + pred.shape[3:])
        return mse_of_all(pred[:, :n_rows] if pad else pred, Y, ym, ys)

    def evaluate(tv, ntv, xm, xs, ym, ys, X, Y, V):
        """Training MSE and held-out MSE (a NaN array without held-out rows), per run."""
        mse = mse_all(tv, ntv, xm, xs, ym, ys, X, Y)
        vmse = mse_all(tv, ntv, xm, xs, ym, ys, *V) if V else jnp.full_like(mse, jnp.nan)
        return mse, vmse

    def keep(best, tv, ntv, vmse, ep):
        """The best state so far, updated with this epoch's where its held-out MSE is lower."""
        if not best:
            return best
        btv, bntv, bval, bep = best
        score = jnp.where(jnp.isfinite(vmse), vmse, jnp.inf)
        better = (score < bval) & (ep > 0)  # epoch 0: the initial state, never kept
        return ([_where_runs(better, a, b) for a, b in zip(tv, btv)],
                [_where_runs(better, a, b) for a, b in zip(ntv, bntv)],
                jnp.where(better, score, bval), jnp.where(better, ep, bep))

    def train_epoch(state, best, cbs, lr, cbp, xm, xs, ym, ys, X, Y, V, ib, mb, cnt, ep):
        """Epoch ``ep`` of every run (batches, the callbacks at its end), then its curves; epoch 0
        trains nothing: its curves are the initial state's (one evaluation in the program)."""
        def train(state, cbs):
            tv, ntv, ov = state
            ov = jax.vmap(stepper.with_lr)(ov, cbs["lr"] if cbs else lr)  # idempotent without ReduceLROnPlateau

            def batch(carry, inp):
                tv, ntv, ov = carry
                tv, ntv, ov, values = step_all(tv, ntv, ov, xm, xs, ym, ys, X, Y, inp[0], inp[1])
                return (tv, ntv, ov), values

            if last_rows:  # batch-dependent layers: the partial last batch is a step of its true size
                new, values = jax.lax.scan(batch, (tv, ntv, ov), (ib[:-1], mb[:-1]))
                new, last = batch(new, (ib[-1, :last_rows], mb[-1, :last_rows]))
                values = jnp.concatenate([values, last[None]])
            else:
                new, values = jax.lax.scan(batch, (tv, ntv, ov), (ib, mb))  # values: (S, R)
            ep_loss = jnp.sum(values * cnt[:, None], axis=0) / jnp.sum(cnt)
            new, cbs = _after_epoch(cbs, cbp, (tv, ntv, ov), new, ep_loss, ep)
            return new, cbs, ep_loss.astype(jnp.float32)

        def untrained(state, cbs):
            return state, cbs, jnp.zeros(R, jnp.float32)

        new, cbs, ep_loss = jax.lax.cond(ep > 0, train, untrained, state, cbs)
        mse, vmse = evaluate(new[0], new[1], xm, xs, ym, ys, X, Y, V)
        return new, keep(best, new[0], new[1], vmse, ep), cbs, ep_loss, mse, vmse

    def fn(tv, ntv, ov, best, cbs, lr, cbp, xm, xs, ym, ys, X, Y, V, idx, mask, counts):
        def epoch(carry, inp):
            state, best, cbs = carry
            ib, mb, cnt, ep = inp
            state, best, cbs, ep_loss, mse, vmse = train_epoch(state, best, cbs, lr, cbp, xm, xs, ym, ys, X, Y, V,
                                                               ib, mb, cnt, ep)
            return (state, best, cbs), (ep_loss, mse, vmse)

        # epochs 0 (the initial state's curves; its batches, a copy of epoch 1's, are not used), 1, ..., E
        first = (idx[:1], mask[:1], counts[:1])
        batches = tuple(jnp.concatenate([a0, a]) for a0, a in zip(first, (idx, mask, counts)))
        epochs = jnp.arange(0, idx.shape[0] + 1, dtype=jnp.int32)
        ((tv, ntv, ov), best, cbs), (losses, mses, vmses) = jax.lax.scan(epoch, ((tv, ntv, ov), best, cbs),
                                                                         batches + (epochs,))
        return tv, ntv, losses[1:].T, mses[1:].T, mses[0], vmses[1:].T, vmses[0], best, cbs

    best0 = ((_stack(tv0, R), _stack(ntv0, R), np.full(R, np.inf, np.float32), np.zeros(R, np.int32))
             if keep_best else ())
    args = (_stack(tv0, R), _stack(ntv0, R), stepper.stacked_optimizer_states(specs), best0, cbs0, lrs, cbp,
            xm, xs, ym, ys, data.X, data.y, V, idx, mask, counts)
    if by_epoch:
        def fn_epoch(tv, ntv, ov, best, cbs, lr, cbp, xm, xs, ym, ys, X, Y, V, ib, mb, cnt, ep):
            """One epoch (the program of every epoch count; epoch 0: none, the initial state's curves):
            the state in, the state and its curves out."""
            (tv, ntv, ov), best, cbs, ep_loss, mse, vmse = train_epoch((tv, ntv, ov), best, cbs, lr, cbp, xm, xs, ym,
                                                                       ys, X, Y, V, ib, mb, cnt, ep)
            return tv, ntv, ov, best, cbs, ep_loss, mse, vmse

        fn = fn_epoch

    def finalize(out) -> list[RunResult]:
        tv, ntv, losses, mses, mse0, vmses, vmse0, best, cbs = out
        tv = [np.asarray(v) for v in tv]
        ntv = [np.asarray(v) for v in ntv]
        losses, mses, mse0 = np.asarray(losses), np.asarray(mses), np.asarray(mse0)
        vmses, vmse0 = np.asarray(vmses), np.asarray(vmse0)
        if best:
            btv, bntv, bep = [np.asarray(v) for v in best[0]], [np.asarray(v) for v in best[1]], np.asarray(best[3])
        trained = np.asarray(cbs["n"]) if cbs else np.full(R, losses.shape[1])
        restore = "es_tv" in cbs
        if restore:  # EarlyStopping restores the weights of its best epoch (on the training loss)
            tv = [np.asarray(v) for v in cbs["es_tv"]]
            ntv = [np.asarray(v) for v in cbs["es_ntv"]]
            es_epoch = np.asarray(cbs["es_epoch"])
        results = []
        for r, s in enumerate(specs):
            k = int(trained[r])  # epochs trained (EarlyStopping may have stopped the run)
            kept = None
            if best and 0 < int(bep[r]) <= k:
                kept = (int(bep[r]), [v[r] for v in btv], [v[r] for v in bntv])
            results.append(_result(s, losses[r, :k], mses[r, :k], float(mse0[r]), [v[r] for v in tv],
                                   [v[r] for v in ntv], data, "vectorized",
                                   val_curve=vmses[r, :k] if has_val else None, val0=float(vmse0[r]), best=kept,
                                   final_epoch=int(es_epoch[r]) if restore and es_epoch[r] > 0 else None))
        return results

    return fn, args, finalize


#: compiled programs of this process, keyed by everything that shapes them (see _program_key)
_PROGRAM_CACHE: "OrderedDict[Any, Any]" = OrderedDict()
_PROGRAM_CACHE_SIZE = 32


def clear_program_cache() -> None:
    """Forget every compiled program of this process (the next run compiles afresh; benchmarks time first calls)."""
    _PROGRAM_CACHE.clear()


def _program_key(kind: str, base, groups: list[list[RunSpec]], args, fused: Sequence[bool] | None = None) -> Any:
    import jax

    try:
        signature = architecture_signature(base)
    except Exception:  # a model that cannot describe itself: compile every time
        return None
    leaves = jax.tree_util.tree_leaves(args)
    fused = list(fused) if fused is not None else [False] * len(groups)
    return (kind, signature, tuple((_group_key(g[0], f), len(g)) for g, f in zip(groups, fused)),
            tuple((tuple(np.shape(a)), str(getattr(a, "dtype", type(a)))) for a in leaves),
            tuple(f and _group_clips(g) for g, f in zip(groups, fused)))  # fused programs without norms


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
    """Runs x rows passed forward (padded training batches + per-epoch evaluations) x parameters."""
    n_params = sum(int(np.prod(v.shape)) for v in base.trainable_variables)
    n = len(data.X)
    n_val = 0 if data.Xv is None else len(data.Xv)
    return float(sum(len(g) * int(g[0].epochs) * (-(-n // int(g[0].batch_size)) * int(g[0].batch_size) + n + n_val)
                     for g in groups) * n_params)


def _compile_and_run(fn, args, key=None, optimise: bool = False):
    """jit, lower and compile ``fn`` for ``args`` (reusing a program compiled for the same key), run it."""
    return _cached_compile(fn, args, key, optimise)(*args)


#: programs with more work than this (see _training_work) train one epoch per call of one compiled
#: program whose shape does not depend on the epoch count: compiling such a program costs 1-3 s,
#: and repair trains the same candidates for 1/4, 1/2 and all of their epochs. One call per epoch
#: costs well under a millisecond next to an epoch of that much work.
BY_EPOCH_ABOVE_WORK = OPTIMISE_ABOVE_WORK


def _by_epoch_key(base, groups: list[list[RunSpec]], args, fused: Sequence[bool]) -> Any:
    """The by-epoch program's cache key: as :func:`_program_key`, without the epoch count."""
    key = _program_key("by-epoch", base, groups, args, fused)
    if key is None:
        return None
    # _group_key: (..., batch_size, epochs, ...) with the epoch count at position 5 (fused or not)
    shapes = tuple((g[:5] + g[6:], r) for g, r in key[2])
    return key[:2] + (shapes,) + key[3:]


def _run_by_epoch(base, data: _Data, groups: list[list[RunSpec]], seed: int,
                  fused: Sequence[bool], keep_best: bool = False) -> list[list[RunResult]]:
    """Train all groups (one epoch count) with one compiled one-epoch program, called once per epoch
    (and no more once EarlyStopping has stopped every run)."""
    import jax

    programs = [_group_program(base, data, specs, seed, f, by_epoch=True, keep_best=keep_best)
                for specs, f in zip(groups, fused)]
    fns = [p[0] for p in programs]
    E = int(groups[0][0].epochs)

    def all_groups(state, fixed, batches, ep):
        return [f(*st, *fx, *b, ep) for f, st, fx, b in zip(fns, state, fixed, batches)]

    # per group: state (tv, ntv, ov, best, cbs), fixed (lr, cbp, xm, xs, ym, ys, X, Y, V),
    # batches (idx, mask, counts) per epoch
    state = [jax.device_put(p[1][:5]) for p in programs]
    fixed = [jax.device_put(p[1][5:14]) for p in programs]
    batches = [p[1][14:17] for p in programs]
    first_batches = [tuple(a[0] for a in b) for b in batches]
    args0 = (state, fixed, first_batches, np.int32(1))
    key = _by_epoch_key(base, groups, args0, fused)
    compiled = _cached_compile(all_groups, args0, key, optimise=True, donate=(0,))  # the state is replaced each epoch
    curves = [([], [], []) for _ in programs]  # per group: training loss, MSE, held-out MSE per epoch
    first = [None] * len(programs)
    for e in range(E + 1):  # epoch 0 trains nothing: the initial state's curves
        outs = compiled(state, fixed, [tuple(a[max(e - 1, 0)] for a in b) for b in batches], np.int32(e))
        state = [o[:5] for o in outs]
        for g, o in enumerate(outs):
            if e == 0:
                first[g] = (o[6], o[7])
                continue
            for curve, value in zip(curves[g], (o[5], o[6], o[7])):
                curve.append(value)
        if e and all("stopped" in st[4] for st in state) and all(bool(np.all(np.asarray(st[4]["stopped"])))
                                                                 for st in state):
            break  # EarlyStopping stopped every run
    results = []
    for g, p in enumerate(programs):
        tv, ntv, _, best, cbs = state[g]
        losses, mses, vmses = (np.stack([np.asarray(v) for v in c]).T for c in curves[g])  # numpy: no program
        results.append(p[2]((tv, ntv, losses, mses, first[g][0], vmses, first[g][1], best, cbs)))
    return results


def _cached_compile(fn, args, key, optimise: bool, donate: tuple[int, ...] = ()):
    import jax

    compiled = _PROGRAM_CACHE.get(key) if key is not None else None
    if compiled is None:
        with _no_gc():
            compiled = _compile(jax.jit(fn, donate_argnums=donate).lower(*args), optimise)
        if key is not None:
            _PROGRAM_CACHE[key] = compiled
            while len(_PROGRAM_CACHE) > _PROGRAM_CACHE_SIZE:
                _PROGRAM_CACHE.popitem(last=False)
    else:
        _PROGRAM_CACHE.move_to_end(key)
    return compiled


def _run_vectorized_groups(base, data: _Data, groups: list[list[RunSpec]], seed: int,
                           fused: Sequence[bool], keep_best: bool = False) -> list[list[RunResult]]:
    """Train all groups in ONE compiled program (one XLA compilation instead of one per group).

    Above ``BY_EPOCH_ABOVE_WORK`` (and when every group has the same epoch count) the program trains
    one epoch per call (:func:`_run_by_epoch`), so that it serves every epoch count."""
    if (len({int(g[0].epochs) for g in groups}) == 1
            and _training_work(base, data, groups) > BY_EPOCH_ABOVE_WORK):
        return _run_by_epoch(base, data, groups, seed, fused, keep_best)
    programs = [_group_program(base, data, specs, seed, f, keep_best=keep_best) for specs, f in zip(groups, fused)]
    fns = [p[0] for p in programs]

    def all_groups(all_args):
        return [f(*a) for f, a in zip(fns, all_args)]

    all_args = ([p[1] for p in programs],)
    outs = _compile_and_run(all_groups, all_args, key=_program_key("train", base, groups, all_args, fused),
                            optimise=_training_work(base, data, groups) > OPTIMISE_ABOVE_WORK)
    return [p[2](o) for p, o in zip(programs, outs)]
