from __future__ import annotations

from ...findings import Fix
from ..base import Rule
from .bounds import budget, step_bounds, target_dominated
from ...signals import curves


#: what the distance a parameter must travel is measured in (shown after the number)
_UNITS = {
    "bias": " (target units)",
    "kernel": " (target units per unit of that input)",
    "output (mean prediction)": " (in weight steps: the targets' mean divided by the output layer's reach)",
}


class AdamLargeTarget(Rule):
    """Checks for an adaptive optimizer (Adam, RMSprop, Adagrad...) asked to reach large targets.

    ## What it does
    From the least-squares solution for the output layer, takes the distance each parameter must
    travel from its initial value and divides it by the learning rate: Adam moves a weight by
    about one learning rate per step, so that is a lower bound on the steps needed (Adagrad:
    ``(d / 2 lr)^2``). It fires when that bound exceeds the steps you give (epochs x steps per
    epoch) and standardising the targets would cut it at least 10x. During training it flags a
    loss that falls by a roughly constant amount per epoch while still far above the optimum.
    Minimum evidence: an adaptive optimizer, 2 finite rows and the epochs (the step bound needs the
    least-squares solution of the output layer and the steps given); during training, a crawl over
    at least 5 finite epochs (``curves.MIN_TAIL``).

    ## Why is this bad?
    Adam normalises each gradient by its running RMS: with targets of 40,000 the bias must reach
    ~40,000, and at lr = 0.01 that takes ~4 million steps however large the gradient is. The
    loss crawls down a straight line ("parameters get updated by a value close to plus
    or minus the learning rate"). Plain SGD is not limited this way, but it has other problems
    with large targets.

    ## Example
    ```python
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    model.fit(X, income, epochs=200)          # 200 steps; the bias needs ~3,000,000
    ```

    ## Use instead
    ```python
    mu, sigma = income.mean(), income.std()
    model.fit(X, (income - mu) / sigma, epochs=200)
    predictions = model.predict(X) * sigma + mu
    ```

    ## Fix safety
    Safe when the inverse transform is part of the saved model (fitdoctor's repair appends
    ``Normalization(invert=True)``).
    """

    code = "O301"
    name = "adam-large-target"
    severity = "error"

    def detect(self, ctx):
        if not ctx.config.adaptive or ctx.n < 2:
            return []
        b = step_bounds(ctx)
        avail = budget(ctx)
        if b.steps_needed <= avail or not target_dominated(b):
            return []
        given = f"{ctx.total_steps:,} given ({ctx.config.epochs} epochs x {b.steps_per_epoch} steps)" if ctx.total_steps else "epochs unknown"
        return [self.finding(
            f"{ctx.config.optimizer} moves each weight ~lr = {b.learning_rate:g} per step; {b.parameter} must travel "
            f"{b.distance:.4g}{_UNITS.get(b.parameter.split('[')[0], '')}, so it needs >= {_count(b.steps_needed)} steps ({given}); with standardised targets "
            f">= {_count(b.steps_needed_scaled_targets)}",
            {"steps_needed": b.steps_needed, "steps_given": ctx.total_steps, "epochs_needed": b.epochs_needed,
             "ratio_needed_to_given": b.steps_needed / avail, "parameter": b.parameter, "distance": b.distance,
             "learning_rate": b.learning_rate, "optimizer": b.optimizer,
             "steps_needed_with_standardized_targets": b.steps_needed_scaled_targets,
             "target_mean": float(ctx.yc.mean()), "target_std": float(ctx.yc.std()), "exact": b.exact},
            severity="error" if b.steps_needed > 10 * avail else "warning",
            fix=Fix("Standardise the targets and invert the predictions",
                    "mu, sigma = y.mean(), y.std()\nmodel.fit(X, (y - mu) / sigma)\n"
                    "model = keras.Sequential([*model.layers, keras.layers.Normalization(mean=mu, variance=sigma**2, invert=True)])",
                    safe=True, intervention="scale_targets"),
        )]

    def detect_training(self, trace):
        import math


        crawl = curves.adam_crawl(trace)
        if crawl is None:
            return []
        total = trace.epochs_run + crawl.epochs_needed
        if total <= 1.1 * trace.planned:
            return []
        where = f"{crawl.gap:.3g}x the optimum" if crawl.gap is not None else f"{crawl.var_ratio:.3g}x var(y)"
        steps = (f" (~{crawl.epochs_needed * trace.steps_per_epoch:,.0f} steps)" if trace.steps_per_epoch else "")
        opt = trace.optimizer or "the adaptive optimizer"
        return [self.finding(
            f"{opt} walks towards the targets at a constant pace: sqrt(loss - optimum) falls by {crawl.slope:.4g} per epoch "
            f"(R^2 = {crawl.r2:.3f}) at {where}; it needs ~{crawl.epochs_needed:,.0f} more epochs{steps}, "
            f"{trace.planned:,} planned",
            {"epochs_needed": crawl.epochs_needed, "epochs_needed_total": total, "epochs_planned": trace.planned,
             "sqrt_excess_slope_per_epoch": crawl.slope, "fit_r2": crawl.r2, "gap": crawl.gap,
             "loss_over_var_y": crawl.var_ratio, "large_targets": crawl.large_targets,
             "target_mean_over_std": (trace.y_mean / math.sqrt(trace.variance)) if trace.y_mean is not None and trace.variance else None,
             "optimizer": trace.optimizer, "learning_rate": trace.learning_rate},
            fix=Fix("Standardise the targets and invert the predictions",
                    "mu, sigma = y.mean(), y.std()\nmodel.fit(X, (y - mu) / sigma)\n"
                    "model = keras.Sequential([*model.layers, keras.layers.Normalization(mean=mu, variance=sigma**2, invert=True)])",
                    safe=True, intervention="scale_targets"),
            epoch=crawl.began)]


def _count(v: float) -> str:
    """A step count: with thousands separators up to 1e15, in scientific notation beyond."""
    return f"{v:,.0f}" if v < 1e15 else f"{v:.3g}"
