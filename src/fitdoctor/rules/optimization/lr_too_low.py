from __future__ import annotations

from ...findings import Fix
from ..base import Rule
from .bounds import budget, step_bounds, target_dominated


class LrTooLow(Rule):
    """Checks for a learning rate too small to converge in the steps given.

    ## What it does
    Estimates the steps needed at the given learning rate (adaptive optimizers: distance / lr;
    SGD: the exact quadratic decay of the excess loss, set by the condition number) and fires when
    they exceed the steps you give while a 10x larger learning rate (still stable) would fit in
    them. During training it flags a loss that crawls far above the optimum.

    ## Why is this bad?
    The loss falls, but so slowly that training ends long before the minimum: the run looks like
    it converged to a poor value ("agonizingly slow learning", seed 000).

    ## Example
    ```python
    keras.optimizers.Adam(learning_rate=1e-4)   # weights ~2 need 20,000 steps; 400 given
    ```

    ## Use instead
    ```python
    keras.optimizers.Adam(learning_rate=1e-2)   # or run fitdoctor lr-find
    ```
    """

    code = "O303"
    name = "lr-too-low"
    severity = "warning"

    def detect(self, ctx):
        if ctx.n < 2:
            return []
        b = step_bounds(ctx)
        avail = budget(ctx)
        if b.steps_needed <= avail or target_dominated(b) or b.steps_needed_lr10 > avail:
            return []
        if not b.adaptive and (b.lr_max is None or 10 * b.learning_rate >= b.lr_max):
            return []
        return [self.finding(
            f"at lr = {b.learning_rate:g} {b.optimizer} needs ~{b.steps_needed:,.0f} steps but gets {avail:,.0f}; "
            f"at {10 * b.learning_rate:g} it would need ~{b.steps_needed_lr10:,.0f}",
            {"learning_rate": b.learning_rate, "steps_needed": b.steps_needed, "steps_given": ctx.total_steps,
             "steps_needed_at_10x_lr": b.steps_needed_lr10, "lr_max_stable": b.lr_max,
             "optimizer": b.optimizer, "exact": b.exact},
            fix=Fix(f"Raise the learning rate (try {10 * b.learning_rate:g}, or run fitdoctor lr-find)",
                    f"keras.optimizers.{'Adam' if b.adaptive else 'SGD'}(learning_rate={10 * b.learning_rate:g})",
                    safe=False, intervention="set_learning_rate"),
        )]
