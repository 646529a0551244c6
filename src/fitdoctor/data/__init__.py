"""Loading tabular data and the checks on data (see ``fitdoctor.rules.data`` for the rules)."""
from .loading import Dataset, load_dataset, prepare_arrays

__all__ = ["Dataset", "load_dataset", "prepare_arrays"]
