from __future__ import annotations

from ..base import Rule


class ExplodingGradients(Rule):
    """Checks for gradient norms that grow by orders of magnitude or become non-finite.

    ## What it does
    During training (``fitdoctor.Monitor`` or ``diagnose_history``), tracks the global and
    per-layer gradient norms on a fixed sample batch and fires when they grow 100x or more over
    their early level, or turn inf/NaN, and when the loss turns NaN without non-finite inputs.

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
