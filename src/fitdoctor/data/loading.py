"""Read CSV (delimiter sniffed), Parquet or .npz into numeric arrays, saying what was changed.

Every problem with the file is an :class:`~fitdoctor.errors.InputError` with one line that says
what is wrong and how to fix it.
"""
from __future__ import annotations

import contextlib
import csv
import difflib
import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

MAX_ONE_HOT_LEVELS = 50
#: a column whose non-empty cells are at least this share numbers is numeric: its text cells are
#: read as missing and listed by row, never a reason to turn the whole column into categories
NUMERIC_SHARE = 0.9


@dataclass
class Dataset:
    """Numeric features and target, plus notes on what loading did (never silent)."""

    X: np.ndarray
    y: np.ndarray
    feature_names: list[str]
    target_name: str
    notes: list[str] = field(default_factory=list)
    path: str | None = None
    #: columns whose type loading changed (text cells read as missing, one-hot encoded, left out)
    changed_columns: list[str] = field(default_factory=list)

    @property
    def target_names(self) -> list[str]:
        """Every target column (``target_name`` joins them with commas when there are several)."""
        return self.target_name.split(",") if self.y.ndim > 1 else [self.target_name]

    @property
    def finite_rows(self) -> np.ndarray:
        return (np.isfinite(self.X.reshape(len(self.X), -1)).all(axis=1)
                & np.isfinite(self.y.reshape(len(self.y), -1)).all(axis=1))

    def dropna(self) -> tuple["Dataset", list[int]]:
        """A copy without the rows holding NaN/inf, and the dropped row numbers (0-based)."""
        ok = self.finite_rows
        dropped = np.flatnonzero(~ok).tolist()
        notes = list(self.notes)
        if dropped:
            notes.append(f"dropped {len(dropped)} row(s) with empty or non-finite cells: rows {_rows(dropped)}")
        return (Dataset(self.X[ok], self.y[ok], list(self.feature_names), self.target_name, notes, self.path,
                        list(self.changed_columns)), dropped)


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
    with csv_read_errors(path):
        return pd.read_csv(path, sep=sep)  # pandas' C parser: measured faster than pyarrow's on 2 cores


@contextlib.contextmanager
def csv_read_errors(path: str):
    """pandas' CSV reading errors (whole file or chunks) as one-line :class:`InputError` exceptions."""
    import pandas as pd

    try:
        yield
    except pd.errors.EmptyDataError:
        raise InputError(f"{path} is empty: give a CSV file with a header row and at least two data rows") from None
    except UnicodeDecodeError:
        raise InputError(f"{path} is not UTF-8 text: save it as UTF-8 CSV") from None
    except (pd.errors.ParserError, ValueError, OverflowError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise InputError(f"cannot parse {path} as CSV ({first}): check the delimiter and quoting") from None


def _header_notes(raw_columns, columns: list[str]) -> list[str]:
    """Say when pandas renamed repeated column names ('a', 'a' -> 'a', 'a.1')."""
    renamed = [(str(r), c) for r, c in zip(raw_columns, columns) if str(r) != c]
    return [f"column name(s) repeated in the header: {', '.join(f'{r!r} read as {c!r}' for r, c in renamed)}"] if renamed else []


def _target_error(target: str, columns: list[str], path: str) -> InputError:
    close = difflib.get_close_matches(target, columns, n=3, cutoff=0.5)
    close += [c for c in columns if c.lower() == target.lower() and c not in close]
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"columns are {', '.join(map(repr, columns[:20]))}"
    return InputError(f"target column {target!r} is not in {path}: {hint}")


def load_dataset(path: str, target: str | None, *, several_targets: bool = False) -> Dataset:
    """Load ``path`` (CSV, Parquet or .npz) with ``target`` as the regression target.

    With ``several_targets``, ``target`` may name several columns separated by commas
    (``"a,b"``): every one is kept, ``y`` has shape (n, k) and ``target_name`` is ``"a,b"``
    (an .npz file's ``y`` may then have several columns). Without it, several columns are an
    InputError that says to run once per column.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise InputError(f"{path} does not exist: check the path (relative paths start from {os.getcwd()})")
    if os.path.isdir(path):
        raise InputError(f"{path} is a directory: give a CSV, Parquet or .npz file")
    if os.path.getsize(path) == 0:
        raise InputError(f"{path} is empty: give a file with a header row and at least two data rows")
    if path.lower().endswith(".npz"):
        return _load_npz(path, target, several_targets)
    if not target:
        raise InputError("no target column given: add --target COLUMN")
    frame = _read_frame(path)
    columns = [str(c) for c in frame.columns]
    if len(set(columns)) != len(columns):
        raise InputError(f"{path} has repeated column names ({', '.join(sorted({repr(c) for c in columns if columns.count(c) > 1}))}): "
                         "give every column its own name")
    header = _csv_header(path) if not path.lower().endswith((".parquet", ".pq")) else columns
    frame.columns = columns
    targets: str | list[str] = target
    if target not in columns:
        parts = [t.strip() for t in target.split(",")]
        if len(parts) > 1 and all(t in columns for t in parts):
            if not several_targets:
                raise InputError(f"several target columns ({', '.join(map(repr, parts))}): this command takes one "
                                 "target at a time (check and fix take several); run it once per column")
            if len(set(parts)) != len(parts):
                raise InputError(f"--target names a column twice ({target!r}): name each target column once")
            targets = parts
        else:
            missing = next((t for t in parts if t not in columns), target) if len(parts) > 1 else target
            raise _target_error(missing, columns, path)
    ds = prepare_arrays(frame, targets, path=path)
    ds.notes[:0] = _header_notes(header, columns) if len(header) == len(columns) else []
    return ds


def _csv_header(path: str) -> list[str]:
    """The header row as written (pandas renames repeated names)."""
    try:
        sep = _sniff_delimiter(path)
        with open(path, "r", encoding="utf-8-sig", errors="replace", newline="") as fh:
            return next(csv.reader(fh, delimiter=sep), [])
    except (OSError, csv.Error, InputError):
        return []


def _load_npz(path: str, target: str | None, several_targets: bool = False) -> Dataset:
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
    if X.ndim < 2 or y.ndim == 0 or len(X) != len(y):
        raise InputError(f"{path}: X must have one row per value of y, as a table (n, features) or sequences "
                         f"(n, steps, features) (X has shape {X.shape}, y has shape {y.shape})")
    row_shape = X.shape[1:]
    X = X.reshape(len(X), int(np.prod(row_shape)))  # sequences: checked as a table of their cells, then reshaped
    if len(y) < 2:
        raise InputError(f"{path} holds {len(y)} row(s): regression needs at least two (ideally many more)")
    import pandas as pd

    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise InputError(f"{path}: X and {ykey!r} must hold numbers (X is {X.dtype}, {ykey} is {y.dtype}): save numeric arrays")
    yy = np.asarray(y).reshape(len(y), -1)
    if yy.shape[1] != 1 and not several_targets:
        raise InputError(f"{path}: {ykey!r} has {yy.shape[1]} columns (shape {y.shape}): this command takes one "
                         f"target at a time (check and fix take several); save one column, e.g. {ykey}={ykey}[:, 0]")
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    if yy.shape[1] == 1:
        frame[ykey] = yy[:, 0]
        return _with_row_shape(prepare_arrays(frame, ykey, path=path), row_shape)
    names = [f"{ykey}{j}" for j in range(yy.shape[1])]
    for j, name in enumerate(names):
        frame[name] = yy[:, j]
    return _with_row_shape(prepare_arrays(frame, names, path=path), row_shape)


def _with_row_shape(ds: Dataset, row_shape: tuple) -> Dataset:
    """An .npz of sequences (or images): X back in its shape, one feature name per last-axis channel."""
    if len(row_shape) == 1:
        return ds
    ds.X = ds.X.reshape((len(ds.X),) + tuple(row_shape))
    ds.feature_names = [f"x{i}" for i in range(row_shape[-1])]
    ds.notes.append(f"X holds {len(ds.X)} rows of shape {tuple(row_shape)} (sequences or images)")
    return ds


def prepare_arrays(frame, target: str | list[str], *, path: str | None = None) -> Dataset:
    """Numeric arrays from a DataFrame: one-hot encode text columns, validate the target.

    ``target`` is a column name, or a list of them (several targets: ``y`` of shape (n, k), in that
    order, ``target_name`` the names joined by commas).
    """

    where = path or "the data"
    notes: list[str] = []
    if len(frame) == 0:
        raise InputError(f"{where} has a header but no data rows: give at least two rows")
    if len(frame) < 2:
        raise InputError(f"{where} has only one data row: regression needs at least two (ideally many more)")
    targets = [target] if isinstance(target, str) else [str(t) for t in target]
    ys = [_target_values(frame[t], t) for t in targets]
    y = ys[0] if isinstance(target, str) else np.column_stack(ys)
    target = ",".join(targets)
    feature_cols = [c for c in frame.columns if c not in targets]
    if not feature_cols:
        raise InputError(f"{where} has no feature column besides the target {target!r}: add the columns to predict it from")
    return _features(frame, feature_cols, y, target, notes, path, where)


def _target_values(ycol, target: str) -> np.ndarray:
    """One target column as float64, refusing text, an empty column and a constant one."""
    import pandas as pd

    if not pd.api.types.is_numeric_dtype(ycol):
        converted = pd.to_numeric(ycol, errors="coerce")
        is_text = (converted.isna() & ycol.notna()).to_numpy()
        if is_text.any():
            rows = np.flatnonzero(is_text).tolist()
            raise InputError(f"target column {target!r} is not numeric: it holds text ({str(ycol[is_text].iloc[0])!r}) at row(s) {_rows(rows)}: "
                             "fitdoctor diagnoses regression; convert the column to numbers")
        ycol = converted
    y = ycol.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isnan(y).all():
        raise InputError(f"target column {target!r} is empty in every row: choose another --target")
    yf = y[np.isfinite(y)]
    if len(yf) >= 1 and (yf == yf[0]).all():
        raise InputError(f"target column {target!r} holds the same value ({yf[0]:g}) in every row: there is nothing to "
                         "learn; choose another --target")
    return y


def _features(frame, feature_cols, y, target, notes, path, where) -> Dataset:
    import pandas as pd

    if all(pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) for c in feature_cols):
        # the common case: one conversion, no per-column copies
        X = frame[feature_cols].to_numpy(dtype=np.float64, na_value=np.nan)
        return _checked(X, y, [str(c) for c in feature_cols], target, notes, path, where)
    features = frame[feature_cols]
    numeric, encoded, changed = [], [], []
    for col in features.columns:
        s = features[col]
        if pd.api.types.is_bool_dtype(s):
            s = s.astype(float)
        if pd.api.types.is_numeric_dtype(s):
            numeric.append(s.astype(np.float64))
            continue
        conv = pd.to_numeric(s, errors="coerce")
        n_given, n_numbers = int(s.notna().sum()), int(conv.notna().sum())
        if n_numbers == n_given:
            numeric.append(conv.astype(np.float64))
            continue
        if n_numbers >= NUMERIC_SHARE * n_given:  # a numeric column with a few text cells
            text_rows = np.flatnonzero((conv.isna() & s.notna()).to_numpy()).tolist()
            examples = ", ".join(sorted({repr(str(v)) for v in s[conv.isna() & s.notna()].iloc[:3]}))
            notes.append(f"column {col!r} holds text ({examples}) at row(s) {_rows(text_rows)}: read as missing "
                         "(those rows count as rows with empty cells)")
            changed.append(str(col))
            numeric.append(conv.astype(np.float64))
            continue
        changed.append(str(col))
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
    ds = _checked(X, y, names, target, notes, path, where)
    ds.changed_columns = changed
    return ds


FLOAT32_MAX = float(np.finfo(np.float32).max)


def _float32_note(X, y, names, target) -> list[str]:
    """Say where values exceed float32's range: Keras trains in float32, where they are infinite."""
    with np.errstate(invalid="ignore"):
        if not (np.nanmax(np.abs(X), initial=0.0) > FLOAT32_MAX or np.nanmax(np.abs(y), initial=0.0) > FLOAT32_MAX):
            return []
        big = np.c_[np.abs(X) > FLOAT32_MAX, np.abs(y) > FLOAT32_MAX] & np.isfinite(np.c_[X, y])
    if not big.any():
        return []
    cols = [(names + target.split(","))[c] for c in np.flatnonzero(big.any(axis=0))]
    rows = np.flatnonzero(big.any(axis=1)).tolist()
    return [f"column(s) {', '.join(map(repr, cols))} hold values beyond float32's range (3.4e38) at row(s) {_rows(rows)}: "
            "Keras trains in float32, where they become infinite; rescale them"]


def _checked(X, y, names, target, notes, path, where) -> Dataset:
    """Refuse empty columns and cells that overflowed float64."""
    with np.errstate(over="ignore", invalid="ignore"):
        all_finite = np.isfinite(X.sum(axis=0)).all() and np.isfinite(y.sum())
    notes.extend(_float32_note(X, y, names, target))
    if all_finite:
        return Dataset(X=X, y=y, feature_names=names, target_name=target, notes=notes, path=path)  # no NaN, no inf
    all_nan = np.isnan(X).all(axis=0)
    if all_nan.any():
        cols = [names[i] for i in np.flatnonzero(all_nan)]
        raise InputError(f"column(s) {', '.join(map(repr, cols))} are empty in every row: drop them from the file")
    if np.isinf(y).any() or np.isinf(X).any():
        full = np.c_[X, y]
        r, c = np.argwhere(np.isinf(full))[0]
        col = (names + target.split(","))[c]
        raise InputError(f"{where}: row {int(r)}, column {col!r} holds a value too large for float64 (it reads as infinity): fix the value or remove the row")
    return Dataset(X=X, y=y, feature_names=names, target_name=target, notes=notes, path=path)
