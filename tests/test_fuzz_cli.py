"""Property-based tests of the command line with generated inputs and options (issue 13).

Generated CSV (delimiters, encodings, duplicate names, empty, text, NaN, inf, huge and tiny cells),
Parquet and .npz files (shapes, dtypes) and option values go through ``fitdoctor.cli.main``
in-process (``check --no-probe``, ``check-log``, ``explain``): for every example the exit code is
0, 1 or 2, no traceback, exit 2 means exactly one line on stderr, nothing outside the output path
changed, and every row left out of the analysis is listed. Fixed seed (derandomize), bounded
examples: 540 cases in all.
"""
import contextlib
import hashlib
import io
import json
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from fitdoctor.cli import main

SETTINGS = dict(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
N_CSV, N_PARQUET, N_NPZ, N_OPTIONS, N_LOG = 220, 70, 90, 100, 60   # 540 cases


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def folder_hash(folder, skip=()):
    digests = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            if os.path.relpath(p, folder) in skip:
                continue
            with open(p, "rb") as fh:
                digests[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return digests


def check_contract(code, out, err):
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "Traceback" not in out, err
    if code == 2:
        assert len(err.strip().splitlines()) == 1, err


def run_in_folder(files: dict, argv_for, output: str | None = None):
    """Write ``files`` into a fresh folder, run, and check the contract and that only ``output`` changed."""
    with tempfile.TemporaryDirectory() as folder:
        for name, content in files.items():
            with open(os.path.join(folder, name), "wb") as fh:
                fh.write(content)
        before = folder_hash(folder)
        argv = argv_for(folder)
        code, out, err = run_cli(argv)
        event(f"exit {code}")
        if os.environ.get("FUZZ_EVENTS"):
            event(err.strip()[:60])
        check_contract(code, out, err)
        out_rel = os.path.relpath(output(folder), folder) if callable(output) else None
        after = folder_hash(folder, skip=(out_rel,) if out_rel else ())
        assert after == before, (argv, err)
        leftovers = [n for n in os.listdir(folder) if n.startswith(".fitdoctor")]
        assert not leftovers
        report = None
        if code in (0, 1) and out_rel and os.path.exists(os.path.join(folder, out_rel)):
            with open(os.path.join(folder, out_rel), encoding="utf-8") as fh:
                text = fh.read()
            report = json.loads(text) if "--format" in argv and argv[argv.index("--format") + 1] == "json" else None
        return code, out, err, report


# -- cells and tables ---------------------------------------------------------------------------
finite = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.integers(-1000, 1000),
                   st.sampled_from([1e160, -1e300, 1e300, 1e-300, 5e-324, 3.4e38, 0.0]))
special = st.sampled_from(["", "nan", "inf", "-inf", "?", "abc", "1,5", "NA", "'x'", "é", "1e400"])
cell = st.one_of(finite, finite, finite, finite, finite, finite, finite, finite, special)
NAMES = ["a", "b", "y", "x 1", "é", "a"]


@st.composite
def csv_files(draw):
    n_cols = draw(st.integers(1, 4))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=n_cols, max_size=n_cols,
                          unique=draw(st.integers(0, 4)) > 0))
    n_rows = draw(st.integers(0, 25))
    mess = draw(st.sampled_from([finite, st.one_of(finite, finite, finite, st.just("")), cell]))  # clean to messy
    rows = [[draw(mess) for _ in range(n_cols)] for _ in range(n_rows)]
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-8-sig"]))

    def fmt(v):
        text = repr(v) if isinstance(v, float) else str(v)
        return f'"{text}"' if sep in text or "," in text else text

    lines = [sep.join(names)] + [sep.join(fmt(v) for v in r) for r in rows]
    body = "\n".join(lines) + ("\n" if draw(st.booleans()) else "")
    target = draw(st.sampled_from(names + names + ["missing"]))
    return body.encode(encoding, errors="replace"), target, n_rows


def rows_listed(report) -> set:
    listed = set()
    for f in report["findings"]:
        if f["name"] == "nan-inf-data":
            listed |= set(f["evidence"].get("rows", []))
    return listed


@settings(max_examples=N_CSV, **SETTINGS)
@given(csv_files(), st.sampled_from(["json", "json", "text", "markdown"]))
def test_check_on_generated_csv(case, fmt):
    body, target, n_rows = case
    code, out, err, report = run_in_folder(
        {"data.csv": body},
        lambda d: ["check", os.path.join(d, "data.csv"), "--target", target, "--no-probe", "--format", fmt,
                   "-o", os.path.join(d, "out", "report.txt")],
        output=lambda d: os.path.join(d, "out", "report.txt"))
    if report is not None:  # every row left out of the analysis is listed by number
        left_out = report["data"]["n_rows"] - report["data"]["n_complete_rows"]
        assert len(rows_listed(report)) == left_out, (report["findings"], report["notes"])


@st.composite
def frames(draw):
    import pandas as pd

    n = draw(st.integers(0, 20))
    cols = {}
    for name in draw(st.lists(st.sampled_from(["a", "b", "c", "y"]), min_size=1, max_size=4, unique=True)):
        kind = draw(st.sampled_from(["float", "int", "str", "bool", "mixed", "float32"]))
        if kind == "float":
            cols[name] = draw(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), finite), min_size=n, max_size=n))
        elif kind == "float32":
            cols[name] = np.asarray(draw(st.lists(st.floats(-1e6, 1e6, width=32), min_size=n, max_size=n)), np.float32)
        elif kind == "int":
            cols[name] = draw(st.lists(st.integers(-10**12, 10**12), min_size=n, max_size=n))
        elif kind == "bool":
            cols[name] = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        elif kind == "str":
            cols[name] = draw(st.lists(st.sampled_from(["p", "q", "r", ""]), min_size=n, max_size=n))
        else:
            cols[name] = [str(v) for v in draw(st.lists(cell, min_size=n, max_size=n))]
    frame = pd.DataFrame(cols)
    target = draw(st.sampled_from(list(cols) + ["nope"]))
    buf = io.BytesIO()
    frame.to_parquet(buf)
    return buf.getvalue(), target


@settings(max_examples=N_PARQUET, **SETTINGS)
@given(frames())
def test_check_on_generated_parquet(case):
    body, target = case
    code, out, err, report = run_in_folder(
        {"data.parquet": body},
        lambda d: ["check", os.path.join(d, "data.parquet"), "--target", target, "--no-probe", "--format", "json",
                   "-o", os.path.join(d, "r.json")],
        output=lambda d: os.path.join(d, "r.json"))
    if report is not None:
        left_out = report["data"]["n_rows"] - report["data"]["n_complete_rows"]
        assert len(rows_listed(report)) == left_out


@st.composite
def npz_files(draw):
    n = draw(st.integers(0, 20))
    x_shape = draw(st.sampled_from([(n, 2), (n, 1), (n,), (n, 2, 2), (n + 1, 2), (n, 0)]))
    y_shape = draw(st.sampled_from([(n,), (n, 1), (n, 2), (n + 2,)]))
    dtype = draw(st.sampled_from(["float64", "float32", "int64", "bool", "U3"]))
    values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), finite)
    size = int(np.prod(x_shape)) + int(np.prod(y_shape))
    flat = np.asarray(draw(st.lists(values, min_size=size, max_size=size)), dtype=np.float64)
    with np.errstate(all="ignore"):
        X = flat[: int(np.prod(x_shape))].reshape(x_shape)
        y = flat[int(np.prod(x_shape)):].reshape(y_shape)
        if dtype != "float64":
            X = X.astype("float32") if dtype == "float32" else np.nan_to_num(X).astype(dtype)
    keys = draw(st.sampled_from([("X", "y"), ("X", "target"), ("features", "y")]))
    buf = io.BytesIO()
    np.savez(buf, **{keys[0]: X, keys[1]: y})
    target = draw(st.sampled_from([None, "y", "target"]))
    return buf.getvalue(), target


@settings(max_examples=N_NPZ, **SETTINGS)
@given(npz_files())
def test_check_on_generated_npz(case):
    body, target = case
    run_in_folder({"data.npz": body},
                  lambda d: ["check", os.path.join(d, "data.npz"), "--no-probe", "--format", "json"]
                  + (["--target", target] if target else []))


NUMBERS = ["0.01", "1", "0", "-3", "nan", "inf", "-inf", "1e-300", "1e300", "abc", "", "5", "-1", "3.5", "4294967296"]
option_values = st.fixed_dictionaries({}, optional={
    "--lr": st.sampled_from(NUMBERS), "--epochs": st.sampled_from(NUMBERS), "--batch-size": st.sampled_from(NUMBERS),
    "--seed": st.sampled_from(NUMBERS), "--optimizer": st.sampled_from(["adam", "SGD", "rmsprop", "foo", ""]),
    "--loss": st.sampled_from(["mse", "huber", "mean_squared_error", "binary_crossentropy", "foo"]),
    "--select": st.sampled_from(["D", "D101,O3", "nan-inf-data", "Z9", "", ","]),
    "--ignore": st.sampled_from(["T", "outliers", "X1"]),
    "--format": st.sampled_from(["text", "json", "markdown", "html", "xml"]),
})
INCOME = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "income.csv")


@settings(max_examples=N_OPTIONS, **SETTINGS)
@given(option_values, st.sampled_from([None, "out/report.txt", "data.csv", "."]))
def test_check_with_generated_options(options, output):
    with open(INCOME, "rb") as fh:
        data = fh.read()
    argv = lambda d: (["check", os.path.join(d, "data.csv"), "--target", "income", "--no-probe"]  # noqa: E731
                      + [x for k, v in options.items() for x in (k, v)]
                      + (["-o", os.path.join(d, output)] if output else []))
    code, out, err, _ = run_in_folder({"data.csv": data}, argv,
                                      output=(lambda d: os.path.join(d, output)) if output == "out/report.txt" else None)
    bad = {"--lr": {"0", "-3", "nan", "inf", "-inf", "abc", ""}, "--epochs": {"0", "-3", "nan", "inf", "-inf", "abc", "", "-1", "3.5", "1e-300", "1e300"},
           "--batch-size": {"0", "-3", "nan", "inf", "-inf", "abc", "", "-1", "3.5", "1e-300", "1e300"},
           "--seed": {"-3", "nan", "inf", "-inf", "abc", "", "-1", "3.5", "1e-300", "1e300", "4294967296", "0.01"},
           "--optimizer": {"foo", ""}, "--loss": {"foo"}, "--format": {"xml"}, "--select": {"Z9"}, "--ignore": {"X1"}}
    if any(options.get(k) in v for k, v in bad.items()) or output in ("data.csv", "."):
        assert code == 2, (options, output, err)


LOG_CELLS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(["", "abc", "1e999", "nan"]))


@settings(max_examples=N_LOG, **SETTINGS)
@given(st.lists(st.tuples(LOG_CELLS, LOG_CELLS), min_size=0, max_size=30),
       st.sampled_from([["--target-var", "10"], ["--target-var", "nan"], ["--epochs", "-5"], ["--lr", "-3"], [],
                        ["--data", "DATA", "--target", "income"], ["--data", "DATA", "--target", "nope"],
                        ["--optimizer", "adam", "--lr", "0.01"]]),
       st.sampled_from(["epoch,loss,val_loss", "epoch;loss", "loss", "epoch,lr"]))
def test_check_log_on_generated_logs(rows, options, header):
    sep = ";" if ";" in header else ","
    n_cols = header.count(sep) + 1
    lines = [header] + [sep.join([str(i)] + [repr(v) if isinstance(v, float) else v for v in r][: n_cols - 1])
                        if n_cols > 1 else (repr(r[0]) if isinstance(r[0], float) else r[0]) for i, r in enumerate(rows)]
    with open(INCOME, "rb") as fh:
        data = fh.read()
    argv = lambda d: ["check-log", os.path.join(d, "train.log"), "--format", "json"] + [  # noqa: E731
        os.path.join(d, "data.csv") if o == "DATA" else o for o in options]
    code, out, err, _ = run_in_folder({"train.log": ("\n".join(lines) + "\n").encode(), "data.csv": data}, argv)
    if options in (["--target-var", "nan"], ["--epochs", "-5"], ["--lr", "-3"]):
        assert code == 2
    if code in (0, 1) and "--data" in options:
        report = json.loads(out)
        assert any("rows 6, 14" in n for n in report["notes"])  # income.csv's two empty cells, by row


@pytest.mark.parametrize("name", ["O301", "adam-large-target", "o301", "Z999", "", "D", "nan-inf-data,outliers"])
def test_explain_any_name(name):
    code, out, err = run_cli(["explain", name])
    check_contract(code, out, err)
