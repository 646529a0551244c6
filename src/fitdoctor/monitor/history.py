"""diagnose_history(): the training-time rules on a finished run."""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError
from ..findings import Finding
from ..report import Report
from ..signals.trace import Trace


def run_training_rules(trace: Trace, *, select=None, ignore=None) -> list[Finding]:
    """Every selected rule's ``detect_training(trace)``, in registry order."""
    from ..rules import select_rules

    trace.cache.clear()
    findings: list[Finding] = []
    for rule in select_rules(select, ignore):
        findings.extend(rule.detect_training(trace))
    return findings


def diagnose_history(history_or_losses, *, y=None, X=None, reference=None, optimizer=None, learning_rate=None,
                     epochs=None, steps_per_epoch=None, is_linear=None, y_var=None, loss=None, monitor="loss",
                     select=None, ignore=None) -> Report:
    """Run the curve rules on a finished training run.

    Parameters
    ----------
    history_or_losses : keras.callbacks.History, dict of lists, list of floats, or a DataFrame
        (a ``CSVLogger`` file read with pandas).
    y, X : the training data; with both, the reference losses (mean predictor, least squares,
        nonlinear reference) are computed, with ``y`` alone var(y) and the mean.
    reference : a precomputed :class:`~fitdoctor.reference.Reference`.
    optimizer, learning_rate, epochs, steps_per_epoch, is_linear, loss : the run's configuration
        when the history does not carry it (a History remembers its model and params).
    y_var : var(y) when neither ``y`` nor a reference is given (scale-free thresholds need it).
    """
    if reference is None and X is not None and y is not None:
        from ..reference import compute_reference

        Xa = np.asarray(X, dtype=np.float64)
        if Xa.ndim == 1:
            Xa = Xa.reshape(-1, 1)
        reference = compute_reference(Xa, y)
    if X is not None and y is None:
        raise InputError("diagnose_history received X without y: pass y too (or neither)")
    loss_name = None
    if loss is not None:
        from ..model.inspect import canonical_loss

        loss_name = canonical_loss(loss)
    trace = Trace.from_history(history_or_losses, reference=reference, y=y, optimizer=optimizer,
                               learning_rate=learning_rate, epochs=epochs, steps_per_epoch=steps_per_epoch,
                               is_linear=is_linear, y_var=y_var, loss_name=loss_name, monitor=monitor)
    model = getattr(history_or_losses, "model", None)
    if trace.output_activation is None and model is not None:  # a History remembers its model
        try:
            from ..model.inspect import describe_model

            trace.output_activation = describe_model(model).output_activation
        except Exception:  # a model inspect cannot read: its output is not judged
            pass
    findings = run_training_rules(trace, select=select, ignore=ignore)
    return report_from_trace(trace, findings, source="history")


def report_from_trace(trace: Trace, findings: list[Finding], *, source: str) -> Report:
    fin = trace.finite_loss
    config = {"optimizer": trace.optimizer, "learning_rate": trace.learning_rate, "loss": trace.loss_name,
              "epochs": trace.epochs_planned, "steps_per_epoch": trace.steps_per_epoch}
    data: dict[str, Any] = {"loss": [float(v) for v in trace.loss], "epochs_run": trace.epochs_run,
                            "final_loss": float(fin[-1]) if len(fin) else None}
    if trace.val_loss:
        data["val_loss"] = [float(v) for v in trace.val_loss]
    if trace.variance is not None:
        data["target_var"] = trace.variance
    if trace.y_mean is not None:
        data["target_mean"] = trace.y_mean
    if len(fin) and trace.gap(float(fin[-1])) is not None:
        data["gap"] = trace.gap(float(fin[-1]))
    notes = []
    if trace.reference is None and trace.variance is None:
        notes.append("no data or target variance given: only scale-free curve shapes were judged "
                     "(pass y=/--data or --target-var to compare the loss with what is achievable)")
    if not trace.mse_comparable:
        notes.append(f"the loss is {trace.loss_name}, not MSE: it was not compared with var(y) or the optimum")
    model = {"is_linear": trace.is_linear} if trace.is_linear is not None else None
    return Report(findings=findings, reference=trace.reference, config=config, model=model, notes=notes,
                  data=data, source=source)


#: findings that say training is slow (not that the loss is bounded): a curve ending within AT_OPTIMUM x the
#: optimum confirms none of them
SLOWDOWNS = frozenset({"too-few-epochs", "lr-too-low", "adam-large-target", "batch-size", "ill-conditioned",
                       "feature-scale", "target-scale"})
AT_OPTIMUM = 1.1


def confirm_by_curve(ctx, findings: list[Finding], curve, epochs: int) -> None:
    """Run the training-time rules on the probe's baseline curve: a static finding the curve shows
    too is confirmed; a curve finding not predicted statically is added."""
    cfg = ctx.config
    trace = Trace(loss=np.asarray(curve, dtype=float).tolist(), steps_per_epoch=ctx.steps_per_epoch,
                  epochs_planned=max(cfg.epochs or epochs, epochs), optimizer=cfg.optimizer,
                  learning_rate=cfg.learning_rate, loss_name="mse", reference=ctx.reference,
                  y_var=float(np.var(ctx.yc)), y_mean=float(np.mean(ctx.yc)), is_linear=ctx.model_info.is_linear,
                  inputs_checked=True,  # the probe trains on the finite rows only
                  output_activation=ctx.model_info.output_activation, truncated=epochs < (cfg.epochs or epochs))
    seen = {f.name: f for f in findings}
    fin = trace.finite_loss
    at_optimum = bool(len(fin)) and (trace.gap(float(fin[-1])) or float("inf")) <= AT_OPTIMUM
    for live in run_training_rules(trace):
        if at_optimum and live.name in SLOWDOWNS:
            continue  # the curve already ends at the optimum: nothing was slowed down
        if live.name == "predicts-constant" and "prediction_spread" not in live.evidence:
            continue  # judged from a curve alone: the checks before training know the model better
        live.evidence["source"] = "probe curve"
        if live.name in seen:
            if seen[live.name].confirmed is not False:  # a fix that failed its own probe stays unconfirmed
                seen[live.name].confirmed = True
            seen[live.name].evidence.setdefault("probe_curve", live.evidence)
        else:
            live.confirmed = True
            findings.append(live)
            seen[live.name] = live


def diagnose_log_file(args) -> Report:
    """The ``check-log`` verb: read a CSVLogger file (and optionally the data) and diagnose it."""
    import os

    import pandas as pd

    path = args.log
    if not os.path.exists(path):
        raise InputError(f"log file {path} does not exist: pass the file keras.callbacks.CSVLogger wrote")
    try:
        frame = pd.read_csv(path, sep=None, engine="python")
    except Exception as exc:  # pandas raises many types for unreadable files
        raise InputError(f"cannot read {path} as CSV ({type(exc).__name__}): pass a keras.callbacks.CSVLogger file") from None
    if "loss" not in frame.columns:
        raise InputError(f"{path} has no 'loss' column (columns: {', '.join(map(str, frame.columns))}): "
                         "pass a keras.callbacks.CSVLogger file")
    raw = frame["loss"]
    numbers = pd.to_numeric(raw, errors="coerce")
    text = (numbers.isna() & raw.notna() & ~raw.astype(str).str.strip().str.lower().isin(["nan", ""])).to_numpy()
    if text.any():
        rows = np.flatnonzero(text).tolist()
        raise InputError(f"the 'loss' column of {path} holds text ({str(raw[text].iloc[0])!r}) at row(s) "
                         f"{', '.join(map(str, rows[:10]))}{' ...' if len(rows) > 10 else ''}: pass the file "
                         "keras.callbacks.CSVLogger wrote")
    frame["loss"] = numbers
    X = y = None
    notes: list[str] = []
    dropped: list[int] = []
    if getattr(args, "data", None):
        from ..data.loading import load_dataset

        data, dropped = load_dataset(args.data, args.target).dropna()
        X, y = data.X, data.y
        notes = list(data.notes)  # dropped rows by number, columns whose type changed
        if len(y) < 2:
            raise InputError(f"{args.data} has fewer than two complete rows: fill in the empty cells")
    elif getattr(args, "target", None):
        raise InputError("--target needs --data: pass the data file the model was trained on")
    reference = None
    if X is not None:
        from ..reference import compute_reference

        reference = compute_reference(X, y)
    trace = Trace.from_history(frame, reference=reference, y=y, optimizer=args.optimizer, learning_rate=args.lr,
                               epochs=args.epochs, is_linear=args.linear, y_var=args.target_var)
    if X is not None:  # the data was read: say whether it held NaN/inf before anything blames the weights
        trace.inputs_checked = True
        trace.nonfinite_inputs = bool(dropped)
        if dropped:
            trace.nonfinite_inputs_evidence = {
                "reason": f"{len(dropped)} row(s) of {args.data} hold empty or non-finite cells",
                "nonfinite_rows": dropped[:50], "n_nonfinite_rows": len(dropped)}
    report = report_from_trace(trace, run_training_rules(trace), source="history")
    report.notes[:0] = notes
    return report
