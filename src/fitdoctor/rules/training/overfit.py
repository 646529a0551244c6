from __future__ import annotations

from ..base import Rule

#: the validation loss must rise above this multiple of its minimum
RISE = 1.1


class Overfit(Rule):
    """Checks for a validation loss that rises while the training loss falls.

    ## What it does
    During training (with validation data), finds the epoch after which the validation loss
    rose by more than 10% above its minimum (and ``min_delta``) for ``patience`` epochs while the
    training loss kept falling, and reports the best epoch and the gap between the two curves.

    Minimum evidence: 3 finite epochs of validation loss, and a rise above the best one for at
    least ``patience`` epochs including the last; with fewer epochs nothing is reported.

    ## Why is this bad?
    The model is memorising the training rows: training longer makes predictions on new data
    worse ("a model that is too complex for the dataset can overfit"). The weights
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

    def detect_training(self, trace):
        import numpy as np

        from ...findings import Fix

        if not trace.val_loss:
            return []
        val = np.asarray(trace.val_loss, dtype=np.float64)
        tr = np.asarray(trace.loss[: len(val)], dtype=np.float64)
        if len(val) < 3 or not np.isfinite(val).all() or not np.isfinite(tr).all():
            return []
        best = int(np.argmin(val))
        vmin = float(val[best])
        after = val[best + 1:]
        risen = (after > RISE * vmin) & (after > vmin + trace.min_delta)
        patience = max(1, int(trace.patience))
        if risen.sum() < patience or not risen[-1] or tr[-1] >= tr[best]:
            return []
        return [self.finding(
            f"the validation loss rose from {vmin:.4g} at epoch {best} to {val[-1]:.4g} ({val[-1] / vmin:.3g}x) "
            f"while the training loss fell from {tr[best]:.4g} to {tr[-1]:.4g}",
            {"best_epoch": best, "best_val_loss": vmin, "final_val_loss": float(val[-1]),
             "val_rise": float(val[-1] / vmin), "train_loss_at_best": float(tr[best]), "final_train_loss": float(tr[-1]),
             "gap_final": float(val[-1] / max(tr[-1], 1e-300)), "epochs_risen": int(risen.sum())},
            fix=Fix(f"Stop at the best epoch ({best}) with early stopping, or regularise",
                    "keras.callbacks.EarlyStopping(monitor='val_loss', patience=20, restore_best_weights=True)",
                    safe=False),
            epoch=best + 1)]
