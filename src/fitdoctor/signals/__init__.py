"""Measured signals of a training run, below the rules: loss-curve arithmetic (:mod:`.curves`) and the
:class:`Trace` a run leaves (filled live by the Monitor or after the fact from a history).

Rules read these; nothing here imports rules, the monitor, experiments or reporting."""
from .trace import Sample, Trace

__all__ = ["Sample", "Trace"]
