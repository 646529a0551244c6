from __future__ import annotations

import math

from ...findings import Fix
from ..base import Rule
from .bounds import step_bounds, target_dominated
from ...signals import curves

#: a loss within this factor of the optimum (or below it) is not "too few epochs", however it still falls
AT_OPTIMUM = 1.1


class TooFewEpochs(Rule):
    """Checks for training that ends before the loss can reach the optimum.

    ## What it does
    Compares the steps needed (from the step bounds of `adam-large-target` / `lr-too-low`) with
    the steps given, epochs x ceil(n / batch_size), and reports the epochs needed (left to
    `adam-large-target` when the targets' scale is what makes the run slow). During training
    it flags a loss still falling steadily at the last epoch, with an extrapolated number of
    epochs still needed.
    Minimum evidence: 2 finite rows, the epochs and a finite step bound; during training, a falling
    loss over at least 5 finite epochs (``curves.MIN_TAIL``).

    ## Why is this bad?
    The curve is still going down when training stops, and the final loss is reported as if it
    were the model's best ("insufficient training epochs will prevent the model from ever
    converging").

    ## Example
    ```python
    model.fit(X, y, epochs=200)           # ~2,000 steps needed, 200 given
    ```

    ## Use instead
    ```python
    model.fit(X, y, epochs=5000, validation_split=0.2, callbacks=[
        keras.callbacks.EarlyStopping(patience=50, restore_best_weights=True)])
    ```
    """

    code = "O304"
    name = "too-few-epochs"
    severity = "warning"

    def detect(self, ctx):
        if ctx.n < 2 or ctx.total_steps is None:
            return []
        b = step_bounds(ctx)
        if not math.isfinite(b.steps_needed) or b.steps_needed <= ctx.total_steps:
            return []
        if target_dominated(b):
            return []  # adam-large-target: scaling the targets, not more epochs, is the fix
        epochs = math.ceil(b.epochs_needed)
        return [self.finding(
            f"{ctx.config.epochs} epochs give {ctx.total_steps:,} steps but ~{b.steps_needed:,.0f} are needed "
            f"(~{epochs:,} epochs at lr = {b.learning_rate:g})",
            {"epochs_given": ctx.config.epochs, "steps_given": ctx.total_steps, "steps_needed": b.steps_needed,
             "epochs_needed": b.epochs_needed, "steps_per_epoch": b.steps_per_epoch,
             "predicted_final_loss": b.predicted_final_loss, "exact": b.exact},
            fix=Fix(f"Train for more epochs (~{epochs:,}) with early stopping, or fix what makes it slow",
                    f"model.fit(X, y, epochs={epochs}, callbacks=[keras.callbacks.EarlyStopping(\n"
                    "    monitor='loss', patience=50, restore_best_weights=True)])", safe=False, intervention="more_epochs"),
        )]

    def detect_training(self, trace):

        if curves.unstable(trace) or curves.adam_crawl(trace) is not None:
            return []
        dec = curves.tail_decline(trace)
        if dec is None or not dec.falling or dec.excess_fraction < curves.CONVERGED_EXCESS:
            return []
        fin = trace.finite_loss
        gap = trace.gap(float(fin[-1])) if len(fin) else None
        if gap is not None and gap <= AT_OPTIMUM:
            return []  # already at (or below) the optimum: more epochs would only fit the training rows closer
        total = trace.epochs_run + dec.epochs_needed
        if total <= 1.1 * trace.planned:
            return []  # a probe that will get there within the epochs planned
        more = max(0.0, total - trace.planned)
        shown = "an unbounded number of" if more == float("inf") else f"~{more:,.0f}"
        return [self.finding(
            f"the loss is still falling at the end ({dec.relative_drop:.1%} over the last {dec.window} epochs); "
            f"extrapolating ({dec.shape}), it needs {shown} more epochs than the {trace.planned:,} planned "
            f"to come within 5% of {dec.floor:.4g} ({dec.floor_source})",
            {"epochs_needed_more": more, "epochs_needed_total": total, "epochs_planned": trace.planned,
             "epochs_run": trace.epochs_run, "relative_drop_over_tail": dec.relative_drop, "window": dec.window,
             "floor": dec.floor, "floor_source": dec.floor_source, "shape": dec.shape, "fit_r2": dec.r2,
             "removable_fraction_of_final_loss": dec.excess_fraction},
            fix=Fix(f"Train for more epochs ({'~' + format(total, ',.0f') if total != float('inf') else 'many more'}) with early stopping",
                    f"model.fit(X, y, epochs={int(min(total, 1e7)) if total != float('inf') else 10 * trace.planned}, "
                    "callbacks=[keras.callbacks.EarlyStopping(\n    monitor='loss', patience=50, restore_best_weights=True)])",
                    safe=False, intervention="more_epochs"),
            epoch=trace.epochs_run - dec.window)]
