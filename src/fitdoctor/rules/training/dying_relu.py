from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule
from ..model import layer_kinds
from ..model.layer_kinds import add_note

#: a layer with at least this fraction of units dead on every sample row is flagged
DEAD_FRACTION = 0.5
#: minimum evidence: a unit counts as dead only when it is zero on at least this many sample rows
#: (a live unit that is zero on half the rows looks dead on 8 rows with probability 1/256)
MIN_ROWS = 8


class DyingRelu(Rule):
    """Checks for ReLU units that output zero for every input.

    ## What it does
    Runs the model's ReLU layers on a sample of rows and counts the units whose output is zero
    for all of them (before training: at the initial weights; during training: on the Monitor's
    sample batch, with the epoch where the fraction first passed 50%). A unit is a Dense unit or
    a convolution's filter (channel): a Conv1D/Conv2D filter is dead when it is zero at every
    position of every row. ReLU layers are Dense and convolution layers with ``activation="relu"``,
    ``Activation("relu")`` and ``ReLU()`` layers. Recurrent layers (LSTM, GRU, SimpleRNN) with a
    ReLU activation are not judged (their state carries values across steps): the report says so.

    Minimum evidence: 8 sample rows (``MIN_ROWS``; a live unit that is zero on half of the rows
    looks dead on 8 rows with probability 1/256, on 2 rows with probability 1/4): with fewer
    rows nothing is reported, before training or live.

    ## Why is this bad?
    A dead ReLU passes no gradient, so it never revives: the network loses capacity, and if the
    whole layer dies the model predicts a constant. Large learning rates, large negative biases
    and unscaled inputs kill units.

    ## Example
    ```python
    keras.layers.Dense(32, activation="relu", bias_initializer=keras.initializers.Constant(-10.0))
    ```

    ## Use instead
    ```python
    keras.layers.Dense(32, activation="leaky_relu", kernel_initializer="he_normal")
    ```
    """

    code = "T403"
    name = "dying-relu"
    severity = "warning"

    def detect(self, ctx):
        model = ctx.model
        if model is None or ctx.model_info.is_linear:
            return []
        import keras

        recurrent = layer_kinds.recurrent_relu_layers(model)
        if recurrent:
            add_note(ctx, "dying-relu: not applicable to " + ", ".join(
                f"{layer_kinds.kind(l)} {l.name!r}" for l in recurrent) + " (recurrent ReLU units are not judged)")
        rows = ctx.Xc_model[:512].astype(np.float32)  # shaped as the model takes them (sequences too)
        if len(rows) < MIN_ROWS:
            return []
        dead = {}
        for layer in layer_kinds.leaf_layers(model):
            if not layer_kinds.is_relu_layer(layer):
                continue
            try:
                # a direct call, not predict(): a failing predict() leaves the shared variables purged (Keras on JAX)
                out = np.asarray(keras.ops.convert_to_numpy(keras.Model(model.inputs, layer.output)(rows, training=False)))
            except Exception:
                continue
            axis = layer_kinds.unit_axis(layer)
            if out.ndim < 2:
                continue
            frac = layer_kinds.dead_unit_fraction(out, axis)
            if frac >= DEAD_FRACTION:
                dead[layer.name] = frac
        if not dead:
            return []
        worst = max(dead, key=dead.get)
        return [self.finding(
            f"{dead[worst]:.0%} of the ReLU units in layer {worst!r} are dead before training (zero on every sample row)",
            {"dead_fraction_by_layer": dead, "sample_rows": int(len(rows))},
            fix=Fix("Use He initialisation with zero biases (or leaky_relu), and standardise the inputs",
                    'keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal")', safe=False,
                    intervention="sane_initializer"),
        )]

    def detect_training(self, trace):
        samples = [s for s in trace.samples if s.dead_relu
                   and (getattr(s, "sample_rows", None) is None or s.sample_rows >= MIN_ROWS)]
        if not samples:
            return []
        final = samples[-1].dead_relu
        dead = {k: v for k, v in final.items() if v >= DEAD_FRACTION}
        if not dead:
            return []
        worst = max(dead, key=dead.get)
        began = next(s for s in samples if s.dead_relu.get(worst, 0.0) >= DEAD_FRACTION
                     and all(t.dead_relu.get(worst, 0.0) >= DEAD_FRACTION for t in samples if t.step >= s.step))
        start = samples[0].dead_relu.get(worst, 0.0)
        return [self.finding(
            f"{dead[worst]:.0%} of the ReLU units in layer {worst!r} are dead (zero on every sample row) from epoch "
            f"{began.epoch} (at the start: {start:.0%})",
            {"dead_fraction_by_layer": final, "layer": worst, "dead_fraction_at_start": start,
             "began_step": began.step},
            fix=Fix("Use He initialisation with zero biases (or leaky_relu), a lower learning rate, and standardised inputs",
                    'keras.layers.Dense(units, activation="relu", kernel_initializer="he_normal")', safe=False,
                    intervention="sane_initializer"),
            epoch=began.epoch, step=began.step)]
