from __future__ import annotations

from ...findings import Fix
from ..base import Rule
from .bounds import largest_weight_needed, step_bounds


class LrTooHigh(Rule):
    """Checks for a learning rate above the stable limit.

    ## What it does
    For plain SGD, computes the largest stable learning rate of the output layer's quadratic
    problem, ``2 / lambda_max`` of the MSE Hessian ``2/n [A 1]^T [A 1]``, and fires when the
    learning rate exceeds it (the loss then grows by ``|1 - lr lambda_max|^2`` per step). For
    adaptive optimizers, whose step is ~lr, it fires when one step is larger than the largest
    weight the solution needs. During training it flags divergence, NaN and oscillation.

    ## Why is this bad?
    Above the limit every step overshoots the minimum by more than it corrects: the loss grows
    geometrically to inf/NaN. Just below it the loss oscillates and settles slowly.

    ## Example
    ```python
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")   # ages ~40: lr_max ~ 3e-4
    ```

    ## Use instead
    ```python
    model = keras.Sequential([norm, keras.layers.Dense(1)])   # standardise: lr_max ~ 0.5
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    ```
    """

    code = "O302"
    name = "lr-too-high"
    severity = "error"

    def detect(self, ctx):
        if ctx.n < 2:
            return []
        b = step_bounds(ctx)
        lr = b.learning_rate
        if not b.adaptive:
            if b.lr_max is None or lr <= b.lr_max:
                return []
            growth = abs(1 - lr * b.lambda_max) ** 2
            return [self.finding(
                f"SGD learning rate {lr:g} is {lr / b.lr_max:.3g}x the largest stable one, 2/lambda_max = {b.lr_max:.3g}: "
                f"the loss grows ~{growth:.3g}x per step and diverges",
                {"learning_rate": lr, "lr_max_stable": b.lr_max, "lambda_max": b.lambda_max,
                 "growth_per_step": growth, "ratio": lr / b.lr_max, "exact": b.exact},
                fix=Fix(f"Lower the learning rate below {b.lr_max:.3g} (or standardise the inputs, which raises the limit)",
                        f"keras.optimizers.SGD(learning_rate={b.lr_max / 4:.2g})", safe=False,
                        intervention="set_learning_rate"),
            )]
        if not b.exact:
            return []
        scale = largest_weight_needed(ctx)
        if lr <= scale:
            return []
        return [self.finding(
            f"{b.optimizer} steps of ~lr = {lr:g} are larger than the largest weight the solution needs ({scale:.3g}): "
            "the weights will jump around the minimum",
            {"learning_rate": lr, "largest_weight_needed": scale, "ratio": lr / max(scale, 1e-300)},
            severity="warning",
            fix=Fix(f"Lower the learning rate to ~{scale / 10:.2g} or below", f"keras.optimizers.Adam({scale / 10:.2g})",
                    safe=False, intervention="set_learning_rate"),
        )]
