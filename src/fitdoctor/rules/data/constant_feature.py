from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule


class ConstantFeature(Rule):
    """Checks for feature columns that never change.

    ## What it does
    Finds columns whose standard deviation is zero on the finite rows.
    Minimum evidence: 2 finite rows (a column that takes one value on them is constant; no estimate
    is involved).

    ## Why is this bad?
    A constant column carries no information but adds a direction in which the loss is flat:
    standardising it divides by zero (NaN inputs), and together with the bias it makes the
    least-squares problem singular, so the weights drift instead of converging.

    ## Example
    ```python
    X = np.c_[age, experience, np.ones(n)]   # a column of ones "for the bias"
    ```

    ## Use instead
    ```python
    X = np.c_[age, experience]               # Dense already has a bias
    ```
    """

    code = "D102"
    name = "constant-feature"
    severity = "warning"

    def detect(self, ctx):
        if ctx.n < 2:
            return []
        const = np.flatnonzero(~ctx.varying)
        if not len(const):
            return []
        names = [ctx.feature_names[i] for i in const]
        values = [float(ctx.x_mean[i]) for i in const]
        return [self.finding(
            f"{len(names)} feature column(s) are constant: {', '.join(map(repr, names))}",
            {"columns": names, "values": values, "n_features": int(ctx.X.shape[1])},
            fix=Fix("Drop the constant columns", f"X = X.drop(columns={names!r})", safe=False),
        )]
