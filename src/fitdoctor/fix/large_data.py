"""Repair on large data at bounded cost: experiments on a seeded subsample, the final fit on all rows.

The rule that sizes the subsample lives in :mod:`fitdoctor.experiments.budget`. Here: the whole
repair (candidates, held-out choice) runs on the ``m`` experiment rows; the choice is confirmed on
the second, nested size (the user's configuration and the chosen recipe trained on its own
held-out split, ranked on both sizes); then the chosen recipe trains once on all rows, for the
optimizer steps chosen on the subsample (about one plain fit), and that model is returned.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from ..experiments.budget import Budget, choices_agree, final_epochs, final_rule_text
from ..heldout import holdout_plan
from .training import Trial, predict_mse, row_errors, run_trials, train_plain

#: two held-out MSEs within this fraction of each other are a tie when the two sizes are ranked
CONFIRM_TOLERANCE = 0.02
#: rows predicted at a time when the final model is measured on all rows (bounds the activations held)
PREDICT_CHUNK = 65_536


def _mse(model, X, y) -> float:
    """:func:`predict_mse` over ``X, y`` in chunks of ``PREDICT_CHUNK`` rows (the same mean)."""
    if len(y) <= PREDICT_CHUNK:
        return predict_mse(model, X, y)
    errs = [row_errors(model, X[i:i + PREDICT_CHUNK], y[i:i + PREDICT_CHUNK]) for i in range(0, len(y), PREDICT_CHUNK)]
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.mean(np.concatenate(errs)))


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

    ``repair_fn`` is :func:`fitdoctor.fix.repair.repair` (called with ``_budget=False`` and
    ``_final_fit=False``: no retraining on the experiment rows, whose model would be thrown away);
    ``dropped``: rows of the user's data removed for missing or infinite values; ``X_all, y_all``:
    the user's rows as given (what ``save()`` writes). The chosen recipe then trains once on all
    rows for the optimizer steps chosen on the subsample (:func:`fitdoctor.experiments.budget.final_epochs`:
    about one plain fit). Returns its :class:`Repair` with the final model, ``recipe`` (the epochs
    of the final fit), ``after_loss`` and ``history_after`` on all rows, and ``budget_["subsample"]``
    (the rule, both sizes, the held-out MSEs on each, whether they agree, the final fit's epochs, and
    the seconds of each part). The held-out verdict (``validation_loss``, ``before_val_loss``,
    ``after_val_loss``) is the subsample's: rows the judged runs never trained on.
    """
    t0 = time.perf_counter()
    rows = budget.rows
    sub = repair_fn(model, X[rows], y[rows], seed=seed, executor=executor, progress=progress, _budget=False,
                    _final_fit=False, **kwargs)
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
    t_confirm = time.perf_counter()
    # rows the user held out stay out of the final fit, and check it: validation_data, or validation_split's
    # last rows (Keras's meaning, as the subsample's repair took them)
    Xf, yf, held = X, y, None
    if kwargs.get("validation_data") is not None:
        held = (np.asarray(kwargs["validation_data"][0]), np.asarray(kwargs["validation_data"][1]))
    elif kwargs.get("validation_split") is not None:
        cut = len(y) - round(len(y) * float(kwargs["validation_split"]))
        Xf, yf, held = X[:cut], y[:cut], (X[cut:], y[cut:])
    # the chosen optimizer steps on all rows; early stopping's best epoch becomes a fixed number of epochs
    # (no rows are left to stop on), which the engine trains like any other recipe
    chosen = sub.recipe
    stopped_early = bool(chosen.early_stopping) and "early_stopping" in sub.applied_names
    n_final = final_epochs(chosen.epochs, sub.user_recipe.epochs, budget.m, len(yf), early_stopped=stopped_early)
    final_recipe = chosen.replace(epochs=n_final, early_stopping=False) if stopped_early else chosen.replace(epochs=n_final)
    final_model, curve = _train(model, Xf, yf, final_recipe, "chosen recipe, all rows", seed=seed, executor=executor)
    t_final = time.perf_counter()
    notes = sub.report.notes
    if final_model is None:  # the chosen recipe diverged on all rows: keep the subsample's model, say so
        notes.append("the chosen recipe diverged when trained on all rows: the model trained on the subsample is returned")
    else:
        sub.model = final_model
        sub.recipe = final_recipe
        sub.after_loss = _mse(final_model, Xf, yf)
        sub.history_after = [float(v) for v in curve]
        sub.retrained_on_all_rows = True
    notes.append(budget.describe())
    notes.append(f"{final_rule_text()}: chosen {chosen.epochs} epochs on {budget.m:,} rows -> {n_final} epochs on "
                 f"{len(yf):,} rows (your configuration: {sub.user_recipe.epochs} epochs)")
    final_val = None
    if held is not None and final_model is not None:
        ok = np.isfinite(held[0].reshape(len(held[0]), -1)).all(axis=1) & np.isfinite(held[1].reshape(len(held[1]), -1)).all(axis=1)
        final_val = _mse(final_model, held[0][ok], held[1][ok]) if ok.any() else None
    if final_val is not None:
        notes.append(f"the final model's held-out MSE on your {int(ok.sum()):,} validation rows: {final_val:.4g} (the chosen "
                     f"recipe trained on the experiment rows: {sub.after_val_loss:.4g}; your configuration: "
                     f"{sub.before_val_loss:.4g})")
    elif final_model is not None:
        notes.append(f"the final model's MSE on all {len(yf):,} rows it trained on: {sub.after_loss:.4g} (the chosen recipe's "
                     f"held-out MSE on the experiment rows: {sub.after_val_loss:.4g})")
    if second:
        verdict = "agree" if agree else "DISAGREE (the choice made on the larger size is kept)"
        notes.append(f"held-out MSE on {budget.m:,} rows: yours {first['your configuration']:.4g}, chosen "
                     f"{first['chosen recipe']:.4g}; on {len(budget.confirm_rows):,} rows: yours "
                     f"{second['your configuration']:.4g}, chosen {second['chosen recipe']:.4g}: the two sizes {verdict}")
    notes.append(f"before_loss is the training MSE of your configuration on the training rows of the {budget.m:,} "
                 "experiment rows (held-out verdict: on the rest of them); after_loss is the final model's MSE on all rows")
    if dropped:
        sub.dropped_rows = list(dropped)
        notes.append(f"dropped {len(dropped)} row(s) holding missing or infinite values before subsampling: rows {dropped[:20]}"
                     + (" ..." if len(dropped) > 20 else ""))
    spent = dict(getattr(sub, "budget_", None) or {})
    stages = dict(spent.get("stage_seconds") or {})
    stages["confirm (second size)"] = t_confirm - t_sub
    stages["final (all rows)"] = t_final - t_confirm
    spent["stage_seconds"] = stages
    # the work in plain fits on all rows (fit_equivalents of the subsample's repair count fits of m rows):
    # the subsample's runs counted at m rows each (an upper bound: its held-out runs train on part of them)
    e_user = max(int(sub.user_recipe.epochs), 1)
    confirm_epochs = (int(sub.user_recipe.epochs) + int(chosen.epochs)) if second else 0
    row_epochs = (int(spent.get("epochs_trained") or 0) * budget.m + confirm_epochs * len(budget.confirm_rows)
                  + int(n_final) * len(yf))
    spent["epochs_trained"] = int(spent.get("epochs_trained") or 0) + confirm_epochs + int(n_final)
    spent["runs"] = int(spent.get("runs") or 0) + (2 if second else 0) + 1
    spent["fit_equivalents"] = row_epochs / (e_user * max(len(yf), 1))
    spent["subsample"] = {**budget.to_dict(), "first": first, "second": second, "agree": bool(agree),
                          "chosen_epochs": int(chosen.epochs), "final_epochs": int(n_final),
                          "final_rule": final_rule_text(), "final_rows": len(yf), "final_val_mse": final_val,
                          "subsample_seconds": t_sub - t0,
                          "confirm_seconds": t_confirm - t_sub, "final_seconds": t_final - t_confirm,
                          "seconds_after_subsample": time.perf_counter() - t_sub}
    if X_all is not None:  # save() writes the user's rows, not the subsample
        sub._X, sub._y = X_all, y_all
    sub.seconds = time.perf_counter() - t0
    spent["wall_seconds"] = sub.seconds
    sub.budget_ = spent
    return sub
