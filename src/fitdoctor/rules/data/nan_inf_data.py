from __future__ import annotations

import numpy as np

from ...findings import Fix
from ..base import Rule


def _row_list(rows, limit=50):
    return [int(r) for r in rows[:limit]]


class NanInfData(Rule):
    """Checks for NaN or infinite values in the features or the target.

    ## What it does
    Counts the empty (NaN) and infinite cells, by column, and lists the rows that hold them.
    During training it watches for a NaN loss on a batch that held non-finite values.
    Minimum evidence: one non-finite cell (a count, not an estimate); during training, a NaN loss on
    a batch known to hold non-finite inputs or targets.

    ## Why is this bad?
    One NaN in a batch makes that batch's loss and gradients NaN; after the update every weight
    is NaN and the model predicts NaN from then on. Keras does not drop such rows for you, and
    pandas reads an empty CSV cell as NaN without a word.

    ## Example
    ```python
    df = pd.read_csv("income.csv")          # two empty 'experience' cells
    model.fit(df[["age", "experience"]], df["income"])   # loss: nan
    ```

    ## Use instead
    ```python
    df = df.dropna()                        # or impute, and say which rows you changed
    model.fit(df[["age", "experience"]], df["income"])
    ```

    ## Fix safety
    Dropping rows changes the data: fitdoctor's repair drops them and reports the row numbers.
    """

    code = "D101"
    name = "nan-inf-data"
    severity = "error"

    def detect(self, ctx):
        if ctx.finite_rows.all():
            return []
        bad_x = ~np.isfinite(ctx.X)
        bad_y = ~np.isfinite(ctx.y)
        if not bad_x.any() and not bad_y.any():
            return []
        rows = np.flatnonzero(bad_x.any(axis=1) | bad_y)
        columns = {name: int(c) for name, c in zip(ctx.feature_names, bad_x.sum(axis=0)) if c}
        if bad_y.any():
            columns[ctx.target_name] = int(bad_y.sum())
        n_nan = int(np.isnan(ctx.X).sum() + np.isnan(ctx.y).sum())
        n_inf = int(np.isinf(ctx.X).sum() + np.isinf(ctx.y).sum())
        kind = "empty/NaN" if not n_inf else ("infinite" if not n_nan else "NaN or infinite")
        shown = ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "") + " counting from 0"
        cols = ", ".join(f"{k!r} ({v})" for k, v in columns.items())
        return [self.finding(
            f"{len(rows)} of {len(ctx.y)} rows hold {kind} cells (rows {shown}; columns {cols}); "
            "one such row in a batch turns the loss and every weight into NaN",
            {"rows": _row_list(rows), "n_rows": int(len(rows)), "n_total_rows": int(len(ctx.y)),
             "columns": columns, "n_nan_cells": n_nan, "n_inf_cells": n_inf,
             "row_fraction": float(len(rows) / max(len(ctx.y), 1))},
            fix=Fix("Drop (or impute) the rows with non-finite cells, and report them",
                    "mask = np.isfinite(X).all(axis=1) & np.isfinite(y)\nX, y = X[mask], y[mask]",
                    safe=False, intervention="drop_nonfinite_rows"),
        )]

    def detect_training(self, trace):
        if trace.nonfinite_epoch is None or not trace.nonfinite_inputs:
            return []
        where = f"epoch {trace.nonfinite_epoch}" + (f" (step {trace.nonfinite_step})" if trace.nonfinite_step is not None else "")
        ev = {"nonfinite_epoch": trace.nonfinite_epoch, "nonfinite_step": trace.nonfinite_step,
              "stopped": trace.stopped_on_nan, "restored_weights_of_epoch": trace.restored_epoch}
        ev.update(trace.nonfinite_inputs_evidence)
        why = trace.nonfinite_inputs_evidence.get("reason", "the batch held non-finite inputs or targets")
        return [self.finding(
            f"the loss became NaN at {where}: {why}; every weight is NaN after that update",
            ev,
            fix=Fix("Drop (or impute) the rows with non-finite cells, and report them",
                    "mask = np.isfinite(X).all(axis=1) & np.isfinite(y)\nX, y = X[mask], y[mask]",
                    safe=False, intervention="drop_nonfinite_rows"),
            epoch=trace.nonfinite_epoch, step=trace.nonfinite_step,
        )]
