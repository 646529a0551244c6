"""Reference losses: what is achievable on the same data.

"Not converged" is measured against three references, all as mean squared error in the user's
target units on the finite rows:

* ``mean_mse``  -- the mean predictor, ``var(y)``: a model that learned nothing;
* ``linear_mse`` -- the closed-form least-squares fit with intercept: the best any linear model
  (one Dense unit, any activation-free stack) can reach on the training data;
* ``nonlinear_mse`` -- a strong nonlinear reference, an estimate of what a capable network can
  reach: under 200 rows RBF kernel ridge (exact leave-one-out), up to 1,000 rows gradient boosting
  (5-fold out-of-fold), above that gradient boosting on a 1,500-row sample with one 2:1 hold-out
  split.
"""
from __future__ import annotations

from dataclasses import dataclass, asdict
from typing import Any

import numpy as np

#: rows used at most for the nonlinear reference (it is an estimate, not a fit to report)
NONLINEAR_MAX_ROWS = 1500


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


#: rows per chunk of the streaming passes (bounded memory on millions of rows)
CHUNK = 65536
#: rows per block of the moments pass (measured fastest between 2,048 and 65,536 rows)
MOMENT_CHUNK = 4096


@dataclass(frozen=True)
class Moments:
    """First and second moments of the finite rows, from one streaming pass."""

    n: int
    x_mean: np.ndarray
    y_mean: float
    y_var: float
    cov: np.ndarray      # centred X^T X / n  (p x p)
    cov_xy: np.ndarray   # centred X^T y / n  (p)

    @property
    def x_std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov), 0.0, None))


def moments(X: np.ndarray, y: np.ndarray) -> Moments:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n, p = X.shape
    # column means as one matrix-vector product (3-5x faster than X.mean(axis=0) on C-ordered rows)
    xm = (np.ones(n) @ X) / n if n else np.zeros(p)
    ym = float(y.mean()) if n else 0.0
    cov, cxy, yy = np.zeros((p, p)), np.zeros(p), 0.0
    for start in range(0, n, MOMENT_CHUNK):  # centred blocks that stay in cache
        Z = X[start:start + MOMENT_CHUNK] - xm
        r = y[start:start + MOMENT_CHUNK] - ym
        cov += Z.T @ Z
        cxy += Z.T @ r
        yy += float(r @ r)
    n1 = max(n, 1)
    return Moments(n=n, x_mean=xm, y_mean=ym, y_var=yy / n1, cov=cov / n1, cov_xy=cxy / n1)


def least_squares(X: np.ndarray, y: np.ndarray, m: Moments | None = None) -> tuple[np.ndarray, float, float]:
    """Closed-form least squares with intercept: (coef, intercept, training MSE).

    Solves the standardised normal equations (p x p, cheap on millions of rows); falls back to an
    SVD of the centred data when they are too ill-conditioned to trust (cond > 1e10).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    m = m or moments(X, y)
    p = X.shape[1]
    if p == 0 or m.n == 0:
        return np.zeros(p), m.y_mean, m.y_var
    sd = m.x_std
    keep = sd > 1e-12 * np.maximum(np.abs(m.x_mean), 1.0)
    coef = np.zeros(p)
    if keep.any():
        R = m.cov[np.ix_(keep, keep)] / np.outer(sd[keep], sd[keep])
        if np.linalg.cond(R) < 1e10:
            coef[keep] = np.linalg.solve(R, m.cov_xy[keep] / sd[keep]) / sd[keep]
        else:
            Xc = X[:, keep] - m.x_mean[keep]
            coef[keep], *_ = np.linalg.lstsq(Xc, y - m.y_mean, rcond=None)
    intercept = float(m.y_mean - m.x_mean @ coef)
    mse = m.y_var - float(m.cov_xy @ coef)
    if mse < 1e-8 * max(m.y_var, 1e-300):  # near-perfect fit: measure the residual directly
        mse = sum(float(np.sum((X[s:s + CHUNK] @ coef + intercept - y[s:s + CHUNK]) ** 2))
                  for s in range(0, m.n, CHUNK)) / m.n
    return coef, intercept, max(float(mse), 0.0)


def nonlinear_reference(X: np.ndarray, y: np.ndarray, *, seed: int = 0) -> tuple[float | None, str | None]:
    """Held-out MSE of a strong nonlinear model (see the module docstring); None under 10 rows."""
    n = len(y)
    if n < 10 or X.shape[1] == 0:
        return None, None
    if n < 200:
        return kernel_ridge_loo(X, y)
    from sklearn.ensemble import HistGradientBoostingRegressor

    rng = np.random.default_rng(seed)
    if n > 1000:  # plenty of rows: 1,500 of them and one 2:1 hold-out split give the estimate cheaply
        order = rng.choice(n, size=min(n, NONLINEAR_MAX_ROWS), replace=False)  # no permutation of all n rows
        cut = 2 * len(order) // 3
        train, test = order[:cut], order[cut:]
        # 7 leaves, 63 bins: 30% faster than 15 leaves and 255 bins, and as accurate on held-out rows
        # of 1,000-row test functions (sine, interaction, linear) with a 0.3 learning rate
        est = HistGradientBoostingRegressor(max_iter=40, learning_rate=0.3, max_leaf_nodes=7, max_bins=63,
                                            random_state=seed)
        est.fit(X[train], y[train])
        mse = float(np.mean((est.predict(X[test]) - y[test]) ** 2))
        return mse, f"HistGradientBoostingRegressor (hold-out, {len(test):,} of {len(order):,} sampled rows)"
    from sklearn.model_selection import KFold, cross_val_predict

    est = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=seed)
    pred = cross_val_predict(est, X, y, cv=KFold(n_splits=5, shuffle=True, random_state=seed))
    return float(np.mean((pred - y) ** 2)), "HistGradientBoostingRegressor (5-fold out-of-fold)"


def kernel_ridge_loo(X: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """Leave-one-out MSE of RBF kernel ridge regression, the best over a small (gamma, alpha) grid.

    For kernel ridge the hat matrix is H = K (K + alpha I)^-1 = Q L/(L + alpha) Q' (K = Q L Q'),
    and the leave-one-out residual is exactly r_i / (1 - H_ii): no refitting, one eigendecomposition
    per gamma. Inputs are standardised, targets centred.
    """
    sd = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    yc = y - y.mean()
    d2 = np.sum((Z[:, None, :] - Z[None, :, :]) ** 2, axis=-1)
    p = Z.shape[1]
    best, label = float("inf"), ""
    for gamma in np.array([0.03, 0.1, 0.3, 1.0, 3.0, 10.0]) / p:
        lam, Q = np.linalg.eigh(np.exp(-gamma * d2))
        lam = np.clip(lam, 0.0, None)
        qy = Q.T @ yc
        for alpha in (1e-4, 1e-3, 1e-2, 1e-1, 1.0):
            shrink = lam / (lam + alpha)
            fitted = Q @ (shrink * qy)
            h = np.einsum("ij,j,ij->i", Q, shrink, Q)
            loo = (yc - fitted) / np.clip(1.0 - h, 1e-12, None)
            mse = float(np.mean(loo**2))
            if mse < best:
                best, label = mse, f"RBF kernel ridge (leave-one-out; gamma={gamma * p:g}/p, alpha={alpha:g})"
    return best, label


def compute_reference(X: np.ndarray, y: np.ndarray, *, nonlinear: bool = True, seed: int = 0,
                      m: Moments | None = None) -> Reference:
    """References on the finite rows of ``X``, ``y`` (``m``: their moments, when already known)."""
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)[:, 0]
    if m is None:  # moments are only ever computed on finite rows
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if not ok.all():
            X, y = X[ok], y[ok]
    coef, intercept, lin = least_squares(X, y, m)
    nl, nl_name = nonlinear_reference(X, y, seed=seed) if nonlinear else (None, None)
    return Reference(
        n_rows=int(len(y)),
        mean_mse=float(m.y_var) if m is not None else float(np.var(y)),
        linear_mse=lin,
        nonlinear_mse=nl,
        nonlinear_model=nl_name,
        linear_coef=tuple(float(c) for c in coef),
        linear_intercept=intercept,
    )
