"""Check the replica once before trusting a call's experiments (compare, repair).

The vectorised engine trains a stateless replica of the user's model. For a model with more than
Dense layers (:func:`~fitdoctor.experiments.engine.replica_check_needed`) the replica's first-epoch
loss is compared with a plain ``model.fit`` of a copy over the same batches
(:func:`~fitdoctor.experiments.engine.verify_replica`, tolerance ``REPLICA_TOLERANCE``). When they
disagree, every run of the call trains with ``model.fit`` (the sequential engine), and the result
says why. Cost: one short engine run of the user's configuration on at most ``CHECK_BATCHES``
batches (none when a run of the call can be reused) and one epoch of ``model.fit`` on those rows.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from .engine import REPLICA_TOLERANCE, RunResult, RunSpec, replica_check_needed, train_runs, verify_replica
from .executors import Executor

#: the check trains one epoch of at most this many batches (a seeded subsample of the rows)
CHECK_BATCHES = 8


@dataclass(frozen=True)
class ReplicaCheck:
    """What the check found: ``agrees`` (None: not checked), ``check`` (the sentence saying what was
    compared), ``sequential`` (the call's runs train with ``model.fit`` because they disagree)."""

    agrees: bool | None
    check: str
    sequential: bool = False

    @property
    def note(self) -> str | None:
        """The line a result's notes get when the runs went sequential (None otherwise)."""
        if not self.sequential:
            return None
        return f"{self.check}: they disagree, so every run trained with model.fit (sequential engine)"

    @property
    def executor(self) -> Executor | None:
        """An executor that trains every run with ``model.fit`` (None while the replica is trusted)."""
        return SequentialExecutor(self.note or "") if self.sequential else None

    def to_dict(self) -> dict[str, Any]:
        return {"agrees": self.agrees, "check": self.check, "sequential": self.sequential,
                "tolerance": REPLICA_TOLERANCE}


class SequentialExecutor(Executor):
    """Trains every run in this process with ``model.fit`` (the sequential engine); each run's
    ``note`` says why."""

    name = "sequential"

    def __init__(self, why: str = "") -> None:
        self.why = why

    def run(self, model, X, y, specs, *, seed=0, engine="auto", callback=None, **options) -> list:
        results = train_runs(model, X, y, list(specs), seed=seed, engine="sequential", callback=callback,
                             executor="inprocess", **options)
        if self.why:
            for r in results:
                r.note = self.why
        return results

    def __repr__(self) -> str:
        return "SequentialExecutor()"


def check_rows(n_rows: int, batch_size: int, seed: int = 0) -> np.ndarray:
    """The seeded rows (sorted) the check trains on: every row up to ``CHECK_BATCHES`` batches."""
    m = min(int(n_rows), CHECK_BATCHES * max(int(batch_size), 1))
    if m >= n_rows:
        return np.arange(n_rows)
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=m, replace=False))


def check_replica(model, X, y, spec: RunSpec, *, seed: int = 0, executor=None, engine: str = "auto",
                  result: RunResult | None = None) -> ReplicaCheck:
    """Check the engine's replica of ``model`` against ``model.fit`` of a copy (see the module).

    ``result``: a vectorised run of ``model`` on exactly ``X``, ``y`` with ``seed`` to check (no
    extra engine run); otherwise ``spec`` trains one epoch on :func:`check_rows`. Skipped (agrees
    None) when the model holds Dense layers only, or the sequential engine was asked for.
    """
    if engine == "sequential":
        return ReplicaCheck(None, "replica check not needed (the sequential engine was asked for)")
    if not replica_check_needed(model):
        return ReplicaCheck(None, "replica check not needed (Dense layers only, no non-trainable state)")
    X, y = np.asarray(X), np.asarray(y)
    if result is None:
        rows = check_rows(len(X), spec.batch_size, seed)
        X, y = X[rows], y[rows]
        try:
            result = train_runs(model, X, y, [replace(spec, epochs=1)], seed=seed, executor=executor)[0]
        except Exception as exc:  # the call's own runs will meet (and report) the same failure
            return ReplicaCheck(None, f"replica check not run ({type(exc).__name__})")
    try:
        agrees, said = verify_replica(model, X, y, result, seed=seed)
    except Exception as exc:  # model.fit of a copy failing: the engine's runs are all there is
        return ReplicaCheck(None, f"replica check not run: model.fit of a copy failed ({type(exc).__name__})")
    return ReplicaCheck(agrees, said, sequential=agrees is False)
