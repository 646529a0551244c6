from __future__ import annotations

import math

from ...findings import Fix
from ..base import Rule
from .bounds import budget, largest_weight_needed, step_bounds, target_dominated
from ...signals import curves


class LrTooLow(Rule):
    """Checks for a learning rate too small to converge in the steps given.

    ## What it does
    Estimates the steps needed at the given learning rate (adaptive optimizers: distance / lr;
    SGD: the exact quadratic decay of the excess loss, set by the condition number) and fires when
    they exceed the steps you give while a larger learning rate, still below the stable limit,
    would fit in them. During training it flags a loss that crawls far above the optimum.
    Minimum evidence: 2 finite rows, the epochs and a finite step bound; during training, a falling
    loss over at least 5 finite epochs (``curves.MIN_TAIL``).

    ## Why is this bad?
    The loss falls, but so slowly that training ends long before the minimum: the run looks like
    it converged to a poor value ("agonizingly slow learning").

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
        if b.steps_needed <= avail or target_dominated(b) or not math.isfinite(b.steps_needed):
            return []
        # the learning rate that would fit the budget (steps ~ 1 / lr for both kinds of optimizer)
        wanted = b.learning_rate * b.steps_needed / avail
        if b.adaptive:
            ceiling = largest_weight_needed(ctx) if b.exact else 1.0  # above it Adam's steps jump around
        else:
            ceiling = b.lr_max / 2 if b.lr_max else 0.0
        if wanted > ceiling:
            return []  # no stable learning rate fits: too-few-epochs / ill-conditioned say why
        return [self.finding(
            f"at lr = {b.learning_rate:g} {b.optimizer} needs ~{b.steps_needed:,.0f} steps but gets {avail:,.0f}; "
            f"a learning rate of ~{wanted:.2g} would fit (still below the {ceiling:.3g} where steps overshoot)",
            {"learning_rate": b.learning_rate, "steps_needed": b.steps_needed, "steps_given": ctx.total_steps,
             "learning_rate_needed": wanted, "learning_rate_ceiling": ceiling,
             "steps_needed_at_10x_lr": b.steps_needed_lr10, "lr_max_stable": b.lr_max,
             "optimizer": b.optimizer, "exact": b.exact},
            fix=Fix(f"Raise the learning rate to ~{wanted:.2g} (or run fitdoctor lr-find)",
                    f"keras.optimizers.{'Adam' if b.adaptive else 'SGD'}(learning_rate={wanted:.2g})",
                    safe=False, intervention="set_learning_rate"),
        )]

    def detect_training(self, trace):

        if curves.unstable(trace) or curves.adam_crawl(trace) is not None:
            return []
        dec = curves.tail_decline(trace)
        if dec is None or not dec.falling or dec.epochs_needed == float("inf"):
            return []
        last = float(trace.finite_loss[-1])
        far = trace.far_from_optimum(last, 1.5)
        if far is None:
            far = dec.excess_fraction >= 0.5
        total = trace.epochs_run + dec.epochs_needed
        # crawl: too slow for the epochs planned, while 10x the step size would fit in them
        if not far or total <= 1.1 * trace.planned or total / 10 > trace.planned:
            return []
        lr = trace.learning_rate
        gap = trace.gap(last)
        return [self.finding(
            f"the loss crawls far from the optimum ({'%.3g' % gap + 'x it' if gap is not None else 'still ' + format(dec.excess_fraction, '.0%') + ' removable'}): "
            f"at this pace it needs ~{total:,.0f} epochs in all ({trace.planned:,} planned); "
            f"a 10x larger learning rate would need at least ~{total / 10:,.0f}",
            {"epochs_needed_total": total, "epochs_needed_more": dec.epochs_needed, "epochs_planned": trace.planned,
             "gap": gap, "floor": dec.floor, "floor_source": dec.floor_source, "shape": dec.shape, "fit_r2": dec.r2,
             "relative_drop_over_tail": dec.relative_drop, "learning_rate": lr},
            fix=Fix(f"Raise the learning rate ({'try ' + format(10 * lr, 'g') if lr else 'try 10x'}, or run fitdoctor lr-find)",
                    f"keras.optimizers.Adam(learning_rate={10 * lr if lr else 1e-2:g})", safe=False,
                    intervention="set_learning_rate"),
            epoch=trace.epochs_run - dec.window)]
