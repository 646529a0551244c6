from __future__ import annotations

import math

from ...findings import Fix
from ..base import Rule
from .bounds import step_bounds

SMALL_BATCH = 4


class BatchSize(Rule):
    """Checks for a batch size that starves training of steps or floods it with noise.

    ## What it does
    Flags a batch size at least as large as the data when that leaves fewer steps than the step
    bounds say are needed (a smaller batch would give more updates per epoch), and batches of
    4 or fewer rows on large data sets (noisy gradients, slow epochs).
    Minimum evidence: the number of rows and the batch size; a batch at least as large as the data
    is flagged only when the epochs are known and the step bound exceeds the steps they give.

    ## Why is this bad?
    With batch_size >= n every epoch is one optimizer step: 200 epochs are 200 steps. With very
    small batches each step follows the noise of a few rows, so the loss never settles at the
    minimum unless the learning rate decays ("small batches may introduce noisy gradient
    updates ... large batches may fail to capture the local intricacies").

    ## Example
    ```python
    model.fit(X, y, batch_size=len(X), epochs=200)     # 200 steps in all
    ```

    ## Use instead
    ```python
    model.fit(X, y, batch_size=32, epochs=200)
    ```
    """

    code = "O305"
    name = "batch-size"
    severity = "info"

    def detect(self, ctx):
        bs = ctx.config.batch_size or 32
        if ctx.n >= 1000 and bs <= SMALL_BATCH:
            return [self.finding(
                f"batch size {bs} on {ctx.n:,} rows: {math.ceil(ctx.n / bs):,} noisy steps per epoch",
                {"batch_size": bs, "n_rows": ctx.n, "steps_per_epoch": math.ceil(ctx.n / bs)},
                fix=Fix("Use a batch size of 32-256", "model.fit(X, y, batch_size=64)", safe=False))]
        if bs >= ctx.n and ctx.n > 32 and ctx.total_steps is not None:
            b = step_bounds(ctx)
            if b.steps_needed > ctx.total_steps:
                more = math.ceil(ctx.n / 32)
                return [self.finding(
                    f"batch size {bs} >= {ctx.n} rows: one step per epoch; batch size 32 gives {more} steps per epoch",
                    {"batch_size": bs, "n_rows": ctx.n, "steps_per_epoch": 1, "steps_needed": b.steps_needed},
                    fix=Fix("Use a smaller batch size", "model.fit(X, y, batch_size=32)", safe=False))]
        return []
