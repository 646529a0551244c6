from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule

#: columns whose typical magnitudes differ by this factor or more are flagged
SCALE_RATIO = 100.0
#: a column this large (RMS) saturates or blows up a freshly initialised Dense layer
LARGE_SCALE = 1000.0


class FeatureScale(Rule):
    """Checks for input features whose scales differ by orders of magnitude.

    ## What it does
    Compares the typical magnitude (root mean square) of every varying feature column and
    flags the data when the largest and smallest differ by 100x or more, or when a column is so
    large (RMS >= 1000) that a freshly initialised layer produces huge outputs.
    Minimum evidence: 2 finite rows and one varying column (each column's RMS over every finite row,
    as seen by the first trainable layer).

    ## Why is this bad?
    A weight on a column in the thousands must be a thousand times smaller than one on a
    column in units, but gradient descent (and Adam, which moves every weight by about one
    learning rate per step) treats them alike: the large column dominates the gradient, the
    small one is ignored, and the loss crawls or oscillates (the bundled `scaling` example).

    ## Example
    ```python
    X = np.array([[1000, 2], [1200, 3], [1500, 4], [1300, 2.5], [1600, 4.5]])
    model.fit(X, y)
    ```

    ## Use instead
    ```python
    norm = keras.layers.Normalization()
    norm.adapt(X)
    model = keras.Sequential([norm, keras.layers.Dense(1)])   # the model takes raw X
    ```

    ## Fix safety
    Safe: the Normalization layer travels inside the saved model.
    """

    code = "D103"
    name = "feature-scale"
    severity = "warning"

    def detect(self, ctx):
        idx = np.flatnonzero(ctx.varying)
        if len(idx) == 0:
            return []
        scale = ctx.x_scale[idx]
        largest, smallest = float(scale.max()), float(max(scale.min(), 1e-300))
        ratio = largest / smallest
        if ratio < SCALE_RATIO and largest < LARGE_SCALE:
            return []
        names = [ctx.feature_names[i] for i in idx]
        big, small = names[int(scale.argmax())], names[int(scale.argmin())]
        if ratio >= SCALE_RATIO:
            msg = (f"feature scales differ by {ratio:.3g}x ({big!r} ~{largest:.3g}, {small!r} ~{smallest:.3g}); "
                   "one learning rate cannot suit both weights")
        else:
            msg = f"feature {big!r} has magnitude ~{largest:.3g}: a fresh Dense layer's outputs start ~{largest:.3g}x too large"
        return [self.finding(
            msg,
            {"rms_by_feature": {n: float(s) for n, s in zip(names, scale)},
             "std_by_feature": {ctx.feature_names[i]: float(ctx.x_std[i]) for i in idx},
             "scale_ratio": ratio, "largest_rms": largest, "smallest_rms": smallest},
            fix=Fix("Standardise the inputs (an adapted Normalization layer in front of the model)",
                    "norm = keras.layers.Normalization()\nnorm.adapt(X)\nmodel = keras.Sequential([norm, *model.layers])",
                    safe=True, intervention="scale_inputs"),
        )]
