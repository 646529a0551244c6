"""Data given as a stream of ``(x, y)`` batches: a Python generator or iterator, a ``tf.data.Dataset``
or a ``keras.utils.PyDataset``.

fitdoctor's experiments train many configurations on the same rows, so a stream is read once, up to
:data:`MAX_STREAM_ROWS` rows, into arrays; the report says how many rows were read and whether the
stream held more.
"""
from __future__ import annotations

import inspect
from typing import Any

import numpy as np

from ..errors import InputError

#: rows read from a generator or dataset (the experiments hold them in memory)
MAX_STREAM_ROWS = 100_000


def is_stream(X: Any) -> bool:
    """True for a generator, an iterator, a ``tf.data.Dataset`` or a ``keras.utils.PyDataset``."""
    if X is None or isinstance(X, (np.ndarray, list, tuple, dict, str, bytes)) or hasattr(X, "__array__"):
        return False
    if hasattr(X, "columns") or hasattr(X, "to_numpy"):  # pandas
        return False
    if inspect.isgenerator(X) or hasattr(X, "as_numpy_iterator"):
        return True
    if type(X).__name__ == "PyDataset" or any(c.__name__ == "PyDataset" for c in type(X).__mro__):
        return True
    return hasattr(X, "__next__") and hasattr(X, "__iter__")


def _batches(X):
    if hasattr(X, "as_numpy_iterator"):  # tf.data
        return X.as_numpy_iterator()
    if any(c.__name__ == "PyDataset" for c in type(X).__mro__):
        return (X[i] for i in range(len(X)))
    return X


def _leaves(tree) -> list[np.ndarray]:
    if isinstance(tree, dict):
        return [np.asarray(tree[k]) for k in sorted(tree)]
    if isinstance(tree, (list, tuple)):
        return [np.asarray(t) for t in tree]
    return [np.asarray(tree)]


def _rebuild(like, arrays):
    if isinstance(like, dict):
        return dict(zip(sorted(like), arrays))
    if isinstance(like, (list, tuple)):
        return list(arrays)
    return arrays[0]


def read_stream(X, y=None, *, max_rows: int = MAX_STREAM_ROWS) -> tuple[Any, Any, list[str]]:
    """Arrays ``(X, y)`` from the first ``max_rows`` rows of a stream of ``(x, y)`` batches, and a note.

    ``x`` may be an array, a list or a dict of arrays (a model with several inputs), and so may ``y``.
    A third element of a batch (sample weights) is left out, and the note says so.
    """
    if y is not None:
        raise InputError("X is a generator or dataset of (x, y) batches: pass y=None (the targets come from the batches)")
    xs: list[list[np.ndarray]] = []
    ys: list[list[np.ndarray]] = []
    x_like = y_like = None
    rows, more, weights = 0, False, False
    kind = "tf.data.Dataset" if hasattr(X, "as_numpy_iterator") else type(X).__name__
    for batch in _batches(X):
        if rows >= max_rows:
            more = True
            break
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise InputError(f"each batch of the {kind} must be a tuple (x, y) or (x, y, sample_weight) "
                             f"(Received {type(batch).__name__})")
        weights |= len(batch) == 3
        bx, by = _leaves(batch[0]), _leaves(batch[1])
        x_like, y_like = batch[0], batch[1]
        n = len(bx[0])
        if any(len(a) != n for a in bx + by):
            raise InputError(f"a batch of the {kind} holds x and y with different numbers of rows")
        take = min(n, max_rows - rows)
        xs.append([a[:take] for a in bx])
        ys.append([a[:take] for a in by])
        rows += take
        more |= take < n
    if not xs:
        raise InputError(f"the {kind} gave no batches: pass a generator or dataset that yields (x, y) batches")
    Xa = _rebuild(x_like, [np.concatenate([b[i] for b in xs]) for i in range(len(xs[0]))])
    ya = _rebuild(y_like, [np.concatenate([b[i] for b in ys]) for i in range(len(ys[0]))])
    note = (f"data read from a {kind}: the first {rows:,} rows" +
            (f" (the limit, {max_rows:,}; the rest of the stream was not read)" if more else " (all of it)"))
    notes = [note]
    if weights:
        notes.append("the batches carry sample weights: fitdoctor's experiments weigh every row the same")
    return Xa, ya, notes
