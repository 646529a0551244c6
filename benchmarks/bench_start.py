"""Benchmark: start-up of the verbs that train nothing (issue 14, item 5).

Wall time of a whole `fitdoctor check income.csv --target income --no-probe` process (the income
example written by fitdoctor's own generator into a temporary folder) next to a plain
`python -c pass` in the same run, medians of alternating pairs. Also `explain`, `rules` and
`check-log`, and whether any of them imported Keras or JAX. Target: the check under 1 s.

    python benchmarks/bench_start.py [--repeat 7]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time


def wall(argv: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - start


def heavy_modules(verb: list[str], env: dict) -> list[str]:
    code = ("import sys, io, contextlib\nfrom fitdoctor.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    main({verb!r})\n"
            "print(sorted(m for m in ('keras', 'jax', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1].replace("'", '"'))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    from fitdoctor.examples import load_example

    env = {**os.environ, "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "jax")}
    with tempfile.TemporaryDirectory() as d:
        csv = os.path.join(d, "income.csv")
        load_example("income").frame().to_csv(csv, index=False)
        log = os.path.join(d, "training.log")
        with open(log, "w") as fh:
            fh.write("epoch,loss\n" + "\n".join(f"{e},{6.9e7 * 0.999 ** e}" for e in range(200)) + "\n")
        verbs = {
            "check --no-probe": ["check", csv, "--target", "income", "--no-probe"],
            "explain": ["explain", "adam-large-target"],
            "rules": ["rules"],
            "check-log --data": ["check-log", log, "--data", csv, "--target", "income"],
        }
        py = [sys.executable]
        baseline = []
        times: dict[str, list[float]] = {k: [] for k in verbs}
        for _ in range(args.repeat):  # alternate: a drift of the machine's speed hits both alike
            baseline.append(wall(py + ["-c", "pass"], env))
            for name, verb in verbs.items():
                times[name].append(wall(py + ["-m", "fitdoctor", *verb], env))
        base = statistics.median(baseline)
        print(f"python -c pass                      {base:6.3f} s (median of {args.repeat})")
        for name, verb in verbs.items():
            t = statistics.median(times[name])
            print(f"fitdoctor {name:<25} {t:6.3f} s  ({t / base:5.1f}x python -c pass; "
                  f"range {min(times[name]):.3f}-{max(times[name]):.3f} s; imports {heavy_modules(verb, env) or 'no Keras/JAX'})")
        check = statistics.median(times["check --no-probe"])
        print(f"target: check --no-probe under 1 s of wall time: {'met' if check < 1.0 else 'NOT met'} ({check:.3f} s)")


if __name__ == "__main__":
    main()
