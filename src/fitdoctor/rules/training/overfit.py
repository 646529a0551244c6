from __future__ import annotations

from ..base import Rule


class Overfit(Rule):
    """Checks for a validation loss that rises while the training loss falls.

    ## What it does
    During training (with validation data), finds the epoch after which the validation loss
    rose by more than 10% above its minimum (and ``min_delta``) for ``patience`` epochs while the
    training loss kept falling, and reports the best epoch and the gap between the two curves.

    ## Why is this bad?
    The model is memorising the training rows: training longer makes predictions on new data
    worse ("a model that is too complex for the dataset can overfit", seed 000). The weights
    from the best epoch were better than the final ones.

    ## Example
    ```python
    model.fit(X, y, validation_split=0.2, epochs=5000)       # val loss bottoms out at epoch 300
    ```

    ## Use instead
    ```python
    model.fit(X, y, validation_split=0.2, epochs=5000, callbacks=[
        keras.callbacks.EarlyStopping(patience=50, restore_best_weights=True)])
    ```
    """

    code = "T405"
    name = "overfit"
    severity = "warning"
