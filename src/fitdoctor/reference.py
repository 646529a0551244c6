"""Reference losses: what is achievable on the same data.

"Not converged" is measured against three references, all as mean squared error in the user's
target units on the finite rows:

* ``mean_mse``  -- the mean predictor, ``var(y)``: a model that learned nothing;
* ``linear_mse`` -- the closed-form least-squares fit with intercept: the best any linear model
  (one Dense unit, any activation-free stack) can reach on the training data;
* ``nonlinear_mse`` -- a strong nonlinear reference (gradient boosting, out-of-fold
  cross-validated; on more than 1,000 rows, a 2,000-row sample with one hold-out split), an
  estimate of what a capable network can reach.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Any

import numpy as np

#: rows used at most for the nonlinear reference (it is an estimate, not a fit to report)
NONLINEAR_MAX_ROWS = 2000


@dataclass(frozen=True)
class Reference:
    n_rows: int
    mean_mse: float
    linear_mse: float
    nonlinear_mse: float | None
    nonlinear_model: str | None
    linear_coef: tuple[float, ...]
    linear_intercept: float

    def optimum(self, *, linear: bool = True) -> float:
        """Best achievable training MSE: least squares for a linear model, else the best reference."""
        if linear or self.nonlinear_mse is None:
            return self.linear_mse
        return min(self.linear_mse, self.nonlinear_mse)

    def gap(self, loss: float, *, linear: bool = True) -> float:
        """``loss / optimum`` (inf when the optimum is 0 and the loss is not)."""
        opt = self.optimum(linear=linear)
        floor = max(opt, 1e-12 * max(self.mean_mse, 1e-300))
        return float(loss) / floor if np.isfinite(loss) else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["linear_coef"] = list(self.linear_coef)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Reference":
        d = dict(d)
        d["linear_coef"] = tuple(d["linear_coef"])
        return cls(**d)


def least_squares(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Closed-form least squares with intercept: (coef, intercept, training MSE)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    # centre first: better conditioned and gives the intercept directly
    xm = X.mean(axis=0) if X.size else np.zeros(X.shape[1])
    ym = y.mean()
    Xc = X - xm
    if X.shape[1]:
        coef, *_ = np.linalg.lstsq(Xc, y - ym, rcond=None)
    else:
        coef = np.zeros(0)
    intercept = float(ym - xm @ coef)
    resid = Xc @ coef - (y - ym)
    return coef, intercept, float(np.mean(resid**2))


def nonlinear_reference(X: np.ndarray, y: np.ndarray, *, seed: int = 0) -> tuple[float | None, str | None]:
    """Out-of-fold MSE of gradient boosting (or k-NN on tiny data); None with fewer than 10 rows."""
    n = len(y)
    if n < 10 or X.shape[1] == 0:
        return None, None
    from sklearn.model_selection import KFold, cross_val_predict

    rng = np.random.default_rng(seed)
    if n > NONLINEAR_MAX_ROWS:
        idx = rng.choice(n, NONLINEAR_MAX_ROWS, replace=False)
        X, y = X[idx], y[idx]
        n = NONLINEAR_MAX_ROWS
    if n > 1000:  # plenty of rows: one 75/25 hold-out split is a good enough estimate, and 3x cheaper
        from sklearn.ensemble import HistGradientBoostingRegressor

        est = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=seed)
        cut = int(0.75 * n)
        order = rng.permutation(n)
        train, test = order[:cut], order[cut:]
        est.fit(X[train], y[train])
        mse = float(np.mean((est.predict(X[test]) - y[test]) ** 2))
        return mse, f"HistGradientBoostingRegressor (hold-out, {n - cut:,} of {n:,} rows)"
    n_splits = 5 if n >= 50 else min(5, n // 2)
    folds = KFold(n_splits=n_splits, shuffle=True, random_state=seed)
    if n >= 200:
        from sklearn.ensemble import HistGradientBoostingRegressor

        est = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=seed)
        name = f"HistGradientBoostingRegressor ({n_splits}-fold out-of-fold)"
    else:
        from sklearn.ensemble import GradientBoostingRegressor

        est = GradientBoostingRegressor(n_estimators=200, max_depth=2, learning_rate=0.05,
                                        subsample=0.8, random_state=seed)
        name = f"GradientBoostingRegressor ({n_splits}-fold out-of-fold)"
    pred = cross_val_predict(est, X, y, cv=folds)
    return float(np.mean((pred - y) ** 2)), name


def compute_reference(X: np.ndarray, y: np.ndarray, *, nonlinear: bool = True, seed: int = 0) -> Reference:
    """References on the finite rows of ``X``, ``y``."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)[:, 0]
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    X, y = X[ok], y[ok]
    coef, intercept, lin = least_squares(X, y)
    nl, nl_name = nonlinear_reference(X, y, seed=seed) if nonlinear else (None, None)
    return Reference(
        n_rows=int(len(y)),
        mean_mse=float(np.var(y)),
        linear_mse=lin,
        nonlinear_mse=nl,
        nonlinear_model=nl_name,
        linear_coef=tuple(float(c) for c in coef),
        linear_intercept=intercept,
    )
