from __future__ import annotations

import numpy as np

from ...findings import Fix
from ...model.inspect import ACTIVATION_RANGE
from ..base import Rule
from . import layer_kinds
from .layer_kinds import add_note

#: after training, a loss at or above this fraction of var(y) is no better than the mean predictor
NEAR_VAR = 0.9
#: a fraction of outputs at the bound of the activation from which the output counts as saturated
SATURATED = 0.5


class OutputActivationRange(Rule):
    """Checks that the output activation can reach the targets.

    ## What it does
    Compares the range of the last activation (sigmoid and softmax: [0, 1], tanh: [-1, 1],
    relu: [0, inf), ...) with the targets, and reports the share of targets it cannot reach and
    the lowest MSE any such model could achieve (the error of clipping the targets to the range).
    The last activation is found by walking back from the output over layers that keep a range
    (Dropout, Flatten, Reshape, pooling); a model ending in an LSTM, GRU or SimpleRNN is bounded by
    its activation (tanh: [-1, 1]), a Conv1D with ReLU followed by global pooling by [0, inf).
    When a layer that rescales (BatchNormalization, Rescaling, a Lambda) follows a bounded
    activation, the output's range is unknown: nothing is reported and the report says so.

    Minimum evidence: one finite target outside the range (before training); after training,
    the output activation, var(y) and an MSE-comparable loss over at least one epoch, with either
    the targets' mean or one recorded sample of the outputs' saturation.

    ## Why is this bad?
    A sigmoid output predicting incomes of 40,000 is stuck at 1.0: the loss stays near
    ``mean(y - 1)^2`` however long you train, and the saturated sigmoid passes back almost no
    gradient ("using Sigmoid in the output layer can restrict the predicted values to
    [0,1]").

    ## Example
    ```python
    keras.layers.Dense(1, activation="sigmoid")   # targets 27,840-63,600
    ```

    ## Use instead
    ```python
    keras.layers.Dense(1)                         # linear output for regression
    ```

    ## Fix safety
    Safe: a linear output can represent everything the bounded one could.
    """

    code = "M201"
    name = "output-activation-range"
    severity = "error"

    def detect(self, ctx):
        act = (ctx.model_info.output_activation or "linear").lower()
        if ctx.model is not None:  # any layer kind: walk back over layers that keep the range
            found, layer, reason = layer_kinds.output_activation(ctx.model)
            if reason is not None:
                bounded = [l.name for l in layer_kinds.leaf_layers(ctx.model)
                           if (layer_kinds.activation_name(l) or "linear") in ACTIVATION_RANGE]
                if bounded:  # a bounded activation inside, but the output's range is not known: no guess
                    add_note(ctx, f"output-activation-range: not judged: {reason}")
                return []
            act = (found or "linear").lower()
        if act not in ACTIVATION_RANGE:
            return []
        lo, hi = ACTIVATION_RANGE[act]
        if act == "softmax" and ctx.model_info.output_units == 1:
            lo = hi = 1.0  # softmax over one unit is always exactly 1
        y = ctx.yc
        if not len(y):
            return []
        outside = (y < lo) | (y > hi)
        if not outside.any():
            return []
        floor = float(np.mean((y - np.clip(y, lo, hi)) ** 2))
        ref = ctx.reference
        return [self.finding(
            f"output activation {act!r} reaches only [{lo:g}, {hi:g}] but {outside.mean():.0%} of targets lie outside "
            f"(range {y.min():.4g} to {y.max():.4g}); no training can get the MSE below {floor:.4g} "
            f"({floor / max(ref.optimum(linear=True), 1e-300):.3g}x the least-squares optimum)",
            {"activation": act, "range": [lo, hi], "fraction_outside": float(outside.mean()),
             "target_min": float(y.min()), "target_max": float(y.max()), "mse_floor": floor,
             "least_squares_mse": ref.linear_mse},
            fix=Fix("Use a linear output activation",
                    "keras.layers.Dense(1)  # no activation on the regression output", safe=True,
                    intervention="replace_output_activation"),
        )]

    def detect_training(self, trace):
        """After (or during) training: a bounded output whose outputs sit at its bound, or whose range
        excludes the targets' mean, while the loss stays at or above ``NEAR_VAR`` x var(y).

        Minimum evidence: the output activation, var(y) and an MSE-comparable loss; either the targets'
        mean or at least one recorded sample of the outputs' saturation."""
        act = (trace.output_activation or "").lower()
        if act not in ACTIVATION_RANGE or not trace.mse_comparable:
            return []
        fin = trace.finite_loss
        var = trace.variance
        if not len(fin) or not var:
            return []
        lo, hi = ACTIVATION_RANGE[act]
        last = float(fin[-1])
        sat = [s.saturation for s in trace.samples if s.saturation is not None]
        mean_outside = trace.y_mean is not None and not (lo <= trace.y_mean <= hi)
        saturated = bool(sat) and sat[-1] >= SATURATED
        if last < NEAR_VAR * var or not (mean_outside or saturated):
            return []
        parts = [f"the loss ends at {last:.4g}, {last / var:.3g}x var(y) (the mean predictor's)"]
        if mean_outside:
            parts.append(f"the targets' mean {trace.y_mean:.4g} lies outside the {act} output's range [{lo:g}, {hi:g}]")
        if saturated:
            parts.append(f"{sat[-1]:.0%} of the outputs sit at the {act} bound")
        return [self.finding(
            f"output activation {act!r} cannot reach the targets: " + "; ".join(parts),
            {"activation": act, "range": [lo, hi], "final_loss": last, "target_var": var,
             "target_mean": trace.y_mean, "saturation": sat[-1] if sat else None},
            fix=Fix("Use a linear output activation",
                    "keras.layers.Dense(1)  # no activation on the regression output", safe=True,
                    intervention="replace_output_activation"),
            epoch=len(fin) - 1,
        )]
