"""Diagnosis of a training run: live (:class:`Monitor`, a Keras callback) and after the fact
(:func:`diagnose_history`). Both fill a :class:`Trace` and run the rules' ``detect_training``."""
from __future__ import annotations

from .history import diagnose_history, run_training_rules
from ..signals.trace import Sample, Trace

__all__ = ["Monitor", "Sample", "Trace", "diagnose_history", "run_training_rules"]


def __getattr__(name):  # Monitor imports keras: load it on first use
    if name == "Monitor":
        from .callback import Monitor

        return Monitor
    raise AttributeError(f"module 'fitdoctor.monitor' has no attribute {name!r}")
