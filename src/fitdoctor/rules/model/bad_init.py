from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule
from . import layer_kinds
from .layer_kinds import add_note

#: a kernel whose std differs from the Glorot/He scale by this factor is flagged
STD_FACTOR = 10.0
#: fewer kernel weights than this give no trustworthy standard deviation: such a kernel is not judged by it
MIN_WEIGHTS = 16


def glorot_std(fan_in: int, fan_out: int) -> float:
    """Glorot: Var(w) = 2 / (fan_in + fan_out)."""
    return float(np.sqrt(2.0 / (fan_in + fan_out)))


class BadInit(Rule):
    """Checks for initial weights far from a variance-preserving scale.

    ## What it does
    Compares each kernel's standard deviation with the Glorot scale
    ``sqrt(2 / (fan_in + fan_out))`` (He's ``sqrt(2 / fan_in)`` is within a factor 2 of it) and
    flags kernels 10x larger or smaller, or constant kernels (std 0 with non-zero values). It also
    compares the spread of the initial predictions with the targets' spread. Every layer with a
    kernel is judged with Keras's own fans: Dense (inputs, units), convolutions (times the
    receptive field: a Conv1D of width 3 on 8 channels has fan-in 24), and the input and recurrent
    kernels of LSTM, GRU and SimpleRNN (an orthogonal recurrent kernel is within 1.3x of the
    Glorot scale). Embedding tables are not judged (a lookup has no fan-in; the report says so).

    Minimum evidence: a kernel's standard deviation is judged only when it holds at least 16
    weights (``MIN_WEIGHTS``; the std of two weights of a ``Dense(1)`` on two inputs says nothing
    about their initialiser), and the spread of the initial predictions only over at least 2 rows.

    ## Why is this bad?
    Too-large weights multiply the activations' scale at every layer: outputs and gradients
    explode and the first Adam or SGD steps overshoot to NaN. Too-small or constant weights make
    every unit compute the same thing (symmetry is never broken) and the gradients vanish.

    ## Example
    ```python
    keras.layers.Dense(64, kernel_initializer=keras.initializers.Constant(5.0))
    ```

    ## Use instead
    ```python
    keras.layers.Dense(64, activation="relu", kernel_initializer="he_normal")
    ```
    """

    code = "M205"
    name = "bad-init"
    severity = "warning"

    def detect(self, ctx):
        if ctx.model is None:
            return []
        bad = []
        for layer in layer_kinds.leaf_layers(ctx.model):
            for weight, kernel in layer_kinds.kernels(layer):
                fan_in, fan_out = layer_kinds.fans(kernel.shape)
                expected = glorot_std(fan_in, fan_out)
                std = float(kernel.std())
                ratio = std / expected
                # identical units never differentiate (symmetry); a single unit has nothing to break
                constant = std == 0.0 and layer_kinds.units_of(layer, kernel) > 1
                enough = kernel.size >= MIN_WEIGHTS
                too_far = enough and std > 0 and (ratio > STD_FACTOR or ratio < 1 / STD_FACTOR)
                if constant or too_far:
                    bad.append({"layer": layer.name, "weight": weight, "kind": layer_kinds.kind(layer),
                                "kernel_std": std, "glorot_std": expected, "ratio": ratio,
                                "constant": bool(constant)})
        tables = [l.name for l in layer_kinds.leaf_layers(ctx.model) if layer_kinds.kind(l) in layer_kinds.LOOKUP]
        if tables:
            add_note(ctx, f"bad-init: not applicable to Embedding ({', '.join(repr(t) for t in tables)}): "
                             "a lookup table has no fan-in, its initial scale is not judged")
        pred = ctx.initial_predictions
        finite = bool(np.isfinite(pred).all())
        spread = float(np.std(pred)) / (float(ctx.yc.std()) or 1.0) if finite and len(pred) else float("inf")
        exploding = not finite or (len(pred) >= 2 and spread > 1e3)
        if not bad and not exploding:
            return []
        if bad:
            worst = max(bad, key=lambda d: abs(np.log(max(d["ratio"], 1e-300))))
            msg = (f"layer {worst['layer']!r} starts with {worst['weight'].replace('_', ' ')} std {worst['kernel_std']:.3g}, "
                   f"{worst['ratio']:.3g}x the Glorot scale {worst['glorot_std']:.3g}")
        else:
            msg = "the initial weights make the predictions explode"
        msg += f"; initial predictions spread {spread:.3g}x the targets' std"
        return [self.finding(
            msg, {"layers": bad, "initial_prediction_std_over_target_std": spread,
                  "initial_predictions_finite": finite},
            fix=Fix("Use the default Glorot (or He for ReLU) initialiser",
                    'keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal")',
                    safe=False, intervention="sane_initializer"),
        )]
