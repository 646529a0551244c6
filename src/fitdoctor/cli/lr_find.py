"""``fitdoctor lr-find``: the learning-rate range test."""
from __future__ import annotations

import argparse
import os

from .common import _positive_int, load_model_file, loss_name, optimizer_name, positive_float, seed_int, write_result
from .compare import validation_fraction

HELP = "learning-rate range test: a suggested learning rate and a range worth trying"
DESCRIPTION = """\
The learning-rate range test (Smith 2017): train from your model's weights while the learning
rate grows exponentially from --start-lr to --end-lr, one mini-batch per step; smooth the batch
losses, stop where they blow up, and read a learning rate off the curve. The model is not
modified. Published finders read the curve differently (steepest slope, "valley", minimum/10);
fitdoctor suggests the geometric mean of the steepest-slope and minimum/10 readings, reports
the range of the readings over two seeds (two batch orders), and says whether the suggestion
is stable across them. The readings are then checked on held-out rows the sweep never saw: the
last --validation-split fraction of the rows when given, otherwise a seeded 20% hold-out split
(5-fold cross-validation under 100 rows).
"""
EPILOG = """\
examples:
  fitdoctor lr-find data.csv --target y --optimizer adam
  fitdoctor lr-find data.csv --target y --model model.keras -o lr.png     (or lr.json)

exit codes: 0 done, 2 bad usage or unreadable input
"""


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("lr-find", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("data", metavar="DATA", help="CSV (delimiter sniffed), Parquet or .npz (arrays X and y) file")
    p.add_argument("--target", metavar="COL", help="the column to predict (required for CSV and Parquet)")
    p.add_argument("--model", metavar="FILE.keras", help="your Keras model (default: the seeds' Sequential([Dense(1)]))")
    p.add_argument("--optimizer", type=optimizer_name, metavar="NAME", help="Keras optimizer name (default: the model's, else adam)")
    p.add_argument("--loss", type=loss_name, metavar="NAME", help="Keras loss name (default: the model's, else mse)")
    p.add_argument("--batch-size", type=_positive_int, default=32, metavar="N", help="batch size (default: 32)")
    p.add_argument("--start-lr", type=positive_float, default=1e-6, metavar="LR", help="first learning rate (default: 1e-6)")
    p.add_argument("--end-lr", type=positive_float, default=10.0, metavar="LR", help="last learning rate (default: 10)")
    p.add_argument("--steps", type=_positive_int, default=100, metavar="N", help="sweep steps (default: 100)")
    p.add_argument("--seed", type=seed_int, default=0, help="seed for the default model and the batch order (default: 0)")
    p.add_argument("--validation-split", type=validation_fraction, metavar="F",
                   help="check the readings on the last F of the rows, kept out of the sweep, as Keras's "
                        "validation_split (default: a seeded 20%% hold-out split; 5-fold cross-validation under 100 rows)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="stdout format (default: text)")
    p.add_argument("--output", "-o", metavar="FILE", help="write lr.png (plot), lr.json (JSON) or lr.html (report) instead of stdout")
    p.set_defaults(run=run)


def text_summary(f) -> str:
    from ..reporting.text import fmt, lr_stop_text

    lines = [
        f"suggested learning rate: {fmt(f.suggestion_)} ({f.config_.optimizer}, loss {f.config_.loss}, batch {f.config_.batch_size})",
        f"range worth trying: {fmt(f.range_[0])} to {fmt(f.range_[1])}",
        f"stable across two seeds: {'yes' if f.stable_ else 'no'} ({', '.join(fmt(s) for s in f.suggestions_)})",
    ]
    c = f.candidates_[0]
    lines.append("readings: " + ", ".join(f"{k} {fmt(v)}" for k, v in c.items()))
    stop = lr_stop_text(f)
    if stop is not None:
        lines.append(stop)
    else:
        lines.append(f"the loss did not diverge up to lr {fmt(f.lrs_[-1])}")
    if getattr(f, "validation_losses_", None):
        lines.append(f"held-out check ({f.validation_}): "
                     + ", ".join(f"lr {fmt(lr)} MSE {fmt(v)}" for lr, v in f.validation_losses_.items()))
    lines += [f"note: {n}" for n in f.notes_]
    return "\n".join(lines) + "\n"


def run(args) -> int:
    from ..errors import InputError
    from ..experiments import find_lr
    from .compare import default_model, load_data

    ext = os.path.splitext(args.output)[1].lower() if args.output else ""
    if args.output and ext not in (".png", ".json", ".html", ".htm", ".txt", ""):
        raise InputError(f"--output must end in .png, .json, .html or .txt (Received --output={args.output!r})")
    if args.start_lr >= args.end_lr:
        raise InputError(f"--start-lr must be below --end-lr (Received --start-lr={args.start_lr:g}, --end-lr={args.end_lr:g})")
    ds = load_data(args)
    model = load_model_file(args.model) if args.model else default_model(ds.X.shape[1], args.seed)
    finder = find_lr(model, ds.X, ds.y, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                     optimizer=args.optimizer, loss=args.loss, batch_size=args.batch_size, seed=args.seed,
                     validation_split=getattr(args, "validation_split", None))
    text = finder.to_json() + "\n" if args.format == "json" else text_summary(finder)
    write_result(finder, args.output, text=text, plot_hint="-o lr.png or -o lr.json")
    return 0
