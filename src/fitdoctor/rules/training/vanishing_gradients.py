from __future__ import annotations

from ..base import Rule


class VanishingGradients(Rule):
    """Checks for gradients too small to move the weights.

    ## What it does
    During training, compares each layer's update-to-weight ratio (step size over weight norm)
    and gradient norm with the others and with their start, and fires when the early layers'
    updates are ~1e-7 of their weights or 1000x smaller than the last layer's while the loss is
    still far above the optimum.

    ## Why is this bad?
    Saturated sigmoids/tanh and deep stacks multiply small derivatives: the first layers stop
    learning, the loss plateaus, and more epochs do not help.

    ## Example
    ```python
    keras.Sequential([keras.layers.Dense(32, activation="sigmoid") for _ in range(10)] + [keras.layers.Dense(1)])
    ```

    ## Use instead
    ```python
    keras.Sequential([keras.layers.Dense(32, activation="relu", kernel_initializer="he_normal") for _ in range(3)]
                     + [keras.layers.Dense(1)])
    ```
    """

    code = "T402"
    name = "vanishing-gradients"
    severity = "warning"
