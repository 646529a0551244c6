from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule


class DuplicateFeature(Rule):
    """Checks for feature columns that repeat another column exactly.

    ## What it does
    Finds pairs of columns that are identical on every finite row.
    Minimum evidence: 2 finite rows and 2 columns (two columns equal on every row; no estimate is
    involved).

    ## Why is this bad?
    Two identical columns make the design matrix singular: infinitely many weight pairs give
    the same predictions, so the weights wander along a flat valley and an L2 penalty or the
    optimizer's noise decides where they end. It also usually means a join or an export went
    wrong.

    ## Example
    ```python
    X = np.c_[income_usd, income_usd_copy, age]
    ```

    ## Use instead
    ```python
    X = np.c_[income_usd, age]
    ```
    """

    code = "D108"
    name = "duplicate-feature"
    severity = "warning"

    def detect(self, ctx):
        Xc = ctx.Xc
        if Xc.shape[1] < 2 or ctx.n < 2:
            return []
        sample = Xc[: min(ctx.n, 5000)]
        # hash columns by their bytes: O(p) instead of comparing every pair
        seen: dict[bytes, int] = {}
        pairs = []
        for j in range(Xc.shape[1]):
            key = np.ascontiguousarray(sample[:, j]).tobytes()
            if key in seen and np.array_equal(Xc[:, seen[key]], Xc[:, j]):
                pairs.append((ctx.feature_names[seen[key]], ctx.feature_names[j]))
            else:
                seen.setdefault(key, j)
        if not pairs:
            return []
        return [self.finding(
            f"{len(pairs)} feature column(s) duplicate another: "
            + ", ".join(f"{b!r} = {a!r}" for a, b in pairs[:5]),
            {"pairs": [list(p) for p in pairs]},
            fix=Fix("Drop the duplicated columns", f"X = X.drop(columns={[b for _, b in pairs]!r})", safe=False),
        )]
