"""The ``fitdoctor`` command line.

Each verb lives in its own module exposing ``add_parser(subparsers)`` and ``run(args) -> int``.
Exit codes: 0 clean, 1 findings (or a repair that did not reach the optimum), 2 usage or input
error (one line on stderr, never a traceback).
"""
from __future__ import annotations

# Ctrl-C is handled from the first statement on, before any heavy import (see ``interrupts``)
from . import interrupts as _interrupts  # noqa: I001

_interrupts.install_early()

import argparse  # noqa: E402
import importlib  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

#: the verbs, in the order ``--help`` lists them (module names under fitdoctor.cli)
COMMANDS = ["check", "check_log", "compare", "lr_find", "fix", "explain", "rules", "demo"]

#: verbs that compile training programs: they keep them in the on-disk compilation cache
#: (fitdoctor.experiments.cache; FITDOCTOR_CACHE_DIR=off turns it off)
TRAINING_COMMANDS = {"check", "compare", "lr-find", "fix", "demo"}

DESCRIPTION = """\
Find out why a regression model's training does not converge, prove it, and repair it.

fitdoctor compares your training loss with what is achievable on the same data (the mean
predictor, the least-squares fit, a nonlinear reference), names the cause of the gap with
numbers (unscaled features or targets, Adam on large targets, learning rate, capacity, output
activation, loss...), confirms it by short controlled experiments, and repairs the model.
"""

EPILOG = """\
examples:
  fitdoctor demo                                        run the bundled examples
  fitdoctor check data.csv --target income --optimizer adam --lr 0.01 --epochs 200
  fitdoctor check-log training.log --target-var 6.9e7  diagnose a CSVLogger file
  fitdoctor compare data.csv --target income            optimizers x learning rates x scaling
  fitdoctor lr-find data.csv --target income            learning-rate range test
  fitdoctor fix data.csv --target income --output fixed/   repaired model + fix.py
  fitdoctor explain adam-large-target                   what a finding means

exit codes: 0 no problem found, 1 problems found, 2 bad usage or unreadable input

environment:
  FITDOCTOR_CACHE_DIR   where compiled training programs are kept between runs, so that a
                        repeated experiment starts at once (default ~/.cache/fitdoctor/xla;
                        "off" turns it off)
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, like every other input error
        self.exit(2, f"fitdoctor: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fitdoctor", description=DESCRIPTION, epilog=EPILOG,
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"fitdoctor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns its exit code (130 when interrupted, after cleaning up)."""
    import warnings

    from .. import safe_io

    state: dict = {}
    previous = _interrupts.enter_run()
    first_commit = len(safe_io.COMMITTED)
    try:
        with warnings.catch_warnings():
            # library warnings (numpy overflow, pandas dtypes, Keras structure) are noise on the command
            # line: findings and notes say what matters, and an error stays one line
            warnings.simplefilter("ignore")
            code = _run(argv, state)
        if safe_io.CANCELLED.is_set():  # a Ctrl-C that something swallowed is still a Ctrl-C
            raise KeyboardInterrupt
    except BaseException as exc:
        # Ctrl-C, or what an import made of it (Python wraps errors raised in __set_name__)
        if not (isinstance(exc, KeyboardInterrupt) or safe_io.CANCELLED.is_set()):
            raise
        _interrupts.ignore()
        _interrupts.exit_interrupted(_interrupts.message(state, safe_io.COMMITTED[first_commit:]))
        code = 130
    finally:
        _interrupts.leave_run(previous, safe_io.COMMITTED[first_commit:])
    return _interrupts.finish(code)


def _run(argv, state: dict) -> int:
    os.environ.setdefault("KERAS_BACKEND", "jax")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from ..errors import InputError
    from .common import check_output_paths

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (already one line on stderr), --help or --version
        return exc.code if isinstance(exc.code, int) else 2
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    state["output"] = getattr(args, "output", None)
    state["output_existed"] = bool(state["output"]) and os.path.exists(state["output"])
    try:
        check_output_paths(args)
        trains = args.command in TRAINING_COMMANDS and not (args.command == "check" and args.no_probe)
        if trains or getattr(args, "model", None):  # Keras will be imported: keep TensorFlow out of it
            from .common import skip_tensorflow

            skip_tensorflow()
        if trains:  # `check --no-probe`, `explain`, `rules`, `check-log` import neither Keras nor JAX
            from ..experiments.cache import enable_compilation_cache

            enable_compilation_cache()
        return int(args.run(args))
    except InputError as exc:
        sys.stderr.write(f"fitdoctor: error: {' '.join(str(exc).split())}\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
