"""`check` on large files: CSV and Parquet read in chunks with bounded memory (data/chunked.py)."""
import numpy as np
import pandas as pd
import pytest

from fitdoctor.data import chunked
from fitdoctor.errors import InputError


def _frame(n=3000):
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n) * 100, "city": rng.choice(["x", "y"], n)})
    df["income"] = 3 * df["a"] + df["b"] + rng.normal(size=n)
    df.loc[[5, n * 2 // 5, n - 1], "b"] = np.nan
    return df


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_read_in_chunks_keeps_a_seeded_sample_and_counts_empty_rows_over_the_file(tmp_path, ext):
    df = _frame()
    path = tmp_path / f"big.{ext}"
    df.to_csv(path, index=False) if ext == "csv" else df.to_parquet(path)
    read = chunked.read_in_chunks(str(path), "income", sample_rows=400, chunk_rows=500, seed=1)
    assert read.n_rows == 3000
    assert len(read.rows) == 400 and np.all(np.diff(read.rows) > 0)
    ds = read.dataset
    assert len(ds.X) == 400 and ds.feature_names[:2] == ["a", "b"]
    # rows with empty cells are always in the sample (the checks on missing values see them)
    assert {5, 1200, 2999} <= set(read.rows.tolist())
    assert int((~ds.finite_rows).sum()) == 3
    # every sampled row is the file's row with that number
    np.testing.assert_allclose(ds.y, df["income"].to_numpy()[read.rows])
    # rows with empty cells: counted over the whole file, by file row number
    assert read.empty_rows == 3 and read.first_empty_rows == [5, 1200, 2999]
    # memory held: the sample and one chunk, well under the whole file read at once
    assert 0 < read.peak_bytes < df.memory_usage(deep=True).sum() / 2
    note = read.note()
    assert "read 3,000 rows in chunks of 500" in note and "sample of 400 rows" in note and "MiB" in note
    again = chunked.read_in_chunks(str(path), "income", sample_rows=400, chunk_rows=500, seed=1)
    assert np.array_equal(again.rows, read.rows)


def test_load_for_check_reads_large_files_in_chunks_and_small_ones_whole(tmp_path, monkeypatch):
    df = _frame(1000)
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    whole = chunked.load_for_check(str(path), "income")
    assert len(whole.y) == 1000 and not any("chunks" in n for n in whole.notes)
    monkeypatch.setattr(chunked, "SAMPLE_ROWS", 300)
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 256)
    part = chunked.load_for_check(str(path), "income")
    assert len(part.y) == 300
    assert "read 1,000 rows in chunks of 256" in part.notes[0]


def test_unknown_target_is_an_input_error(tmp_path):
    path = tmp_path / "data.csv"
    _frame(50).to_csv(path, index=False)
    with pytest.raises(InputError, match="incme|income|columns"):
        chunked.read_in_chunks(str(path), "incme", sample_rows=10, chunk_rows=20)


def test_check_command_reads_a_large_file_in_chunks_and_says_so(tmp_path, monkeypatch, capsys):
    from fitdoctor.cli import main

    path = tmp_path / "data.csv"
    _frame(1000).to_csv(path, index=False)
    monkeypatch.setattr(chunked, "SAMPLE_ROWS", 300)
    monkeypatch.setattr(chunked, "CHUNK_ROWS", 256)
    code = main(["check", str(path), "--target", "income", "--no-probe", "--format", "json"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "read 1,000 rows in chunks of 256" in out
