"""diagnose(): checks before training, optionally confirmed by a short controlled probe."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .context import Context
from .errors import InputError
from .findings import Finding, to_jsonable
from .model.inspect import (ModelInfo, check_target_varies, custom_loss_note, describe_model, loss_display_name,
                            read_training_config)
from .model.multi_io import accepts_several_inputs_outputs
from .report import Report
from .rules import select_rules

#: rules judged only on a real model (without one, the assumed Dense(1) would decide them)
#: (underfit-capacity stays: the assumed model is the seeds' linear model, and the first line says so)
ARCHITECTURE_RULES = frozenset({"bad-init", "over-regularization", "output-activation-range", "dying-relu",
                                "vanishing-gradients"})
#: optimizer steps a probe may take (per configuration)
PROBE_STEPS = 1000
#: a fix is confirmed when the probe with it ends at or below this fraction of the baseline's loss
CONFIRM_RATIO = 0.5

#: interventions a probe can express as a change of the run's configuration
_PROBE_SPEC_CHANGES = {
    "scale_inputs": lambda spec, ctx, f: {"scale_x": True},
    "scale_targets": lambda spec, ctx, f: {"scale_y": True},
    "replace_loss": lambda spec, ctx, f: {"loss": "mse", "loss_object": None},
    # delta of one target standard deviation, in the units the run trains in (no target scaling here)
    "huber_loss": lambda spec, ctx, f: {"loss": "huber", "huber_delta": float(ctx.yc.std()) or 1.0,
                                        "loss_object": None},
    "set_learning_rate": lambda spec, ctx, f: {"learning_rate": _suggested_lr(spec, f)},
    "clip_gradients": lambda spec, ctx, f: {"clipnorm": 1.0},
}


def _suggested_lr(spec, finding: Finding) -> float:
    ev = finding.evidence
    if finding.name == "lr-too-high":
        if isinstance(ev.get("lr_max_stable"), float):
            return ev["lr_max_stable"] / 4
        if isinstance(ev.get("largest_weight_needed"), float):
            return ev["largest_weight_needed"] / 10
    return spec.learning_rate * 10


def _as_arrays(X, y, feature_names, target_name):
    if X is None or y is None:
        raise InputError("diagnose needs data: pass X and y (arrays or a DataFrame and a Series)")
    names = feature_names
    if hasattr(X, "columns"):
        names = names or [str(c) for c in X.columns]
        X = X.to_numpy(dtype=np.float64, na_value=np.nan)
    if hasattr(y, "name") and target_name is None and getattr(y, "name", None) is not None:
        target_name = str(y.name)
    y_shape = tuple(np.shape(y))
    try:
        Xa = np.asarray(X, dtype=np.float64)
        ya = np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InputError(f"X and y must be numeric ({exc}): encode text columns first") from None
    if Xa.ndim == 1:
        Xa = Xa.reshape(-1, 1)
    if Xa.ndim < 2:
        raise InputError(f"X must have one row per sample (rows x features, or rows x steps x features). "
                         f"Received X with shape {Xa.shape}")
    if len(ya) != len(Xa):
        raise InputError(f"X and y must have the same number of rows. Received X with {len(Xa)} rows and y with {len(ya)}")
    if len(Xa) < 2:
        raise InputError(f"regression needs at least two rows. Received {len(Xa)}")
    return Xa, ya, names, target_name or "y", y_shape


def build_context(model=None, X=None, y=None, *, optimizer=None, learning_rate=None, loss=None, epochs=None,
                  batch_size=None, validation_data=None, seed=0, feature_names=None, target_name=None,
                  nonlinear_reference=True) -> Context:
    Xa, ya, names, tname, y_shape = _as_arrays(X, y, feature_names, target_name)
    config = read_training_config(model, optimizer=optimizer, learning_rate=learning_rate, loss=loss,
                                  epochs=epochs, batch_size=batch_size)
    if model is None and Xa.ndim > 2:
        raise InputError(f"sequence or image inputs need their model: pass it (Received X with shape {Xa.shape})")
    info = describe_model(model) if model is not None else ModelInfo.seed_linear(  # one unit per target
        Xa.shape[1], 1 if ya.ndim < 2 else int(np.prod(ya.shape[1:])))
    if model is not None and info.n_inputs and info.n_inputs != Xa.shape[-1]:
        raise InputError(f"the model takes {info.n_inputs} input features but the data has {Xa.shape[-1]}: "
                         "pass the same columns the model was built for")
    input_shape = tuple(Xa.shape[1:]) if Xa.ndim > 2 else ()
    if input_shape and names and len(names) == input_shape[-1] != int(np.prod(input_shape)):
        # one name per channel: a name per cell of the flattened rows, e.g. "x2[t5]" (channel x2 at step 5)
        names = [f"{c}[t{','.join(map(str, at))}]" for at in np.ndindex(*input_shape[:-1]) for c in names]
    n_columns = int(np.prod(Xa.shape[1:]))
    if (input_shape and not names) or (names and len(names) != n_columns):  # e.g. several inputs side by side
        names = [f"x{i}" for i in range(n_columns)]
    ctx = Context(X=Xa.reshape(len(Xa), -1), y=ya, config=config, model_info=info, feature_names=list(names or []),
                  target_name=tname, model=model, seed=seed, nonlinear_reference=nonlinear_reference,
                  validation_data=validation_data, y_shape=y_shape, input_shape=input_shape)
    if ctx.n < 2:
        raise InputError(f"fewer than two rows are complete (finite in every column): {ctx.n} of {len(ya)}")
    check_target_varies(ctx.yc)
    if config.custom_loss:
        ctx.notes.append(f"{custom_loss_note(loss_display_name(config.loss_object or config.loss))} "
                         "(rules that need the loss's kind, such as wrong-loss and outliers -> Huber, skip it)")
    if ctx.input_shape:
        ctx.notes.append(f"inputs of shape {ctx.input_shape} per row: the data rules and references judge the "
                         f"flattened rows ({ctx.X.shape[1]} values each)")
    if ctx.n_targets > 1:
        ctx.notes.append(f"{ctx.n_targets} target columns: the experiments train and measure all of them (MSE is the "
                         "mean over the columns, and so are the references); the data rules judge the first column")
    if ctx.inputs_preprocessed:
        ctx.notes.append("the model scales its inputs itself (a leading Normalization/Rescaling layer): "
                         "the data rules judge the inputs as its first trainable layer sees them")
    return ctx


@accepts_several_inputs_outputs  # several inputs/outputs trained as one flat model
def diagnose(model=None, X=None, y=None, *, optimizer=None, loss=None, epochs=None, batch_size=None,
             validation_data=None, probe=True, seed=0, learning_rate=None, select=None, ignore=None,
             feature_names=None, target_name=None, nonlinear_reference=True, progress=None,
             executor=None, validation_split=None) -> Report:
    """Say before a long training why the regression will not converge, with numbers.

    Parameters
    ----------
    model : keras.Model or None
        The user's model, compiled or not; never modified. Without it the seeds' linear model
        (one Dense unit) is assumed.
    X, y : array-like
        Training data (NaN rows are reported, not dropped silently).
    optimizer, loss, epochs, batch_size, learning_rate :
        The training configuration; read from the compiled model when not given.
    probe : bool
        Run short controlled experiments (the configuration as given, and with each suggested
        fix) and mark the findings they confirm.
    select, ignore : list of rule codes, prefixes or names.
    executor : where the probe's runs train: ``"auto"`` (this process on JAX, a JAX worker
        process on TensorFlow), ``"inprocess"``, ``"worker"`` or ``"ray"``.
    validation_data, validation_split : held-out rows, as Keras takes them (``validation_split``:
        the last fraction of the rows, left out of everything else; ``validation_data`` wins when
        both are given). The references (least squares, the nonlinear reference, the mean
        predictor) are then also fitted on the training rows and measured on the held-out rows
        (``report.data["heldout_references"]``).
    """
    if validation_split is not None and validation_data is None:
        X, y, validation_data = _split_last(X, y, validation_split)
    ctx = build_context(model, X, y, optimizer=optimizer, learning_rate=learning_rate, loss=loss, epochs=epochs,
                        batch_size=batch_size, validation_data=validation_data, seed=seed,
                        feature_names=feature_names, target_name=target_name,
                        nonlinear_reference=nonlinear_reference)
    findings: list[Finding] = []
    skipped = []
    rules = select_rules(select, ignore)
    if ctx.model_info.assumed:  # no model given: what depends on its architecture is not guessed
        arch = [r for r in rules if r.name in ARCHITECTURE_RULES]
        rules = [r for r in rules if r.name not in ARCHITECTURE_RULES]
        ctx.notes.insert(0, f"no model given: assumed a linear model, Dense({ctx.model_info.output_units}) on {ctx.X.shape[1]} input(s); "
                            "rules that depend on the architecture were skipped"
                            + (f" ({', '.join(r.name for r in arch)})" if arch else "")
                            + "; pass the model for them")
    for rule in rules:
        try:
            findings.extend(rule.detect(ctx))
        except Exception as exc:  # a rule written for Dense tables meeting another kind of model: say so
            if not (ctx.input_shape or ctx.n_targets > 1 or not getattr(model, "inputs", None)):
                raise
            skipped.append(f"{rule.code} {rule.name} ({type(exc).__name__})")
    notes = list(ctx.notes)
    if skipped:
        notes.append("not applicable to this model or data shape, not judged: " + ", ".join(skipped))
    probe_result = None
    if probe:
        probe_result = run_probe(ctx, findings, seed=seed, progress=progress, executor=executor)
        notes.extend(probe_result.pop("notes", []))
        notes.extend(probe_architecture(ctx, findings, probe_result, seed=seed, executor=executor))
        confirm_by_progress(findings, probe_result)
    data = data_summary(ctx)
    if validation_data is not None:
        data["heldout_references"], note = _heldout(ctx, validation_data, seed)
        notes.append(note)
    return Report(findings=findings, reference=ctx.reference, config=ctx.config.to_dict(),
                  model=model_summary(ctx.model_info), notes=notes, probe=probe_result,
                  data=data, source="check")


def _split_last(X, y, validation_split):
    """Keras's ``validation_split``: the last fraction of the rows, before any shuffling."""
    v = float(validation_split)
    n = len(y)
    n_val = int(round(n * v))
    if not 0.0 < v < 1.0 or n_val < 1 or n - n_val < 2:
        raise InputError(f"validation_split must leave at least 2 training rows and 1 validation row "
                         f"(Received validation_split={validation_split!r} for {n} rows)")
    cut = n - n_val

    def rows(a, sl):
        return a.iloc[sl] if hasattr(a, "iloc") else np.asarray(a)[sl]

    return rows(X, slice(0, cut)), rows(y, slice(0, cut)), (rows(X, slice(cut, None)), rows(y, slice(cut, None)))


def _heldout(ctx: Context, validation_data, seed: int) -> tuple[dict[str, float], str]:
    """References fitted on the training rows and measured on the held-out rows, and a note saying so."""
    from .heldout import HoldOut, heldout_references

    if not isinstance(validation_data, (tuple, list)) or len(validation_data) < 2:
        raise InputError("validation_data must be a tuple (X_val, y_val)")
    Xv = np.asarray(validation_data[0], dtype=np.float64).reshape(len(validation_data[0]), -1)
    yv = np.asarray(validation_data[1], dtype=np.float64).reshape(len(Xv), -1)[:, 0]
    if Xv.shape[1] != ctx.X.shape[1]:
        raise InputError(f"validation_data has {Xv.shape[1]} feature columns, the training data {ctx.X.shape[1]}")
    ok = np.isfinite(Xv).all(axis=1) & np.isfinite(yv)
    Xv, yv = Xv[ok], yv[ok]
    if not len(yv):
        return {}, "validation_data holds no complete row: nothing was measured on it"
    Xp, yp = np.concatenate([ctx.Xc, Xv]), np.concatenate([ctx.yc, yv])
    plan = HoldOut("validation_data", [(np.arange(ctx.n), np.arange(ctx.n, ctx.n + len(yv)))], False,
                   f"validation_data ({len(yv)} rows)")
    refs = heldout_references(Xp, yp, plan, seed)
    shown = ", ".join(f"{k} {v:.4g}" for k, v in refs.items())
    return refs, f"references on {len(yv)} held-out rows (fitted on the training rows): {shown}"


def model_summary(info: ModelInfo) -> dict[str, Any]:
    return {"is_linear": info.is_linear, "output_activation": info.output_activation,
            "output_units": info.output_units, "n_params": info.n_params, "assumed": info.assumed,
            "layers": [f"{l.class_name}({l.units or ''}{', ' + l.activation if l.activation else ''})" for l in info.layers]}


def data_summary(ctx: Context) -> dict[str, Any]:
    y = ctx.yc
    sample = y if len(y) <= 2000 else np.random.default_rng(0).choice(y, 2000, replace=False)
    out = {"n_rows": int(len(ctx.y)), "n_complete_rows": ctx.n, "n_features": int(ctx.X.shape[1]),
           "feature_names": list(ctx.feature_names), "target_name": ctx.target_name,
           "feature_rms": ctx.x_scale.tolist(), "feature_mean": ctx.x_mean.tolist(), "feature_std": ctx.x_std.tolist(),
           "target_sample": sample.tolist(), "target_mean": float(y.mean()), "target_std": float(y.std())}
    return out


# -- the probe ----------------------------------------------------------------------------------
def _probe_epochs(ctx: Context) -> int:
    per_epoch = ctx.steps_per_epoch
    epochs = ctx.config.epochs or 200
    return max(1, min(epochs, math.ceil(PROBE_STEPS / per_epoch)))


def _probe_budget(ctx: Context, n_rows: int, seed: int):
    """The probe's rows on large data (experiments/budget.py's rule, seeded)."""
    from .experiments.budget import plan_budget

    info = getattr(ctx, "model_info", None)
    return plan_budget(n_rows, getattr(info, "n_params", None), ctx.config.batch_size or 32, seed=seed)


def _final(result) -> float:
    v = float(result.final_mse)
    return v if math.isfinite(v) else float("inf")


def run_probe(ctx: Context, findings: list[Finding], *, seed: int = 0, progress=None, executor=None) -> dict[str, Any]:
    """Train the configuration briefly as given and with each suggested fix; mark confirmed findings.

    A finding is confirmed when applying its fix alone ends the probe at <= 50% of the
    baseline's MSE (original units), or the baseline diverged and the fixed run did not.
    """
    try:
        from .experiments.engine import RunSpec, replica_check_needed, train_runs
        from .experiments.replica_check import check_replica
    except ImportError:  # pragma: no cover - the engine is part of the package
        return {"notes": ["probe skipped: the experiment engine is not available"]}
    model = ctx.model if ctx.model is not None else _seed_linear_model(ctx.X.shape[1], seed, ctx.n_targets)
    epochs = _probe_epochs(ctx)
    cfg = ctx.config
    base = RunSpec(optimizer=cfg.optimizer, learning_rate=cfg.learning_rate, loss=cfg.loss,
                   huber_delta=cfg.huber_delta, epochs=epochs, batch_size=cfg.batch_size or 32,
                   clipnorm=cfg.clipnorm, momentum=cfg.momentum, optimizer_config=cfg.optimizer_config,
                   loss_object=cfg.loss_object)
    specs, owners = [base], [None]
    for f in findings:
        name = f.fix.intervention if f.fix else None
        if name in _PROBE_SPEC_CHANGES:
            change = _PROBE_SPEC_CHANGES[name](base, ctx, f)
            specs.append(base.__class__(**{**base.__dict__, **change}))
            owners.append(f)
    X = ctx.Xc_model
    y = ctx.Y[ctx.finite_rows] if ctx.n_targets > 1 else ctx.yc
    notes = []
    # large data: the seeded rows of experiments/budget.py's rule (the rows compare and repair use)
    bud = _probe_budget(ctx, len(y), seed)
    if bud.subsampled:
        X, y = X[bud.rows], y[bud.rows]
        notes.append(f"probe trained on a seeded {bud.m:,} of {ctx.n:,} rows ({bud.rule.split(';')[0]})")
    results = train_runs(model, X, y, specs, seed=seed, callback=progress, executor=executor)
    baseline = results[0]
    replica = None
    if baseline.engine == "vectorized" and replica_check_needed(model):
        check = check_replica(model, X, y, baseline.spec, seed=seed, result=baseline)
        replica = {"agrees": check.agrees, "check": check.check}
        if check.sequential:  # the engine does not reproduce this model: every run with model.fit instead
            results = train_runs(model, X, y, specs, seed=seed, callback=progress, engine="sequential",
                                 executor=executor)
            baseline = results[0]
            notes.append(f"{check.check}: they disagree, so the probe trained with model.fit (sequential engine)")
    b_loss = _final(baseline)
    variants = []
    for f, res in zip(owners[1:], results[1:]):
        loss = _final(res)
        confirmed = (loss <= CONFIRM_RATIO * b_loss) or (not math.isfinite(b_loss) and math.isfinite(loss))
        f.confirmed = bool(confirmed)
        f.evidence["probe"] = {"epochs": epochs, "baseline_mse": b_loss, "with_fix_mse": loss,
                               # None where the ratio is undefined (a run ending at exactly 0, a diverged baseline)
                               "improvement": (b_loss / loss) if loss > 0 and math.isfinite(b_loss) else None}
        variants.append({"finding": f.name, "spec": res.spec.label(), "final_loss": loss,
                         "loss": np.asarray(res.mse, dtype=float).tolist()})
    # bounds that predict the baseline's own curve (SGD divergence) are confirmed by the baseline
    for f in findings:
        if f.name == "lr-too-high" and f.confirmed is None and (baseline.diverged or not math.isfinite(b_loss)):
            f.confirmed = True
    linear = ctx.model_info.is_linear
    from .monitor.history import confirm_by_curve

    confirm_by_curve(ctx, findings, baseline.mse, epochs)
    return {"notes": notes, "epochs": epochs, "steps": epochs * int(np.ceil(len(y) / (cfg.batch_size or 32))), "spec": base.label(),
            "loss": np.asarray(baseline.mse, dtype=float).tolist(), "final_loss": b_loss,
            "gap": ctx.reference.gap(b_loss, linear=linear), "diverged": bool(baseline.diverged),
            "variants": variants, "engine": baseline.engine, "replica": replica}


def _seed_linear_model(n_inputs: int, seed: int, n_targets: int = 1):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_inputs,)), keras.layers.Dense(n_targets)])


#: interventions the probe runs on a modified clone of the model: the experiment that separates
#: causes whose curves look alike (an output range, an initialiser, a regulariser)
#: (label, change, paired): a paired experiment trains both arms with standardised inputs and targets, so
#: that only the change differs (an output range judged apart from the targets' scale)
_PROBE_ARCH_CHANGES = {
    "replace_output_activation": ("linear output activation (both arms with standardised inputs and targets)",
                                  lambda ctx: {"output_activation": "linear"}, True),
    "sane_initializer": ("re-initialised kernels (He for ReLU layers, else Glorot), zero biases",
                         lambda ctx: {"kernel_initializer": _sane_initializer(ctx)}, False),
    "remove_regularization": ("regularisers removed", lambda ctx: {"l2": 0.0, "dropout": 0.0}, False),
    "leaky_activation": ("leaky activation (ReLU layers become leaky_relu, every weight kept)",
                         lambda ctx: {"leaky": True}, False),
}
#: findings probed by an experiment other than their fix's: the one only their cause answers. Dead ReLU
#: units and a bad initialisation both answer a re-initialisation (it also resets the biases); only dead
#: units answer a leaky activation that keeps every weight (a dead unit passes gradient again; kernels
#: 1e-4 of the Glorot scale stay as small)
_PROBE_BY_FINDING = {"dying-relu": "leaky_activation"}


def _probe_change(f: Finding) -> str | None:
    name = _PROBE_BY_FINDING.get(f.name) or (f.fix.intervention if f.fix else None)
    return name if name in _PROBE_ARCH_CHANGES else None


def leaky_model(model):
    """A copy of ``model`` (every variable kept) whose ReLU-activated layers use ``leaky_relu``."""
    from .model.replica import clone_model, copy_state, dummy_inputs, finalize_state

    changed = []

    def swap(layer):
        cfg = layer.get_config()
        if str(cfg.get("activation")) in ("relu", "relu6"):
            cfg["activation"] = "leaky_relu"
            changed.append(layer.name)
        return type(layer).from_config(cfg)

    copy = clone_model(model, clone_function=swap)
    if not changed:
        raise ValueError("the model has no ReLU layers")
    if not copy.built:
        copy(dummy_inputs(model))
    copy_state(model, copy)
    finalize_state(copy)
    return copy


def _sane_initializer(ctx: Context) -> str:
    relu = any((l.activation or "") in ("relu", "relu6", "elu", "selu", "gelu", "silu") for l in ctx.model_info.layers)
    return "he_normal" if relu else "glorot_uniform"


def probe_architecture(ctx: Context, findings: list[Finding], probe_result: dict[str, Any], *, seed: int = 0,
                       executor=None) -> list[str]:
    """Confirm findings whose fix changes the model (output activation, initialiser, regulariser).

    Each such fix is trained on a modified clone with the probe's own configuration, epochs and rows;
    the finding is confirmed when it ends at <= ``CONFIRM_RATIO`` of the probe's baseline MSE (or the
    baseline diverged and it did not). The run is the finding's evidence (``evidence["probe"]``).
    Crawls with the same curve are told apart by the experiment only one cause answers: dying-relu by a
    leaky activation with every weight kept (``_PROBE_BY_FINDING``; also ``separating_experiment`` in
    its evidence), bad-init by re-initialised kernels, over-regularization by the regularisers removed
    and lr-too-low by the learning rate x10 (:func:`confirm_by_progress`).
    Returns notes (why a fix could not be probed)."""
    if ctx.model is None or not probe_result or "final_loss" not in probe_result:
        return []
    wanted = [f for f in findings if _probe_change(f)]
    if not wanted:
        return []
    try:
        from .experiments.engine import RunSpec, train_runs
        from .fix import surgery
    except ImportError:  # pragma: no cover - part of the package
        return []
    cfg = ctx.config
    epochs = int(probe_result.get("epochs") or _probe_epochs(ctx))
    spec = RunSpec(optimizer=cfg.optimizer, learning_rate=cfg.learning_rate, loss=cfg.loss,
                   huber_delta=cfg.huber_delta, epochs=epochs, batch_size=cfg.batch_size or 32,
                   clipnorm=cfg.clipnorm, momentum=cfg.momentum, optimizer_config=cfg.optimizer_config,
                   loss_object=cfg.loss_object)
    X = ctx.Xc_model
    y = ctx.Y[ctx.finite_rows] if ctx.n_targets > 1 else ctx.yc
    bud = _probe_budget(ctx, len(y), seed)  # the same rows as the probe's baseline
    if bud.subsampled:
        X, y = X[bud.rows], y[bud.rows]
    n_inputs = tuple(np.shape(X)[1:])
    b_loss = probe_loss = float(probe_result["final_loss"])
    notes, done = [], {}
    for f in wanted:
        name = _probe_change(f)
        label, change, paired = _PROBE_ARCH_CHANGES[name]
        if name not in done:
            try:
                kw = change(ctx)
                if "leaky" in kw:
                    m = leaky_model(ctx.model)
                elif "l2" in kw:
                    m = surgery.resized_model(ctx.model, n_inputs, seed=seed, **kw)
                else:
                    m = surgery.modified_model(ctx.model, n_inputs, seed=seed, **kw)
                arm = spec.__class__(**{**spec.__dict__, "scale_x": True, "scale_y": True}) if paired else spec
                res = train_runs(m, X, y, [arm], seed=seed, executor=executor)[0]
                base_loss = _final(train_runs(ctx.model, X, y, [arm], seed=seed, executor=executor)[0]) if paired else probe_loss
                done[name] = (_final(res), base_loss)
            except Exception as exc:  # a model surgery cannot change: say so
                notes.append(f"probe of {name} skipped ({type(exc).__name__}: {str(exc)[:80]})")
                done[name] = None
        if done[name] is None:
            continue
        loss, b_loss = done[name]
        confirmed = (loss <= CONFIRM_RATIO * b_loss) or (not math.isfinite(b_loss) and math.isfinite(loss))
        f.confirmed = bool(confirmed)
        probe = {"epochs": epochs, "experiment": label, "baseline_mse": b_loss, "with_fix_mse": loss,
                 "improvement": (b_loss / loss) if loss > 0 and math.isfinite(b_loss) else None}
        if f.name in _PROBE_BY_FINDING:
            probe["separating_experiment"] = label
        f.evidence = to_jsonable({**f.evidence, "probe": probe})
        probe_result.setdefault("variants", []).append({"finding": f.name, "spec": f"{spec.label()} + {label}",
                                                       "final_loss": loss})
    return notes


#: a learning-rate change "answers" a crawl when it makes at least this many times the baseline's progress
PROGRESS_FACTOR = 5.0


def confirm_by_progress(findings: list[Finding], probe_result: dict[str, Any]) -> None:
    """Confirm lr-too-low when the learning rate x10 run makes >= ``PROGRESS_FACTOR`` x the baseline's
    progress (loss drop from the baseline's first epoch), even where its final loss is not yet half the
    baseline's: a crawl at 1e-5 answers a 10x rate with about 10x the progress, a crawl from dead units or
    a bad initialisation does not. Minimum evidence: both curves with at least 3 finite epochs."""
    base = np.asarray(probe_result.get("loss") or [], dtype=float)
    variants = {v.get("finding"): np.asarray(v.get("loss") or [], dtype=float) for v in probe_result.get("variants", [])}
    if len(base) < 3 or not np.isfinite(base).all():
        return
    for f in findings:
        if f.name != "lr-too-low" or f.confirmed or f.name not in variants:
            continue
        curve = variants[f.name]
        if len(curve) < 3 or not np.isfinite(curve).all():
            continue
        base_drop = max(base[0] - base[-1], 0.0)
        fix_drop = base[0] - curve[-1]
        ratio = fix_drop / base_drop if base_drop > 0 else (float("inf") if fix_drop > 0 else 0.0)
        probe = dict(f.evidence.get("probe") or {})
        probe["progress_ratio"] = ratio
        probe["separating_experiment"] = "learning rate x10: the loss drop from the baseline's first epoch, with vs without"
        f.evidence = to_jsonable({**f.evidence, "probe": probe})
        if ratio >= PROGRESS_FACTOR and curve[-1] < base[-1]:
            f.confirmed = True
