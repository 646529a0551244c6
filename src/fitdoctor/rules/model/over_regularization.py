from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule

#: a penalty that raises the best achievable training MSE by more than this factor is flagged
MSE_FACTOR = 1.1
DROPOUT_LIMIT = 0.5


def ridge_mse(X: np.ndarray, y: np.ndarray, l2: float) -> float:
    """Training MSE of min mean((Xw+b-y)^2) + l2 ||w||^2: w = (Xc'Xc/n + l2 I)^-1 Xc'yc/n."""
    n = len(y)
    Xc = X - X.mean(axis=0)
    yc = y - y.mean()
    w = np.linalg.solve(Xc.T @ Xc / n + l2 * np.eye(X.shape[1]), Xc.T @ yc / n)
    return float(np.mean((Xc @ w - yc) ** 2))


class OverRegularization(Rule):
    """Checks for weight penalties or dropout strong enough to prevent a good fit.

    ## What it does
    For a linear model with an L2 kernel penalty, solves the penalised problem in closed form
    (ridge regression, exactly what Keras minimises) and compares its training MSE with the
    unpenalised least-squares MSE; flags a penalty that raises the achievable MSE by more than
    10%. For other models it flags dropout rates of 0.5 or more and L1/L2 factors of 0.1 or more.

    Minimum evidence: for a linear model, 2 finite rows and one feature (the penalised
    least-squares MSE is computed from them); otherwise the layers' settings only, reported as an
    info, never as a measured effect.

    ## Why is this bad?
    The optimizer converges to the minimum of loss + penalty, not of the loss: a strong penalty
    shrinks the weights toward zero and the training loss plateaus well above what the data
    allows, which looks exactly like a model that does not converge.

    ## Example
    ```python
    keras.layers.Dense(1, kernel_regularizer=keras.regularizers.l2(10.0))
    ```

    ## Use instead
    ```python
    keras.layers.Dense(1, kernel_regularizer=keras.regularizers.l2(1e-4))  # tune on validation loss
    ```
    """

    code = "M206"
    name = "over-regularization"
    severity = "warning"

    def detect(self, ctx):
        layers = ctx.model_info.layers
        l2 = sum(l.l2 for l in layers)
        l1 = sum(l.l1 for l in layers)
        drop = max((l.dropout for l in layers), default=0.0)
        if ctx.model_info.is_linear and l2 > 0 and ctx.n > 1 and ctx.X.shape[1]:
            pen = ridge_mse(ctx.Xc, ctx.yc, l2)
            base = ctx.reference.linear_mse
            ratio = pen / max(base, 1e-300)
            if ratio > MSE_FACTOR:
                return [self._found(f"the L2 penalty {l2:g} raises the best achievable training MSE from {base:.4g} "
                                    f"to {pen:.4g} ({ratio:.3g}x)",
                                    {"l2": l2, "penalised_mse": pen, "least_squares_mse": base, "ratio": ratio})]
            return []
        if drop >= DROPOUT_LIMIT or l2 >= 0.1 or l1 >= 0.1:
            return [self._found(f"strong regularisation (dropout {drop:g}, L2 {l2:g}, L1 {l1:g}) may keep the training "
                                "loss far above the optimum", {"dropout": drop, "l2": l2, "l1": l1}, severity="info")]
        return []

    def _found(self, msg, evidence, severity=None):
        return self.finding(msg, evidence, severity=severity,
                            fix=Fix("Lower the penalty (tune it on the validation loss)",
                                    "keras.regularizers.l2(1e-4)", safe=False, intervention="remove_regularization"))
