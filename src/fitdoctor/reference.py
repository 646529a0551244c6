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

import contextlib

from dataclasses import dataclass, asdict
from typing import Any

import numpy as np

#: rows used at most for the nonlinear reference (it is an estimate, not a fit to report)
NONLINEAR_MAX_ROWS = 1500
#: an optimum below this fraction of var(y) is zero at float32 precision (noiseless data): ratios use
#: this fraction of var(y) instead (a model that leaves 1e-6 of the variance unexplained fits exactly)
NOISELESS_FRACTION = 1e-6


@dataclass(frozen=True)
class Reference:
    n_rows: int
    mean_mse: float
    linear_mse: float
    nonlinear_mse: float | None
    nonlinear_model: str | None
    linear_coef: tuple[float, ...]
    linear_intercept: float
    #: several target columns: each column's var(y) (the other fields are means over the columns); () for one
    target_mean_mse: tuple[float, ...] = ()
    #: several target columns: each column's least-squares and nonlinear-reference MSE; () for one target
    target_linear_mse: tuple[float, ...] = ()
    target_nonlinear_mse: tuple[float | None, ...] = ()

    def per_target(self) -> list[dict[str, float | None]]:
        """Each target column's references (mean predictor, least squares, nonlinear reference); one
        entry for one target."""
        if not self.target_mean_mse:
            return [{"mean_mse": self.mean_mse, "linear_mse": self.linear_mse, "nonlinear_mse": self.nonlinear_mse}]
        nonlinear = self.target_nonlinear_mse or (None,) * len(self.target_mean_mse)
        linear = self.target_linear_mse or (float("nan"),) * len(self.target_mean_mse)
        return [{"mean_mse": m, "linear_mse": lin, "nonlinear_mse": nl}
                for m, lin, nl in zip(self.target_mean_mse, linear, nonlinear)]

    def optimum(self, *, linear: bool = True) -> float:
        """Best achievable training MSE: least squares for a linear model, else the best reference."""
        if linear or self.nonlinear_mse is None:
            return self.linear_mse
        return min(self.linear_mse, self.nonlinear_mse)

    @property
    def floor(self) -> float:
        """The smallest optimum a ratio is taken against: ``NOISELESS_FRACTION * var(y)``. Below it
        the data is noiseless at float32 precision (``y = 1.8 x + 32``: least squares reaches ~1e-28)
        and gaps are measured against var(y) instead of a ratio to zero.

        Several targets: the smallest of the per-target floors (:attr:`floors`). The mean over the
        columns of var(y) is dominated by the largest-scale target: 1e-6 of it can exceed the whole
        optimum of the others (a noiseless target in the thousands beside a noisy one near 1 put the
        "optimum" 200x above what the model reached); the smallest target's floor never does."""
        return min(self.floors) if self.target_mean_mse else NOISELESS_FRACTION * max(float(self.mean_mse), 1e-300)

    @property
    def floors(self) -> tuple[float, ...]:
        """``NOISELESS_FRACTION * var(y_j)`` per target column (one value for one target; a constant
        column, which is an input error elsewhere, gets the mean's)."""
        if not self.target_mean_mse:
            return (NOISELESS_FRACTION * max(float(self.mean_mse), 1e-300),)
        return tuple(NOISELESS_FRACTION * (v if v > 0 else max(float(self.mean_mse), 1e-300))
                     for v in self.target_mean_mse)

    @property
    def n_targets(self) -> int:
        return max(len(self.target_mean_mse), 1)

    def noiseless(self, *, linear: bool = True) -> bool:
        """True when the optimum is below :attr:`floor` (the model can fit the data exactly)."""
        return self.optimum(linear=linear) < self.floor

    def effective_optimum(self, *, linear: bool = True) -> float:
        """The optimum, never below :attr:`floor`: what verdicts and ratios compare with."""
        return max(self.optimum(linear=linear), self.floor)

    def gap(self, loss: float, *, linear: bool = True) -> float:
        """``loss / optimum``, the optimum floored at ``NOISELESS_FRACTION * var(y)`` (inf for a non-finite loss)."""
        return float(loss) / self.effective_optimum(linear=linear) if np.isfinite(loss) else float("inf")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["linear_coef"] = list(self.linear_coef)
        for name in ("target_mean_mse", "target_linear_mse", "target_nonlinear_mse"):
            d[name] = list(getattr(self, name))
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Reference":
        d = dict(d)
        d["linear_coef"] = tuple(d["linear_coef"])
        for name in ("target_mean_mse", "target_linear_mse", "target_nonlinear_mse"):
            d[name] = tuple(d.get(name) or ())
        return cls(**d)


def combine_targets(refs: list[Reference]) -> Reference:
    """The references of several target columns as one: each MSE the mean over the columns (the MSE of a
    several-output model is the mean of its columns' MSEs), every column's references kept (the per-target
    floors of :attr:`Reference.floor`, :meth:`Reference.per_target`); coefficients are the first column's. One column: returned as it is."""
    from dataclasses import replace

    if len(refs) == 1:
        return refs[0]
    nonlinear = [r.nonlinear_mse for r in refs]
    return replace(refs[0], mean_mse=float(np.mean([r.mean_mse for r in refs])),
                   linear_mse=float(np.mean([r.linear_mse for r in refs])),
                   nonlinear_mse=None if any(v is None for v in nonlinear) else float(np.mean(nonlinear)),
                   target_mean_mse=tuple(float(r.mean_mse) for r in refs),
                   target_linear_mse=tuple(float(r.linear_mse) for r in refs),
                   target_nonlinear_mse=tuple(None if v is None else float(v) for v in nonlinear))


#: rows per chunk of the streaming passes (bounded memory on millions of rows)
CHUNK = 65536
#: rows per block of the moments pass (measured fastest between 2,048 and 65,536 rows)
MOMENT_CHUNK = 4096


#: columns whose largest magnitude lies outside [1/SAFE_MAGNITUDE, SAFE_MAGNITUDE] are scaled (by a
#: power of two, which is exact) before their products are formed: 1e160 squared overflows float64
SAFE_MAGNITUDE = 1e100


@dataclass(frozen=True)
class Moments:
    """First and second moments of the finite rows, from one streaming pass.

    ``cov``, ``cov_xy`` and ``y_var`` are in the data's units and may be ``inf`` when the values
    are beyond ~1e154 (their squares overflow float64). The same moments of the data divided by
    ``x_scale`` / ``y_scale`` (powers of two; 1 for ordinary data) are always finite:
    ``cov_scaled``, ``cov_xy_scaled``, ``y_var_scaled``; use them for anything that solves or
    decomposes (see :attr:`corr`).
    """

    n: int
    x_mean: np.ndarray
    y_mean: float
    y_var: float
    cov: np.ndarray      # centred X^T X / n  (p x p)
    cov_xy: np.ndarray   # centred X^T y / n  (p)
    x_scale: np.ndarray | None = None
    y_scale: float = 1.0
    cov_scaled: np.ndarray | None = None
    cov_xy_scaled: np.ndarray | None = None
    y_var_scaled: float | None = None

    def __post_init__(self) -> None:
        if self.x_scale is None:
            object.__setattr__(self, "x_scale", np.ones(len(self.x_mean)))
        if self.cov_scaled is None:
            object.__setattr__(self, "cov_scaled", self.cov)
        if self.cov_xy_scaled is None:
            object.__setattr__(self, "cov_xy_scaled", self.cov_xy)
        if self.y_var_scaled is None:
            object.__setattr__(self, "y_var_scaled", self.y_var)

    @property
    def x_std(self) -> np.ndarray:
        return np.sqrt(np.clip(np.diag(self.cov_scaled), 0.0, None)) * self.x_scale

    @property
    def corr(self) -> np.ndarray:
        """Correlation matrix of the columns with non-zero spread (finite whatever the scale)."""
        sd = np.sqrt(np.clip(np.diag(self.cov_scaled), 0.0, None))
        keep = sd > 0
        return self.cov_scaled[np.ix_(keep, keep)] / np.outer(sd[keep], sd[keep])


def pow2_scale(amax: np.ndarray) -> np.ndarray:
    """A power of two near each magnitude, for columns outside the safe range; 1 elsewhere."""
    amax = np.asarray(amax, dtype=np.float64)
    out = np.ones_like(amax)
    odd = (amax > SAFE_MAGNITUDE) | ((amax > 0) & (amax < 1.0 / SAFE_MAGNITUDE))
    if odd.any():
        out[odd] = np.ldexp(1.0, np.frexp(amax[odd])[1])
    return out


def moments(X: np.ndarray, y: np.ndarray) -> Moments:
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    n, p = X.shape
    if n:
        xs = pow2_scale(np.max(np.abs(X), axis=0)) if p else np.ones(0)
        ys = float(pow2_scale(np.array([np.max(np.abs(y))]))[0])
        if (xs != 1.0).any() or ys != 1.0:  # extreme magnitudes: every product on scaled data
            m = moments(X / xs, y / ys)
            with np.errstate(over="ignore", invalid="ignore"):
                return Moments(n=n, x_mean=m.x_mean * xs, y_mean=m.y_mean * ys, y_var=m.y_var * ys * ys,
                               cov=m.cov * np.outer(xs, xs), cov_xy=m.cov_xy * xs * ys, x_scale=xs, y_scale=ys,
                               cov_scaled=m.cov, cov_xy_scaled=m.cov_xy, y_var_scaled=m.y_var)
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
    SVD of the centred data when they are too ill-conditioned to trust (cond > 1e10). Works on the
    scaled moments (:class:`Moments`), so values up to float64's range never overflow a product;
    the MSE is ``inf`` when it exceeds float64 in the data's units, and NaN (coefficients NaN) when
    no solver converges: "not computable", never an exception.
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    m = m or moments(X, y)
    p = X.shape[1]
    if p == 0 or m.n == 0:
        return np.zeros(p), m.y_mean, m.y_var
    xs, ys = m.x_scale, m.y_scale
    sd_s = np.sqrt(np.clip(np.diag(m.cov_scaled), 0.0, None))   # std of X / xs
    keep = sd_s * xs > 1e-12 * np.maximum(np.abs(m.x_mean), 1.0)
    coef_s = np.zeros(p)  # coefficients of y / ys on X / xs
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        try:
            if keep.any():
                k = np.flatnonzero(keep)
                R = m.cov_scaled[np.ix_(k, k)] / np.outer(sd_s[k], sd_s[k])
                b = m.cov_xy_scaled[k] / sd_s[k]
                if not (np.isfinite(R).all() and np.isfinite(b).all()):
                    raise np.linalg.LinAlgError("non-finite moments")
                if np.linalg.cond(R) < 1e10:
                    coef_s[k] = np.linalg.solve(R, b) / sd_s[k]
                else:
                    Xc = X[:, k] / xs[k] - m.x_mean[k] / xs[k]
                    coef_s[k], *_ = np.linalg.lstsq(Xc, y / ys - m.y_mean / ys, rcond=None)
        except np.linalg.LinAlgError:
            return np.full(p, np.nan), float("nan"), float("nan")
        coef = coef_s * ys / xs
        intercept = float(m.y_mean - m.x_mean @ coef)
        mse_s = m.y_var_scaled - float(m.cov_xy_scaled @ coef_s)
        if mse_s < 1e-8 * max(m.y_var_scaled, 1e-300):  # near-perfect fit: measure the residual directly
            Xs = X / xs if (xs != 1.0).any() else X
            icpt_s = m.y_mean / ys - float((m.x_mean / xs) @ coef_s)
            mse_s = sum(float(np.sum((Xs[s:s + CHUNK] @ coef_s + icpt_s - y[s:s + CHUNK] / ys) ** 2))
                        for s in range(0, m.n, CHUNK)) / m.n
        mse = max(float(mse_s), 0.0) * ys * ys
    return coef, intercept, float(mse)


def nonlinear_reference(X: np.ndarray, y: np.ndarray, *, seed: int = 0) -> tuple[float | None, str | None]:
    """Held-out MSE of a strong nonlinear model (see the module docstring); None under 10 rows."""
    n = len(y)
    if n < 10 or X.shape[1] == 0:
        return None, None
    # both estimators are unchanged by rescaling the columns; rescaling y scales the MSE by its
    # square: powers of two keep every product inside float64 whatever the data's magnitudes
    xs = pow2_scale(np.max(np.abs(X), axis=0))
    ys = float(pow2_scale(np.array([np.max(np.abs(y))]))[0])
    if (xs != 1.0).any() or ys != 1.0:
        try:
            with np.errstate(over="ignore", invalid="ignore"):
                mse, label = nonlinear_reference(X / xs, y / ys, seed=seed)
                return (None if mse is None else float(mse) * ys * ys), label
        except (np.linalg.LinAlgError, ValueError, FloatingPointError) as exc:
            return None, f"not computable ({type(exc).__name__})"
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
        with single_threaded():
            est.fit(X[train], y[train])
            mse = float(np.mean((est.predict(X[test]) - y[test]) ** 2))
        return mse, f"HistGradientBoostingRegressor (hold-out, {len(test):,} of {len(order):,} sampled rows)"
    from sklearn.model_selection import KFold, cross_val_predict

    est = HistGradientBoostingRegressor(max_iter=100, learning_rate=0.1, max_leaf_nodes=15, random_state=seed)
    with single_threaded():
        pred = cross_val_predict(est, X, y, cv=KFold(n_splits=5, shuffle=True, random_state=seed))
    return float(np.mean((pred - y) ** 2)), "HistGradientBoostingRegressor (5-fold out-of-fold)"


def single_threaded():
    """A context in which scikit-learn's OpenMP pools run one thread.

    Gradient boosting's OpenMP threads spin while they wait; next to JAX's own threads, or on a
    machine whose cores are already busy, that made one 800-row fit 18x slower (6.2 s against 0.34 s
    with one thread, measured on the 2-core development machine under load)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="openmp")


#: the (gamma x p, alpha) grid the RBF kernel ridge reference searches
KERNEL_GAMMAS = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
KERNEL_ALPHAS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)


def kernel_ridge_select(d2: np.ndarray, yc: np.ndarray, p: int) -> tuple[float, float, float, np.ndarray]:
    """The (gamma, alpha) of RBF kernel ridge with the lowest leave-one-out MSE on centred targets ``yc``.

    ``d2``: squared distances between the (standardised) rows, ``p``: their number of columns. For
    kernel ridge the hat matrix is H = K (K + alpha I)^-1 = Q L/(L + alpha) Q' (K = Q L Q'), and the
    leave-one-out residual is exactly r_i / (1 - H_ii): no refitting, one eigendecomposition per gamma.
    Returns (leave-one-out MSE, gamma, alpha, dual coefficients (K + alpha I)^-1 yc).
    """
    best: tuple[float, float, float, np.ndarray] = (float("inf"), 0.0, 0.0, np.zeros_like(yc))
    for gamma in np.array(KERNEL_GAMMAS) / p:
        lam, Q = np.linalg.eigh(np.exp(-gamma * d2))
        lam = np.clip(lam, 0.0, None)
        qy = Q.T @ yc
        for alpha in KERNEL_ALPHAS:
            shrink = lam / (lam + alpha)
            h = np.einsum("ij,j,ij->i", Q, shrink, Q)
            loo = (yc - Q @ (shrink * qy)) / np.clip(1.0 - h, 1e-12, None)
            mse = float(np.mean(loo**2))
            if mse < best[0]:
                best = (mse, float(gamma), float(alpha), Q @ (qy / (lam + alpha)))
    return best


def kernel_ridge_loo(X: np.ndarray, y: np.ndarray) -> tuple[float, str]:
    """Leave-one-out MSE of RBF kernel ridge regression, the best over a small (gamma, alpha) grid
    (:func:`kernel_ridge_select`). Inputs are standardised, targets centred."""
    sd = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    d2 = np.sum((Z[:, None, :] - Z[None, :, :]) ** 2, axis=-1)
    p = Z.shape[1]
    mse, gamma, alpha, _ = kernel_ridge_select(d2, y - y.mean(), p)
    return mse, f"RBF kernel ridge (leave-one-out; gamma={gamma * p:g}/p, alpha={alpha:g})"


def compute_reference(X: np.ndarray, y: np.ndarray, *, nonlinear: bool = True, seed: int = 0,
                      m: Moments | None = None) -> Reference:
    """References on the finite rows of ``X``, ``y`` (``m``: their moments, when already known).

    ``y`` with several columns (and no ``m``): each column's references, combined as the mean over the
    columns with per-target floors (:func:`combine_targets`)."""
    X = np.asarray(X, dtype=np.float64)
    Y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
    if Y.shape[1] > 1 and m is None:
        ok = np.isfinite(X).all(axis=1) & np.isfinite(Y).all(axis=1)
        return combine_targets([compute_reference(X[ok], Y[ok, j], nonlinear=nonlinear, seed=seed)
                                for j in range(Y.shape[1])])
    y = Y[:, 0]
    if m is None:  # moments are only ever computed on finite rows
        ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
        if not ok.all():
            X, y = X[ok], y[ok]
        m = moments(X, y)
    coef, intercept, lin = least_squares(X, y, m)
    nl, nl_name = nonlinear_reference(X, y, seed=seed) if nonlinear else (None, None)
    return Reference(
        n_rows=int(len(y)),
        mean_mse=float(m.y_var),
        linear_mse=lin,
        nonlinear_mse=nl,
        nonlinear_model=nl_name,
        linear_coef=tuple(float(c) for c in coef),
        linear_intercept=intercept,
    )
