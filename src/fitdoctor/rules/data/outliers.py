from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule

#: losses whose gradient does not grow with the residual
ROBUST_LOSSES = {"huber", "mae", "log_cosh"}

#: |robust z| above this counts as an outlier
Z_LIMIT = 5.0


#: median and MAD are estimated on at most this many values (their error is ~1/sqrt of it)
MEDIAN_SAMPLE = 100_000


def robust_z(v: np.ndarray) -> np.ndarray:
    """Robust z-score: (v - median) / (1.4826 * MAD); the 1.4826 makes MAD match sigma for a normal."""
    s = v if len(v) <= MEDIAN_SAMPLE else np.random.default_rng(0).choice(v, MEDIAN_SAMPLE, replace=False)
    med = np.median(s)
    mad = 1.4826 * np.median(np.abs(s - med))
    if mad == 0:
        mad = 1.2533 * np.mean(np.abs(s - med))  # mean absolute deviation, same normal scaling
    return (v - med) / mad if mad > 0 else np.zeros_like(v)


class Outliers(Rule):
    """Checks for target values far outside the bulk of the data.

    ## What it does
    Computes robust z-scores of the targets (distance from the median in units of 1.4826 x the
    median absolute deviation) and flags rows with |z| > 5, reporting how much of the total
    squared deviation those rows carry. Quiet when the loss is already robust (Huber, MAE, log-cosh).
    Minimum evidence: 8 finite targets (the median and MAD of fewer say little) and a built-in loss:
    for a custom loss (``ctx.config.custom_loss``) its robustness is unknown, so the rule reports
    nothing and the report notes "custom loss `NAME`: not judged".

    ## Why is this bad?
    Squared error grows with the square of the distance: one target at z = 20 weighs as much as
    400 ordinary rows. The gradient steps then chase the outliers, the loss jumps from batch to
    batch, and the final fit is pulled away from the bulk of the data ("Huber loss
    might be more suitable in the presence of outliers").

    ## Example
    ```python
    model.compile(optimizer="adam", loss="mse")   # 3 rows at 50x the typical value
    ```

    ## Use instead
    ```python
    model.compile(optimizer="adam", loss=keras.losses.Huber(delta=1.0))  # on standardised targets
    ```
    """

    code = "D107"
    name = "outliers"
    severity = "warning"

    def detect(self, ctx):
        y = ctx.yc
        if len(y) < 8:
            return []
        if ctx.config.loss in ROBUST_LOSSES:
            return []  # the loss already limits what the tail can do
        if ctx.config.custom_loss:
            return []  # a custom loss's robustness is unknown: not judged (diagnose notes it)
        z = robust_z(y)
        out = np.abs(z) > Z_LIMIT
        if not out.any():
            return []
        r = y - np.median(y)
        r = r / max(float(np.max(np.abs(r))), 1e-300)  # a share is scale-free: no overflow at 1e160
        dev = r**2
        share = float(dev[out].sum() / max(dev.sum(), 1e-300))
        rows = np.flatnonzero(ctx.finite_rows)[out]
        return [self.finding(
            f"{int(out.sum())} target value(s) are outliers (robust z up to {np.abs(z).max():.3g}); "
            f"they carry {share:.0%} of the squared deviation",
            {"rows": [int(r) for r in rows[:50]], "n_outliers": int(out.sum()),
             "max_robust_z": float(np.abs(z).max()), "share_of_squared_deviation": share,
             "z_limit": Z_LIMIT},
            fix=Fix("Use a Huber loss (delta ~1 on standardised targets)",
                    "model.compile(optimizer=opt, loss=keras.losses.Huber(delta=1.0))", safe=False,
                    intervention="huber_loss"),
        )]
