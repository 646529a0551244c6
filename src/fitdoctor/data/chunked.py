"""Reading a large CSV or Parquet file in chunks, with bounded memory, for ``fitdoctor check``.

A file with more than ``SAMPLE_ROWS`` data rows is read ``CHUNK_ROWS`` rows at a time. From the
chunks a seeded uniform sample of ``SAMPLE_ROWS`` rows is kept (bottom-k sampling: every row gets
a random key, the rows with the smallest keys stay), in the file's row order, plus every row with
an empty cell (so that the checks on missing values still see them); the checks run on that sample. Rows with empty cells are counted exactly over the whole file, by their row numbers
in the file. At most one chunk and the sample are held at a time: :attr:`ChunkedRead.peak_bytes`
is that bound, measured, and its note says so. Smaller files are read whole, as before.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError
from .loading import Dataset, load_dataset, prepare_arrays

#: files with more data rows than this are read in chunks and checked on a seeded sample of this many rows
SAMPLE_ROWS = 200_000
#: rows read at a time
CHUNK_ROWS = 65_536
_ROW_COLUMN = "__fitdoctor_row__"


@dataclass
class ChunkedRead:
    """What reading in chunks did: the sampled :class:`Dataset` and how memory was bounded."""

    dataset: Dataset
    n_rows: int  # data rows in the file
    rows: np.ndarray = field(repr=False)  # the file row number (0-based) of each sampled row
    chunk_rows: int = CHUNK_ROWS
    peak_bytes: int = 0  # the most bytes of rows held at once (the sample + one chunk), measured
    empty_rows: int = 0  # rows with an empty cell, over the whole file
    first_empty_rows: list[int] = field(default_factory=list)

    def note(self) -> str:
        text = (f"read {self.n_rows:,} rows in chunks of {self.chunk_rows:,}, holding at most "
                f"{self.peak_bytes / 2**20:.1f} MiB of rows at a time; the checks ran on a seeded sample of "
                f"{len(self.rows):,} rows (row numbers in the findings count rows of the sample)")
        if self.empty_rows:
            shown = ", ".join(str(r) for r in self.first_empty_rows)
            text += (f"; {self.empty_rows:,} row(s) of the file have empty cells: rows {shown}"
                     + (" ..." if self.empty_rows > len(self.first_empty_rows) else ""))
        return text


def _csv_chunks(path: str, chunk_rows: int):
    import pandas as pd

    from .loading import _sniff_delimiter, csv_read_errors

    with csv_read_errors(path):
        yield from pd.read_csv(path, sep=_sniff_delimiter(path), chunksize=chunk_rows)


def _parquet_chunks(path: str, chunk_rows: int):
    try:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises many types
        raise InputError(f"cannot read {path} as Parquet ({type(exc).__name__}): check that it is a Parquet file") from None
    for batch in pf.iter_batches(batch_size=chunk_rows):
        yield batch.to_pandas()


def is_parquet(path: str) -> bool:
    return os.path.splitext(path)[1].lower() in (".parquet", ".pq")


def estimated_rows(path: str) -> int:
    """Data rows in ``path``: exact for Parquet (its metadata), estimated from the first 64 KiB for CSV."""
    if is_parquet(path):
        try:
            import pyarrow.parquet as pq

            return int(pq.ParquetFile(path).metadata.num_rows)
        except Exception:
            return 0
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(64 * 1024)
    lines = head.count(b"\n")
    if size <= len(head) or lines < 2:
        return max(lines - 1, 0)
    return int(size / (len(head) / lines)) - 1


def read_in_chunks(path: str, target: str, *, several_targets: bool = True, sample_rows: int = SAMPLE_ROWS,
                   chunk_rows: int = CHUNK_ROWS, seed: int = 0) -> ChunkedRead:
    """Read ``path`` (CSV or Parquet) ``chunk_rows`` rows at a time, keeping a seeded sample of ``sample_rows``."""
    import pandas as pd

    path = os.fspath(path)
    if not target:
        raise InputError("no target column given: add --target COLUMN")
    rng = np.random.default_rng(seed)
    chunks = _parquet_chunks(path, chunk_rows) if is_parquet(path) else _csv_chunks(path, chunk_rows)
    kept = None  # the sample so far, with each row's key and file row number
    keys = np.zeros(0)
    n, peak, empty, first_empty = 0, 0, 0, []
    for chunk in chunks:
        rows = np.arange(n, n + len(chunk))
        missing = chunk.isna().any(axis=1).to_numpy()
        empty += int(missing.sum())
        first_empty += rows[missing][: max(0, 10 - len(first_empty))].tolist()
        chunk = chunk.assign(**{_ROW_COLUMN: rows})
        chunk_keys = rng.random(len(chunk)) - missing  # rows with an empty cell always stay (the checks report them)
        held = int(chunk.memory_usage(deep=True).sum()) + (int(kept.memory_usage(deep=True).sum()) if kept is not None else 0)
        peak = max(peak, held)
        merged = chunk if kept is None else pd.concat([kept, chunk], ignore_index=True)
        all_keys = np.concatenate([keys, chunk_keys])
        if len(merged) > sample_rows:
            stay = np.argpartition(all_keys, sample_rows - 1)[:sample_rows]
            merged, all_keys = merged.iloc[stay].reset_index(drop=True), all_keys[stay]
        kept, keys = merged, all_keys
        n += len(chunk)
    if kept is None or n == 0:
        raise InputError(f"{path} has a header but no data rows: give at least two rows")
    order = np.argsort(kept[_ROW_COLUMN].to_numpy(), kind="stable")
    kept = kept.iloc[order].reset_index(drop=True)
    sampled_rows = kept.pop(_ROW_COLUMN).to_numpy()
    columns = [str(c) for c in kept.columns]
    kept.columns = columns
    targets: str | list[str] = target
    if target not in columns:
        parts = [t.strip() for t in target.split(",")]
        if not (several_targets and len(parts) > 1 and all(t in columns for t in parts)):
            from .loading import _target_error

            missing = next((t for t in parts if t not in columns), target)
            raise _target_error(missing, columns, path)
        targets = parts
    ds = prepare_arrays(kept, targets, path=path)
    return ChunkedRead(ds, n, sampled_rows, chunk_rows, peak, empty, first_empty)


def load_for_check(path: str, target: str | None, *, several_targets: bool = True, seed: int = 0) -> Dataset:
    """``load_dataset`` for files up to ``SAMPLE_ROWS`` rows; larger CSV/Parquet files read in chunks
    (:func:`read_in_chunks`), with a note that states the rows read, the sample and the memory held."""
    p = os.fspath(path)
    if (p.lower().endswith(".npz") or not os.path.isfile(p) or not target
            or estimated_rows(p) <= SAMPLE_ROWS):
        return load_dataset(p, target, several_targets=several_targets)
    read = read_in_chunks(p, target, several_targets=several_targets, sample_rows=SAMPLE_ROWS, chunk_rows=CHUNK_ROWS,
                          seed=seed)
    read.dataset.notes.insert(0, read.note())
    return read.dataset
