"""Overhead of fitdoctor.Monitor: a 50-epoch fit of a small MLP on 10,000 rows, with and without it.

Run: ``PYTHONPATH=src python benchmarks/bench_monitor.py [--epochs 50] [--repeats 2]``. The fits
alternate (without, with, without, with, ...) in the same process after one warm-up fit, and the
script prints each time, the ratio of the median times and of the best times (target: <= 1.05).
The Monitor's sample function is compiled once per architecture and process (the warm-up fit
pays it), as a user's first fit does.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import keras

    import fitdoctor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.rows, 8)).astype(np.float32)
    y = (np.sin(X[:, 0]) + X[:, 1] * X[:, 2] + 0.1 * rng.standard_normal(args.rows)).astype(np.float32)
    sample = slice(0, 256)

    def fit(with_monitor: bool, epochs: int) -> tuple[float, fitdoctor.Monitor | None]:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(32, activation="relu"),
                                  keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse")
        mon = fitdoctor.Monitor(X_sample=X[sample], y_sample=y[sample]) if with_monitor else None
        t = time.perf_counter()
        model.fit(X, y, epochs=epochs, batch_size=args.batch_size, verbose=0, callbacks=[mon] if mon else [])
        return time.perf_counter() - t, mon

    fit(True, 1)  # warm-up: compile both paths once
    fit(False, 1)
    plain, monitored = [], []
    mon = None
    for _ in range(args.repeats):
        plain.append(fit(False, args.epochs)[0])
        t, mon = fit(True, args.epochs)
        monitored.append(t)
    ratio = float(np.median(monitored) / np.median(plain))
    ratio_min = float(np.min(monitored) / np.min(plain))  # the least noisy estimate on a shared machine
    steps = args.epochs * int(np.ceil(args.rows / args.batch_size))
    print(f"backend {keras.backend.backend()}, {args.rows} rows, {args.epochs} epochs, batch {args.batch_size} "
          f"({steps} steps), {len(mon.history_.samples)} samples")
    print("without Monitor: " + ", ".join(f"{t:.2f}s" for t in plain))
    print("with Monitor:    " + ", ".join(f"{t:.2f}s" for t in monitored))
    print(f"findings: {[f.name for f in mon.findings_]}")
    print(f"ratio (median with / median without): {ratio:.3f}x")
    print(f"ratio (best with / best without):     {ratio_min:.3f}x  (target <= 1.05x)")


if __name__ == "__main__":
    main()
