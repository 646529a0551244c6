"""``fitdoctor fix``: repair the model, prove each cause by experiment, hand back a plain Keras model."""
from __future__ import annotations

import argparse
import os
import sys

from .common import add_config_args, add_data_args, load_model_file, progress, seed_int, write_output

HELP = "repair the model: confirm each cause by experiment, write model.keras, report and fix.py"
DESCRIPTION = """\
Confirm each suspected cause of non-convergence by controlled experiments (the baseline, each fix
alone, all fixes, all fixes at several learning rates, each fix left out), keep only the fixes
that measurably lower the training MSE, and train the repaired model. Writes to --output:
model.keras (raw inputs in, predictions in your target's units, standard Keras layers only),
report.json (+ report.html), data.npz and fix.py (the repaired training in plain Keras).
Losses are training MSE in the original target units, measured by predicting with the model.
"""
EPILOG = """\
examples:
  fitdoctor fix income.csv --target income --optimizer adam --lr 0.01 --epochs 200 --output fixed/
  fitdoctor fix data.csv --target y --model model.keras --output fixed/ --format json

exit codes: 0 the repaired model reaches the optimum, 1 it does not (the summary says how far it got
and why), 2 bad usage or unreadable input
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("fix", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    add_config_args(p)
    p.add_argument("--seed", type=seed_int, default=0, help="seed for the default model and the shuffling (default: 0)")
    p.add_argument("--output", "-o", metavar="DIR", required=True,
                   help="folder for model.keras, report.json, fix.py (refused when it holds them already)")
    p.add_argument("--force", action="store_true",
                   help="replace an earlier result in --output (never an input file such as --model or DATA)")
    p.add_argument("--format", choices=("text", "json", "html"), default="text", help="stdout format (default: text)")
    p.add_argument("--validation-split", type=float, default=None, metavar="FRACTION",
                   help="hold out the last FRACTION of the rows (Keras's validation_split) to judge the candidates; "
                        "default: a seeded 20%% hold-out split, or 5-fold cross-validation under 100 rows")
    p.add_argument("--executor", choices=("auto", "inprocess", "worker", "ray"), default="auto",
                   help="where the training runs execute: auto (this process on JAX, a JAX worker process on other "
                        "Keras backends), inprocess, worker, or ray (Ray tasks: $RAY_ADDRESS or a local instance; "
                        "pip install fitdoctor[ray]) (default: auto)")
    p.set_defaults(run=run)


def _default_model(n_inputs: int, seed: int, n_targets: int = 1):
    """The seeds' model: one Dense unit per target column."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_inputs,)), keras.layers.Dense(n_targets)])


def summary_text(rep, directory: str | None = None) -> str:
    from ..reporting.text import fmt

    lines = [f"fitdoctor fix: {rep.message}"]
    if rep.dropped_rows:
        lines.append(f"dropped rows: {rep.dropped_rows} (NaN or inf)")
    lines.append(f"before: training MSE {rep.before_loss:.6g} (your configuration)")
    lines.append(f"after:  training MSE {rep.after_loss:.6g} (measured by predicting with the repaired model)")
    lines.append(f"optimum: {rep.optimum:.6g} ({rep.optimum_kind}); after / optimum = {rep.ratio:.4f}")
    if getattr(rep, "after_val_loss", None) is not None:
        lines.append(f"held-out MSE: {rep.before_val_loss:.6g} -> {rep.after_val_loss:.6g}; held-out optimum "
                     f"{rep.val_optimum:.6g} ({rep.val_optimum_kind}); judged on {rep.validation}")
    if getattr(rep, "rows_per_parameter", None) is not None:
        lines.append(f"rows per trainable parameter: {rep.rows_per_parameter:.3g}")
    if rep.applied:
        lines.append("kept (held-out MSE without -> with):")
        for a in rep.applied:
            lines.append(f"  {a.name}: {a.description} ({fmt(a.loss_without)} -> {fmt(a.loss_with)})")
    else:
        lines.append("kept: nothing")
    rejected = [r["interventions"][0] for r in rep.ablation if r.get("role") == "alone"]
    rejected = [n for n in rejected if n not in rep.applied_names]
    if rejected:
        lines.append(f"tested and not kept (no measurable gain): {', '.join(rejected)}")
    for reason in rep.reasons:
        lines.append(f"why not further: {reason}")
    lines.append(f"{rep.n_candidates} configurations tried in {rep.seconds:.1f} s")
    from ..reporting.text import budget_line  # the repair's budget, one line

    if budget_line(getattr(rep, "budget_", None)):
        lines.append(budget_line(rep.budget_))
    if directory:
        lines.append(f"wrote {directory}/model.keras, report.json, fix.py (run: python {os.path.join(directory, 'fix.py')})")
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from ..data.loading import load_dataset
    from ..errors import InputError
    from ..fix import repair
    from ..fix.repair import Repair
    from ..safe_io import OutputDir

    # refuse an occupied folder or one holding an input before any work (exit 2); the result is
    # built in a temporary folder under a lock and moved in at the end
    outdir = OutputDir(args.output, Repair.SAVED_FILES, force=args.force, inputs=[args.data, args.model])
    outdir.check()
    data = load_dataset(args.data, args.target, several_targets=True)
    n_targets = 1 if data.y.ndim == 1 else data.y.shape[1]
    model_notes: list[str] = []
    model = (load_model_file(args.model, model_notes) if args.model
             else _default_model(data.X.shape[1], args.seed, n_targets))
    from ..model.multi_io import columns_as_inputs, input_columns_note

    X = columns_as_inputs(model, data.X, args.data)  # several inputs: the columns feed them in order
    model_notes += input_columns_note(model, data.X.ndim)
    n_in = model.inputs[0].shape[-1] if len(getattr(model, "inputs", None) or []) == 1 else None
    if n_in is not None and n_in != data.X.shape[-1]:  # the features of a row (of every step of a sequence)
        raise InputError(f"the model takes {n_in} inputs but {args.data} has {data.X.shape[-1]} feature columns: "
                         "check --target and the model")
    n_out = model.outputs[0].shape[-1] if len(getattr(model, "outputs", None) or []) == 1 else None
    if n_out is not None and n_targets > 1 and n_out != n_targets:
        raise InputError(f"the model predicts {n_out} value(s) per row but --target names {n_targets} columns "
                         f"({', '.join(data.target_names)}): give a model with Dense({n_targets}) at the end")
    bar = progress(total=None, desc="fix")

    def on_progress(stage: str, done: int, total: int) -> None:
        bar.total = max(total, done)
        bar.set_description(f"fix: {stage}")
        bar.n = done
        bar.refresh()

    with outdir:
        try:
            rep = repair(model, X, data.y, optimizer=args.optimizer, learning_rate=args.lr, loss=args.loss,
                         epochs=args.epochs, batch_size=args.batch_size, seed=args.seed, progress=on_progress,
                         feature_names=data.feature_names, target_name=data.target_name, data_path=args.data,
                         executor=getattr(args, "executor", "auto"),
                         validation_split=getattr(args, "validation_split", None))
        finally:
            bar.close()
        numeric_file = not data.changed_columns and not any("one-hot" in n or "left out" in n for n in data.notes)
        rep.save(outdir, data_file=os.path.abspath(args.data) if numeric_file else None)
        outdir.commit()
    if args.format == "json":
        write_output(rep.to_json() + "\n", None)
    elif args.format == "html":
        try:
            write_output(rep.to_html(), None)
        except (ImportError, AttributeError):
            raise InputError("the HTML report is not available in this build: use --format text or json") from None
    else:
        write_output(summary_text(rep, args.output), None)
    for note in data.notes + model_notes:
        sys.stderr.write(f"note: {note}\n")
    return 0 if rep.reached_optimum else 1
