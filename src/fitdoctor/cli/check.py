"""fitdoctor check: diagnose the data and configuration before training."""
from __future__ import annotations

import argparse

from .common import add_config_args, add_data_args, add_output_args, load_model_file, progress, seed_int, write_output

HELP = "diagnose data and training configuration before training (with a short confirming probe)"
DESCRIPTION = """\
Check a data set (and your model and training configuration) for the reasons a regression
does not converge: unscaled features or targets, Adam on large targets, learning rate too
high or too low for the data's curvature, too few epochs, an output activation that cannot
reach the targets, a classification loss, NaN cells, outliers, ill-conditioning...

Every finding carries the numbers behind it. Unless --no-probe is given, a short probe
(a few hundred steps of your configuration, once as given and once with each fix) marks the
findings it confirms. Losses are compared with what is achievable on the same data: the
mean predictor, the least-squares fit and a nonlinear reference.
"""
EPILOG = """\
examples:
  fitdoctor check income.csv --target income --optimizer adam --lr 0.01 --epochs 200
  fitdoctor check data.parquet --target y --model model.keras --format json
  fitdoctor check data.csv --target y --ignore D106,outliers --format markdown -o report.md

exit codes: 0 no warning or error, 1 warnings or errors found, 2 bad usage or unreadable input
"""


def add_parser(sub) -> None:
    p = sub.add_parser("check", help=HELP, description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_data_args(p)
    add_config_args(p)
    p.add_argument("--no-probe", action="store_true", help="skip the short training probe (static checks only)")
    p.add_argument("--select", metavar="RULES", help="only these rules: codes, prefixes or names, comma-separated")
    p.add_argument("--ignore", metavar="RULES", help="skip these rules: codes, prefixes or names, comma-separated")
    p.add_argument("--seed", type=seed_int, default=0, help="random seed for the probe (default: 0)")
    add_output_args(p)
    p.set_defaults(run=run)


def _split(text):
    return [s.strip() for s in text.split(",")] if text else None


def configured_selectors(args):
    """--select/--ignore, else [tool.fitdoctor] in ./pyproject.toml."""
    from ..config import read_pyproject_selectors

    select, ignore, source = _split(args.select), _split(args.ignore), "--select/--ignore"
    if select is None and ignore is None:
        select, ignore, source = read_pyproject_selectors()
    return select, ignore, source


def load_and_diagnose(args):
    from ..data.chunked import load_for_check
    from ..diagnosis import diagnose
    from ..rules import select_rules

    select, ignore, source = configured_selectors(args)
    select_rules(select, ignore, source=source)  # validate before the expensive part
    data = load_for_check(args.data, args.target, several_targets=True, seed=args.seed)  # large files: in chunks
    model_notes: list[str] = []
    model = load_model_file(args.model, model_notes) if args.model else None
    from ..model.multi_io import columns_as_inputs, input_columns_note

    X = columns_as_inputs(model, data.X, args.data) if model is not None else data.X
    model_notes += input_columns_note(model, data.X.ndim)
    probe = not args.no_probe
    bar = progress(None, "probe") if probe else None
    cb = (lambda done, total: (setattr(bar, "total", total), bar.update(done - bar.n))) if bar is not None else None
    try:
        report = diagnose(model, X, data.y, optimizer=args.optimizer, learning_rate=args.lr, loss=args.loss,
                          epochs=args.epochs if args.epochs else 200, batch_size=args.batch_size, probe=probe,
                          seed=args.seed, select=select, ignore=ignore, feature_names=data.feature_names,
                          target_name=data.target_name, progress=cb)
    finally:
        if bar is not None:
            bar.close()
    report.notes[:0] = data.notes + model_notes
    return report


def render(report, fmt: str):
    if fmt == "json":
        return report.to_json() + "\n"
    if fmt == "markdown":
        return report.to_markdown()
    if fmt == "html":
        return report.to_html()
    text = report.to_text()
    model = report.model or {}
    if model.get("assumed"):  # say first what was assumed (issue 12)
        n_in = len((report.data or {}).get("feature_names") or []) or "the"
        text = (f"assumed model: Dense({model.get('output_units') or 1}), a linear model on {n_in} input(s) (no --model given; pass "
                "--model model.keras to judge your own)\n") + text
    return text


def run(args) -> int:
    report = load_and_diagnose(args)
    write_output(render(report, args.format), args.output)
    return 1 if report.has_problems else 0
