"""Held-out benchmark (issue 12): the repaired model's TEST MSE next to the user's configuration's,
LinearRegression's and HistGradientBoostingRegressor's, and the ratio to the better of the two baselines.

Cases: every bundled example (:mod:`fitdoctor.examples`, the user's configuration as the example states
it) and scikit-learn's diabetes data (bundled, no download) with three typical learner mistakes: no
scaling, a sigmoid output, 5 epochs.

Test rows: an 80/20 split (seed 0) for data of at least ``OUTER_KFOLD_BELOW`` rows; below that one
split leaves a handful of test rows (the scaling example has 5 rows in all), so the whole procedure
(user's fit, baselines, repair) runs once per fold of a seeded K-fold split and the test MSE is pooled
over the folds (every row is a test row once). The repair never sees the test rows.

Run: ``KERAS_BACKEND=jax python benchmarks/bench_heldout.py [--only NAME]``. Target: the repaired model
within 1.1x of the better scikit-learn baseline, never worse than the user's model.
"""
from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np

#: below this many rows the test MSE is pooled over a K-fold split instead of one 80/20 split
OUTER_KFOLD_BELOW = 50
TARGET_RATIO = 1.1


def _splits(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    if n >= OUTER_KFOLD_BELOW:
        n_test = int(round(0.2 * n))
        return [(np.sort(order[n_test:]), np.sort(order[:n_test]))], "80/20 split"
    k = min(5, n)
    parts = np.array_split(order, k)
    return [(np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])), np.sort(parts[i]))
            for i in range(k)], f"{k}-fold, test MSE pooled"


def _diabetes_model(keras, X, *, output_activation=None, scale=False):
    layers = [keras.Input((X.shape[1],))]
    if scale:
        norm = keras.layers.Normalization()
        norm.adapt(X)
        layers.append(norm)
    layers += [keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, activation=output_activation)]
    model = keras.Sequential(layers)
    model.compile(optimizer="adam", loss="mse")
    return model


def _cases():
    """(name, X, y, make_model(Xtr) -> compiled model, epochs, batch_size)."""
    import keras
    from sklearn.datasets import load_diabetes

    from fitdoctor.examples import EXAMPLES

    out = []
    for name, make in EXAMPLES.items():
        ex = make()
        ok = np.isfinite(ex.X).all(axis=1) & np.isfinite(ex.y)
        out.append((f"example {name}", ex.X[ok], ex.y[ok], lambda Xtr, ex=ex: ex.compiled_model(0), ex.epochs,
                    ex.batch_size))
    X, y = load_diabetes(return_X_y=True, scaled=False)
    mistakes = {
        "no scaling": dict(scale=False, output_activation=None, epochs=200),
        "sigmoid output": dict(scale=True, output_activation="sigmoid", epochs=200),
        "5 epochs": dict(scale=True, output_activation=None, epochs=5),
    }
    for name, c in mistakes.items():
        def make(Xtr, c=c):
            keras.utils.set_random_seed(0)
            return _diabetes_model(keras, Xtr, output_activation=c["output_activation"], scale=c["scale"])
        out.append((f"diabetes {name}", X, y, make, c["epochs"], 32))
    return out


def run_case(X, y, make, epochs, batch_size):
    import keras
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression

    from fitdoctor import repair
    from fitdoctor.model.replica import call_model

    splits, how = _splits(len(y))
    sse = dict.fromkeys(("user", "repaired", "linear", "hgb"), 0.0)
    secs, messages, n_test = 0.0, [], 0
    for tr, te in splits:
        n_test += len(te)
        Xtr, ytr, Xte, yte = X[tr], y[tr], X[te], y[te]
        err = lambda pred: float(np.sum((np.asarray(pred, np.float64).reshape(-1) - yte) ** 2))  # noqa: E731
        sse["linear"] += err(LinearRegression().fit(Xtr, ytr).predict(Xte))
        sse["hgb"] += err(HistGradientBoostingRegressor(random_state=0).fit(Xtr, ytr).predict(Xte))
        model = make(Xtr)
        user = keras.models.clone_model(model)
        user.set_weights(model.get_weights())
        user.compile(optimizer=keras.optimizers.get(keras.optimizers.serialize(model.optimizer)), loss=model.loss)
        user.fit(Xtr, ytr, epochs=epochs, batch_size=batch_size, verbose=0)
        sse["user"] += err(call_model(user, Xte))
        t = time.perf_counter()
        rep = repair(model, Xtr, ytr, epochs=epochs, batch_size=batch_size)
        secs += time.perf_counter() - t
        sse["repaired"] += err(call_model(rep.model, Xte))
        messages.append(rep.message)
    return {k: v / n_test for k, v in sse.items()}, secs, how, messages  # MSE over every test row


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run the cases whose name contains this text")
    args = ap.parse_args(argv)
    print(f"{'case':<26} {'rows':>5} {'user':>10} {'repaired':>10} {'linear':>10} {'hist-gb':>10} "
          f"{'/best':>7} {'/user':>7} {'secs':>6}  test rows")
    held = 0
    cases = [c for c in _cases() if not args.only or args.only in c[0]]
    for name, X, y, make, epochs, bs in cases:
        m, secs, how, messages = run_case(X, y, make, epochs, bs)
        best = min(m["linear"], m["hgb"])
        ratio = m["repaired"] / best
        held += ratio <= TARGET_RATIO
        print(f"{name:<26} {len(y):>5} {m['user']:>10.4g} {m['repaired']:>10.4g} {m['linear']:>10.4g} "
              f"{m['hgb']:>10.4g} {ratio:>7.3f} {m['repaired'] / m['user']:>7.3f} {secs:>6.1f}  {how}", flush=True)
        print(f"{'':<26} repair said: {messages[0][:110]}", flush=True)
    print(f"within {TARGET_RATIO}x of the better baseline: {held} of {len(cases)}")


if __name__ == "__main__":
    main()
