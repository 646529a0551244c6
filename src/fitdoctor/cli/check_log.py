"""fitdoctor check-log: diagnose a finished training run from a Keras CSVLogger file."""
from __future__ import annotations

import argparse

from .common import add_output_args, optimizer_name, positive_float, positive_int, write_output

HELP = "diagnose a finished training run from its loss log (Keras CSVLogger file)"
DESCRIPTION = """\
Read a training log written by keras.callbacks.CSVLogger (columns epoch, loss, val_loss,
learning_rate, ...) and run the curve rules on it: divergence, NaN, oscillation, a crawl far
above the achievable loss, Adam on large targets, too few epochs, overfitting.

Losses are judged relative to the target's variance and to the least-squares optimum: give the
data (--data with --target) or at least the target's variance (--target-var).
"""
EPILOG = """\
examples:
  fitdoctor check-log training.log --target-var 6.9e7
  fitdoctor check-log training.log --data income.csv --target income --optimizer adam --lr 0.01
  fitdoctor check-log training.log --format json -o report.json

exit codes: 0 no warning or error, 1 warnings or errors found, 2 bad usage or unreadable input
"""


def add_parser(sub) -> None:
    p = sub.add_parser("check-log", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", metavar="LOG.csv", help="a Keras CSVLogger file (or any CSV with a 'loss' column)")
    p.add_argument("--data", metavar="DATA", help="the training data (CSV, Parquet or .npz), for the reference losses")
    p.add_argument("--target", metavar="COL", help="the target column of --data")
    p.add_argument("--target-var", type=positive_float, metavar="V", help="variance of the target (when --data is not given)")
    p.add_argument("--optimizer", type=optimizer_name, metavar="NAME", help="optimizer used (adam, sgd, ...), if the log does not say")
    p.add_argument("--lr", type=positive_float, metavar="LR", help="learning rate used, if the log has no learning_rate column")
    p.add_argument("--epochs", type=positive_int, metavar="N", help="epochs planned (default: the epochs in the log)")
    p.add_argument("--linear", action="store_true", default=None, help="the model was linear (one Dense unit)")
    add_output_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from ..monitor.history import diagnose_log_file
    from .check import render

    report = diagnose_log_file(args)
    write_output(render(report, args.format), args.output)
    return 1 if report.has_problems else 0
