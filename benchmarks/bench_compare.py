"""Benchmark: the vectorised engine against sequential ``model.fit`` on one 16-run grid.

4 optimizers x 4 learning rates, 200 epochs, batch size 32, the income example (complete rows),
the seeds' linear model; then the same 16 configurations of a 2->32->32->1 MLP on 10,000 rows for
50 epochs against bare ``model.fit`` calls, with the achieved FLOP rate of the matrix products
next to a plain 1024x1024 matmul's on the same machine (``--mlp-only``, ``--no-mlp``). Same process, same backend. Prints both times and the speed-up, and
checks that both engines reach the same final losses.

    KERAS_BACKEND=jax PYTHONPATH=src python benchmarks/bench_compare.py [--repeats 2]

Times for the vectorised engine: "first call" is the first call in the process (JAX start-up,
tracing and XLA compilation included); "compiling" is a call after an unrelated warm-up run, with
the program cache cleared (tracing and compilation included: what a new grid costs in a running
process); "cached" is the best of further calls, which reuse the compiled program (what repeated
comparisons of one model cost, e.g. in ``fitdoctor demo`` or a repair); "new process, cold/warm
disk cache" are first calls in fresh processes with the on-disk compilation cache that the command
line uses (fitdoctor.experiments.cache), empty and then filled by the cold run (what a repeated
``fitdoctor compare`` costs). The sequential baseline is timed twice: the engine's
sequential path (``model.fit`` per run on a clone, plus the per-epoch full-data MSE that the
engine also records) and a bare ``model.fit`` loop as a user would write it.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

import numpy as np  # noqa: E402

def _clock() -> np.ndarray:
    """(wall seconds, CPU seconds of this process): CPU time is what to compare on a shared machine."""
    return np.array([time.perf_counter(), time.process_time()])


def _s(t) -> str:
    return f"{t[0]:6.2f} s ({t[1]:5.2f} s CPU)"


def _ratio(a, b) -> str:
    return f"{a[0] / b[0]:6.1f}x ({a[1] / b[1]:6.1f}x CPU)"


_CHILD = """
import os, sys, time
sys.path.insert(0, {src!r})
import numpy as np
from fitdoctor.experiments.cache import enable_compilation_cache
enable_compilation_cache()
from fitdoctor.examples import load_example
from fitdoctor.experiments import RunSpec, train_runs
ex = load_example("income")
ok = np.isfinite(ex.X).all(axis=1)
model = ex.build_model(0)
specs = [RunSpec(optimizer=o, learning_rate=lr, epochs={epochs}, batch_size=32) for o in {opts!r} for lr in {lrs!r}]
t0 = np.array([time.perf_counter(), time.process_time()])
train_runs(model, ex.X[ok], ex.y[ok], specs, engine="vectorized")
t = np.array([time.perf_counter(), time.process_time()]) - t0
print(t[0], t[1])
"""


def _first_call_in_new_process(cache_dir: str, epochs: int) -> np.ndarray:
    import subprocess

    code = _CHILD.format(src=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"), epochs=epochs,
                         opts=OPTIMIZERS, lrs=LEARNING_RATES)
    env = dict(os.environ, FITDOCTOR_CACHE_DIR=cache_dir, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return np.array([float(v) for v in out.stdout.split()[-2:]])


OPTIMIZERS = ["adam", "sgd", "rmsprop", "adagrad"]
LEARNING_RATES = [1e-1, 1e-2, 1e-3, 1e-4]


MLP_ROWS, MLP_EPOCHS, MLP_BATCH = 10_000, 50, 32


def _mlp_flops(n_runs: int, dims: list[int], n: int, epochs: int, batch: int) -> float:
    """FLOPs of the sweep's matrix products: 2*in*out per row and layer forward, twice that
    backward, for every padded training row, plus one forward pass over all rows per epoch
    (the MSE curve). Element-wise work (activations, the optimizer update) is not counted."""
    mm = sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))
    steps = -(-n // batch)
    return float(n_runs * epochs * (3 * mm * steps * batch + mm * n))


def _matmul_rate(size: int = 1024, repeats: int = 10) -> float:
    """FLOP/s of a plain float32 (size x size) @ (size x size) product with JAX on this machine."""
    import jax
    import jax.numpy as jnp

    a = jnp.asarray(np.random.default_rng(0).normal(size=(size, size)), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    best = min(_timed(lambda: f(a).block_until_ready()) for _ in range(repeats))
    return 2.0 * size**3 / best


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def mlp_sweep(fits: int) -> None:
    """16 configurations of a 2->32->32->1 MLP, 10,000 rows, 50 epochs: engine vs bare model.fit calls."""
    import keras

    from fitdoctor.experiments import RunSpec, train_runs

    rng = np.random.default_rng(0)
    X = rng.normal(size=(MLP_ROWS, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.normal(size=MLP_ROWS)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
    specs = [RunSpec(optimizer=o, learning_rate=lr, epochs=MLP_EPOCHS, batch_size=MLP_BATCH)
             for o in OPTIMIZERS for lr in LEARNING_RATES]
    t0 = _clock()
    vec = train_runs(model, X, y, specs, engine="vectorized")
    t_first = _clock() - t0
    t0 = _clock()
    train_runs(model, X, y, specs, engine="vectorized")
    t_cached = _clock() - t0

    fits = max(1, min(fits, len(specs)))
    t0 = _clock()
    for s in specs[:fits]:
        m = keras.models.clone_model(model)
        m.set_weights(model.get_weights())
        m.compile(optimizer=keras.optimizers.get({"class_name": s.optimizer, "config": {"learning_rate": s.learning_rate}}),
                  loss="mse")
        m.fit(X, y, epochs=s.epochs, batch_size=s.batch_size, shuffle=True, verbose=0)
    t_fit = (_clock() - t0) * (len(specs) / fits)

    flops = _mlp_flops(len(specs), [2, 32, 32, 1], MLP_ROWS, MLP_EPOCHS, MLP_BATCH)
    peak = _matmul_rate()
    print(f"\nMLP sweep: {len(specs)} runs of 2->32->32->1 (relu), {MLP_ROWS:,} rows, {MLP_EPOCHS} epochs, batch {MLP_BATCH}"
          f" ({vec[0].engine})")
    print(f"vectorised engine : first call {_s(t_first)}, cached {_s(t_cached)}")
    scaled = f" ({fits} timed, scaled to {len(specs)})" if fits < len(specs) else ""
    print(f"bare model.fit    : {_s(t_fit)}{scaled}")
    print(f"speed-up first call: {_ratio(t_fit, t_first)} vs bare model.fit (target >= 15x)")
    print(f"speed-up cached    : {_ratio(t_fit, t_cached)} vs bare model.fit")
    print(f"arithmetic: {flops / 1e9:.1f} GFLOP of matrix products; achieved {flops / t_cached[0] / 1e9:.1f} GFLOP/s cached, "
          f"{flops / t_first[0] / 1e9:.1f} GFLOP/s first call, bare model.fit {flops / t_fit[0] / 1e9:.1f} GFLOP/s; "
          f"a plain 1024x1024 float32 matmul on this machine: {peak / 1e9:.1f} GFLOP/s")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="warm repeats of the vectorised engine (default 2)")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--mlp-only", action="store_true", help="only the MLP sweep")
    ap.add_argument("--no-mlp", action="store_true", help="skip the MLP sweep")
    ap.add_argument("--mlp-fits", type=int, default=16,
                    help="bare model.fit calls timed for the MLP baseline, scaled to 16 (default 16: all)")
    args = ap.parse_args(argv)
    if args.mlp_only:
        mlp_sweep(args.mlp_fits)
        return 0

    import keras

    from fitdoctor.examples import load_example
    from fitdoctor.experiments import RunSpec, train_runs

    ex = load_example("income")
    ok = np.isfinite(ex.X).all(axis=1)
    X, y = ex.X[ok], ex.y[ok]
    model = ex.build_model(0)
    specs = [RunSpec(optimizer=o, learning_rate=lr, epochs=args.epochs, batch_size=32)
             for o in OPTIMIZERS for lr in LEARNING_RATES]
    print(f"backend {keras.backend.backend()}, {len(specs)} runs x {args.epochs} epochs, {len(y)} rows, batch 32")

    from fitdoctor.experiments import engine as engine_module

    t0 = _clock()
    vec = train_runs(model, X, y, specs, engine="vectorized")
    t_first = _clock() - t0
    engine_module.clear_program_cache()
    train_runs(model, X, y, [RunSpec(epochs=3)], engine="vectorized")  # unrelated warm-up program
    engine_module.clear_program_cache()
    t0 = _clock()
    train_runs(model, X, y, specs, engine="vectorized")
    t_compile = _clock() - t0
    warm = []
    for _ in range(max(1, args.repeats)):
        t0 = _clock()
        train_runs(model, X, y, specs, engine="vectorized")
        warm.append(_clock() - t0)
    t_cached = min(warm, key=lambda t: t[0])

    t0 = _clock()
    seq = train_runs(model, X, y, specs, engine="sequential")
    t_seq = _clock() - t0

    t0 = _clock()
    for s in specs:
        m = keras.models.clone_model(model)
        m.set_weights(model.get_weights())
        m.compile(optimizer=keras.optimizers.get({"class_name": s.optimizer, "config": {"learning_rate": s.learning_rate}}),
                  loss="mse")
        m.fit(X, y, epochs=s.epochs, batch_size=s.batch_size, shuffle=True, verbose=0)
    t_fit = _clock() - t0

    import tempfile

    with tempfile.TemporaryDirectory(prefix="fitdoctor-bench-cache-") as cache_dir:
        t_cold = _first_call_in_new_process(cache_dir, args.epochs)
        t_warm = _first_call_in_new_process(cache_dir, args.epochs)

    rel = [abs(a.final_mse / b.final_mse - 1) for a, b in zip(vec, seq) if np.isfinite(a.final_mse) and np.isfinite(b.final_mse)]
    agree_nan = all(np.isfinite(a.final_mse) == np.isfinite(b.final_mse) for a, b in zip(vec, seq))
    print(f"vectorised engine ({vec[0].engine}): first call {_s(t_first)}, compiling {_s(t_compile)}, cached {_s(t_cached)}")
    print(f"sequential engine : {_s(t_seq)} (model.fit per run + per-epoch MSE)")
    print(f"bare model.fit    : {_s(t_fit)} ({len(specs)} x model.fit, nothing recorded)")
    print(f"new process       : cold disk cache {_s(t_cold)}, warm disk cache {_s(t_warm)}")
    for name, t in (("first call", t_first), ("compiling", t_compile), ("cached", t_cached),
                    ("new process, cold disk cache", t_cold), ("new process, warm disk cache", t_warm)):
        print(f"speed-up {name:<28}: {_ratio(t_seq, t)} vs sequential engine, {_ratio(t_fit, t)} vs bare model.fit")
    print(f"final-loss agreement: max relative difference {max(rel) if rel else float('nan'):.2e} over {len(rel)} finite runs; "
          f"same runs non-finite: {agree_nan}")
    if not args.no_mlp:
        mlp_sweep(args.mlp_fits)
    return 0


if __name__ == "__main__":
    sys.exit(main())
