"""How many rows the experiments train on: a stated rule that bounds their cost on large data.

Experiments (the probe of ``diagnose``, the grid of ``compare``, the candidates of ``repair``) train
many configurations; on 10^6 rows each of them costs as much as the user's own fit. They run on a
seeded subsample of

    m = min(n, max(MIN_ROWS, ROWS_PER_PARAMETER * parameters, STEPS_PER_EPOCH * batch_size))

rows: enough rows per trainable parameter that the subsample is not "few rows per parameter"
(repair's capacity candidates start below 10 training rows per parameter; 20 keeps a 20% held-out
split above that), and enough rows that one epoch is still ``STEPS_PER_EPOCH`` optimizer steps.
The choice made on those ``m`` rows is confirmed on a second, nested size (``m // SECOND_SIZE_DIVISOR``
rows, drawn from the same subsample): the user's configuration and the chosen recipe are ranked
on both sizes, and :func:`choices_agree` says whether the two rankings agree. The final model then
trains once on all ``n`` rows, for the optimizer steps chosen on the subsample (:func:`final_epochs`),
so that the final fit costs about one plain fit. Pure functions: nothing here trains.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: training rows per trainable parameter kept in the subsample (2x repair's "few rows" threshold of 10)
ROWS_PER_PARAMETER = 20
#: optimizer steps one epoch on the subsample still takes
STEPS_PER_EPOCH = 1000
#: never subsample below this many rows
MIN_ROWS = 2000
#: the second size the choice is confirmed on: m // SECOND_SIZE_DIVISOR rows, nested in the m rows
SECOND_SIZE_DIVISOR = 4



def rule_text() -> str:
    """The rule in words, with the constants in force."""
    return (f"m = min(n, max({MIN_ROWS:,}, {ROWS_PER_PARAMETER} x parameters, {STEPS_PER_EPOCH:,} steps x batch size)) "
            f"seeded rows; confirmed on m/{SECOND_SIZE_DIVISOR} nested rows")


def experiment_rows(n_rows: int, n_params: int | None, batch_size: int | None) -> int:
    """``m = min(n, max(MIN_ROWS, ROWS_PER_PARAMETER * n_params, STEPS_PER_EPOCH * batch_size))``.

    ``n_params`` None (unknown) counts as 0, ``batch_size`` None as Keras's default 32.
    """
    n = int(n_rows)
    if n < 0:
        raise ValueError(f"n_rows must be >= 0 (Received n_rows={n_rows})")
    p = max(int(n_params or 0), 0)
    b = max(int(batch_size or 32), 1)
    return min(n, max(MIN_ROWS, ROWS_PER_PARAMETER * p, STEPS_PER_EPOCH * b))


@dataclass(frozen=True)
class Budget:
    """The rows experiments train on.

    ``rows``: sorted indices of the ``m`` experiment rows (all rows when not subsampled);
    ``confirm_rows``: sorted indices of the second, nested size (a subset of ``rows``; empty when
    not subsampled); ``rule``: the rule in words.
    """

    n_rows: int
    rows: np.ndarray = field(repr=False)
    confirm_rows: np.ndarray = field(repr=False)
    seed: int = 0
    rule: str = ""

    @property
    def m(self) -> int:
        return int(len(self.rows))

    @property
    def subsampled(self) -> bool:
        return self.m < self.n_rows

    def describe(self) -> str:
        if not self.subsampled:
            return f"experiments on all {self.n_rows:,} rows ({self.rule})"
        return (f"experiments on a seeded {self.m:,} of {self.n_rows:,} rows, the choice confirmed on "
                f"{len(self.confirm_rows):,} of them; the final model trained on all rows ({self.rule})")

    def to_dict(self) -> dict[str, Any]:
        return {"n_rows": self.n_rows, "m": self.m, "confirm_m": int(len(self.confirm_rows)),
                "subsampled": self.subsampled, "seed": self.seed, "rule": self.rule}


def plan_budget(n_rows: int, n_params: int | None, batch_size: int | None, *, seed: int = 0) -> Budget:
    """The experiment rows for ``n_rows`` rows (see :func:`experiment_rows`), drawn with ``seed``.

    The same arguments always give the same rows; the confirmation rows are a seeded subset of them.
    """
    n = int(n_rows)
    m = experiment_rows(n, n_params, batch_size)
    if m >= n:
        return Budget(n, np.arange(n), np.arange(0), seed, rule_text())
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(n, size=m, replace=False))
    m2 = max(m // SECOND_SIZE_DIVISOR, min(MIN_ROWS // SECOND_SIZE_DIVISOR, m))
    confirm = np.sort(rng.choice(rows, size=m2, replace=False))
    return Budget(n, rows, confirm, seed, rule_text())


def final_epochs(chosen_epochs: int, user_epochs: int, m: int, n: int, *, early_stopped: bool = False) -> int:
    """Epochs of the final fit on all ``n`` rows for a recipe chosen on ``m`` experiment rows.

    The choice made on the subsample is a number of optimizer steps (``chosen_epochs`` epochs of ``m``
    rows), not a number of passes over the data: on ``n`` rows the same steps take
    ``s = ceil(chosen_epochs * m / n)`` epochs. The final fit trains

    * ``max(min(user_epochs, chosen_epochs), s)`` epochs: never fewer than the user's own epochs (what
      the user's configuration would train on all rows), and more only when the chosen steps exceed
      the user's steps on all rows (``chosen_epochs * m > user_epochs * n``). So "more epochs" chosen on
      ``m`` rows adds nothing on ``n >= m * chosen_epochs / user_epochs`` rows, which already give that
      many steps;
    * ``max(1, s)`` epochs when the choice was early stopping at epoch ``chosen_epochs``: the best
      epoch's steps (there are no rows left to stop on once all rows train).
    """
    e_c, e_u, m, n = int(chosen_epochs), int(user_epochs), int(m), int(n)
    if min(e_c, e_u) < 1 or m < 1 or n < 1:
        raise ValueError(f"epochs and rows must be >= 1 (Received chosen_epochs={chosen_epochs}, "
                         f"user_epochs={user_epochs}, m={m}, n={n})")
    steps = -(-e_c * m // n)  # ceil(e_c * m / n) without floating point
    if early_stopped:
        return max(1, steps)
    return max(min(e_u, e_c), steps)


def final_rule_text() -> str:
    """The final-fit rule of :func:`final_epochs` in words."""
    return ("final fit on all n rows: the chosen optimizer steps, ceil(chosen epochs x m / n) epochs, but never fewer "
            "than your epochs (early stopping: its best epoch's steps, at least 1 epoch)")


def choices_agree(first: dict[str, float], second: dict[str, float], *, tolerance: float = 0.0) -> bool:
    """Whether two sizes rank the same configurations in the same order.

    ``first`` and ``second`` map a configuration's name to its held-out MSE on each size (lower
    is better); only names present in both count. Two MSEs within ``tolerance`` (relative) of
    each other on a size are a tie, which agrees with either order. A non-finite MSE ranks last.
    """
    names = [k for k in first if k in second]

    def key(v: float) -> float:
        return float(v) if np.isfinite(v) else float("inf")

    for i, a in enumerate(names):
        for b in names[i + 1:]:
            s1 = _order(key(first[a]), key(first[b]), tolerance)
            s2 = _order(key(second[a]), key(second[b]), tolerance)
            if s1 and s2 and s1 != s2:
                return False
    return True


def _order(a: float, b: float, tolerance: float) -> int:
    """-1 when a < b beyond the tolerance, 1 when a > b, 0 for a tie."""
    if a == b or (np.isfinite(a) and np.isfinite(b) and abs(a - b) <= tolerance * max(abs(a), abs(b))):
        return 0
    return -1 if a < b else 1
