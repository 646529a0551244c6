"""``fitdoctor.compare``: train one model under a grid of configurations and compare the curves.

Every run's loss is reported as the MSE in the ORIGINAL target units on the full training data
(predictions of runs with standardised targets are inverted first), so runs with and without
target scaling are comparable with each other and with the least-squares optimum.
"""
from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..findings import to_jsonable
from ..model.inspect import DEFAULT_LR, canonical_loss, describe_model, read_training_config
from ..context import mean_reference
from ..reference import Reference, compute_reference
from .engine import RunResult, RunSpec, grid_specs, train_runs

#: grid keys and the RunSpec field each sets
GRID_KEYS = ("optimizer", "learning_rate", "scale_x", "scale_y", "loss")
#: a run "reaches the optimum" at the first epoch whose MSE is within this factor of it
OPTIMUM_FACTOR = 1.1
DEFAULT_EPOCHS = 200


def _validate_grid(grid: dict[str, Any]) -> dict[str, list]:
    if not isinstance(grid, dict):
        raise InputError(f"grid must be a dict of lists over {', '.join(GRID_KEYS)} (Received grid={grid!r})")
    out: dict[str, list] = {}
    for key, values in grid.items():
        if key not in GRID_KEYS:
            raise InputError(f"unknown grid key {key!r}: allowed keys are {', '.join(GRID_KEYS)} (Received grid key={key!r})")
        if isinstance(values, (str, bytes, bool, int, float)) or not hasattr(values, "__iter__"):
            values = [values]
        values = list(values)
        if not values:
            raise InputError(f"grid key {key!r} has an empty list: give at least one value (Received grid key={key!r})")
        if key == "optimizer":
            values = [str(v).lower() for v in values]
        elif key == "learning_rate":
            try:
                values = [float(v) for v in values]
            except (TypeError, ValueError):
                raise InputError(f"learning rates must be numbers (Received learning_rate={values!r})") from None
            bad = [v for v in values if not (math.isfinite(v) and v > 0)]
            if bad:
                raise InputError(f"learning rates must be positive (Received learning_rate={bad[0]!r})")
        elif key in ("scale_x", "scale_y"):
            if any(not isinstance(v, (bool, np.bool_)) for v in values):
                raise InputError(f"{key} takes booleans (Received {key}={values!r})")
            values = [bool(v) for v in values]
        elif key == "loss":
            values = [canonical_loss(v) for v in values]
        out[key] = values
    return out


class Comparison:
    """The result of :func:`compare`: a table, the curves and the reference optimum.

    Attributes (set by :meth:`fit`): ``runs_`` (RunResult per configuration, grid order),
    ``results_`` (pandas DataFrame, one row a run), ``reference_`` (:class:`Reference`),
    ``optimum_`` (the MSE the model can reach: least squares for a linear model),
    ``n_rows_``; after :meth:`plot`: ``ax_``, ``figure_``.
    """

    def __init__(self, *, grid: dict[str, list] | None = None, epochs: int | None = None,
                 batch_size: int | None = None, seed: int = 0, engine: str = "auto", executor=None):
        self.grid = grid
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.engine = engine
        self.executor = executor

    # ----------------------------------------------------------------------------------------
    def fit(self, model, X, y, *, callback: Callable[[int, int], None] | None = None,
            reference: Reference | None = None) -> "Comparison":
        grid = _validate_grid(self.grid or {})
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        Y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)  # every target column is kept
        y = Y[:, 0] if Y.shape[1] == 1 else Y
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise InputError("X and y contain NaN or infinite values: drop those rows first (Dataset.dropna())")
        cfg = read_training_config(model, epochs=self.epochs, batch_size=self.batch_size)
        base = RunSpec(optimizer=cfg.optimizer, learning_rate=float(cfg.learning_rate), loss=cfg.loss,
                       huber_delta=cfg.huber_delta, epochs=int(cfg.epochs or DEFAULT_EPOCHS),
                       batch_size=int(cfg.batch_size or 32), clipnorm=cfg.clipnorm, momentum=cfg.momentum,
                       optimizer_config=cfg.optimizer_config, loss_object=cfg.loss_object)
        specs = grid_specs(grid, base)
        if "learning_rate" not in grid and getattr(model, "optimizer", None) is None:
            # no rate anywhere: each optimizer runs at its own Keras default
            specs = [replace(s, learning_rate=DEFAULT_LR.get(s.optimizer, s.learning_rate)) for s in specs]
        try:
            info = describe_model(model)
            linear = info.is_linear
        except Exception:
            linear = True
        if reference is None:
            flat = X.reshape(len(X), -1)  # sequences and images: references on the flattened rows
            refs = [compute_reference(flat, Y[:, j], nonlinear=not linear, seed=self.seed) for j in range(Y.shape[1])]
            reference = refs[0] if len(refs) == 1 else mean_reference(refs)  # several targets: mean over columns
        self.reference_ = reference
        self.linear_model_ = linear
        self.optimum_ = float(self.reference_.effective_optimum(linear=linear))  # floored: noiseless data has no ratio to ~0
        self.n_rows_ = int(len(y))
        self.runs_: list[RunResult] = train_runs(model, X, y, specs, seed=self.seed, engine=self.engine, callback=callback,
                                                 executor=self.executor)
        self.results_ = self._table()
        return self

    def _table(self):
        import pandas as pd

        rows = []
        for r in self.runs_:
            s = r.spec
            reach = np.flatnonzero(np.isfinite(r.mse) & (r.mse <= OPTIMUM_FACTOR * self.optimum_))
            rows.append({
                "label": s.label(),
                "optimizer": s.optimizer,
                "learning_rate": s.learning_rate,
                "loss": s.loss,
                "scale_x": s.scale_x,
                "scale_y": s.scale_y,
                "epochs": s.epochs,
                "batch_size": s.batch_size,
                "final_loss": r.final_mse,
                "best_loss": r.best_mse,
                "gap": self.reference_.gap(r.final_mse, linear=self.linear_model_),
                "epochs_to_optimum": float(reach[0] + 1) if len(reach) else float("nan"),
                "diverged": r.diverged,
                "engine": r.engine,
            })
        return pd.DataFrame(rows)

    # ----------------------------------------------------------------------------------------
    def best_run(self) -> RunResult:
        """The run with the lowest final MSE (diverged runs last)."""
        key = [(r.diverged, r.final_mse if np.isfinite(r.final_mse) else np.inf) for r in self.runs_]
        return self.runs_[min(range(len(key)), key=key.__getitem__)]

    def plot(self, ax=None, *, title: str | None = None):
        """Training curves (MSE in original units per epoch, log-scale y) and the optimum; returns ax.

        Drawn by :class:`fitdoctor.reporting.plots.TrainingCurvesDisplay` (distinct styles for up to
        32 runs, legend outside the axes, y-range set by the runs that did not diverge)."""
        from ..reporting.plots import TrainingCurvesDisplay

        display = TrainingCurvesDisplay.from_comparison(self, ax=ax)
        if title:
            display.ax_.set_title(title)
        self.ax_, self.figure_ = display.ax_, display.figure_
        return self.ax_

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({
            "n_rows": self.n_rows_,
            "optimum": self.optimum_,
            "optimum_kind": "least_squares" if self.linear_model_ else "reference",
            "reference": self.reference_.to_dict(),
            "seed": self.seed,
            "results": self.results_.to_dict(orient="records"),
            "runs": [{
                "label": r.spec.label(),
                "spec": r.spec.to_dict(),
                "engine": r.engine,
                "note": r.note,
                "final_mse": r.final_mse,
                "best_mse": r.best_mse,
                "diverged": r.diverged,
                "mse": r.mse,
                "loss": r.loss,
            } for r in self.runs_],
        })

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_html(self) -> str:
        from ..reporting.html import render_comparison_html

        return render_comparison_html(self)

    def __repr__(self) -> str:
        if not hasattr(self, "runs_"):
            return f"Comparison(grid={self.grid!r}, epochs={self.epochs!r}, batch_size={self.batch_size!r}, seed={self.seed!r})"
        return f"<Comparison of {len(self.runs_)} runs, optimum {self.optimum_:.4g}>"

    def _repr_html_(self) -> str | None:
        """A notebook cell's view: the HTML report's verdict, results table and curves (None before fit)."""
        if not hasattr(self, "runs_"):
            return None
        from ..reporting.html import notebook_html

        return notebook_html(self)


def compare(model, X, y, *, grid: dict[str, list] | None = None, epochs: int | None = None,
            batch_size: int | None = None, seed: int = 0, engine: str = "auto",
            callback: Callable[[int, int], None] | None = None, executor=None) -> Comparison:
    """Train ``model`` under every configuration of ``grid`` and compare them with the optimum.

    ``grid`` is a dict of lists over ``optimizer``, ``learning_rate``, ``scale_x``, ``scale_y``
    and ``loss`` (any subset); the runs are the product of the lists. What the grid does not set
    comes from the model's compile settings (else adam, 1e-3, mse); ``epochs`` and ``batch_size``
    default to 200 and 32. The model is never modified: every run starts from its current weights.
    ``executor``: where the runs train, ``"auto"`` (this process on JAX, a JAX worker process on
    TensorFlow), ``"inprocess"``, ``"worker"`` or ``"ray"`` (see :mod:`fitdoctor.experiments.executors`).

    Example::

        cmp = fitdoctor.compare(model, X, y, grid={"optimizer": ["adam", "sgd"],
                                                   "learning_rate": [1e-2, 1e-3],
                                                   "scale_y": [False, True]}, epochs=200)
        cmp.results_            # one row a run: final_loss, best_loss, epochs_to_optimum, diverged
        cmp.plot()
    """
    return Comparison(grid=grid, epochs=epochs, batch_size=batch_size, seed=seed, engine=engine,
                      executor=executor).fit(
        model, X, y, callback=callback)
