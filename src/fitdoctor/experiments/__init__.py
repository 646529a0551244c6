"""Experiments: train many configurations together (``compare``) and the learning-rate range test (``find_lr``)."""
from .compare import Comparison, compare
from .engine import RunResult, RunSpec, build_trained_model, train_runs
from .executors import Executor, InProcessExecutor, RayExecutor, WorkerExecutor
from .lr_find import LRFinder, find_lr

__all__ = ["Comparison", "Executor", "InProcessExecutor", "LRFinder", "RayExecutor", "RunResult", "RunSpec", "WorkerExecutor",
           "build_trained_model", "compare", "find_lr", "train_runs"]
