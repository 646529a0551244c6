"""Held-out rows for verdicts (issue 12): which rows judge a candidate, and the references on them.

A verdict ("repaired", "within 10% of the optimum") is made on rows the candidate never trained on:
the user's ``validation_data`` or ``validation_split`` (Keras's meaning: the last fraction of the
rows) when given; otherwise a seeded hold-out split, or K-fold cross-validation for small data. The
references (mean predictor, least squares, the nonlinear reference) are fitted on the same training
rows and measured on the same held-out rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .reference import kernel_ridge_select

#: fewer complete rows than this: K-fold cross-validation instead of one hold-out split
KFOLD_BELOW_ROWS = 100
#: folds of the small-data cross-validation
K_FOLDS = 5
#: share of the rows held out when neither validation_data nor validation_split is given
HOLDOUT_FRACTION = 0.2


@dataclass
class HoldOut:
    """Which rows judge the candidates: ``folds`` of (train, validation) indices into the pooled rows."""

    kind: str  # "validation_data", "validation_split", "hold-out" or "k-fold"
    folds: list
    retrain_all: bool  # the final model is retrained on every training row with the chosen recipe
    description: str


def holdout_plan(n: int, n_given: int, validation_split: float | None, seed: int) -> HoldOut:
    """The validation plan for ``n`` training rows (``n_given`` more rows passed as validation_data)."""
    if n_given:
        return HoldOut("validation_data", [(np.arange(n), np.arange(n, n + n_given))], False,
                       f"validation_data ({n_given} rows)")
    if validation_split is not None:
        v = float(validation_split)
        if not 0.0 < v < 1.0:
            raise InputError(f"validation_split must be between 0 and 1 (Received validation_split={validation_split!r})")
        n_val = int(round(n * v))
        if n_val < 1 or n - n_val < 1:
            raise InputError(f"validation_split={v:g} leaves no training or no validation rows out of {n}")
        # Keras's meaning: the last rows, before any shuffling
        return HoldOut("validation_split", [(np.arange(n - n_val), np.arange(n - n_val, n))], False,
                       f"validation_split={v:g} (the last {n_val} of {n} rows, as Keras takes them)")
    order = np.random.default_rng(seed).permutation(n)
    if n < KFOLD_BELOW_ROWS:
        k = int(min(K_FOLDS, n))
        parts = np.array_split(order, k)
        folds = [(np.sort(np.concatenate([p for j, p in enumerate(parts) if j != i])), np.sort(parts[i]))
                 for i in range(k)]
        return HoldOut("k-fold", folds, True,
                       f"{k}-fold cross-validation (seed {seed}; {n} rows are too few for one hold-out split)")
    n_val = max(1, int(round(n * HOLDOUT_FRACTION)))
    return HoldOut("hold-out", [(np.sort(order[n_val:]), np.sort(order[:n_val]))], True,
                   f"a seeded hold-out split ({n_val} of {n} rows, seed {seed})")


def ls_predict(Xtr, ytr, Xv) -> np.ndarray:
    from .reference import least_squares

    A, B = Xtr.reshape(len(Xtr), -1), Xv.reshape(len(Xv), -1)
    Y = ytr.reshape(len(ytr), -1)
    cols = []
    for j in range(Y.shape[1]):
        coef, icpt, _ = least_squares(A, Y[:, j])
        cols.append(B @ np.nan_to_num(coef) + (icpt if np.isfinite(icpt) else Y[:, j].mean()))
    return np.stack(cols, axis=1)


def nonlinear_predict(Xtr, ytr, Xv, seed: int) -> np.ndarray | None:
    """A strong nonlinear reference fitted on the training rows: kernel ridge (gamma, alpha chosen by
    exact leave-one-out) under 200 rows, gradient boosting above; None under 10 rows."""
    A, B = Xtr.reshape(len(Xtr), -1), Xv.reshape(len(Xv), -1)
    Y = ytr.reshape(len(ytr), -1)
    if len(A) < 10:
        return None
    cols = []
    if len(A) >= 200:
        from sklearn.ensemble import HistGradientBoostingRegressor

        from .reference import single_threaded

        for j in range(Y.shape[1]):
            est = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=seed)
            with single_threaded():
                cols.append(est.fit(A, Y[:, j]).predict(B))
        return np.stack(cols, axis=1)
    mu, sd = A.mean(axis=0), A.std(axis=0)
    sd = np.where(sd > 0, sd, 1.0)
    Za, Zb = (A - mu) / sd, (B - mu) / sd
    d2 = np.sum((Za[:, None, :] - Za[None, :, :]) ** 2, axis=-1)
    d2b = np.sum((Zb[:, None, :] - Za[None, :, :]) ** 2, axis=-1)
    p = Za.shape[1]
    for j in range(Y.shape[1]):
        ym = Y[:, j].mean()
        _, gamma, _, dual = kernel_ridge_select(d2, Y[:, j] - ym, p)
        cols.append(np.exp(-gamma * d2b) @ dual + ym)
    return np.stack(cols, axis=1)


def heldout_references(Xp, yp, plan: HoldOut, seed: int) -> dict[str, float]:
    """Mean predictor, least squares and the nonlinear reference, each fitted on the training rows of
    every fold and measured on its validation rows (MSE over all validation rows, original units)."""
    sse = {"mean predictor": 0.0, "least squares": 0.0, "nonlinear reference": 0.0}
    count, nl_ok = 0, True
    for tr, va in plan.folds:
        Y, Yv = yp[tr].reshape(len(tr), -1), yp[va].reshape(len(va), -1)
        sse["mean predictor"] += float(np.sum((Yv - Y.mean(axis=0)) ** 2))
        with np.errstate(all="ignore"):
            sse["least squares"] += float(np.sum((ls_predict(Xp[tr], Y, Xp[va]) - Yv) ** 2))
            nl = nonlinear_predict(Xp[tr], Y, Xp[va], seed) if nl_ok else None
        if nl is None:
            nl_ok = False
        else:
            sse["nonlinear reference"] += float(np.sum((nl - Yv) ** 2))
        count += Yv.size
    out = {k: v / max(count, 1) for k, v in sse.items()}
    if not nl_ok:
        out.pop("nonlinear reference")
    return {k: v for k, v in out.items() if np.isfinite(v)}
