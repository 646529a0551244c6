"""diagnose(): checks before training, optionally confirmed by a short controlled probe."""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .context import Context
from .errors import InputError
from .findings import Finding
from .model.inspect import ModelInfo, describe_model, read_training_config
from .report import Report
from .rules import select_rules

#: optimizer steps a probe may take (per configuration)
PROBE_STEPS = 1000
#: a fix is confirmed when the probe with it ends at or below this fraction of the baseline's loss
CONFIRM_RATIO = 0.5

#: interventions a probe can express as a change of the run's configuration
_PROBE_SPEC_CHANGES = {
    "scale_inputs": lambda spec, ctx, f: {"scale_x": True},
    "scale_targets": lambda spec, ctx, f: {"scale_y": True},
    "replace_loss": lambda spec, ctx, f: {"loss": "mse"},
    # delta of one target standard deviation, in the units the run trains in (no target scaling here)
    "huber_loss": lambda spec, ctx, f: {"loss": "huber", "huber_delta": float(ctx.yc.std()) or 1.0},
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
    if Xa.ndim != 2:
        raise InputError(f"X must be 2-D (rows x features). Received X with shape {Xa.shape}")
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
    info = describe_model(model) if model is not None else ModelInfo.seed_linear(Xa.shape[1])
    if model is not None and info.n_inputs and info.n_inputs != Xa.shape[1]:
        raise InputError(f"the model takes {info.n_inputs} input features but the data has {Xa.shape[1]}: "
                         "pass the same columns the model was built for")
    ctx = Context(X=Xa, y=ya, config=config, model_info=info, feature_names=list(names or []), target_name=tname,
                  model=model, seed=seed, nonlinear_reference=nonlinear_reference, validation_data=validation_data,
                  y_shape=y_shape)
    if ctx.n < 2:
        raise InputError(f"fewer than two rows are complete (finite in every column): {ctx.n} of {len(ya)}")
    return ctx


def diagnose(model=None, X=None, y=None, *, optimizer=None, loss=None, epochs=None, batch_size=None,
             validation_data=None, probe=True, seed=0, learning_rate=None, select=None, ignore=None,
             feature_names=None, target_name=None, nonlinear_reference=True, progress=None) -> Report:
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
    """
    ctx = build_context(model, X, y, optimizer=optimizer, learning_rate=learning_rate, loss=loss, epochs=epochs,
                        batch_size=batch_size, validation_data=validation_data, seed=seed,
                        feature_names=feature_names, target_name=target_name,
                        nonlinear_reference=nonlinear_reference)
    findings: list[Finding] = []
    for rule in select_rules(select, ignore):
        findings.extend(rule.detect(ctx))
    notes = list(ctx.notes)
    probe_result = None
    if probe:
        probe_result = run_probe(ctx, findings, seed=seed, progress=progress)
        notes.extend(probe_result.pop("notes", []))
    return Report(findings=findings, reference=ctx.reference, config=ctx.config.to_dict(),
                  model=model_summary(ctx.model_info), notes=notes, probe=probe_result,
                  data=data_summary(ctx), source="check")


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


def _final(result) -> float:
    v = float(result.final_mse)
    return v if math.isfinite(v) else float("inf")


def run_probe(ctx: Context, findings: list[Finding], *, seed: int = 0, progress=None) -> dict[str, Any]:
    """Train the configuration briefly as given and with each suggested fix; mark confirmed findings.

    A finding is confirmed when applying its fix alone ends the probe at <= 50% of the
    baseline's MSE (original units), or the baseline diverged and the fixed run did not.
    """
    try:
        from .experiments.engine import RunSpec, train_runs
    except ImportError:  # pragma: no cover - the engine is part of the package
        return {"notes": ["probe skipped: the experiment engine is not available"]}
    model = ctx.model if ctx.model is not None else _seed_linear_model(ctx.X.shape[1], seed)
    epochs = _probe_epochs(ctx)
    cfg = ctx.config
    base = RunSpec(optimizer=cfg.optimizer, learning_rate=cfg.learning_rate, loss=cfg.loss,
                   epochs=epochs, batch_size=cfg.batch_size or 32, clipnorm=cfg.clipnorm)
    specs, owners = [base], [None]
    for f in findings:
        name = f.fix.intervention if f.fix else None
        if name in _PROBE_SPEC_CHANGES:
            change = _PROBE_SPEC_CHANGES[name](base, ctx, f)
            specs.append(base.__class__(**{**base.__dict__, **change}))
            owners.append(f)
    X, y = ctx.Xc, ctx.yc
    notes = []
    rows_needed = PROBE_STEPS * (cfg.batch_size or 32)
    if len(y) > rows_needed:  # large data: a few hundred steps are less than one epoch
        idx = np.sort(np.random.default_rng(seed).choice(len(y), rows_needed, replace=False))
        X, y = X[idx], y[idx]
        notes.append(f"probe trained on a random {rows_needed:,} of {ctx.n:,} rows (one epoch of {PROBE_STEPS} steps)")
    results = train_runs(model, X, y, specs, seed=seed, callback=progress)
    baseline = results[0]
    b_loss = _final(baseline)
    variants = []
    for f, res in zip(owners[1:], results[1:]):
        loss = _final(res)
        confirmed = (loss <= CONFIRM_RATIO * b_loss) or (not math.isfinite(b_loss) and math.isfinite(loss))
        f.confirmed = bool(confirmed)
        f.evidence["probe"] = {"epochs": epochs, "baseline_mse": b_loss, "with_fix_mse": loss,
                               "improvement": (b_loss / loss) if loss > 0 and math.isfinite(b_loss) else "inf"}
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
            "variants": variants, "engine": baseline.engine}


def _seed_linear_model(n_inputs: int, seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_inputs,)), keras.layers.Dense(1)])
