"""``fitdoctor fix``: repair the model, prove each cause by experiment, hand back a plain Keras model."""
from __future__ import annotations

from .common import add_config_args, add_data_args


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("fix", help="repair the model and write model.keras, report and fix.py")
    add_data_args(p)
    add_config_args(p)
    p.add_argument("--output", "-o", metavar="DIR", required=True, help="directory for model.keras, report.json, fix.py")
    p.add_argument("--format", choices=("text", "json", "html"), default="text", help="stdout format (default: text)")
    p.set_defaults(run=run)


def run(args) -> int:
    raise NotImplementedError("fitdoctor fix is being written")
