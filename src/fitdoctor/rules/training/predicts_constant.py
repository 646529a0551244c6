from __future__ import annotations

from ...findings import Fix
from ..base import Rule
from ...signals import curves

#: predictions whose std is below this fraction of the targets' std count as constant
SPREAD = 0.01
#: ... when the loss is at least this fraction of var(y) (the mean predictor's MSE)
NEAR_VAR = 0.8
#: epochs a loss curve needs before "above var(y)" is judged from the curve alone
MIN_EPOCHS = 5
#: ... and a final loss above this multiple of var(y): clearly worse than the mean predictor
ABOVE_VAR = 1.2


class PredictsConstant(Rule):
    """Checks for a model whose predictions do not depend on the input.

    ## What it does
    Before training, flags outputs that are constant by construction (softmax over one unit is
    always exactly 1). During training, flags predictions whose spread on the sample batch is
    below 1% of the targets' spread while the loss sits near ``var(y)``, the mean predictor. After
    the fact, from the loss curve alone (``diagnose_history``, ``check-log --data``: no predictions
    recorded), flags a run whose final loss is above 1.2 x ``var(y)`` and not falling towards a level
    below it: clearly worse than predicting the mean. Minimum evidence: 5 finite epochs and var(y) (``y``, ``--data`` or
    ``--target-var``), with an MSE loss.

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

    def detect_training(self, trace):
        samples = [s for s in trace.samples if s.pred_spread is not None]
        if not samples:
            return self._above_variance(trace)
        if samples[-1].pred_spread >= SPREAD:
            return []
        fin = trace.finite_loss
        var = trace.variance
        if not len(fin) or not var or not trace.mse_comparable:
            return []
        last = float(fin[-1])
        if last < NEAR_VAR * var:
            return []  # a loss well below var(y) cannot come from a constant prediction

        if curves.adam_crawl(trace) is not None:
            return []  # the weights have barely moved yet: adam-large-target, not a cut-off output
        dec = curves.tail_decline(trace)
        if dec is not None and dec.falling:
            return []  # still learning: the spread may yet grow
        began = samples[-1]
        for s in reversed(samples):
            if s.pred_spread >= SPREAD:
                break
            began = s
        return [self.finding(
            f"the predictions do not depend on the input: their spread is {samples[-1].pred_spread:.2g} of the targets' "
            f"from epoch {began.epoch}, and the loss {last:.4g} is {last / var:.3g}x var(y), the mean predictor's",
            {"prediction_spread": samples[-1].pred_spread, "prediction_std": samples[-1].pred_std,
             "prediction_mean": samples[-1].pred_mean, "final_loss": last, "loss_over_var_y": last / var,
             "output_activation": trace.output_activation},
            fix=Fix("Use a linear output (and check for dead units, a saturated output or a broadcasting loss)",
                    "keras.layers.Dense(1)", safe=False, intervention="replace_output_activation"),
            epoch=began.epoch, step=began.step)]

    def _above_variance(self, trace):
        """The curve alone: final loss above var(y), not falling (see the class docstring)."""
        fin = trace.finite_loss
        var = trace.variance
        if len(fin) < MIN_EPOCHS or not var or not trace.mse_comparable:
            return []
        last = float(fin[-1])
        if last <= ABOVE_VAR * var:
            return []

        dec = curves.tail_decline(trace)
        if curves.adam_crawl(trace) is not None:
            return []  # Adam crawling towards distant targets: adam-large-target names that
        floor = getattr(dec, "floor", None) if dec is not None else None
        if dec is not None and dec.falling and (floor is None or not floor > var):
            return []  # still learning, towards a level below var(y)
        act = trace.output_activation
        cause = (f"the {act} output" if act and act not in ("linear", None) else
                 "a bounded output activation (sigmoid, tanh, relu) that cannot reach the targets, dead units, "
                 "or a broadcasting loss")
        return [self.finding(
            f"the loss ends at {last:.4g}, {last / var:.3g}x var(y): worse than predicting the mean; likely cause: {cause}",
            {"final_loss": last, "loss_over_var_y": last / var, "target_var": var, "output_activation": act,
             "epochs": int(len(fin))},
            fix=Fix("Use a linear output (and check for dead units, a saturated output or a broadcasting loss)",
                    "keras.layers.Dense(1)", safe=False, intervention="replace_output_activation"),
            epoch=int(len(fin)) - 1)]
