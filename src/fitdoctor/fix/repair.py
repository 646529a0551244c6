"""``repair``: confirm each suspected cause by a controlled experiment, apply the fixes that help.

Steps
-----
1. diagnose: :func:`fitdoctor.diagnose` (no probe) names suspected causes; the data itself adds
   candidates (targets or inputs far from unit scale, an output activation that cannot reach the
   targets, a classification loss, a linear model the nonlinear reference beats);
2. rows holding NaN/inf are dropped and reported;
3. ablation on the vectorised engine: the baseline, each suspected fix alone, all fixes together,
   all fixes at a small log grid of learning rates, then each fix left out at the chosen
   learning rate. A fix is kept only when leaving it out makes the training MSE (original units)
   measurably worse (by more than ``KEEP_TOLERANCE``);
4. the chosen recipe is trained for the user's epochs (longer with early stopping and
   ``ReduceLROnPlateau`` when the curve is still falling) and verified by predicting with the
   returned model;
5. verdict: a linear model reaches the optimum within 1% of least squares; a nonlinear one within
   10% of the best of least squares, the nonlinear reference and the known noise floor.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from ..findings import to_jsonable
from ..model.inspect import (ACTIVATION_RANGE, CLASSIFICATION_LOSSES, describe_model, read_training_config)
from ..reference import Reference, compute_reference
from ..report import Report
from . import interventions as iv
from .interventions import Intervention, Recipe
from .training import Trial, predict_mse, run_trials, train_plain

#: a fix is kept when leaving it out raises the training MSE by more than this fraction
KEEP_TOLERANCE = 0.01
#: a linear model has reached the optimum within this fraction of least squares
LINEAR_TOLERANCE = 0.01
#: a nonlinear model has reached the optimum within this fraction of the best reference
NONLINEAR_TOLERANCE = 0.10
#: learning rates tried for the combined recipe (standardised data makes these comparable)
LR_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
#: capacity added when the nonlinear reference shows that a linear model underfits
CAPACITY = (64,)
#: the nonlinear reference must beat least squares by this factor to suspect underfitting
UNDERFIT_FACTOR = 0.5
#: interventions whose candidates repair builds itself (others come from findings)
_REGRESSION_LOSSES = {"mse", "mae", "huber", "log_cosh", "msle", "mape"}


@dataclass
class AppliedIntervention:
    """An intervention kept by the repair, with its measured effect (training MSE, original units)."""

    intervention: Intervention
    loss_with: float | None
    loss_without: float | None
    evidence: str = ""  # which runs were compared

    @property
    def name(self) -> str:
        return self.intervention.name

    @property
    def description(self) -> str:
        return self.intervention.describe()

    @property
    def effect(self) -> float | None:
        """``loss_without / loss_with`` (how many times worse the run is without this fix)."""
        if self.loss_with is None or self.loss_without is None:
            return None
        if not np.isfinite(self.loss_without):
            return float("inf")
        return float(self.loss_without) / max(float(self.loss_with), 1e-300)

    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({"name": self.name, "description": self.description,
                            "params": self.intervention.to_dict()["params"], "loss_with": self.loss_with,
                            "loss_without": self.loss_without, "effect": self.effect, "evidence": self.evidence})


class Repair:
    """The result of :func:`repair`: a repaired, portable model and the evidence for each fix.

    Attributes
    ----------
    model : plain Keras model, raw inputs -> original target units, standard layers only.
    before_loss : training MSE (original units) of the user's model trained as configured,
        measured by predicting with that trained model (NaN when the data holds NaN).
    after_loss : training MSE (original units) measured by predicting with ``model``.
    reference : :class:`fitdoctor.reference.Reference` on the finite rows.
    optimum : the loss the verdict compares with; reached_optimum : the verdict.
    applied : list of :class:`AppliedIntervention` (name, description, loss with / without).
    report : :class:`fitdoctor.report.Report` whose findings carry ``confirmed`` from the ablation.
    history_before, history_after : per-epoch training MSE (original units).
    ablation_ : one dict per training run of the ablation (also ``ablation``).
    dropped_rows : rows removed because they held NaN/inf (0-based).
    recipe : the :class:`Recipe` of the returned model; message : one-line verdict.
    """

    def __init__(self, **kw: Any) -> None:
        self.model = kw["model"]
        self.before_loss: float = kw["before_loss"]
        self.after_loss: float = kw["after_loss"]
        self.reference: Reference = kw["reference"]
        self.optimum: float = kw["optimum"]
        self.optimum_kind: str = kw.get("optimum_kind", "least squares")
        self.reached_optimum: bool = kw["reached_optimum"]
        self.applied: list[AppliedIntervention] = kw.get("applied", [])
        self.report: Report = kw["report"]
        self.history_before: list[float] = kw.get("history_before", [])
        self.history_after: list[float] = kw.get("history_after", [])
        self.ablation_: list[dict[str, Any]] = kw.get("ablation", [])
        self.dropped_rows: list[int] = kw.get("dropped_rows", [])
        self.recipe: Recipe = kw["recipe"]
        self.user_recipe: Recipe = kw["user_recipe"]
        self.message: str = kw.get("message", "")
        self.reasons: list[str] = kw.get("reasons", [])
        self.validation_loss: dict[str, float] | None = kw.get("validation_loss")
        self.n_candidates: int = kw.get("n_candidates", 0)
        self.seconds: float = kw.get("seconds", 0.0)
        self.feature_names: list[str] = kw.get("feature_names", [])
        self.target_name: str = kw.get("target_name", "y")
        self.data_path: str | None = kw.get("data_path")
        self.seed: int = kw.get("seed", 0)
        self._X = kw.get("X")
        self._y = kw.get("y")
        self._arch_model = kw.get("arch_model")  # the architecture training started from (for fix.py)

    # -- views --------------------------------------------------------------------------------
    @property
    def ablation(self) -> list[dict[str, Any]]:
        return self.ablation_

    @property
    def nothing_to_fix(self) -> bool:
        return not self.applied and self.reached_optimum

    @property
    def ratio(self) -> float:
        """``after_loss / optimum``."""
        return float(self.after_loss) / max(self.optimum, 1e-300) if np.isfinite(self.after_loss) else float("inf")

    @property
    def applied_names(self) -> list[str]:
        return [a.name for a in self.applied]

    def ablation_frame(self):
        import pandas as pd

        return pd.DataFrame(self.ablation_)

    def __repr__(self) -> str:
        return (f"Repair(before_loss={self.before_loss:.6g}, after_loss={self.after_loss:.6g}, optimum={self.optimum:.6g}, "
                f"applied={self.applied_names}, reached_optimum={self.reached_optimum})")

    # -- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return to_jsonable({
            "message": self.message,
            "before_loss": self.before_loss,
            "after_loss": self.after_loss,
            "optimum": self.optimum,
            "optimum_kind": self.optimum_kind,
            "ratio": self.ratio,
            "reached_optimum": self.reached_optimum,
            "reasons": self.reasons,
            "applied": [a.to_dict() for a in self.applied],
            "dropped_rows": self.dropped_rows,
            "recipe": self.recipe.to_dict(),
            "user_recipe": self.user_recipe.to_dict(),
            "candidates_tried": self.n_candidates,
            "seconds": self.seconds,
            "validation_loss": self.validation_loss,
            "history_before": self.history_before,
            "history_after": self.history_after,
            "ablation": self.ablation_,
            "report": self.report.to_dict(),
        })

    def to_json(self, *, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def to_html(self) -> str:
        from ..reporting.html import render_repair_html

        return render_repair_html(self)

    def fix_script(self, data_file: str | None = None) -> str:
        """The text of ``fix.py``: the repaired training in plain Keras (no fitdoctor import)."""
        from .script import render_fix_script

        return render_fix_script(self, data_file=data_file)

    def save(self, directory: str, *, data_file: str | None = None) -> dict[str, str]:
        """Write ``model.keras``, ``report.json`` (+ ``report.html``), ``data.npz`` and ``fix.py``.

        ``fix.py`` reads ``data_file`` when given (a CSV/Parquet/.npz path), else ``data.npz``
        beside it. Returns the written paths by kind.
        """
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create {directory} ({exc.strerror}): choose another --output") from None
        paths = {"model": os.path.join(directory, "model.keras"), "report": os.path.join(directory, "report.json"),
                 "data": os.path.join(directory, "data.npz"), "script": os.path.join(directory, "fix.py")}
        self.model.save(paths["model"])
        with open(paths["report"], "w", encoding="utf-8") as fh:
            fh.write(self.to_json())
        if self._X is not None:
            np.savez(paths["data"], X=np.asarray(self._X, np.float64), y=np.asarray(self._y, np.float64))
        else:
            paths.pop("data")
        from .script import _dense_stack

        if self._arch_model is not None and _dense_stack(self._arch_model) is None:
            paths["initial_model"] = os.path.join(directory, "initial_model.keras")
            self._arch_model.save(paths["initial_model"])
        with open(paths["script"], "w", encoding="utf-8") as fh:
            fh.write(self.fix_script(data_file=data_file))
        try:
            html = self.to_html()
        except (ImportError, AttributeError):  # the HTML reporter is optional
            html = None
        if html:
            paths["html"] = os.path.join(directory, "report.html")
            with open(paths["html"], "w", encoding="utf-8") as fh:
                fh.write(html)
        return paths


# ------------------------------------------------------------------------------------------------


def _as_arrays(X, y) -> tuple[np.ndarray, np.ndarray]:
    try:
        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"X and y must be numeric arrays ({exc})") from None
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or len(X) != len(y) or len(X) < 2:
        raise InputError(f"X must be 2-D with as many rows as y, at least 2 (Received X.shape={X.shape}, y.shape={y.shape})")
    if y.size != len(y):
        yy = y.reshape(len(y), -1)
        if yy.shape[1] != 1:
            raise InputError(f"repair handles one target column; y has {yy.shape[1]} (Received y.shape={y.shape})")
    return X, y.reshape(-1)


def _diagnose(model, X, y, *, optimizer, learning_rate, loss, epochs, batch_size, seed):
    """Findings, notes and reference of :func:`fitdoctor.diagnose` (no probe); no findings and a note when unavailable."""
    try:
        from ..diagnosis import diagnose
    except ImportError:
        return [], ["diagnose is not available: candidates come from the data alone"], None
    kw = dict(optimizer=optimizer, loss=loss, epochs=epochs, batch_size=batch_size, probe=False)
    if learning_rate is not None:
        kw["learning_rate"] = learning_rate
    try:
        report = diagnose(model, X, y, **kw)
    except TypeError:
        kw.pop("learning_rate", None)
        report = diagnose(model, X, y, **kw)
    except InputError:
        raise
    except Exception as exc:  # a diagnose bug must not stop the repair; say so
        return [], [f"diagnose failed ({type(exc).__name__}: {str(exc)[:120]}): candidates come from the data alone"], None
    return list(report.findings), list(getattr(report, "notes", [])), getattr(report, "reference", None)


def _off_scale(mean: np.ndarray, std: np.ndarray) -> bool:
    """Far from zero mean and unit scale: |mean| > 1 or std outside [0.2, 5]."""
    std = std[std > 0]
    return bool(np.any(np.abs(mean) > 1.0) or np.any(std > 5.0) or np.any(std < 0.2))


def _candidates(findings, Xc, yc, info, cfg, reference) -> tuple[dict[str, Intervention], dict[str, str]]:
    """Suspected causes as interventions (one per name), and why each is suspected."""
    cands: dict[str, Intervention] = {}
    why: dict[str, str] = {}

    def add(i: Intervention, reason: str) -> None:
        if i.name not in cands:
            cands[i.name] = i
            why[i.name] = reason

    x_mean, x_std = Xc.mean(axis=0), Xc.std(axis=0)
    y_mean, y_std = float(yc.mean()), float(yc.std())
    if _off_scale(x_mean, x_std):
        add(iv.ScaleInputs(), f"inputs are off unit scale (column means up to {np.abs(x_mean).max():.3g}, std up to {x_std.max():.3g})")
    if _off_scale(np.array([y_mean]), np.array([y_std])):
        add(iv.ScaleTargets(), f"targets are off unit scale (mean {y_mean:.4g}, std {y_std:.4g})")
    act = info.output_activation
    if act in ACTIVATION_RANGE:
        lo, hi = ACTIVATION_RANGE[act]
        if yc.min() < lo or yc.max() > hi:
            add(iv.ReplaceOutputActivation("linear"),
                f"the {act} output reaches only [{lo:g}, {hi:g}] but targets span [{yc.min():.4g}, {yc.max():.4g}]")
    if cfg.loss in CLASSIFICATION_LOSSES or cfg.loss not in _REGRESSION_LOSSES:
        add(iv.ReplaceLoss("mse"), f"the loss {cfg.loss!r} is not a regression loss")
    if (info.is_linear and reference.nonlinear_mse is not None
            and reference.nonlinear_mse < UNDERFIT_FACTOR * reference.linear_mse):
        add(iv.AddCapacity(CAPACITY), f"the nonlinear reference ({reference.nonlinear_mse:.4g}) beats least squares "
                                      f"({reference.linear_mse:.4g}): a linear model underfits")
    # the findings' own interventions
    for f in findings:
        name = f.fix.intervention if f.fix else None
        if not name or name in cands:
            continue
        if name == "set_optimizer":
            if cfg.optimizer != "adam":
                add(iv.SetOptimizer("adam"), f"{f.name}: {f.message}")
        elif name == "replace_output_activation":
            add(iv.ReplaceOutputActivation("linear"), f"{f.name}: {f.message}")
        elif name == "replace_loss":
            add(iv.ReplaceLoss("mse"), f"{f.name}: {f.message}")
        elif name == "add_capacity":
            if info.is_linear:
                add(iv.AddCapacity(CAPACITY), f"{f.name}: {f.message}")
        elif name == "huber_loss":
            add(iv.HuberLoss(1.0), f"{f.name}: {f.message}")
        elif name == "clip_gradients":
            add(iv.ClipGradients(1.0), f"{f.name}: {f.message}")
        elif name in ("scale_inputs", "scale_targets", "sane_initializer"):
            add(iv.get_intervention(name), f"{f.name}: {f.message}")
        # set_learning_rate and more_epochs are decided by the learning-rate grid and the final run;
        # drop_nonfinite_rows and reshape_targets are always applied (training needs them)
    return cands, why


def _lr_grid(user_lr: float) -> list[float]:
    return sorted(set(LR_GRID) | {float(user_lr)})


def _finite(v: float) -> float:
    return float(v) if np.isfinite(v) else float("inf")


#: the learning rate is judged on the lowest MSE of the last TAIL_FRACTION of its epochs
TAIL_FRACTION = 0.2


def _tail_mse(trial: Trial) -> float:
    """The lowest MSE over the last fifth of a run's epochs (its final MSE for short curves).

    A high learning rate often oscillates around the optimum: its final epoch lands anywhere in
    the oscillation (measured on seed 000's capacity example: Adam at 0.3 ended at 0.089 or 0.143
    depending on float rounding, with 0.039 a few epochs earlier). The final model is trained with
    ReduceLROnPlateau, which damps exactly that oscillation, so what a rate can reach is the low
    end of its tail, not its last value. A run that diverged has a non-finite tail and scores inf.
    """
    curve = np.asarray(trial.mse, dtype=float)
    if len(curve) < 5:
        return _finite(trial.final_mse)
    tail = curve[-max(1, int(len(curve) * TAIL_FRACTION)):]
    if not np.isfinite(tail).all():
        return float("inf")
    return float(min(tail.min(), _finite(trial.final_mse)))


def _worse(without: Trial, with_: Trial) -> bool:
    """True when ``without`` is measurably worse than ``with_``."""
    return _finite(without.final_mse) > _finite(with_.final_mse) * (1 + KEEP_TOLERANCE)


def _still_falling(curve: list[float]) -> bool:
    """The last 10% of epochs still lowered the MSE by more than 1%."""
    if len(curve) < 10 or not np.isfinite(curve[-1]):
        return False
    k = max(1, len(curve) // 10)
    return curve[-1] < 0.99 * min(curve[:-k])


def _measure_before_nonfinite(model, X, y, recipe: Recipe, seed: int) -> tuple[float, list[float]]:
    """The user's configuration trained on all rows (NaN included): one epoch shows what happens."""
    import keras

    from . import surgery
    from .training import make_loss, make_optimizer

    keras.utils.set_random_seed(seed)
    m = surgery.clone(model, X.shape[1])
    m.compile(optimizer=make_optimizer(recipe), loss=make_loss(recipe))
    h = m.fit(X.astype(np.float32), y.astype(np.float32), epochs=1, batch_size=recipe.batch_size, verbose=0)
    return predict_mse(m, X, y), [float(v) for v in h.history["loss"]]


def repair(model, X, y, *, optimizer=None, loss=None, epochs=None, batch_size=None, validation_data=None,
           seed: int = 0, learning_rate: float | None = None, noise_floor: float | None = None,
           progress: Callable[[str, int, int], None] | None = None, feature_names=None, target_name: str = "y",
           data_path: str | None = None) -> Repair:
    """Repair a Keras regression model whose training does not converge.

    The user's ``model`` (compiled or not) is never modified. ``optimizer``, ``learning_rate``,
    ``loss``, ``epochs``, ``batch_size`` override what the compiled model says (defaults: Adam at
    its Keras default rate, MSE, 200 epochs, batch 32). ``noise_floor`` (the known noise variance,
    when there is one) joins the references for a nonlinear model. ``progress(stage, done, total)``
    is called as training runs finish. Returns a :class:`Repair`.
    """
    t_start = time.perf_counter()
    X, y = _as_arrays(X, y)
    step = [0]
    total_steps = [1]

    def tick(stage: str, n: int = 1) -> None:
        step[0] += n
        if progress is not None:
            progress(stage, step[0], total_steps[0])

    cfg = read_training_config(model, optimizer=optimizer, learning_rate=learning_rate, loss=loss,
                               epochs=epochs, batch_size=batch_size)
    n_epochs = int(cfg.epochs or 200)
    info = describe_model(model)
    ok = np.isfinite(X).all(axis=1) & np.isfinite(y)
    dropped = np.flatnonzero(~ok).tolist()
    Xc, yc = X[ok], y[ok]
    if len(yc) < 2:
        raise InputError(f"only {len(yc)} row(s) are free of NaN/inf: repair needs at least 2")
    findings, notes, reference = _diagnose(model, X, y, optimizer=optimizer, learning_rate=learning_rate, loss=loss,
                                           epochs=epochs, batch_size=batch_size, seed=seed)
    if reference is None or reference.n_rows != len(yc):
        reference = compute_reference(Xc, yc, seed=seed)
    cands, why = _candidates(findings, Xc, yc, info, cfg, reference)
    names = list(cands)
    user_recipe = Recipe.from_config(cfg, epochs=n_epochs)
    base = user_recipe.replace(drop_nonfinite=True) if dropped else user_recipe
    total_steps[0] = 2 + 2 * len(names) + len(LR_GRID) + 2
    cache: dict = {}

    def with_all(recipe: Recipe, keep: list[str]) -> Recipe:
        return iv.chain(*[cands[n] for n in keep]).apply(recipe)

    # -- stage 1: baseline, each fix alone, all fixes, all fixes x learning rates -----------------
    trials: list[Trial] = [Trial("baseline (your configuration)", base, ())]
    for n in names:
        trials.append(Trial(f"+{n}", cands[n].apply(base), (n,)))
    all_recipe = with_all(base, names)
    all_trial = Trial("all fixes", all_recipe, tuple(names))
    trials.append(all_trial)
    lr_trials = {}
    for lr in _lr_grid(base.learning_rate):
        if lr == base.learning_rate:
            lr_trials[lr] = all_trial
            continue
        t = Trial(f"all fixes, lr={lr:g}", all_recipe.replace(learning_rate=lr), tuple(names) + ("set_learning_rate",))
        lr_trials[lr] = t
        trials.append(t)
    run_trials(model, Xc, yc, trials, seed=seed, cache=cache, done=lambda k: tick("ablation", k))
    baseline = trials[0]
    all_user_lr = lr_trials[base.learning_rate]
    lowest = min(_tail_mse(t) for t in lr_trials.values())
    # among the rates within 0.1% of the lowest MSE, the one closest to the user's (the least change)
    near = [lr for lr, t in lr_trials.items() if _tail_mse(t) <= lowest * 1.001]
    best_lr = min(near, key=lambda lr: abs(np.log(lr / base.learning_rate)))
    if not _tail_mse(all_user_lr) > _tail_mse(lr_trials[best_lr]) * (1 + KEEP_TOLERANCE):
        best_lr = base.learning_rate  # the user's rate is as good: keep it
    lr_changed = best_lr != base.learning_rate
    all_best = lr_trials[best_lr]

    # -- stage 2: leave each fix out at the chosen learning rate -----------------------------------
    loo: dict[str, Trial] = {}
    stage2: list[Trial] = []
    for n in names:
        rest = [m for m in names if m != n]
        t = Trial(f"all fixes without {n}" + (f", lr={best_lr:g}" if lr_changed else ""),
                  with_all(base, rest).replace(learning_rate=best_lr), tuple(rest) + (("set_learning_rate",) if lr_changed else ()))
        loo[n] = t
        stage2.append(t)
    if stage2:
        run_trials(model, Xc, yc, stage2, seed=seed, cache=cache, done=lambda k: tick("confirm", k))
    kept = [n for n in names if _worse(loo[n], all_best) or (loo[n].diverged and not all_best.diverged)]
    chosen = all_best
    if set(kept) != set(names):
        removed = [n for n in names if n not in kept]
        if len(removed) == 1:
            candidate = loo[removed[0]]
        else:
            candidate = Trial("kept fixes" + (f", lr={best_lr:g}" if lr_changed else ""),
                              with_all(base, kept).replace(learning_rate=best_lr),
                              tuple(kept) + (("set_learning_rate",) if lr_changed else ()))
            run_trials(model, Xc, yc, [candidate], seed=seed, cache=cache, done=lambda k: tick("confirm", k))
            stage2.append(candidate)
        if _worse(candidate, all_best):  # the fixes help together only: keep them all
            kept = list(names)
        else:
            chosen = candidate
    all_trials = trials + stage2
    lr_chosen_without = None
    if lr_changed:  # the chosen fixes at the user's learning rate: the run that shows the rate's effect
        at_user_lr = chosen.recipe.replace(learning_rate=base.learning_rate)
        lr_chosen_without = next((t for t in all_trials if t.recipe == at_user_lr), None)
        if lr_chosen_without is None:
            lr_chosen_without = Trial("kept fixes at your learning rate", at_user_lr, tuple(kept))
            run_trials(model, Xc, yc, [lr_chosen_without], seed=seed, cache=cache, done=lambda k: tick("confirm", k))
            all_trials.append(lr_chosen_without)

    # -- verdict helpers --------------------------------------------------------------------------
    is_linear = info.is_linear and "add_capacity" not in kept
    if is_linear:
        optimum, kind, tol = reference.optimum(linear=True), "least squares", LINEAR_TOLERANCE
    else:
        opts = {"least squares": reference.linear_mse}
        if reference.nonlinear_mse is not None:
            opts["nonlinear reference"] = reference.nonlinear_mse
        if noise_floor is not None:
            opts["noise floor"] = float(noise_floor)
        kind = min(opts, key=opts.get)
        optimum, tol = opts[kind], NONLINEAR_TOLERANCE
    target = optimum * (1 + tol)

    # -- before: the user's configuration as trained ----------------------------------------------
    if dropped:
        before_loss, history_before = _measure_before_nonfinite(model, X, y, user_recipe, seed)
    else:
        before_model = baseline.build_model()
        before_loss = predict_mse(before_model, Xc, yc)
        history_before = list(baseline.mse)

    # -- stage 3: the final model -----------------------------------------------------------------
    nothing_helped = chosen is baseline or (not kept and not lr_changed)
    if nothing_helped:
        chosen = baseline
    final_recipe = chosen.recipe
    final_model = chosen.build_model()
    after_loss = predict_mse(final_model, Xc, yc)
    history_after = list(chosen.mse)
    applied: list[AppliedIntervention] = []
    reasons: list[str] = []
    more_epochs_effect = None
    healthy = not dropped and before_loss <= target and nothing_helped
    if not healthy and (after_loss > target or _still_falling(chosen.mse)):
        longer = iv.MoreEpochs(epochs=max(3 * n_epochs, 300))
        long_recipe = longer.apply(final_recipe)
        run = train_plain(model, Xc, yc, long_recipe, seed=seed, cache=cache)
        tick("final")
        long_loss = predict_mse(run.model, Xc, yc)
        all_trials.append(Trial(f"chosen recipe, up to {long_recipe.epochs} epochs with early stopping + ReduceLROnPlateau",
                                long_recipe, chosen.names + ("more_epochs",), final_mse=long_loss,
                                best_mse=float(np.nanmin(run.mse)) if run.mse else long_loss,
                                diverged=not np.isfinite(long_loss), mse=run.mse, engine="model.fit"))
        if _finite(long_loss) < _finite(after_loss) * (1 - KEEP_TOLERANCE):
            more_epochs_effect = (long_loss, after_loss)
            final_model, final_recipe, history_after = run.model, long_recipe, run.mse
            after_loss = long_loss
            longer = iv.MoreEpochs(epochs=long_recipe.epochs)
            kept_more = longer
        else:
            kept_more = None
    else:
        kept_more = None

    # -- what was kept, with its measured effect --------------------------------------------------
    if dropped:
        applied.append(AppliedIntervention(iv.DropNonfiniteRows(), baseline.final_mse, before_loss,
                                           f"rows {dropped} hold NaN/inf; with them the loss is {before_loss:.4g} "
                                           "after one epoch (measured)"))
    if not nothing_helped:
        for n in kept:
            applied.append(AppliedIntervention(cands[n], chosen.final_mse, loo[n].final_mse,
                                               f"'{chosen.label}' vs '{loo[n].label}'"))
        if lr_changed and lr_chosen_without is not None:
            applied.append(AppliedIntervention(iv.SetLearningRate(best_lr), chosen.final_mse, lr_chosen_without.final_mse,
                                               f"'{chosen.label}' vs '{lr_chosen_without.label}'"))
        elif lr_changed:
            applied.append(AppliedIntervention(iv.SetLearningRate(best_lr), chosen.final_mse, None,
                                               "learning rate chosen with the other fixes present"))
    if kept_more is not None and more_epochs_effect is not None:
        applied.append(AppliedIntervention(kept_more, more_epochs_effect[0], more_epochs_effect[1],
                                           "plain model.fit with callbacks vs the engine's fixed-epoch run"))

    reached = bool(np.isfinite(after_loss) and after_loss <= target)
    if healthy:
        message = (f"nothing to fix: your configuration reaches {after_loss:.4g}, within {tol:.0%} of the "
                   f"{kind} optimum {optimum:.4g}")
    elif nothing_helped and not dropped:
        message = (f"nothing helped: no suspected fix lowered the training MSE measurably "
                   f"({before_loss:.4g}, {after_loss / optimum:.3g}x the {kind} optimum {optimum:.4g})")
    elif reached:
        message = (f"repaired: training MSE {before_loss:.4g} -> {after_loss:.4g}, within {tol:.0%} of the "
                   f"{kind} optimum {optimum:.4g}")
    else:
        message = (f"partly repaired: training MSE {before_loss:.4g} -> {after_loss:.4g}, still "
                   f"{after_loss / optimum:.3g}x the {kind} optimum {optimum:.4g}")
    if not reached:
        tried = ", ".join(names) or "no structural fix was suspected"
        reasons.append(f"tried {tried} and learning rates {', '.join(f'{lr:g}' for lr in _lr_grid(base.learning_rate))}")
        if is_linear and reference.nonlinear_mse is not None and reference.nonlinear_mse < reference.linear_mse:
            reasons.append("the model is linear; the nonlinear reference is lower, more capacity may help")
        if final_recipe.epochs <= n_epochs and _still_falling(history_after):
            reasons.append("the loss was still falling at the last epoch")

    # -- report: findings confirmed (or not) by the ablation --------------------------------------
    tested = set(names) | {"set_learning_rate"} | ({"drop_nonfinite_rows"} if dropped else set())
    kept_names = {a.name for a in applied}
    for f in findings:
        name = f.fix.intervention if f.fix else None
        if name in tested or (name == "more_epochs" and kept_more is not None):
            f.confirmed = name in kept_names
    notes = list(notes)
    for n in names:
        notes.append(f"suspected {n}: {why[n]}")
    if dropped:
        notes.append(f"dropped {len(dropped)} row(s) holding NaN/inf: rows {dropped}")
    report = Report(findings=findings, reference=reference, config=cfg.to_dict(),
                    model={"is_linear": is_linear, "output_activation": info.output_activation,
                           "n_params": info.n_params}, notes=notes, source="fix",
                    probe={"loss": history_before, "final_loss": before_loss,
                           "gap": reference.gap(before_loss, linear=is_linear)})

    validation = None
    if validation_data is not None:
        Xv, yv = _as_arrays(*validation_data[:2])
        okv = np.isfinite(Xv).all(axis=1) & np.isfinite(yv)
        validation = {"after": predict_mse(final_model, Xv[okv], yv[okv])}
        if not dropped:
            validation["before"] = predict_mse(baseline.build_model(), Xv[okv], yv[okv])

    return Repair(
        model=final_model, before_loss=float(before_loss), after_loss=float(after_loss), reference=reference,
        optimum=float(optimum), optimum_kind=kind, reached_optimum=reached, applied=applied, report=report,
        history_before=[float(v) for v in history_before], history_after=[float(v) for v in history_after],
        ablation=[t.row() for t in all_trials], dropped_rows=dropped, recipe=final_recipe, user_recipe=user_recipe,
        message=message, reasons=reasons, validation_loss=validation, n_candidates=len({t.recipe for t in all_trials}),
        seconds=time.perf_counter() - t_start, feature_names=list(feature_names or [f"x{i}" for i in range(X.shape[1])]),
        target_name=target_name, data_path=data_path, seed=seed, X=X, y=y,
        arch_model=cache.get(final_recipe.architecture),
    )
