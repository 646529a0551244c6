from __future__ import annotations

import numpy as np

from ...findings import Fix
from ...model.inspect import CLASSIFICATION_LOSSES
from ..base import Rule


class WrongLoss(Rule):
    """Checks for a classification loss on continuous targets.

    ## What it does
    Flags cross-entropy, hinge and KL-divergence losses when the targets are continuous (not
    all 0/1, or not one-hot).

    Minimum evidence: the loss's name and the finite targets (up to 100,000 of them are
    looked at); targets with at most two levels, 0 and 1, are left alone.

    ## Why is this bad?
    Cross-entropy expects probabilities in [0, 1]: on a target of 40,000 it rewards pushing the
    prediction to the edge of its range, not toward the target, so the "loss" can fall while the
    predictions get worse; hinge losses ignore everything past a margin.

    ## Example
    ```python
    model.compile(optimizer="adam", loss="binary_crossentropy")   # y = house prices
    ```

    ## Use instead
    ```python
    model.compile(optimizer="adam", loss="mse")                   # or "huber" with outliers
    ```
    """

    code = "M202"
    name = "wrong-loss"
    severity = "error"

    def detect(self, ctx):
        loss = ctx.config.loss
        if loss not in CLASSIFICATION_LOSSES:
            return []
        y = ctx.yc
        levels = np.unique(y[: 100_000])
        binary = len(levels) <= 2 and set(levels.tolist()) <= {0.0, 1.0}
        if binary:
            return []
        return [self.finding(
            f"loss {loss!r} is meant for classification but the targets are continuous "
            f"({len(levels)} distinct values from {y.min():.4g} to {y.max():.4g})",
            {"loss": loss, "distinct_targets": int(len(levels)), "target_min": float(y.min()), "target_max": float(y.max())},
            fix=Fix("Use a regression loss (MSE, or Huber with outliers)", 'model.compile(optimizer=opt, loss="mse")',
                    safe=True, intervention="replace_loss"),
        )]
