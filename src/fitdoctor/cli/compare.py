"""``fitdoctor compare``: train optimizers x learning rates x scalings together and show the curves."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("compare", help="compare optimizers, learning rates and scalings on your data")
    p.set_defaults(run=run)


def run(args) -> int:  # pragma: no cover - replaced below
    raise NotImplementedError
