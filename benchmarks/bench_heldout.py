"""Held-out benchmark (issue 12): the repaired model's TEST MSE next to the user's configuration's,
LinearRegression's and HistGradientBoostingRegressor's, on scikit-learn's diabetes data (bundled, no
download) with three typical learner mistakes: no scaling, a sigmoid output, 5 epochs.

Run: ``KERAS_BACKEND=jax python benchmarks/bench_heldout.py`` (80/20 split, seed 0). Target: the
repaired model within 1.1x of the better scikit-learn baseline, never worse than the user's model.
"""
from __future__ import annotations

import os
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import numpy as np


def _mlp(keras, n_inputs, *, output_activation=None, scale=False, X=None):
    layers = [keras.Input((n_inputs,))]
    if scale:
        norm = keras.layers.Normalization()
        norm.adapt(X)
        layers.append(norm)
    layers += [keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, activation=output_activation)]
    return keras.Sequential(layers)


def main() -> None:
    import keras
    from sklearn.datasets import load_diabetes
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression
    from sklearn.model_selection import train_test_split

    from fitdoctor import repair

    X, y = load_diabetes(return_X_y=True, scaled=False)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.2, random_state=0)
    mse = lambda pred: float(np.mean((np.asarray(pred).reshape(-1) - yte) ** 2))  # noqa: E731
    lin = mse(LinearRegression().fit(Xtr, ytr).predict(Xte))
    hgb = mse(HistGradientBoostingRegressor(random_state=0).fit(Xtr, ytr).predict(Xte))
    best = min(lin, hgb)
    cases = {
        "no scaling": dict(scale=False, output_activation=None, epochs=200),
        "sigmoid output": dict(scale=True, output_activation="sigmoid", epochs=200),
        "5 epochs": dict(scale=True, output_activation=None, epochs=5),
    }
    print(f"diabetes: {len(ytr)} training rows, {len(yte)} test rows; LinearRegression {lin:.1f}, "
          f"HistGradientBoosting {hgb:.1f}")
    print(f"{'mistake':<16} {'user':>10} {'repaired':>10} {'/best':>7} {'/user':>7} {'seconds':>8}  verdict")
    for name, c in cases.items():
        keras.utils.set_random_seed(0)
        model = _mlp(keras, X.shape[1], output_activation=c["output_activation"], scale=c["scale"], X=Xtr)
        model.compile(optimizer="adam", loss="mse")
        user = keras.models.clone_model(model)
        user.set_weights(model.get_weights())
        user.compile(optimizer="adam", loss="mse")
        user.fit(Xtr, ytr, epochs=c["epochs"], batch_size=32, verbose=0)
        user_mse = mse(user.predict(Xte, verbose=0))
        t = time.perf_counter()
        rep = repair(model, Xtr, ytr, epochs=c["epochs"], batch_size=32)
        secs = time.perf_counter() - t
        rep_mse = mse(rep.model.predict(Xte, verbose=0))
        print(f"{name:<16} {user_mse:>10.1f} {rep_mse:>10.1f} {rep_mse / best:>7.3f} {rep_mse / user_mse:>7.3f} "
              f"{secs:>8.1f}  {rep.message[:90]}")


if __name__ == "__main__":
    main()
