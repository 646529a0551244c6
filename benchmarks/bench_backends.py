"""Benchmark: a TensorFlow user's ``repair`` and ``diagnose(probe=True)`` with the JAX worker process.

Two tasks, each in a fresh user process running Keras on TensorFlow: the income task of seed 003
(one Dense unit, Adam 0.01, 200 epochs, batch 32) and a 10,000-row MLP (4 features at mixed scales,
targets in the thousands, 4->32->32->1 relu, Adam 1e-3, 30 epochs, batch 32). In that process:
one plain ``model.fit`` of the user's configuration (what the user waits for anyway), then
``diagnose(probe=True)`` (the first call also starts the JAX worker), ``repair``, and both again
(worker warm). Times are printed as ratios to the plain fit measured in the same process. The
same tasks then run on JAX in another fresh process from the same initial weights, to check that
the findings and the applied fixes agree.

    PYTHONPATH=src python benchmarks/bench_backends.py [--task income|mlp|both]

Targets (issue #14): repair <= 3x one plain TensorFlow fit, diagnose <= 1.5x, same findings and
fixes as on JAX.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "src")
INCOME = os.path.join(HERE, "..", "..", "shared", "data", "income.csv")

USER = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import keras
    import fitdoctor

    def tree_cpu():
        # CPU seconds of this process and its children (the JAX worker) so far: /proc on Linux
        try:
            ticks = os.sysconf("SC_CLK_TCK")
            stats = {{}}
            for pid in os.listdir("/proc"):
                if pid.isdigit():
                    try:
                        with open(f"/proc/{{pid}}/stat") as f:
                            fields = f.read().rsplit(")", 1)[1].split()
                        stats[int(pid)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
                    except (OSError, IndexError, ValueError):
                        pass
            mine, todo = {{os.getpid()}}, [os.getpid()]
            while todo:
                p = todo.pop()
                for c, (ppid, _) in stats.items():
                    if ppid == p and c not in mine:
                        mine.add(c)
                        todo.append(c)
            return sum(stats[p][1] for p in mine if p in stats)
        except (OSError, ValueError):
            return time.process_time()

    task, weights_file = sys.argv[1], sys.argv[2]
    if task == "income":
        import pandas as pd
        df = pd.read_csv({income!r})
        X, y = df[["age", "experience"]].to_numpy(float), df["income"].to_numpy(float)
        epochs, batch, lr = 200, 32, 0.01
        def build():
            return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    else:
        rng = np.random.default_rng(0)
        n = 10_000
        X = np.column_stack([rng.normal(40, 12, n), rng.normal(5e4, 2e4, n), rng.normal(0, 1, n), rng.uniform(0, 10, n)])
        y = 3000 + 40 * X[:, 0] + 0.02 * X[:, 1] + 300 * np.sin(2 * X[:, 2]) + 30 * X[:, 3] ** 1.5 + rng.normal(0, 50, n)
        epochs, batch, lr = 30, 32, 1e-3
        def build():
            return keras.Sequential([keras.Input((4,)), keras.layers.Dense(32, activation="relu"),
                                     keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
    keras.utils.set_random_seed(0)
    if keras.backend.backend() == "tensorflow":
        init = build().get_weights()
        np.savez(weights_file, *init)
    else:
        with np.load(weights_file) as z:
            init = [z[f"arr_{{i}}"] for i in range(len(z.files))]

    def user_model():
        m = build()
        m.set_weights(init)
        m.compile(optimizer=keras.optimizers.Adam(learning_rate=lr), loss="mse")
        return m

    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    out = {{"backend": keras.backend.backend(), "rows": int(len(y))}}
    t, c = time.perf_counter(), tree_cpu()
    user_model().fit(X[ok], y[ok], epochs=epochs, batch_size=batch, verbose=0)
    out["fit"], out["fit_cpu"] = time.perf_counter() - t, tree_cpu() - c
    for rnd in ("first", "warm"):
        t, c = time.perf_counter(), tree_cpu()
        report = fitdoctor.diagnose(user_model(), X, y, epochs=epochs, batch_size=batch)
        out[f"diagnose_{{rnd}}"], out[f"diagnose_{{rnd}}_cpu"] = time.perf_counter() - t, tree_cpu() - c
        t, c = time.perf_counter(), tree_cpu()
        rep = fitdoctor.repair(user_model(), X, y, epochs=epochs, batch_size=batch)
        out[f"repair_{{rnd}}"], out[f"repair_{{rnd}}_cpu"] = time.perf_counter() - t, tree_cpu() - c
    out["stage_seconds"] = {{k: round(v, 2) for k, v in rep.budget_["stage_seconds"].items()}}
    out.update(findings=sorted(report.names), confirmed=sorted(f.name for f in report.findings if f.confirmed),
               applied=rep.applied_names, after_loss=rep.after_loss, probe_engine=report.probe["engine"],
               ablation_engines=sorted({{a["engine"] for a in rep.ablation}}), candidates=rep.n_candidates)
    print(json.dumps(out))
""").format(income=INCOME)


def _run(task: str, backend: str, weights: str) -> dict:
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    env["PYTHONPATH"] = os.path.abspath(SRC) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", USER, task, weights], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"the {backend} process failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", choices=("income", "mlp", "both"), default="both")
    args = ap.parse_args(argv)
    tasks = ["income", "mlp"] if args.task == "both" else [args.task]
    for task in tasks:
        with tempfile.TemporaryDirectory(prefix="fitdoctor-bench-") as tmp:
            weights = os.path.join(tmp, "init.npz")
            tf = _run(task, "tensorflow", weights)
            jx = _run(task, "jax", weights)
        fit, fit_cpu = tf["fit"], tf["fit_cpu"]
        print(f"\n{task} ({tf['rows']:,} rows), user process on TensorFlow; one plain TF fit {fit:.2f} s "
              f"({fit_cpu:.2f} s CPU)")
        for what, target in (("diagnose", 1.5), ("repair", 3.0)):
            print(f"  {what:<9}: first call {tf[what + '_first']:6.2f} s = {tf[what + '_first'] / fit:5.2f}x the fit "
                  f"(JAX worker start included in the first diagnose), warm {tf[what + '_warm']:6.2f} s = "
                  f"{tf[what + '_warm'] / fit:5.2f}x (target <= {target}x)")
            print(f"  {'':<9}  CPU time (this process and the JAX worker): first {tf[what + '_first_cpu'] / fit_cpu:5.2f}x, "
                  f"warm {tf[what + '_warm_cpu'] / fit_cpu:5.2f}x the fit's")
        print("  repair's stages (warm call, wall seconds): "
              + ", ".join(f"{k} {v}" for k, v in tf["stage_seconds"].items()))
        print(f"  engines: probe {tf['probe_engine']}, ablation {', '.join(tf['ablation_engines'])}; "
              f"{tf['candidates']} candidate configurations")
        print(f"  on JAX (same initial weights): plain fit {jx['fit']:.2f} s, diagnose {jx['diagnose_warm']:.2f} s, "
              f"repair {jx['repair_warm']:.2f} s")
        print(f"  same findings as on JAX: {tf['findings'] == jx['findings']} ({', '.join(tf['findings'])}); "
              f"same confirmed: {tf['confirmed'] == jx['confirmed']}")
        print(f"  same applied fixes as on JAX: {tf['applied'] == jx['applied']} ({', '.join(tf['applied'])} vs "
              f"{', '.join(jx['applied'])}); after_loss {tf['after_loss']:.6g} vs {jx['after_loss']:.6g} "
              f"({tf['after_loss'] / jx['after_loss'] - 1:+.2%})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
