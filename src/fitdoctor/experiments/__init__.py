"""Experiments: train many configurations together (``compare``) and the learning-rate range test (``find_lr``)."""
from .engine import RunResult, RunSpec, build_trained_model, train_runs

__all__ = ["RunResult", "RunSpec", "build_trained_model", "train_runs"]
