"""``fitdoctor compare``: train optimizers x learning rates x scalings together and show the curves."""
from __future__ import annotations

import argparse
import os
import sys
import time

from .common import _positive_int, load_model_file, loss_name, optimizer_name, progress, seed_int, write_result

HELP = "compare optimizers, learning rates, scalings and losses on your data (vectorised)"
DESCRIPTION = """\
Train your model (or the seeds' linear model, one Dense unit) under every combination of the
given optimizers, learning rates, input/target scalings and losses, all from the same starting
weights, and compare their training curves with the least-squares optimum. Losses are MSE on
the training data in the ORIGINAL target units, so runs with standardised targets compare with
runs without. On the JAX backend all runs train together (vectorised).

The runs are ranked by their MSE on held-out rows: the last --validation-split fraction of the
rows (as Keras's validation_split takes them) when given, otherwise a seeded 20% hold-out split,
or 5-fold cross-validation under 100 rows; the first line of the output says which. The held-out
optimum is the best of least squares and the nonlinear reference measured on the same rows.

With no grid option it runs the optimizer study: inputs standardised, Adam and SGD at 1e-2 and
1e-3, with and without standardised targets. Otherwise an option left out is not varied (the
model's compile settings, raw inputs and targets).
"""
EPILOG = """\
examples:
  fitdoctor compare income.csv --target income
  fitdoctor compare income.csv --target income --optimizers adam,sgd,rmsprop --lr 1e-1,1e-2,1e-3 --scale-y both
  fitdoctor compare data.csv --target y --model model.keras --loss mse,huber -o curves.png
  fitdoctor compare data.csv --target y --validation-split 0.2
  fitdoctor compare data.csv --target y -o report.html      (or results.json)

exit codes: 0 done, 2 bad usage or unreadable input
"""

_CHOICES = {"no": [False], "yes": [True], "both": [False, True]}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compare", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="CSV (delimiter sniffed), Parquet or .npz (arrays X and y) file")
    p.add_argument("--target", metavar="COL", help="the column to predict (required for CSV and Parquet)")
    g = p.add_argument_group("grid (the runs are every combination)")
    g.add_argument("--optimizers", metavar="LIST", help="comma-separated Keras optimizer names, e.g. adam,sgd,rmsprop")
    g.add_argument("--lr", metavar="LIST", help="comma-separated learning rates, e.g. 1e-2,1e-3")
    g.add_argument("--scale-x", choices=list(_CHOICES), help="standardise the inputs: no, yes or both")
    g.add_argument("--scale-y", choices=list(_CHOICES), help="standardise the targets: no, yes or both")
    g.add_argument("--loss", metavar="LIST", help="comma-separated Keras loss names, e.g. mse,huber")
    t = p.add_argument_group("training")
    t.add_argument("--model", metavar="FILE.keras", help="your Keras model (default: the seeds' Sequential([Dense(1)]))")
    t.add_argument("--epochs", type=_positive_int, default=200, metavar="N", help="epochs per run (default: 200)")
    t.add_argument("--batch-size", type=_positive_int, default=32, metavar="N", help="batch size (default: 32)")
    t.add_argument("--seed", type=seed_int, default=0, help="seed for the default model and the shuffling (default: 0)")
    t.add_argument("--validation-split", type=validation_fraction, metavar="F",
                   help="rank the runs on the last F of the rows, kept out of training, as Keras's validation_split "
                        "(default: a seeded 20%% hold-out split; 5-fold cross-validation under 100 rows)")
    t.add_argument("--executor", choices=("auto", "inprocess", "worker", "ray"), default="auto",
                   help="where the training runs execute: auto (this process on JAX, a JAX worker process on other "
                        "Keras backends), inprocess, worker, or ray (Ray tasks: $RAY_ADDRESS or a local instance; "
                        "pip install fitdoctor[ray]) (default: auto)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="stdout format (default: text)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write report.html (HTML report), curves.png (plot) or results.json (JSON) instead of stdout")
    p.set_defaults(run=run)


def validation_fraction(text: str) -> float:
    """argparse type of --validation-split: a number strictly between 0 and 1."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"takes a fraction between 0 and 1 (Received {text!r})") from None
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"takes a fraction between 0 and 1 (Received {text!r})")
    return v


def _list(text: str | None, kind=str, option: str = ""):
    from ..errors import UsageError

    if text is None:
        return None
    items = [s.strip() for s in text.split(",") if s.strip()]
    if not items:
        raise UsageError(f"{option} needs at least one value (Received {option}={text!r})")
    try:
        return [kind(s) for s in items]
    except ValueError:
        raise UsageError(f"{option} takes comma-separated numbers (Received {option}={text!r})") from None


def _checked(kind, text: str, option: str):
    from ..errors import UsageError

    try:
        return kind(text)
    except argparse.ArgumentTypeError as exc:
        raise UsageError(f"{option}: {exc}") from None


def grid_from_args(args) -> dict:
    """The grid the options ask for; the optimizer study when none is given."""
    grid: dict = {}
    if args.optimizers:
        grid["optimizer"] = [_checked(optimizer_name, s, "--optimizers") for s in _list(args.optimizers, option="--optimizers")]
    if args.lr:
        grid["learning_rate"] = _list(args.lr, float, option="--lr")
        bad = [v for v in grid["learning_rate"] if not 0 < v < float("inf")]
        if bad:
            from ..errors import UsageError

            raise UsageError(f"--lr takes finite learning rates above 0 (Received --lr={args.lr!r})")
    if args.scale_x:
        grid["scale_x"] = _CHOICES[args.scale_x]
    if args.scale_y:
        grid["scale_y"] = _CHOICES[args.scale_y]
    if args.loss:
        grid["loss"] = [_checked(loss_name, s, "--loss") for s in _list(args.loss, option="--loss")]
    if not grid:  # the default study: normalised inputs, Adam/SGD x 1e-2/1e-3, with and without standardised targets
        grid = {"optimizer": ["adam", "sgd"], "learning_rate": [1e-2, 1e-3], "scale_x": [True], "scale_y": [False, True]}
    return grid


def load_data(args):
    """Load DATA, drop rows with empty cells (saying so on stderr), return the Dataset."""
    from ..data.loading import load_dataset
    from ..errors import InputError

    ds = load_dataset(args.data, args.target)
    clean, dropped = ds.dropna()
    for note in ds.notes:
        sys.stderr.write(f"fitdoctor: {note}\n")
    if dropped:
        shown = ", ".join(str(r) for r in dropped[:10]) + (f" and {len(dropped) - 10} more" if len(dropped) > 10 else "")
        sys.stderr.write(f"fitdoctor: dropped {len(dropped)} row{'s' if len(dropped) != 1 else ''} with empty cells: rows {shown}\n")
    if len(clean.y) < 2:
        raise InputError(f"{args.data} has fewer than two complete rows after dropping empty cells: fill them in")
    return clean


def default_model(n_inputs: int, seed: int):
    """The seeds' model: one Dense unit, seeded."""
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((n_inputs,)), keras.layers.Dense(1)])


def text_table(cmp, elapsed: float | None = None) -> str:
    from ..reporting.text import fmt

    ref, opt = cmp.reference_, cmp.optimum_
    kind = "least-squares optimum" if cmp.linear_model_ else "reference optimum"
    lines = [f"held-out rows: {cmp.validation_}",
             f"{len(cmp.runs_)} runs on {cmp.n_rows_} rows; {kind} (MSE) {fmt(opt)}; mean predictor {fmt(ref.mean_mse)}; "
             f"held-out optimum ({cmp.val_optimum_kind_}) {fmt(cmp.val_optimum_)}"]
    width = max(len(r.spec.label()) for r in cmp.runs_)
    head = (f"{'rank':>4}  {'configuration':<{width}}  {'final MSE':>10}  {'best MSE':>10}  {'x optimum':>10}  "
            f"{'held-out MSE':>12}  {'x held-out':>10}  {'epochs to 1.1x':>14}  diverged")
    lines += [head, "-" * len(head)]
    for row in cmp.results_.itertuples(index=False):
        reach = "never" if row.epochs_to_optimum != row.epochs_to_optimum else str(int(row.epochs_to_optimum))
        lines.append(f"{row.rank:>4}  {row.label:<{width}}  {fmt(row.final_loss):>10}  {fmt(row.best_loss):>10}  {_gap(row.gap):>10}  "
                     f"{fmt(row.val_loss):>12}  {_gap(row.val_gap):>10}  {reach:>14}  {'yes' if row.diverged else 'no'}")
    best = cmp.best_run()
    val = float(cmp.results_["val_loss"].min())
    lines.append(f"best on held-out rows: {best.spec.label()}, held-out MSE {fmt(val)} "
                 f"({_gap(val / cmp.val_optimum_) if cmp.val_optimum_ > 0 else 'n/a'}x the held-out optimum); "
                 f"final training MSE {fmt(best.final_mse)} ({cmp.reference_.gap(best.final_mse, linear=cmp.linear_model_):.3f}x the optimum)")
    engines = sorted({r.engine for r in cmp.runs_})
    notes = sorted({r.note for r in cmp.runs_ if r.note})
    tail = f"engine: {', '.join(engines)}" + (f" ({'; '.join(notes)})" if notes else "")
    if elapsed is not None:
        tail += f"; {elapsed:.1f} s"
    lines.append(tail)
    return "\n".join(lines) + "\n"


def _gap(value: float) -> str:
    from ..reporting.text import fmt

    return f"{value:.3f}" if value == value and value < 10 else fmt(value)


def save_figure(obj, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..errors import InputError

    from ..safe_io import atomic_path

    obj.plot()
    try:
        obj.figure_.tight_layout()
        with atomic_path(path) as tmp:  # a temporary file renamed into place: never a truncated PNG
            obj.figure_.savefig(tmp, dpi=110, format="png")
    except OSError as exc:
        raise InputError(f"cannot write {path} ({exc.strerror}): choose another --output") from None
    finally:
        plt.close(obj.figure_)


def run(args) -> int:
    from ..errors import InputError
    from ..experiments import compare

    grid = grid_from_args(args)
    ext = os.path.splitext(args.output)[1].lower() if args.output else ""
    if args.output and ext not in (".html", ".htm", ".png", ".json", ".txt", ""):
        raise InputError(f"--output must end in .html, .png, .json or .txt (Received --output={args.output!r})")
    ds = load_data(args)
    model = load_model_file(args.model) if args.model else default_model(ds.X.shape[1], args.seed)
    n_runs = 1
    for values in grid.values():
        n_runs *= len(values)
    bar = progress(total=n_runs, desc="compare")
    start = time.perf_counter()

    def tick(done, total):
        if bar.total != total:  # K-fold ranking trains every configuration once more per fold
            bar.total = total
        bar.update(done - bar.n)

    try:
        cmp = compare(model, ds.X, ds.y, grid=grid, epochs=args.epochs, batch_size=args.batch_size,
                      seed=args.seed, callback=tick, executor=getattr(args, "executor", "auto"),
                      validation_split=getattr(args, "validation_split", None))
    finally:
        bar.close()
    elapsed = time.perf_counter() - start
    text = cmp.to_json() + "\n" if args.format == "json" else text_table(cmp, elapsed)
    write_result(cmp, args.output, text=text, plot_hint="-o curves.png or -o results.json")
    return 0
