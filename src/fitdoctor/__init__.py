"""fitdoctor: find out why a regression model's training does not converge, prove it, repair it.

Public API (imported lazily, so that ``import fitdoctor`` does not import Keras until needed)::

    fitdoctor.diagnose(model, X, y, ...)          -> Report        checks before training (+ probe)
    fitdoctor.Monitor(...)                        Keras callback   diagnosis while training
    fitdoctor.diagnose_history(history, y=...)    -> Report        diagnosis of a finished run
    fitdoctor.compare(model, X, y, grid=...)      -> Comparison    vectorised experiments
    fitdoctor.find_lr(model, X, y)                -> LRFinder      learning-rate range test
    fitdoctor.repair(model, X, y, ...)            -> Repair        repaired, portable model
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "diagnose": "fitdoctor.diagnosis",
    "Report": "fitdoctor.report",
    "Finding": "fitdoctor.findings",
    "Fix": "fitdoctor.findings",
    "Reference": "fitdoctor.reference",
    "compute_reference": "fitdoctor.reference",
    "RULES": "fitdoctor.rules",
    "get_rule": "fitdoctor.rules",
    "InputError": "fitdoctor.errors",
    "load_dataset": "fitdoctor.data.loading",
    "load_example": "fitdoctor.examples",
    "Monitor": "fitdoctor.monitor",
    "diagnose_history": "fitdoctor.monitor",
    "compare": "fitdoctor.experiments",
    "Comparison": "fitdoctor.experiments",
    "find_lr": "fitdoctor.experiments",
    "repair": "fitdoctor.fix",
    "Repair": "fitdoctor.fix",
}

__all__ = sorted(_LAZY) + ["__version__"]


#: the module each Keras backend needs
_BACKENDS = {"tensorflow": "tensorflow", "torch": "torch", "jax": "jax"}


def _backend_missing(module: str) -> str:
    """One line: which backend Keras was asked for, that it is not installed, and what to set."""
    import os

    backend = os.environ.get("KERAS_BACKEND") or "the default of ~/.keras/keras.json (tensorflow)"
    return (f"Keras is set to use {backend}, but {module!r} is not installed: run `export KERAS_BACKEND=jax` "
            "(JAX comes with fitdoctor) or `pip install 'fitdoctor[tensorflow]'`")


def __getattr__(name: str):
    if name in _LAZY:
        try:
            module = importlib.import_module(_LAZY[name])
            value = getattr(module, name)
        except ModuleNotFoundError as exc:
            if exc.name not in _BACKENDS:
                raise
            raise ImportError(_backend_missing(exc.name)) from None
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fitdoctor' has no attribute {name!r}")


def __dir__():
    return __all__
