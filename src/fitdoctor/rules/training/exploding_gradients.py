from __future__ import annotations

from ..base import Rule
from ...signals.curves import GROWTH_FACTOR, gradient_growth


class ExplodingGradients(Rule):
    """Checks for gradient norms that grow by orders of magnitude or become non-finite.

    ## What it does
    During training (``fitdoctor.Monitor`` or ``diagnose_history``), tracks the global and
    per-layer gradient norms on a fixed sample batch and fires when they grow 100x or more over
    their early level, or turn inf/NaN, and when the loss turns NaN without non-finite inputs.

    Minimum evidence: a non-finite epoch of the loss, or at least 2 sampled gradient norms
    (growth is measured against the median of the first three); with one sample nothing is reported.

    ## Why is this bad?
    Each update is proportional to the gradient: once the norm explodes, one step throws the
    weights far from anything sensible, the loss jumps to inf and then NaN, and training cannot
    recover. Typical causes are a too-high learning rate, unscaled inputs or targets, and large
    initial weights.

    ## Example
    ```python
    keras.layers.Dense(64, kernel_initializer=keras.initializers.Constant(10.0))
    ```

    ## Use instead
    ```python
    keras.optimizers.Adam(1e-3, clipnorm=1.0)   # and fix the scale that made it explode
    ```
    """

    code = "T401"
    name = "exploding-gradients"
    severity = "error"

    def detect_training(self, trace):
        import math

        from ...findings import Fix

        fix = Fix("Clip the gradient norm and lower the learning rate (and fix the scale that made it explode)",
                  "keras.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)", safe=False, intervention="clip_gradients")
        growth = gradient_growth(trace)
        if trace.nonfinite_epoch is not None and trace.nonfinite_inputs is not True:
            fin = trace.finite_loss
            ev = {"nonfinite_epoch": trace.nonfinite_epoch, "nonfinite_step": trace.nonfinite_step,
                  "last_finite_loss": float(fin[-1]) if len(fin) else None,
                  "stopped": trace.stopped_on_nan, "restored_weights_of_epoch": trace.restored_epoch,
                  "initial_weight_max": trace.initial_weight_max}
            if trace.variance and len(fin):
                ev["last_finite_loss_over_var_y"] = float(fin[-1]) / trace.variance
            if growth:
                ev.update(growth)
            where = f"epoch {trace.nonfinite_epoch}" + (f" (step {trace.nonfinite_step})" if trace.nonfinite_step is not None else "")
            if trace.inputs_checked and not trace.nonfinite_inputs_evidence:
                why = "although the inputs and targets were checked and finite: the weights or activations overflowed"
            else:  # never claim what nothing checked
                why = ("(the inputs were not checked for missing or infinite values: pass the training data to rule that out): the "
                       "weights or activations probably overflowed")
            ev["inputs_checked"] = bool(trace.inputs_checked)
            return [self.finding(
                f"the loss became inf/NaN at {where} {why}",
                ev, fix=fix, epoch=trace.nonfinite_epoch, step=trace.nonfinite_step)]
        if growth is None:
            return []
        if trace.nonfinite_inputs and (trace.nonfinite_step is None or growth["step"] >= trace.nonfinite_step):
            return []  # the NaN came from the data (nan-inf-data), not from growth
        ratio = growth["gradient_growth"]
        shown = "non-finite" if not math.isfinite(ratio) else f"{ratio:.3g}x their early level"
        return [self.finding(
            f"gradient norms on the sample batch grew to {shown} (>= {GROWTH_FACTOR:g}x) from epoch {growth['epoch']}",
            growth, fix=fix, epoch=growth["epoch"], step=growth["step"])]
