from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule


def _is_builtin_loss(loss) -> bool:
    """Keras' own losses align the ranks of y_true and y_pred, and so does Keras for a plain function
    given to ``compile`` (it wraps it in a ``LossFunctionWrapper``, which squeezes or expands y_true to
    y_pred's rank); only a ``Loss`` subclass with its own ``call`` sees the shapes as given."""
    if loss is None or isinstance(loss, str):
        return True
    module = getattr(loss, "__module__", None) or type(loss).__module__
    if str(module).startswith("keras"):
        return True
    import keras

    return not isinstance(loss, keras.losses.Loss)


class ShapeBroadcast(Rule):
    """Checks for targets whose shape makes the loss broadcast instead of compare row by row.

    ## What it does
    Compares the targets' shape with the model's output shape. When the loss is a ``Loss``
    subclass of the user's (Keras aligns the ranks for its own losses and for plain functions given
    to ``compile``), it evaluates the loss on a few rows as given and with the targets reshaped to
    the output's shape; if the two differ, the loss is broadcasting. It also flags targets with
    more columns than the model has outputs.

    Minimum evidence: 2 finite rows (a loss on one row cannot broadcast).

    ## Why is this bad?
    ``y_true`` of shape (n,) minus ``y_pred`` of shape (n, 1) broadcasts to an (n, n) matrix: the
    loss compares every prediction with every target, its minimum is the mean predictor, and
    training "converges" to a constant. Keras' built-in losses align the ranks, and Keras wraps a
    plain loss function so that it does too; a ``Loss`` subclass's ``call`` gets the shapes as given.

    ## Example
    ```python
    class MyMSE(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return keras.ops.mean((y_true - y_pred) ** 2, axis=-1)   # y_true (32,), y_pred (32, 1)
    ```

    ## Use instead
    ```python
    model.fit(X, y.reshape(-1, 1))        # or squeeze y_pred inside the loss
    ```
    """

    code = "M203"
    name = "shape-broadcast"
    severity = "error"

    def detect(self, ctx):
        y_shape = tuple(ctx.y_shape)
        out_units = ctx.model_info.output_units
        if len(y_shape) == 2 and y_shape[1] not in (1, out_units):
            return [self.finding(
                f"targets have {y_shape[1]} columns but the model has {out_units} output(s)",
                {"y_shape": list(y_shape), "output_units": out_units},
                fix=Fix("Give one target column per output", "y = y[:, 0]", safe=False, intervention="reshape_targets"))]
        model = ctx.model
        loss = getattr(model, "loss", None) if model is not None else None
        if model is None or _is_builtin_loss(loss) or not callable(loss):
            return []
        k = min(ctx.n, 16)
        if k < 2:
            return []
        import keras

        yt = ctx.yc[:k].astype("float32")
        yp = (ctx.yc[:k] + np.linspace(-1, 1, k)).astype("float32").reshape(k, 1)
        yt_given = yt.reshape((k,) + tuple(y_shape[1:])) if len(y_shape) > 1 else yt
        try:
            as_given = float(np.mean(keras.ops.convert_to_numpy(loss(keras.ops.convert_to_tensor(yt_given), keras.ops.convert_to_tensor(yp)))))
            aligned = float(np.mean(keras.ops.convert_to_numpy(loss(keras.ops.convert_to_tensor(yt.reshape(k, 1)), keras.ops.convert_to_tensor(yp)))))
        except Exception:
            return []
        if np.isclose(as_given, aligned, rtol=1e-4, atol=1e-12):
            return []
        return [self.finding(
            f"the custom loss broadcasts targets of shape {y_shape} against outputs (n, {out_units}): "
            f"on {k} rows it gives {as_given:.4g} instead of {aligned:.4g}",
            {"y_shape": list(y_shape), "output_units": out_units, "loss_as_given": as_given, "loss_aligned": aligned},
            fix=Fix("Reshape the targets to (n, 1)", "model.fit(X, y.reshape(-1, 1))", safe=True,
                    intervention="reshape_targets"),
        )]
