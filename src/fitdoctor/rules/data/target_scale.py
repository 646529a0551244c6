from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule

#: targets whose root-mean-square is outside [1/LIMIT, LIMIT] are far from what a fresh network outputs
LIMIT = 10.0


class TargetScale(Rule):
    """Checks for targets far from zero mean and unit scale.

    ## What it does
    Measures the targets' mean, standard deviation and root mean square. A freshly initialised
    network predicts values of order 1 around 0; targets with RMS above 10 (or below 0.1) are
    flagged as a warning, and targets whose mean is more than 3 standard deviations from zero
    as a note.
    Minimum evidence: 2 finite targets (mean, standard deviation and RMS over every finite row).

    ## Why is this bad?
    With incomes of 27,840 to 63,600 the network must grow its output weights and bias to tens
    of thousands. The MSE and its gradients are then ~10^9: plain SGD overshoots unless the
    learning rate is tiny, and Adam, whose step is about one learning rate whatever the gradient,
    needs tens of thousands of steps to move the bias there (the bundled `income` example). See also
    `adam-large-target`.

    ## Example
    ```python
    model.fit(X, df["income"])        # targets ~40,000
    ```

    ## Use instead
    ```python
    mu, sigma = y.mean(), y.std()
    model.fit(X, (y - mu) / sigma)
    pred = model.predict(X_new) * sigma + mu
    # or, inside the model: keras.layers.Normalization(mean=mu, variance=sigma**2, invert=True)
    ```

    ## Fix safety
    Safe when the inversion travels with the model (fitdoctor's repair appends an inverted
    Normalization layer, so predictions stay in the original units).
    """

    code = "D105"
    name = "target-scale"
    severity = "warning"

    def detect(self, ctx):
        y = ctx.yc
        if len(y) < 2:
            return []
        mean, std = float(y.mean()), float(y.std())
        rms = float(np.sqrt(np.mean(y**2)))
        evidence = {"mean": mean, "std": std, "rms": rms, "min": float(y.min()), "max": float(y.max()),
                    "mean_over_std": abs(mean) / std if std > 0 else "inf"}
        fix = Fix("Standardise the targets and invert the predictions",
                  "mu, sigma = y.mean(), y.std()\nmodel.fit(X, (y - mu) / sigma)\n"
                  "# the trained model predicts in original units with one layer appended:\n"
                  "model = keras.Sequential([*model.layers, keras.layers.Normalization(mean=mu, variance=sigma**2, invert=True)])",
                  safe=True, intervention="scale_targets")
        if rms > LIMIT or (0 < rms < 1 / LIMIT and std > 0):
            return [self.finding(
                f"targets have mean {mean:.4g} and std {std:.4g} (RMS {rms:.3g}, {max(rms, 1 / rms):.3g}x away "
                "from unit scale): the output layer must travel that far",
                evidence, fix=fix)]
        if std > 0 and abs(mean) > 3 * std:
            return [self.finding(
                f"targets sit {abs(mean) / std:.3g} standard deviations from zero (mean {mean:.4g}, std {std:.4g}): "
                "most early training is spent moving the bias",
                evidence, fix=fix, severity="info")]
        return []
