from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule
from .outliers import ROBUST_LOSSES

SKEW_LIMIT = 1.0


def skewness(v: np.ndarray) -> float:
    """Sample skewness g1 = m3 / m2^(3/2)."""
    d = v - v.mean()
    m2 = np.mean(d**2)
    return float(np.mean(d**3) / m2**1.5) if m2 > 0 else 0.0


class SkewedTarget(Rule):
    """Checks for a strongly skewed target distribution.

    ## What it does
    Computes the sample skewness of the targets and flags |skew| > 1 (with at least 8 rows).
    For positive targets it also reports the skewness after a log transform.
    Minimum evidence: 8 finite targets with non-zero spread (the skewness of fewer is noise) and a
    built-in loss: for a custom loss (``ctx.config.custom_loss``) the rule reports nothing (the
    report notes "custom loss `NAME`: not judged").

    ## Why is this bad?
    Under MSE the few rows of the long tail carry most of the squared error: they dominate the
    gradients, the fit bends toward them, and mini-batch losses jump whenever a tail row is in
    the batch, which looks like an optimizer that will not settle.

    ## Example
    ```python
    model.fit(X, house_prices)       # skew 3: a few mansions dominate the loss
    ```

    ## Use instead
    ```python
    model.fit(X, np.log(house_prices))   # predict exp(model(X)); or use a Huber loss
    ```
    """

    code = "D106"
    name = "skewed-target"
    severity = "warning"

    def detect(self, ctx):
        y = ctx.yc
        if len(y) < 8 or y.std() == 0:
            return []
        if ctx.config.loss in ROBUST_LOSSES:
            return []  # the loss already limits what the tail can do
        if ctx.config.custom_loss:
            return []  # a custom loss's robustness is unknown: not judged (diagnose notes it)
        g1 = skewness(y)
        if abs(g1) <= SKEW_LIMIT:
            return []
        evidence = {"skewness": g1, "n": int(len(y))}
        hint = ""
        if y.min() > 0:
            evidence["skewness_after_log"] = skewness(np.log(y))
            hint = f"; log(y) has skewness {evidence['skewness_after_log']:.2f}"
        return [self.finding(
            f"the target is skewed (skewness {g1:.2f}){hint}: the tail dominates the MSE",
            evidence,
            fix=Fix("Train on log(y) (positive targets) or use a Huber loss",
                    "model.fit(X, np.log(y))\npred = np.exp(model.predict(X_new))", safe=False,
                    intervention="huber_loss"),
        )]
