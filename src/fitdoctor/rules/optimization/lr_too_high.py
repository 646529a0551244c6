from __future__ import annotations

from ...findings import Fix
from ..base import Rule
from .bounds import largest_weight_needed, step_bounds
from ...signals import curves


class LrTooHigh(Rule):
    """Checks for a learning rate above the stable limit.

    ## What it does
    For plain SGD, computes the largest stable learning rate of the output layer's quadratic
    problem, ``2 / lambda_max`` of the MSE Hessian ``2/n [A 1]^T [A 1]``, and fires when the
    learning rate exceeds it (the loss then grows by ``|1 - lr lambda_max|^2`` per step). For
    adaptive optimizers, whose step is ~lr, it fires when one step is larger than the largest
    weight the solution needs. During training it flags divergence, NaN and oscillation.
    Minimum evidence: 2 finite rows (SGD: the largest eigenvalue of the output layer's Hessian;
    adaptive optimizers: an exact least-squares solution); during training, 2 finite epochs for a
    divergence and 10 (``2 x curves.MIN_TAIL``) for an oscillation.

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

    def detect_training(self, trace):

        lr = trace.learning_rate
        lr_txt = f"lr = {lr:g}" if lr else "the learning rate"
        fix = Fix(f"Lower the learning rate ({'try ' + format(lr / 10, 'g') if lr else 'try 10x lower'}, or run fitdoctor lr-find)",
                  f"keras.optimizers.Adam(learning_rate={lr / 10 if lr else 1e-4:g})", safe=False,
                  intervention="set_learning_rate")
        div = curves.divergence(trace.loss)
        step = None
        if (div is not None or trace.nonfinite_epoch is not None) and trace.nonfinite_inputs is not True:
            by_step = curves.step_divergence(trace)  # where, within the epochs, the climb began
            if by_step is not None and (div is None or by_step.began // (trace.steps_per_epoch or 1) <= div.began):
                div, step = by_step, by_step.began
        if div is not None:
            spe = trace.steps_per_epoch or 1
            epoch = div.began if step is None else step // spe
            peak = "inf/NaN" if div.peak_loss == float("inf") else f"{div.peak_loss:.4g} ({div.ratio:.3g}x)"
            unit = f"step {step}" if step is not None else f"epoch {div.began}"
            return [self.finding(
                f"the loss diverged: from its best {div.best_loss:.4g} it rose to {peak} from {unit}; "
                f"each step with {lr_txt} overshoots the minimum",
                {"began": div.began, "best_loss": div.best_loss, "peak_loss": div.peak_loss, "ratio": div.ratio,
                 "learning_rate": lr, "per_step": step is not None},
                fix=fix, epoch=epoch, step=step)]
        osc = curves.oscillation(trace.loss)
        if osc is None:
            return []
        last = float(trace.finite_loss[-1])
        far = trace.far_from_optimum(last, 1.5)
        if far is False:
            return []  # bouncing close to the optimum is mini-batch noise, not a too-high learning rate
        gap = trace.gap(last)
        return [self.finding(
            f"the loss oscillates: {osc.sign_change_fraction:.0%} of its epoch-to-epoch changes flip sign, by "
            f"{osc.relative_amplitude:.0%} of its level, without net progress"
            + (f", {gap:.3g}x the optimum" if gap is not None else ""),
            {"sign_change_fraction": osc.sign_change_fraction, "relative_amplitude": osc.relative_amplitude,
             "net_change": osc.net_change, "gap": gap, "learning_rate": lr},
            severity="warning", fix=fix, epoch=osc.began)]
