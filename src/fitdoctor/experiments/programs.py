"""The vectorised engine's programs: one ``jax.jit`` over vmapped runs and scanned epochs per group of runs,
compiled with options chosen for small programs, cached per process."""
from __future__ import annotations

import contextlib
import gc
from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from ..model.inspect import architecture_signature
from .prepared import _Data, _result
from .specs import RunResult, RunSpec
from .stepper import _group_key, _make_stepper, _stack, shuffled_batches

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


def _group_program(base, data: _Data, specs: list[RunSpec], seed: int, fused: bool = False, by_epoch: bool = False):
    """The vmapped training function of one group, its arguments, and how to turn outputs into results.

    ``by_epoch``: the function trains ONE epoch (arguments: the state, the epoch's batches and
    ``first``); :func:`_run_by_epoch` calls it once per epoch, so one compiled program serves every
    epoch count (successive halving's short rungs and the full runs of the same candidates)."""
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
    if by_epoch:
        def fn_epoch(tv, ntv, ov, lr, xm, xs, ym, ys, X, Y, ib, mb, cnt, first):
            """One epoch (the program of every epoch count): the state in, the state and its curves out."""
            ov = jax.vmap(stepper.with_lr)(ov, lr)  # idempotent: the same rate every epoch
            def initial():
                return mse_all(tv, ntv, xm, xs, ym, ys, X, Y)

            shape = jax.eval_shape(initial)
            mse0 = jax.lax.cond(first, initial, lambda: jnp.zeros(shape.shape, shape.dtype))

            def batch(carry, inp):
                tv, ntv, ov = carry
                tv, ntv, ov, values = step_all(tv, ntv, ov, xm, xs, ym, ys, X, Y, inp[0], inp[1])
                return (tv, ntv, ov), values

            (tv, ntv, ov), values = jax.lax.scan(batch, (tv, ntv, ov), (ib, mb))
            ep_loss = jnp.sum(values * cnt[:, None], axis=0) / jnp.sum(cnt)
            return tv, ntv, ov, ep_loss, mse_all(tv, ntv, xm, xs, ym, ys, X, Y), mse0

        fn = fn_epoch

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
                  fused: Sequence[bool]) -> list[list[RunResult]]:
    """Train all groups (one epoch count) with one compiled one-epoch program, called once per epoch."""
    import jax
    import jax.numpy as jnp

    programs = [_group_program(base, data, specs, seed, f, by_epoch=True) for specs, f in zip(groups, fused)]
    fns = [p[0] for p in programs]
    E = int(groups[0][0].epochs)

    def all_groups(state, fixed, batches, first):
        return [f(*st, *fx, *b, first) for f, st, fx, b in zip(fns, state, fixed, batches)]

    # per group: state (tv, ntv, ov), fixed (lr, xm, xs, ym, ys, X, Y), batches (idx, mask, counts) per epoch
    state = [jax.device_put(p[1][:3]) for p in programs]
    fixed = [jax.device_put(p[1][3:10]) for p in programs]
    batches = [p[1][10:13] for p in programs]
    first_batches = [tuple(a[0] for a in b) for b in batches]
    args0 = (state, fixed, first_batches, True)
    key = _by_epoch_key(base, groups, args0, fused)
    compiled = _cached_compile(all_groups, args0, key, optimise=True, donate=(0,))  # the state is replaced each epoch
    losses = [[] for _ in programs]
    mses = [[] for _ in programs]
    mse0 = [None] * len(programs)
    for e in range(E):
        outs = compiled(state, fixed, [tuple(a[e] for a in b) for b in batches], e == 0)
        state = [o[:3] for o in outs]
        for g, o in enumerate(outs):
            losses[g].append(o[3])
            mses[g].append(o[4])
            if e == 0:
                mse0[g] = o[5]
    results = []
    for g, p in enumerate(programs):
        tv, ntv, _ = state[g]
        results.append(p[2]((tv, ntv, jnp.stack(losses[g]).T, jnp.stack(mses[g]).T, mse0[g])))
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
                           fused: Sequence[bool]) -> list[list[RunResult]]:
    """Train all groups in ONE compiled program (one XLA compilation instead of one per group).

    Above ``BY_EPOCH_ABOVE_WORK`` (and when every group has the same epoch count) the program trains
    one epoch per call (:func:`_run_by_epoch`), so that it serves every epoch count."""
    if (len({int(g[0].epochs) for g in groups}) == 1
            and _training_work(base, data, groups) > BY_EPOCH_ABOVE_WORK):
        return _run_by_epoch(base, data, groups, seed, fused)
    programs = [_group_program(base, data, specs, seed, f) for specs, f in zip(groups, fused)]
    fns = [p[0] for p in programs]

    def all_groups(all_args):
        return [f(*a) for f, a in zip(fns, all_args)]

    all_args = ([p[1] for p in programs],)
    outs = _compile_and_run(all_groups, all_args, key=_program_key("train", base, groups, all_args, fused),
                            optimise=_training_work(base, data, groups) > OPTIMISE_ABOVE_WORK)
    return [p[2](o) for p, o in zip(programs, outs)]
