"""Benchmark: how ``diagnose`` and ``repair`` grow with the number of rows, next to one plain fit.

20 features, a 20->64->64->1 relu MLP, Adam 1e-3, targets in the thousands; 20 epochs of batch 32
by default (``--epochs``, ``--batch-size``; the configuration is printed). Experiments on more than
``m`` rows run on a seeded subsample (the rule of :mod:`fitdoctor.experiments.budget`) and the
repaired model trains once on all rows; the line says how many rows the experiments used.
For each n, three fresh processes (so that each peak memory is its own): one plain
``model.fit`` of that configuration, ``diagnose(probe=True)``, and ``repair``. Prints each as a
ratio to the plain fit, in wall time and in CPU time of the process (CPU time is what to compare
on a shared machine), the peak resident memory of each process (imports included: about
0.6 GiB with Keras and JAX loaded), and where repair's time went (its ``budget_["stage_seconds"]``;
on a subsample also the epochs of the final fit on all rows, which trains the optimizer steps
chosen on the subsample: :func:`fitdoctor.experiments.budget.final_epochs`).

    KERAS_BACKEND=jax PYTHONPATH=src python benchmarks/bench_scale.py [--sizes 1000,10000,100000,1000000]

Targets (issue #14): the ratios do not grow with n; at 10^6 rows repair <= 3x one fit. The
10^6-row plain fit alone takes minutes on a 2-core machine; pass smaller ``--sizes`` to try it out.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")

CHILD = textwrap.dedent("""
    import json, resource, sys, time
    import numpy as np
    import keras
    import fitdoctor

    n, what, epochs, batch = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, 20)) * np.geomspace(0.1, 1000, 20)
    Z = X / np.geomspace(0.1, 1000, 20)
    y = 2000 + 300 * np.tanh(Z[:, :5].sum(axis=1)) + 100 * Z[:, 5:10].sum(axis=1) + rng.normal(0, 30, n)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((20,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    out = {}
    def cpu():
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime
    t, c = time.perf_counter(), cpu()
    if what == "fit":
        model.fit(X.astype("float32"), y.astype("float32"), epochs=epochs, batch_size=batch, verbose=0)
    elif what == "diagnose":
        rep = fitdoctor.diagnose(model, X, y, epochs=epochs, batch_size=batch)
        out["findings"] = rep.names
    else:
        rep = fitdoctor.repair(model, X, y, epochs=epochs, batch_size=batch)
        out["applied"] = rep.applied_names
        out["after_loss"] = rep.after_loss
        spent = getattr(rep, "budget_", None) or {}
        out["budget"] = spent.get("subsample")
        out["stages"] = spent.get("stage_seconds") or {}
    out["seconds"] = time.perf_counter() - t
    out["cpu"] = cpu() - c
    out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))
""")


def _child(n: int, what: str, epochs: int, batch: int) -> dict:
    env = dict(os.environ, KERAS_BACKEND=os.environ.get("KERAS_BACKEND", "jax"), TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.path.abspath(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", CHILD, str(n), what, str(epochs), str(batch)], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-2000:])
        raise SystemExit(f"{what} at n={n} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000,1000000", help="comma-separated row counts")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    args = ap.parse_args(argv)
    sizes = [int(float(s)) for s in args.sizes.split(",") if s.strip()]
    print(f"configuration: 20 features, 20->64->64->1 relu MLP, Adam 1e-3, {args.epochs} epochs, batch {args.batch_size}, "
          f"KERAS_BACKEND={os.environ.get('KERAS_BACKEND', 'jax')}; one process per measurement", flush=True)
    print(f"{'rows':>9}  {'fit s (CPU)':>16}  {'diagnose wall, CPU':>24}  {'repair wall, CPU':>24}  peak GiB fit / diagnose / repair")
    for n in sizes:
        fit, dia, rep = (_child(n, w, args.epochs, args.batch_size) for w in ("fit", "diagnose", "repair"))
        b = rep.get("budget") or {}
        used = f"experiments on {b['m']:,} rows, agree={b.get('agree')}" if b.get("subsampled") else "experiments on all rows"
        print(f"{n:>9,}  {fit['seconds']:7.2f} ({fit['cpu']:6.1f})  "
              f"{dia['seconds']:7.2f} s {dia['seconds'] / fit['seconds']:5.2f}x, {dia['cpu'] / fit['cpu']:5.2f}x  "
              f"{rep['seconds']:7.2f} s {rep['seconds'] / fit['seconds']:5.2f}x, {rep['cpu'] / fit['cpu']:5.2f}x  "
              f"{fit['peak_gib']:.2f} / {dia['peak_gib']:.2f} / {rep['peak_gib']:.2f}   applied: {', '.join(rep['applied']) or '-'}; {used}", flush=True)
        stages = sorted((rep.get("stages") or {}).items(), key=lambda kv: -kv[1])
        final = (f"; final fit on all rows: {b['final_epochs']} epochs (chosen on the subsample: {b['chosen_epochs']})"
                 if b.get("subsampled") and "final_epochs" in b else "")
        print(f"{'':>9}  repair's seconds by stage: " + ", ".join(f"{k} {v:.1f}" for k, v in stages) + final, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
