"""``fitdoctor.compare``: train one model under a grid of configurations and compare the curves.

Every run's loss is reported as the MSE in the ORIGINAL target units on the rows it trained on
(predictions of runs with standardised targets are inverted first), so runs with and without
target scaling are comparable with each other and with the least-squares optimum.

The runs are ranked on held-out rows (issue 12): the user's ``validation_data`` or
``validation_split`` (Keras's meaning) when given, otherwise a seeded hold-out split, or K-fold
cross-validation for small data (:func:`fitdoctor.heldout.holdout_plan`). The held-out references
(mean predictor, least squares, the nonlinear reference) are fitted on the same training rows and
measured on the same held-out rows.
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
from ..model.multi_io import accepts_several_inputs_outputs
from ..heldout import HoldOut, heldout_references, holdout_plan
from ..reference import Reference, compute_reference
from .engine import RunResult, RunSpec, build_trained_model, grid_specs, train_runs
from .budget import plan_budget
from .replica_check import ReplicaCheck, check_replica

#: grid keys and the RunSpec field each sets
GRID_KEYS = ("optimizer", "learning_rate", "scale_x", "scale_y", "loss")
#: a run "reaches the optimum" at the first epoch whose MSE is within this factor of it
OPTIMUM_FACTOR = 1.1
DEFAULT_EPOCHS = 200


def validation_arrays(X, y, validation_data):
    """``validation_data=(X_val, y_val)`` as float arrays shaped like ``X`` and ``y`` (rows with NaN or
    infinite values are an input error, as in ``X``), or ``(None, None)``."""
    if validation_data is None:
        return None, None
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) < 2:
        raise InputError(f"validation_data must be a tuple (X_val, y_val) (Received validation_data of type "
                         f"{type(validation_data).__name__})")
    Xv = np.asarray(validation_data[0], dtype=np.float64)
    if Xv.ndim == 1 and X.ndim == 2 and X.shape[1] == 1:
        Xv = Xv.reshape(-1, 1)
    yv = np.asarray(validation_data[1], dtype=np.float64)
    if len(Xv) < 1 or len(yv) != len(Xv) or Xv.shape[1:] != X.shape[1:]:
        raise InputError(f"validation_data must hold rows shaped like X and one target row per row "
                         f"(Received X_val.shape={Xv.shape}, y_val.shape={yv.shape}; X.shape={X.shape})")
    yv = yv.reshape((len(yv),) + np.shape(y)[1:])
    if not (np.isfinite(Xv).all() and np.isfinite(yv).all()):
        raise InputError("validation_data contains NaN or infinite values: drop those rows first (Dataset.dropna())")
    return Xv, yv


def held_out_rows(X, y, *, validation_data=None, validation_split=None, seed: int = 0):
    """Pool the training and validation rows; return ``(Xp, yp, plan)`` with ``plan`` a :class:`HoldOut`
    whose folds index ``Xp``/``yp``."""
    Xv, yv = validation_arrays(X, y, validation_data)
    plan = holdout_plan(len(y), 0 if yv is None else len(yv), validation_split, seed)
    if Xv is None:
        return X, y, plan
    return np.concatenate([X, Xv]), np.concatenate([y, yv]), plan


def val_sse(model, result: RunResult, Xv, yv) -> float:
    """Sum of squared errors (original units) of ``result``'s trained model on the rows ``Xv``; inf when
    the run diverged or its model cannot predict."""
    from ..model.replica import call_model

    if result.diverged:
        return float("inf")
    try:
        pred = call_model(build_trained_model(model, result), Xv).reshape(len(Xv), -1)
    except Exception:  # a run whose model cannot be rebuilt or run is not ranked
        return float("inf")
    Y = np.asarray(yv, np.float64).reshape(len(Xv), -1)
    pred = pred[:, : Y.shape[1]]
    with np.errstate(over="ignore", invalid="ignore"):
        v = float(np.sum((pred - Y) ** 2))
    return v if np.isfinite(v) else float("inf")


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
    ``results_`` (pandas DataFrame, one row a run; ``val_loss`` is the held-out MSE and ``rank`` orders
    the runs by it), ``reference_`` (:class:`Reference`, on the rows the curves trained on),
    ``optimum_`` (the MSE the model can reach there: least squares for a linear model),
    ``n_rows_`` (rows the curves trained on), ``validation_`` (how the held-out rows were chosen, in
    words), ``validation_kind_``, ``n_val_rows_``, ``heldout_references_`` (each reference's held-out
    MSE), ``val_optimum_`` / ``val_optimum_kind_`` (the best of them for this model), ``val_losses_``
    (held-out MSE per run, grid order), ``val_curves_`` (per run, the held-out MSE after every epoch,
    original units; K-fold: pooled over the folds' held-out rows; None where not measured),
    ``budget_`` (:class:`~fitdoctor.experiments.budget.Budget`: on large data the curves train on a
    seeded subsample), ``replica_`` (:class:`~fitdoctor.experiments.replica_check.ReplicaCheck`: the engine's replica checked against ``model.fit``; when they disagree every run trains with ``model.fit``
    and ``notes_`` says why); after :meth:`plot`: ``ax_``, ``figure_``.

    Held-out rows: ``validation_data`` (to :meth:`fit`) or ``validation_split`` (Keras's meaning: the
    last fraction of the rows, kept out of training) when given; otherwise a seeded 20% hold-out split
    (the curves train on the other 80%), or under 100 rows K-fold cross-validation (the curves train
    on every row; each configuration is also trained once per fold for its held-out MSE).
    """

    def __init__(self, *, grid: dict[str, list] | None = None, epochs: int | None = None,
                 batch_size: int | None = None, seed: int = 0, engine: str = "auto", executor=None,
                 validation_split: float | None = None):
        self.grid = grid
        self.epochs = epochs
        self.batch_size = batch_size
        self.seed = seed
        self.engine = engine
        self.executor = executor
        self.validation_split = validation_split

    # ----------------------------------------------------------------------------------------
    def fit(self, model, X, y, *, callback: Callable[[int, int], None] | None = None,
            reference: Reference | None = None, validation_data=None) -> "Comparison":
        grid = _validate_grid(self.grid or {})
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        Y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)  # every target column is kept
        y = Y[:, 0] if Y.shape[1] == 1 else Y
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise InputError("X and y contain NaN or infinite values: drop those rows first (Dataset.dropna())")
        Xp, yp, plan = held_out_rows(X, y, validation_data=validation_data, validation_split=self.validation_split,
                                     seed=self.seed)
        # the rows the curves train on: every training row for K-fold and validation_data, else the plan's
        curve_rows = np.arange(len(y)) if plan.kind in ("k-fold", "validation_data") else plan.folds[0][0]
        X, y = Xp[curve_rows], yp[curve_rows]
        Y = y.reshape(len(y), -1)
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
            info, linear = None, True
        # large data: the curves train on the seeded rows of experiments/budget.py's rule
        self.budget_ = plan_budget(len(y), getattr(info, "n_params", None), base.batch_size, seed=self.seed)
        if self.budget_.subsampled and plan.kind != "k-fold":
            X, y = X[self.budget_.rows], y[self.budget_.rows]
            Y = y.reshape(len(y), -1)
        if reference is None or reference.n_rows != len(y):
            flat = X.reshape(len(X), -1)  # sequences and images: references on the flattened rows
            refs = [compute_reference(flat, Y[:, j], nonlinear=not linear, seed=self.seed) for j in range(Y.shape[1])]
            reference = refs[0] if len(refs) == 1 else mean_reference(refs)  # several targets: mean over columns
        self.reference_ = reference
        self.linear_model_ = linear
        self.optimum_ = float(self.reference_.effective_optimum(linear=linear))  # floored: noiseless data has no ratio to ~0
        self.n_rows_ = int(len(y))
        self._set_validation(plan, Xp, yp, linear)
        # K-fold: the curves train on every row, and each configuration once more per fold
        fold_runs = len(plan.folds) if plan.kind == "k-fold" else 0
        total = len(specs) * (1 + fold_runs)

        def tick(offset):
            return None if callback is None else (lambda done, _n: callback(offset + done, total))

        # the held-out rows are measured after every epoch (RunResult.val_mse): held-out curves beside the
        # training curves; K-fold: the fold runs' curves pooled over every held-out row (the main runs train on all)
        va0 = plan.folds[0][1]
        self.runs_: list[RunResult] = train_runs(model, X, y, specs, seed=self.seed, engine=self.engine,
                                                 callback=tick(0), executor=self.executor,
                                                 validation_data=None if fold_runs else (Xp[va0], yp[va0]))
        # replica check (issue 11 item 2): one of these runs against model.fit of a copy; when they disagree
        # every run trains with model.fit (the sequential engine) and notes_ / each run's note say why
        engine = self._check_replica(model, X, y, base)
        if engine == "sequential":
            self.runs_ = train_runs(model, X, y, specs, seed=self.seed, engine=engine, callback=tick(0),
                                    executor=self.executor,
                                    validation_data=None if fold_runs else (Xp[va0], yp[va0]))
            for r in self.runs_:
                r.note = self.replica_.note
        sse = np.zeros(len(specs))
        count = 0
        curve_sse: list = [None] * len(specs)
        if fold_runs:
            for f, (tr, va) in enumerate(plan.folds):
                runs = train_runs(model, Xp[tr], yp[tr], specs, seed=self.seed, engine=engine,
                                  callback=tick(len(specs) * (f + 1)), executor=self.executor,
                                  validation_data=(Xp[va], yp[va]))
                sse += [val_sse(model, r, Xp[va], yp[va]) for r in runs]
                count += yp[va].size
                for i, r in enumerate(runs):
                    ok = r.val_mse is not None and (f == 0 or curve_sse[i] is not None)
                    curve_sse[i] = (np.asarray(r.val_mse, dtype=float) * yp[va].size
                                    + (0.0 if f == 0 else curve_sse[i])) if ok else None
        else:
            sse += [val_sse(model, r, Xp[va0], yp[va0]) for r in self.runs_]
            count = yp[va0].size
            curve_sse = [None if r.val_mse is None else np.asarray(r.val_mse, dtype=float) * count for r in self.runs_]
        self.val_losses_ = [float(v) / max(count, 1) for v in sse]
        #: per run, the held-out MSE after every epoch (original units; K-fold: pooled over the folds), or None
        self.val_curves_ = [None if c is None else c / max(count, 1) for c in curve_sse]
        self.results_ = self._table()
        return self

    def _check_replica(self, model, X, y, base: RunSpec) -> str:
        """Check one vectorised run (the user's configuration when the grid holds it) against model.fit of a
        copy (:mod:`.replica_check`); sets ``replica_`` (and ``notes_``); returns the engine the runs use."""
        vec = [r for r in self.runs_ if r.engine == "vectorized" and len(r.loss) and np.isfinite(r.loss[0])]
        vec.sort(key=lambda r: r.spec != base)  # the user's configuration first
        if vec:
            self.replica_ = check_replica(model, X, y, base, seed=self.seed, engine=self.engine, result=vec[0])
        else:
            self.replica_ = ReplicaCheck(None, "replica check not applicable (no run trained on the vectorised engine)")
        self.notes_: list[str] = []  # what the result's readers should know (the replica check, ...)
        if self.replica_.sequential:
            self.notes_.append(self.replica_.note)
            return "sequential"
        return self.engine

    def _set_validation(self, plan: HoldOut, Xp, yp, linear: bool) -> None:
        self.validation_ = plan.description
        self.validation_kind_ = plan.kind
        self.n_val_rows_ = int(sum(len(va) for _, va in plan.folds))
        self.heldout_references_ = heldout_references(Xp, yp, plan, self.seed)
        refs = self.heldout_references_
        kind = "least squares"
        if not linear and refs.get("nonlinear reference", np.inf) < refs.get(kind, np.inf):
            kind = "nonlinear reference"
        if kind not in refs:
            kind = "mean predictor"
        opt = float(refs.get(kind, np.nan))
        if np.isfinite(opt) and opt < self.reference_.floor:  # noiseless data: never a ratio to ~0
            opt, kind = float(self.reference_.floor), "noiseless-data floor (1e-6 of var(y))"
        self.val_optimum_, self.val_optimum_kind_ = opt, kind

    def _table(self):
        import pandas as pd

        rows = []
        order = sorted(range(len(self.runs_)), key=lambda i: (not np.isfinite(self.val_losses_[i]),
                                                              self.val_losses_[i], self.runs_[i].diverged))
        rank = {i: k + 1 for k, i in enumerate(order)}
        for i, r in enumerate(self.runs_):
            s = r.spec
            val = self.val_losses_[i]
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
                "val_loss": val,
                "val_gap": val / self.val_optimum_ if np.isfinite(val) and self.val_optimum_ > 0 else float("inf"),
                "rank": rank[i],
                "diverged": r.diverged,
                "engine": r.engine,
            })
        return pd.DataFrame(rows)

    # ----------------------------------------------------------------------------------------
    def best_run(self) -> RunResult:
        """The run with the lowest held-out MSE (``rank`` 1; diverged runs last)."""
        return self.runs_[int(np.argmin(self.results_["rank"].to_numpy()))]

    def plot(self, ax=None, *, title: str | None = None, heldout: bool = False):
        """Curves per epoch (MSE in original units, log-scale y) with the references; returns ax.

        Default: the training MSE and the training-row optima; ``heldout=True``: each run's held-out MSE
        per epoch (``val_curves_``) and the references on the same held-out rows. Drawn by
        :class:`fitdoctor.reporting.plots.TrainingCurvesDisplay` (distinct styles for up to 32 runs, legend outside the axes, y-range set by the runs that did
        not diverge)."""
        from ..reporting.plots import TrainingCurvesDisplay

        display = TrainingCurvesDisplay.from_comparison(self, ax=ax, heldout=heldout)
        if title:
            display.ax_.set_title(title)
        self.ax_, self.figure_ = display.ax_, display.figure_
        return self.ax_

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({
            "n_rows": self.n_rows_,
            "budget": self.budget_.to_dict() if getattr(self, "budget_", None) is not None else None,
            "replica": self.replica_.to_dict() if getattr(self, "replica_", None) is not None else None,
            "notes": list(getattr(self, "notes_", None) or []),
            "optimum": self.optimum_,
            "optimum_kind": "least_squares" if self.linear_model_ else "reference",
            "reference": self.reference_.to_dict(),
            "seed": self.seed,
            "validation": {"how": self.validation_, "kind": self.validation_kind_, "rows": self.n_val_rows_,
                           "optimum": self.val_optimum_, "optimum_kind": self.val_optimum_kind_,
                           "references": self.heldout_references_},
            "results": self.results_.to_dict(orient="records"),
            "runs": [{
                "label": r.spec.label(),
                "spec": r.spec.to_dict(),
                "engine": r.engine,
                "note": r.note,
                "final_mse": r.final_mse,
                "best_mse": r.best_mse,
                "val_mse": v,
                "diverged": r.diverged,
                "mse": r.mse,
                "val_curve": c,  # held-out MSE per epoch (K-fold: pooled over the folds); None when not measured
                "loss": r.loss,
            } for r, v, c in zip(self.runs_, self.val_losses_, getattr(self, "val_curves_", [None] * len(self.runs_)))],
        })

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_html(self) -> str:
        from ..reporting.html import render_comparison_html

        return render_comparison_html(self)

    def __repr__(self) -> str:
        if not hasattr(self, "runs_"):
            return f"Comparison(grid={self.grid!r}, epochs={self.epochs!r}, batch_size={self.batch_size!r}, seed={self.seed!r})"
        return (f"<Comparison of {len(self.runs_)} runs, optimum {self.optimum_:.4g}, "
                f"held-out optimum {self.val_optimum_:.4g} ({self.validation_kind_})>")

    def _repr_html_(self) -> str | None:
        """A notebook cell's view: the HTML report's verdict, results table and curves (None before fit)."""
        if not hasattr(self, "runs_"):
            return None
        from ..reporting.html import notebook_html

        return notebook_html(self)


@accepts_several_inputs_outputs  # several inputs/outputs trained as one flat model
def compare(model, X, y, *, grid: dict[str, list] | None = None, epochs: int | None = None,
            batch_size: int | None = None, seed: int = 0, engine: str = "auto",
            callback: Callable[[int, int], None] | None = None, executor=None, validation_data=None,
            validation_split: float | None = None) -> Comparison:
    """Train ``model`` under every configuration of ``grid`` and compare them with the optimum.

    ``grid`` is a dict of lists over ``optimizer``, ``learning_rate``, ``scale_x``, ``scale_y``
    and ``loss`` (any subset); the runs are the product of the lists. What the grid does not set
    comes from the model's compile settings (else adam, 1e-3, mse); ``epochs`` and ``batch_size``
    default to 200 and 32. The model is never modified: every run starts from its current weights.
    ``executor``: where the runs train, ``"auto"`` (this process on JAX, a JAX worker process on
    TensorFlow), ``"inprocess"``, ``"worker"`` or ``"ray"`` (see :mod:`fitdoctor.experiments.executors`).

    The runs are ranked on held-out rows: ``validation_data=(X_val, y_val)`` or ``validation_split``
    (as in ``model.fit``) when given; otherwise a seeded 20% hold-out split, or under 100 rows K-fold
    cross-validation (``validation_`` says which). ``results_["val_loss"]`` is each run's held-out MSE,
    ``val_optimum_`` the best held-out reference on the same rows, ``best_run()`` the lowest ``val_loss``.

    Example::

        cmp = fitdoctor.compare(model, X, y, grid={"optimizer": ["adam", "sgd"],
                                                   "learning_rate": [1e-2, 1e-3],
                                                   "scale_y": [False, True]}, epochs=200)
        cmp.results_            # one row a run: final_loss, best_loss, epochs_to_optimum, diverged
        cmp.plot()
    """
    return Comparison(grid=grid, epochs=epochs, batch_size=batch_size, seed=seed, engine=engine,
                      executor=executor, validation_split=validation_split).fit(
        model, X, y, callback=callback, validation_data=validation_data)
