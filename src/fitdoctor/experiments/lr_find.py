"""``fitdoctor.find_lr``: the learning-rate range test (Smith 2017, "Cyclical Learning Rates").

Train from the model's current weights for ``steps`` mini-batches while the learning rate grows
exponentially from ``start_lr`` to ``end_lr`` (``lr_t = start * (end / start) ** (t / (T - 1))``),
record each batch's loss, smooth it, stop where it diverges, and read a learning rate off the
curve. The model is never modified (the sweep trains stateless copies of its weights).

The readings are then checked on held-out rows (issue 12): the user's ``validation_data`` or
``validation_split`` (Keras's meaning) when given, otherwise a seeded 20% hold-out split, or K-fold
cross-validation under 100 rows (:func:`fitdoctor.heldout.holdout_plan`). The sweep never sees the
held-out rows; each reading's learning rate trains as many mini-batches as the sweep had steps, and
its MSE on the held-out rows is reported. With K-fold only the first fold is used (one check, not K:
the readings are advice, and a sequential model trains each of them in full).
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..errors import InputError
from ..findings import to_jsonable
from ..heldout import HoldOut, heldout_references
from ..model.multi_io import accepts_several_inputs_outputs
from ..model.inspect import canonical_loss, read_training_config
from ..reference import compute_reference
from .compare import held_out_rows, val_sse
from .engine import RunSpec, sweep_losses, train_runs
from .replica_check import check_replica

#: exponential moving average of the batch losses: s_t = b s_{t-1} + (1 - b) l_t, bias-corrected
SMOOTHING = 0.9
#: the sweep stops where the smoothed loss exceeds this multiple of its minimum so far
DIVERGENCE_FACTOR = 4.0
#: two suggestions "agree" when they are within this factor of each other (half a decade)
STABILITY_FACTOR = 10 ** 0.5
#: a sweep that removes less than this fraction of the starting loss says little about the rate
SMALL_DROP = 0.1
#: another reading's held-out MSE must be this much lower (10%) than the suggestion's to be named instead
HELDOUT_MARGIN = 0.1


def smooth(losses: np.ndarray, beta: float = SMOOTHING) -> np.ndarray:
    """Bias-corrected exponential moving average (``s_t / (1 - beta**(t+1))``), NaN after the first non-finite."""
    out = np.full(len(losses), np.nan)
    avg = 0.0
    for t, value in enumerate(losses):
        if not np.isfinite(value):
            break
        avg = beta * avg + (1 - beta) * value
        out[t] = avg / (1 - beta ** (t + 1))
    return out


def stop_index(smoothed: np.ndarray, factor: float = DIVERGENCE_FACTOR) -> int:
    """Number of steps kept: up to (excluding) the first that is non-finite or above ``factor`` x the minimum so far."""
    best = np.inf
    for t, value in enumerate(smoothed):
        if not np.isfinite(value) or (t > 0 and value > factor * best):
            return t
        best = min(best, value)
    return len(smoothed)


def suggest(lrs: np.ndarray, smoothed: np.ndarray) -> dict[str, float]:
    """The published readings of a range-test curve (all on the kept, smoothed part).

    * ``minimum``: the learning rate at the lowest smoothed loss;
    * ``min/10``: that divided by ten (Smith's and fastai's first rule);
    * ``steepest``: the steepest descent of the smoothed loss per decade of learning rate
      (searched before the minimum);
    * ``valley``: the middle (in log lr) of the longest run of decreasing smoothed loss that ends
      at the minimum (a simplified version of fastai's "valley").
    """
    lrs = np.asarray(lrs, dtype=np.float64)
    s = np.asarray(smoothed, dtype=np.float64)
    k = int(np.nanargmin(s))
    out = {"minimum": float(lrs[k]), "min/10": float(lrs[k] / 10)}
    out["steepest"] = _steepest(lrs[: k + 1], s[: k + 1])
    start = k
    while start > 0 and s[start - 1] > s[start]:
        start -= 1
    out["valley"] = float(np.sqrt(lrs[start] * lrs[k]))
    return out


def _steepest(lrs: np.ndarray, s: np.ndarray) -> float:
    """Learning rate of the steepest descent of log(loss) per decade, slopes taken over a window.

    The slope at t is ``(log s[t+w] - log s[t-w]) / (log lr[t+w] - log lr[t-w])`` with ``w`` a
    quarter of a decade of steps (at least 2), after the smoothing's warm-up: single-step slopes
    of a noisy curve pick noise at the flat start.
    """
    T = len(lrs)
    if T < 5:
        return float(lrs[-1])
    per_decade = (T - 1) / max(np.log10(lrs[-1] / lrs[0]), 1e-12)
    w = max(2, int(round(per_decade / 4)))
    lo = max(w, int(round(1 / (1 - SMOOTHING))) // 2)
    if lo >= T - w:
        return float(lrs[T // 2])
    logs, logl = np.log10(np.maximum(s, 1e-300)), np.log10(lrs)
    t = np.arange(lo, T - w)
    slope = (logs[t + w] - logs[t - w]) / (logl[t + w] - logl[t - w])
    return float(lrs[t[int(np.argmin(slope))]])


class LRFinder:
    """The learning-rate range test, run for two seeds (two batch orders).

    How the suggestion is chosen: published finders differ (steepest slope of the smoothed loss,
    fastai's "valley", the minimum divided by ten), and single curves are noisy. fitdoctor reads
    every curve with all of these rules (``candidates_``) and suggests the geometric mean of the
    steepest-slope and the minimum/10 readings of the first seed: both sit inside the descending
    part of the curve, well below where the loss blows up, and the geometric mean is robust to
    either one being off by a decade on a noisy curve. ``range_`` is (lowest, highest) of those
    readings over both seeds: the learning rates worth trying. ``stable_`` says whether the two
    seeds' suggestions agree within half a decade; when they do not, prefer a short ``compare``
    over the range.

    Attributes after :meth:`fit`: ``lrs_``, ``losses_`` (smoothed, first seed, cut where it
    diverged), ``raw_losses_``, ``suggestion_``, ``range_``, ``stable_``, ``suggestions_`` (one
    per seed), ``candidates_`` (per seed, every rule), ``diverged_at_`` (lr where the sweep
    stopped, or None), ``engine_``, ``replica_`` (:class:`~fitdoctor.experiments.replica_check.ReplicaCheck`:
    the engine's replica checked against ``model.fit`` of a copy; when they disagree the sweep runs
    with ``model.fit`` and ``notes_`` says so); after :meth:`plot`: ``ax_``, ``figure_``.

    Held-out check: ``validation_`` (how the held-out rows were chosen, in words), ``validation_kind_``,
    ``heldout_references_`` (mean predictor, least squares, nonlinear reference on those rows),
    ``validation_losses_`` ({learning rate: held-out MSE} for the range's ends and the suggestion, each
    trained from the model's weights for as many mini-batches as the sweep had steps) and
    ``validated_suggestion_`` (the one of them with the lowest held-out MSE).
    """

    def __init__(self, *, start_lr: float = 1e-6, end_lr: float = 10.0, steps: int = 100,
                 optimizer: str | None = None, loss: str | None = None, batch_size: int = 32,
                 seed: int = 0, engine: str = "auto", validation_split: float | None = None):
        self.start_lr = start_lr
        self.end_lr = end_lr
        self.steps = steps
        self.optimizer = optimizer
        self.loss = loss
        self.batch_size = batch_size
        self.seed = seed
        self.engine = engine
        self.validation_split = validation_split

    def fit(self, model, X, y, *, validation_data=None) -> "LRFinder":
        if not (0 < float(self.start_lr) < float(self.end_lr)):
            raise InputError(f"need 0 < start_lr < end_lr (Received start_lr={self.start_lr!r}, end_lr={self.end_lr!r})")
        if int(self.steps) < 10:
            raise InputError(f"steps must be at least 10 (Received steps={self.steps!r})")
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X.reshape(-1, 1)
        y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)  # every target column is kept
        y = y[:, 0] if y.shape[1] == 1 else y
        if not (np.isfinite(X).all() and np.isfinite(y).all()):
            raise InputError("X and y contain NaN or infinite values: drop those rows first (Dataset.dropna())")
        Xp, yp, plan = held_out_rows(X, y, validation_data=validation_data, validation_split=self.validation_split,
                                     seed=int(self.seed))
        if plan.kind == "k-fold":  # one check on the first fold (see the module's docstring)
            tr, va = plan.folds[0]
            plan = HoldOut("k-fold", [(tr, va)], plan.retrain_all,
                           f"the first of {len(plan.folds)} cross-validation folds ({len(va)} of {len(y)} rows, "
                           f"seed {int(self.seed)}; too few rows for a 20% hold-out split)")
        X, y = Xp[plan.folds[0][0]], yp[plan.folds[0][0]]
        cfg = read_training_config(model, optimizer=self.optimizer, loss=self.loss, batch_size=self.batch_size)
        spec = RunSpec(optimizer=cfg.optimizer, learning_rate=cfg.learning_rate, loss=cfg.loss,
                       huber_delta=cfg.huber_delta, batch_size=int(cfg.batch_size or 32), clipnorm=cfg.clipnorm,
                       momentum=cfg.momentum, epochs=1, optimizer_config=cfg.optimizer_config,
                       loss_object=cfg.loss_object)
        self.config_ = spec
        T = int(self.steps)
        lrs = float(self.start_lr) * (float(self.end_lr) / float(self.start_lr)) ** (np.arange(T) / (T - 1))
        seeds = (int(self.seed), int(self.seed) + 1)
        # the replica check (issue 11 item 2): when the engine's copy of the model does not train as
        # model.fit does, the sweep and its held-out check run with model.fit (sequential)
        self.replica_ = check_replica(model, X, y, spec, seed=int(self.seed), engine=self.engine)
        engine = "sequential" if self.replica_.sequential else self.engine
        raw, self.engine_ = sweep_losses(model, X, y, spec, lrs, seeds=seeds, engine=engine)
        self.raw_losses_ = raw[0]
        self.candidates_: list[dict[str, float]] = []
        self.suggestions_: list[float] = []
        kept = []
        for r in range(len(seeds)):
            sm = smooth(raw[r])
            stop = stop_index(sm)
            if stop < 3:
                raise InputError(f"the loss diverged within {stop} steps of start_lr={self.start_lr:g}: "
                                 "lower start_lr or standardise inputs and targets")
            kept.append((sm, stop))
            cand = suggest(lrs[:stop], sm[:stop])
            self.candidates_.append(cand)
            self.suggestions_.append(float(np.sqrt(cand["steepest"] * cand["min/10"])))
        sm0, stop0 = kept[0]
        self.lrs_ = lrs[:stop0]
        self.losses_ = sm0[:stop0]
        self.diverged_at_ = float(lrs[stop0]) if stop0 < T else None
        self.suggestion_ = self.suggestions_[0]
        readings = [c[k] for c in self.candidates_ for k in ("steepest", "min/10")]
        self.range_ = (float(min(readings)), float(max(readings)))
        ratio = max(self.suggestions_) / min(self.suggestions_)
        self.stable_ = bool(ratio <= STABILITY_FACTOR)
        first, lowest = float(sm0[0]), float(np.nanmin(self.losses_))
        self.relative_drop_ = (first - lowest) / first if first > 0 else 0.0
        self.notes_ = self._notes(int(np.nanargmin(self.losses_)) == stop0 - 1)
        if self.replica_.sequential:
            self.notes_.append(self.replica_.note)
        # the level a line can show beside the curve: least squares, in the units the sweep trains in
        # (MSE on raw targets); only meaningful for the MSE loss on one target and 2-D inputs
        self.optimum_ = None
        if canonical_loss(cfg.loss) == "mse" and X.ndim == 2 and np.ndim(y) == 1 and not cfg.custom_loss:
            self.optimum_ = float(compute_reference(X, y, nonlinear=False, seed=int(self.seed)).effective_optimum(linear=True))
        self._check_on_heldout(model, Xp, yp, plan, spec, engine)
        return self

    def _check_on_heldout(self, model, Xp, yp, plan, spec: RunSpec, engine: str) -> None:
        """Train the range's ends and the suggestion on the plan's training rows (as many mini-batches as
        the sweep had steps) and measure them on its held-out rows."""
        from dataclasses import replace

        self.validation_ = plan.description
        self.validation_kind_ = plan.kind
        self.heldout_references_ = heldout_references(Xp, yp, plan, int(self.seed))
        lrs = sorted({float(self.range_[0]), float(self.suggestion_), float(self.range_[1])})
        sse, count = np.zeros(len(lrs)), 0
        for tr, va in plan.folds:
            per_epoch = max(1, -(-len(tr) // spec.batch_size))
            epochs = max(1, -(-int(self.steps) // per_epoch))
            specs = [replace(spec, learning_rate=lr, epochs=epochs) for lr in lrs]
            runs = train_runs(model, Xp[tr], yp[tr], specs, seed=int(self.seed), engine=engine)
            sse += [val_sse(model, r, Xp[va], yp[va]) for r in runs]
            count += yp[va].size
        self.validation_losses_ = {lr: float(v) / max(count, 1) for lr, v in zip(lrs, sse)}
        best = min(lrs, key=lambda lr: self.validation_losses_[lr])
        self.validated_suggestion_ = best if np.isfinite(self.validation_losses_[best]) else None
        v_sug = self.validation_losses_[float(self.suggestion_)]
        if self.validated_suggestion_ is not None and best != float(self.suggestion_) \
                and self.validation_losses_[best] < v_sug / (1 + HELDOUT_MARGIN):
            self.notes_.append(f"on the held-out rows ({plan.description}) lr {best:.3g} did better than the "
                               f"suggestion {self.suggestion_:.3g} (MSE {self.validation_losses_[best]:.4g} vs {v_sug:.4g}): "
                               f"prefer {best:.3g}, or compare the range with fitdoctor.compare")

    def _notes(self, lowest_at_the_end: bool) -> list[str]:
        notes = []
        if self.diverged_at_ is None and lowest_at_the_end:
            notes.append(f"the loss was still falling at the largest learning rate tried ({self.lrs_[-1]:g}): "
                         "the curve has no minimum, so the readings are cut off; raise end_lr to see where it blows up")
        if self.relative_drop_ < SMALL_DROP:
            notes.append(f"over the whole sweep the loss fell by only {self.relative_drop_:.1%}: the learning rate "
                         "is not what holds this training back (unscaled targets or inputs? fitdoctor check measures it)")
        return notes

    def plot(self, ax=None):
        """Smoothed loss against learning rate (log x), the suggestion, the range and the optimum line; returns ax.

        Drawn by :class:`fitdoctor.reporting.plots.LRFinderDisplay` (the same picture as the reports)."""
        from ..reporting.plots import LRFinderDisplay

        display = LRFinderDisplay.from_finder(self, ax=ax)
        self.ax_, self.figure_ = display.ax_, display.figure_
        return self.ax_

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({
            "suggestion": self.suggestion_, "range": list(self.range_), "stable": self.stable_,
            "suggestions": self.suggestions_, "candidates": self.candidates_, "diverged_at": self.diverged_at_,
            "optimizer": self.config_.optimizer, "loss": self.config_.loss, "batch_size": self.config_.batch_size,
            "relative_drop": self.relative_drop_, "notes": self.notes_,
            "engine": self.engine_, "replica": self.replica_.to_dict(), "lrs": self.lrs_, "losses": self.losses_,
            "validation": {"how": self.validation_, "kind": self.validation_kind_,
                           "references": self.heldout_references_,
                           "losses": [{"learning_rate": lr, "val_mse": v} for lr, v in self.validation_losses_.items()],
                           "validated_suggestion": self.validated_suggestion_},
        })

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_html(self) -> str:
        from ..reporting.html import render_lr_finder_html

        return render_lr_finder_html(self)

    def __repr__(self) -> str:
        if not hasattr(self, "suggestion_"):
            return (f"LRFinder(start_lr={self.start_lr!r}, end_lr={self.end_lr!r}, steps={self.steps!r}, "
                    f"optimizer={self.optimizer!r}, seed={self.seed!r})")
        lo, hi = self.range_
        return f"<LRFinder: suggested learning rate {self.suggestion_:.3g}, range {lo:.3g} to {hi:.3g}>"

    def _repr_html_(self) -> str | None:
        """A notebook cell's view: the suggestion, the notes and the sweep's curve (None before fit)."""
        if not hasattr(self, "suggestion_"):
            return None
        from ..reporting.html import notebook_html

        return notebook_html(self)


@accepts_several_inputs_outputs  # several inputs/outputs trained as one flat model
def find_lr(model, X, y, *, start_lr: float = 1e-6, end_lr: float = 10.0, steps: int = 100,
            optimizer: str | None = None, loss: str | None = None, batch_size: int = 32, seed: int = 0,
            engine: str = "auto", validation_data=None, validation_split: float | None = None) -> LRFinder:
    """Run the learning-rate range test; see :class:`LRFinder` for how the suggestion is chosen.

    ``validation_data=(X_val, y_val)`` / ``validation_split`` (as in ``model.fit``): the rows the
    readings are checked on (``validation_losses_``); without them a seeded 20% hold-out split, or
    K-fold cross-validation under 100 rows (``validation_`` says which)."""
    return LRFinder(start_lr=start_lr, end_lr=end_lr, steps=steps, optimizer=optimizer, loss=loss,
                    batch_size=batch_size, seed=seed, engine=engine,
                    validation_split=validation_split).fit(model, X, y, validation_data=validation_data)
