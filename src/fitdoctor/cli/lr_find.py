"""``fitdoctor lr-find``: the learning-rate range test."""
from __future__ import annotations


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("lr-find", help="learning-rate range test")
    p.set_defaults(run=run)


def run(args) -> int:  # pragma: no cover - replaced below
    raise NotImplementedError
