"""Repair on large data at bounded cost: experiments on a seeded subsample, the final fit on all rows.

The rule that sizes the subsample lives in :mod:`fitdoctor.experiments.budget`. Here: the whole
repair (candidates, held-out choice) runs on the ``m`` experiment rows; the choice is confirmed on
the second, nested size (the user's configuration and the chosen recipe trained on its own
held-out split, ranked on both sizes); then the chosen recipe trains once on all rows and that
model is returned.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..experiments.budget import Budget, choices_agree
from ..heldout import holdout_plan
from .training import Trial, predict_mse, row_errors, run_trials, train_plain

#: two held-out MSEs within this fraction of each other are a tie when the two sizes are ranked
CONFIRM_TOLERANCE = 0.02


def _train(model, X, y, recipe, label: str, *, seed: int, executor) -> tuple[Any, list[float]]:
    """``recipe`` trained once on ``X, y``: (portable model, per-epoch training MSE)."""
    if recipe.needs_callbacks:  # early stopping / ReduceLROnPlateau: a plain model.fit
        run = train_plain(model, X, y, recipe, seed=seed, cache={})
        return run.model, list(getattr(run, "mse", []) or [])
    t = Trial(label, recipe, (), role="final")
    run_trials(model, X, y, [t], seed=seed, cache={}, executor=executor)
    if t.result is None or t.diverged:
        return None, list(t.mse)
    return t.build_model(), list(t.mse)


def confirm_choice(model, X, y, user_recipe, chosen_recipe, *, seed: int, executor=None) -> dict[str, float]:
    """Held-out MSE of the user's configuration and of the chosen recipe on ``X, y`` (a seeded split)."""
    plan = holdout_plan(len(y), 0, None, seed)
    out: dict[str, float] = {}
    recipes = {"your configuration": user_recipe, "chosen recipe": chosen_recipe}
    parts: dict[str, list[np.ndarray]] = {k: [] for k in recipes}
    for tr, va in plan.folds:
        plain = {k: r for k, r in recipes.items() if r.needs_callbacks}
        engine = [Trial(k, r, (), role="candidate") for k, r in recipes.items() if k not in plain]
        if engine:
            run_trials(model, X[tr], y[tr], engine, seed=seed, cache={}, executor=executor)
        for t in engine:
            ok = t.result is not None and not t.diverged
            parts[t.label].append(row_errors(t.build_model(), X[va], y[va]) if ok else np.full(len(va), np.inf))
        for k, r in plain.items():
            parts[k].append(row_errors(train_plain(model, X[tr], y[tr], r, seed=seed, cache={}).model, X[va], y[va]))
    for k, p in parts.items():
        e = np.concatenate(p)
        out[k] = float(np.mean(e)) if np.isfinite(e).all() else float("inf")
    return out


def repair_on_subsample(repair_fn: Callable[..., Any], model, X, y, budget: Budget, *, dropped: list[int],
                        X_all=None, y_all=None, seed: int = 0, executor=None, progress=None, **kwargs: Any):
    """Run ``repair_fn`` on ``budget.rows`` of the finite rows ``X, y``, confirm, retrain on all rows.

    ``repair_fn`` is :func:`fitdoctor.fix.repair.repair` (called with ``_budget=False``);
    ``dropped``: rows of the user's data removed for missing or infinite values; ``X_all, y_all``:
    the user's rows as given (what ``save()`` writes). Returns its
    :class:`Repair` with the final model, ``after_loss`` and ``history_after`` on all rows, and
    ``budget_["subsample"]`` (the rule, both sizes, the held-out MSEs on each, whether they agree,
    the seconds spent after the subsample's repair: confirmation and the final fit).
    """
    t0 = time.perf_counter()
    rows = budget.rows
    sub = repair_fn(model, X[rows], y[rows], seed=seed, executor=executor, progress=progress, _budget=False, **kwargs)
    t_sub = time.perf_counter()
    first = {"your configuration": sub.before_val_loss, "chosen recipe": sub.after_val_loss}
    same = sub.recipe == sub.user_recipe
    if same:  # nothing changed: nothing to rank on a second size
        second: dict[str, float] = {}
        agree = True
    else:
        c = budget.confirm_rows
        second = confirm_choice(model, X[c], y[c], sub.user_recipe, sub.recipe, seed=seed, executor=executor)
        agree = choices_agree(first, second, tolerance=CONFIRM_TOLERANCE)
    final_model, curve = _train(model, X, y, sub.recipe, "chosen recipe, all rows", seed=seed, executor=executor)
    notes = sub.report.notes
    if final_model is None:  # the chosen recipe diverged on all rows: keep the subsample's model, say so
        notes.append("the chosen recipe diverged when trained on all rows: the model trained on the subsample is returned")
    else:
        sub.model = final_model
        sub.after_loss = predict_mse(final_model, X, y)
        sub.history_after = [float(v) for v in curve]
        sub.retrained_on_all_rows = True
    notes.append(budget.describe())
    if second:
        verdict = "agree" if agree else "DISAGREE (the choice made on the larger size is kept)"
        notes.append(f"held-out MSE on {budget.m:,} rows: yours {first['your configuration']:.4g}, chosen "
                     f"{first['chosen recipe']:.4g}; on {len(budget.confirm_rows):,} rows: yours "
                     f"{second['your configuration']:.4g}, chosen {second['chosen recipe']:.4g}: the two sizes {verdict}")
    notes.append(f"before_loss is the training MSE of your configuration on the {budget.m:,} experiment rows; "
                 "after_loss is measured on all rows")
    if dropped:
        sub.dropped_rows = list(dropped)
        notes.append(f"dropped {len(dropped)} row(s) holding missing or infinite values before subsampling: rows {dropped[:20]}"
                     + (" ..." if len(dropped) > 20 else ""))
    spent = dict(getattr(sub, "budget_", None) or {})
    spent["subsample"] = {**budget.to_dict(), "first": first, "second": second, "agree": bool(agree),
                          "seconds_after_subsample": time.perf_counter() - t_sub}
    sub.budget_ = spent
    if X_all is not None:  # save() writes the user's rows, not the subsample
        sub._X, sub._y = X_all, y_all
    sub.seconds = time.perf_counter() - t0
    return sub
