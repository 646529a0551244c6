"""Read CSV (delimiter sniffed), Parquet or .npz into numeric arrays, saying what was changed.

Every problem with the file is an :class:`~fitdoctor.errors.InputError` with one line that says
what is wrong and how to fix it.
"""
from __future__ import annotations

import csv
import difflib
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

MAX_ONE_HOT_LEVELS = 50


@dataclass
class Dataset:
    """Numeric features and target, plus notes on what loading did (never silent)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_name: str
    notes: list[str] = field(default_factory=list)
    path: str | None = None

    @property
    def finite_rows(self) -> np.ndarray:
        return np.isfinite(self.X).all(axis=1) & np.isfinite(self.y)

    def dropna(self) -> tuple["Dataset", list[int]]:
        """A copy without the rows holding NaN/inf, and the dropped row numbers (0-based)."""
        ok = self.finite_rows
        dropped = np.flatnonzero(~ok).tolist()
        notes = list(self.notes)
        if dropped:
            notes.append(f"dropped {len(dropped)} row(s) with empty or non-finite cells: rows {_rows(dropped)}")
        return Dataset(self.X[ok], self.y[ok], list(self.feature_names), self.target_name, notes, self.path), dropped


def _rows(rows: list[int], limit: int = 10) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _sniff_delimiter(path: str) -> str:
    with open(path, "r", encoding="utf-8", errors="replace", newline="") as fh:
        sample = fh.read(64 * 1024)
    if not sample.strip():
        raise InputError(f"{path} is empty: give a CSV file with a header row and at least two data rows")
    try:
        return csv.Sniffer().sniff(sample.splitlines()[0] if "\n" in sample else sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_frame(path: str):
    import pandas as pd

    ext = os.path.splitext(path)[1].lower()
    if ext in (".parquet", ".pq"):
        try:
            return pd.read_parquet(path)
        except Exception as exc:  # pyarrow raises many types
            raise InputError(f"cannot read {path} as Parquet ({type(exc).__name__}): check that it is a Parquet file") from None
    sep = _sniff_delimiter(path)
    try:
        return pd.read_csv(path, sep=sep)  # pandas' C parser: measured faster than pyarrow's on 2 cores
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty: give a CSV file with a header row and at least two data rows") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot parse {path} as CSV ({str(exc).splitlines()[0]}): check the delimiter and quoting") from None


def _target_error(target: str, columns: list[str], path: str) -> InputError:
    close = difflib.get_close_matches(target, columns, n=3, cutoff=0.5)
    close += [c for c in columns if c.lower() == target.lower() and c not in close]
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"columns are {', '.join(map(repr, columns[:20]))}"
    return InputError(f"target column {target!r} is not in {path}: {hint}")


def load_dataset(path: str, target: str | None) -> Dataset:
    """Load ``path`` (CSV, Parquet or .npz) with ``target`` as the regression target."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path} does not exist: check the path (relative paths start from {os.getcwd()})")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory: give a CSV, Parquet or .npz file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is empty: give a file with a header row and at least two data rows")
    if path.lower().endswith(".npz"):
        return _load_npz(path, target)
    if not target:
        raise InputError("no target column given: add --target COLUMN")
    frame = _read_frame(path)
    columns = [str(c) for c in frame.columns]
    frame.columns = columns
    if target not in columns:
        raise _target_error(target, columns, path)
    return prepare_arrays(frame, target, path=path)


def _load_npz(path: str, target: str | None) -> Dataset:
    try:
        data = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise InputError(f"cannot read {path} as .npz ({type(exc).__name__}): save it with numpy.savez(path, X=..., y=...)") from None
    keys = list(data.keys())
    ykey = target or "y"
    if "X" not in keys or ykey not in keys:
        raise InputError(f"{path} must hold arrays 'X' and {ykey!r}; it holds {', '.join(map(repr, keys)) or 'nothing'}: save it with numpy.savez(path, X=..., y=...)")
    X = np.asarray(data["X"])
    y = np.asarray(data[ykey])
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    if X.ndim != 2 or len(X) != len(y):
        raise InputError(f"{path}: X must be 2-D with as many rows as y (X has shape {X.shape}, y has shape {y.shape})")
    import pandas as pd

    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    frame[ykey] = np.asarray(y).reshape(len(y), -1)[:, 0]
    return prepare_arrays(frame, ykey, path=path)


def prepare_arrays(frame, target: str, *, path: str | None = None) -> Dataset:
    """Numeric arrays from a DataFrame: one-hot encode text columns, validate the target."""
    import pandas as pd

    where = path or "the data"
    notes: list[str] = []
    if len(frame) == 0:
        raise InputError(f"{where} has a header but no data rows: give at least two rows")
    if len(frame) < 2:
        raise InputError(f"{where} has only one data row: regression needs at least two (ideally many more)")
    ycol = frame[target]
    if not pd.api.types.is_numeric_dtype(ycol):
        converted = pd.to_numeric(ycol, errors="coerce")
        bad = ycol[converted.isna() & ycol.notna()]
        if len(bad):
            raise InputError(f"target column {target!r} is not numeric (e.g. {str(bad.iloc[0])!r} in row {int(bad.index[0])}): fitdoctor diagnoses regression; convert the column to numbers")
        ycol = converted
    y = ycol.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(y).all():
        raise InputError(f"target column {target!r} is empty in every row: choose another --target")
    feature_cols = [c for c in frame.columns if c != target]
    if not feature_cols:
        raise InputError(f"{where} has no feature column besides the target {target!r}: add the columns to predict it from")
    if all(pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in feature_cols):
        # the common case: one conversion, no per-column copies
        X = frame[feature_cols].to_numpy(dtype=np.float64, na_value=np.nan)
        return _checked(X, y, [str(c) for c in feature_cols], target, notes, path, where)
    features = frame[feature_cols]
    numeric, encoded = [], []
    for col in features.columns:
        s = features[col]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(float)
        if pd.api.types.is_numeric_dtype(s):
            numeric.append(s.astype(np.float64))
            continue
        conv = pd.to_numeric(s, errors="coerce")
        if conv.notna().sum() == s.notna().sum():
            numeric.append(conv.astype(np.float64))
            continue
        levels = s.astype("string").fillna("<missing>")
        if levels.nunique() > MAX_ONE_HOT_LEVELS:
            notes.append(f"column {col!r} is text with {levels.nunique()} distinct values: left out of the analysis (encode it yourself)")
            continue
        dummies = pd.get_dummies(levels, prefix=str(col), dtype=np.float64)
        encoded.append(str(col))
        numeric.extend(dummies[c] for c in dummies.columns)
    if encoded:
        notes.append(f"non-numeric column(s) {', '.join(map(repr, encoded))} one-hot encoded for the analysis")
    if not numeric:
        raise InputError(f"{where} has no usable feature column besides the target {target!r}: add numeric features")
    Xf = pd.concat(numeric, axis=1)
    names = [str(c) for c in Xf.columns]
    X = Xf.to_numpy(dtype=np.float64, na_value=np.nan)
    return _checked(X, y, names, target, notes, path, where)


def _checked(X, y, names, target, notes, path, where) -> Dataset:
    """Refuse empty columns and cells that overflowed float64."""
    if np.isfinite(X.sum(axis=0)).all() and np.isfinite(y.sum()):
        return Dataset(X=X, y=y, feature_names=names, target_name=target, notes=notes, path=path)  # no NaN, no inf
    all_nan = np.isnan(X).all(axis=0)
    if all_nan.any():
        cols = [names[i] for i in np.flatnonzero(all_nan)]
        raise InputError(f"column(s) {', '.join(map(repr, cols))} are empty in every row: drop them from the file")
    if np.isinf(y).any() or np.isinf(X).any():
        full = np.c_[X, y]
        r, c = np.argwhere(np.isinf(full))[0]
        col = (names + [target])[c]
        raise InputError(f"{where}: row {int(r)}, column {col!r} holds a value too large for float64 (it reads as infinity): fix the value or remove the row")
    return Dataset(X=X, y=y, feature_names=names, target_name=target, notes=notes, path=path)
