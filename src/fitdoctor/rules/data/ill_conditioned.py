from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule

#: condition number of the MSE Hessian above which plain gradient descent needs ~kappa steps
CONDITION_LIMIT = 1e3


def condition_number(eigenvalues: np.ndarray) -> float:
    """kappa = lambda_max / lambda_min of the Hessian (inf when singular)."""
    lo, hi = float(eigenvalues.min()), float(eigenvalues.max())
    return hi / lo if lo > hi * 1e-15 else float("inf")


class IllConditioned(Rule):
    """Checks the condition number of the design matrix before and after standardising.

    ## What it does
    Computes kappa, the ratio of the largest to the smallest eigenvalue of the MSE Hessian of a
    linear model, ``2/n [X 1]^T [X 1]``, on the raw inputs and on standardised inputs, and flags
    kappa >= 1000.
    Minimum evidence: at least as many finite rows as columns + 1 (the bias); with fewer rows
    ``[X 1]`` has a null space whatever the data, so kappa is infinite by construction and says
    nothing about the features.

    ## Why is this bad?
    Gradient descent converges along the slowest direction at a rate ``1 - 2/kappa`` per step at
    best: with kappa = 10^6 it needs millions of steps. Large offsets (a year column around 2000,
    an age around 40) and features of different scales inflate kappa; correlated features do too,
    and standardising cannot fix that part.

    ## Example
    ```python
    X = np.c_[year, age]            # year ~ 2000 +- 5: kappa ~ 10^7
    ```

    ## Use instead
    ```python
    X = (X - X.mean(0)) / X.std(0)  # kappa ~ 1-10 unless the columns are collinear
    ```
    """

    code = "D104"
    name = "ill-conditioned"
    severity = "warning"

    def detect(self, ctx):
        if ctx.n < 2 or ctx.X.shape[1] == 0:
            return []
        if ctx.n < len(ctx.gram_eigenvalues):  # fewer rows than weights + bias: singular by construction
            return []
        kappa = condition_number(ctx.gram_eigenvalues)
        if kappa < CONDITION_LIMIT:
            return []
        kappa_std = condition_number(ctx.standardized_gram_eigenvalues)
        collinear = kappa_std >= CONDITION_LIMIT
        if collinear:
            msg = (f"the inputs are ill-conditioned (kappa = {kappa:.3g}; still {kappa_std:.3g} after "
                   "standardising): some features are nearly collinear")
        else:
            msg = (f"the inputs are ill-conditioned (kappa = {kappa:.3g}); standardising brings it to "
                   f"{kappa_std:.3g}, {kappa / kappa_std:.3g}x fewer gradient steps")
        return [self.finding(
            msg,
            {"condition_number": kappa, "condition_number_standardized": kappa_std,
             "improvement": kappa / kappa_std if np.isfinite(kappa) else "inf",
             "collinear": bool(collinear)},
            fix=Fix("Standardise the inputs" if not collinear else "Drop or combine collinear features, then standardise",
                    "norm = keras.layers.Normalization()\nnorm.adapt(X)  # each column's mean and variance\n"
                    "model = keras.Sequential([keras.Input((X.shape[1],)), norm, *model.layers])  # raw X in", safe=not collinear,
                    intervention="scale_inputs"),
        )]
