from __future__ import annotations

import math

from ...findings import Fix
from ..base import Rule
from ...signals import curves

#: the nonlinear reference must beat least squares by this factor to call a linear model underfit
GAIN = 2.0


class UnderfitCapacity(Rule):
    """Checks for a model without the capacity the data needs.

    ## What it does
    When the model has no nonlinearity (a stack of Dense layers without activations is still a
    linear model; so are Conv1D/2D and SimpleRNN layers without an activation, average pooling,
    flattening and concatenation; an LSTM, GRU or max pooling never is, and the rule stays out of
    those models), compares the best any linear model can do (the least-squares MSE) with a
    cross-validated nonlinear reference (gradient boosting). If the nonlinear reference is at
    least 2x better, the model cannot converge to a good loss however it is trained. Sequences and
    images are compared on their flattened windows: least squares on every value of a window is a
    lower bound for any linear model of it. During
    training it flags a loss stuck at the least-squares optimum.

    Minimum evidence: a linear model, a finite least-squares MSE and a cross-validated
    nonlinear reference (without it, nothing is reported); during training, at least one finite
    epoch of an MSE-comparable loss.

    ## Why is this bad?
    Training "does not converge" only in the sense that it converges to the wrong place: the
    loss plateaus at the least-squares error, and more epochs, other learning rates or other
    optimizers change nothing (the bundled `capacity` example: a line fitted to a sine).

    ## Example
    ```python
    model = keras.Sequential([keras.layers.Dense(1)])       # y = 5 sin(2 pi x)
    ```

    ## Use instead
    ```python
    model = keras.Sequential([keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(32, activation="relu"),
                              keras.layers.Dense(1)])
    ```
    """

    code = "M204"
    name = "underfit-capacity"
    severity = "warning"

    def detect(self, ctx):
        if not ctx.model_info.is_linear:
            return []
        ref = ctx.reference
        if ref.nonlinear_mse is None or ref.nonlinear_mse * GAIN > ref.linear_mse:
            return []
        if not (math.isfinite(ref.linear_mse) and math.isfinite(ref.nonlinear_mse)):
            return []  # beyond float64 (targets near 1e160): not comparable
        return [self.finding(
            f"the model is linear but the data is not: the best linear fit has MSE {ref.linear_mse:.4g}, "
            f"a nonlinear reference reaches {ref.nonlinear_mse:.4g} ({ref.linear_mse / max(ref.nonlinear_mse, 1e-300):.3g}x better)",
            {"least_squares_mse": ref.linear_mse, "nonlinear_mse": ref.nonlinear_mse,
             "nonlinear_model": ref.nonlinear_model, "gain": ref.linear_mse / max(ref.nonlinear_mse, 1e-300),
             "mean_predictor_mse": ref.mean_mse},
            fix=Fix("Add hidden layers with a nonlinear activation",
                    "model = keras.Sequential([keras.layers.Dense(32, activation='relu'),\n"
                    "                          keras.layers.Dense(32, activation='relu'),\n"
                    "                          keras.layers.Dense(1)])", safe=False, intervention="add_capacity"),
        )]

    def detect_training(self, trace):

        ref = trace.reference
        if not trace.is_linear or ref is None or ref.nonlinear_mse is None or not trace.mse_comparable:
            return []
        if ref.nonlinear_mse * GAIN > ref.linear_mse or curves.unstable(trace):
            return []
        fin = trace.finite_loss
        if not len(fin):
            return []
        last = float(fin[-1])
        reached = curves.first_epoch_at_or_below(fin, 1.25 * ref.linear_mse)
        gain = ref.linear_mse / max(ref.nonlinear_mse, 1e-300)
        if reached is not None:
            msg = (f"the linear model is stuck at the least-squares optimum ({last:.4g} vs {ref.linear_mse:.4g}) since "
                   f"epoch {reached}, while a nonlinear reference reaches {ref.nonlinear_mse:.4g} ({gain:.3g}x better)")
        else:
            msg = (f"the linear model cannot go below the least-squares optimum {ref.linear_mse:.4g} (now {last:.4g}), "
                   f"and a nonlinear reference reaches {ref.nonlinear_mse:.4g} ({gain:.3g}x better)")
        return [self.finding(
            msg,
            {"final_loss": last, "least_squares_mse": ref.linear_mse, "nonlinear_mse": ref.nonlinear_mse,
             "gain": gain, "reached_least_squares": reached is not None, "epoch_reached": reached,
             "nonlinear_model": ref.nonlinear_model},
            fix=Fix("Add hidden layers with a nonlinear activation",
                    "model = keras.Sequential([keras.layers.Dense(32, activation='relu'),\n"
                    "                          keras.layers.Dense(32, activation='relu'),\n"
                    "                          keras.layers.Dense(1)])", safe=False, intervention="add_capacity"),
            epoch=reached if reached is not None else 0)]
