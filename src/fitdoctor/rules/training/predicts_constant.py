from __future__ import annotations

from ...findings import Fix
from ..base import Rule


class PredictsConstant(Rule):
    """Checks for a model whose predictions do not depend on the input.

    ## What it does
    Before training, flags outputs that are constant by construction (softmax over one unit is
    always exactly 1). During training, flags predictions whose spread on the sample batch is
    below 1% of the targets' spread while the loss sits near ``var(y)``, the mean predictor.

    ## Why is this bad?
    A constant prediction is the best the model can do when its inputs are cut off: dead
    units, a saturated output, a broadcasting loss, or an output activation with no range. The
    loss then settles at the targets' variance and looks "converged".

    ## Example
    ```python
    keras.layers.Dense(1, activation="softmax")    # always 1.0
    ```

    ## Use instead
    ```python
    keras.layers.Dense(1)
    ```
    """

    code = "T404"
    name = "predicts-constant"
    severity = "error"

    def detect(self, ctx):
        act = (ctx.model_info.output_activation or "linear").lower()
        if act == "softmax" and ctx.model_info.output_units == 1:
            return [self.finding(
                "softmax over a single output unit always predicts exactly 1.0, whatever the input",
                {"activation": act, "output_units": 1, "loss_floor": float(((ctx.yc - 1.0) ** 2).mean())},
                fix=Fix("Use a linear output", "keras.layers.Dense(1)", safe=True, intervention="replace_output_activation"),
            )]
        return []
