"""Nothing of the user's is lost: refusals before any work, atomic writes, a lock per output folder,
extreme numbers and silent data changes (issue 13)."""
import hashlib
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

from conftest import INCOME_CSV
from fitdoctor.cli import main
from fitdoctor.errors import InputError
from fitdoctor.safe_io import LOCK_NAME, DirectoryLock, OutputDir, atomic_path, atomic_write


def tree_hash(folder) -> dict:
    """Every file under ``folder`` (relative path -> sha256)."""
    out = {}
    for root, _dirs, files in os.walk(folder):
        for f in files:
            p = os.path.join(root, f)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def one_error_line(capsys):
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture()
def user_folder(tmp_path):
    """A folder holding the user's own model.keras, fix.py and data.npz (with extra arrays)."""
    import keras

    folder = tmp_path / "work"
    folder.mkdir()
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.save(folder / "model.keras")
    (folder / "fix.py").write_text("print('my own script')\n")
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 2))
    np.savez(folder / "data.npz", X=X, y=X @ [1.0, 2.0], X_test=X[:5], y_test=X[:5, 0])
    return folder


def test_fix_refuses_a_folder_holding_its_files_and_leaves_it_byte_identical(user_folder, capsys):
    before = tree_hash(user_folder)
    code = main(["fix", INCOME_CSV, "--target", "income", "--epochs", "5", "--output", str(user_folder)])
    line = one_error_line(capsys)
    assert code == 2
    assert "model.keras" in line and "fix.py" in line and "data.npz" in line and "--force" in line
    assert tree_hash(user_folder) == before


def test_force_never_writes_over_the_model_input(user_folder, capsys):
    before = tree_hash(user_folder)
    code = main(["fix", str(user_folder / "data.npz"), "--model", str(user_folder / "model.keras"), "--epochs", "5",
                 "--output", str(user_folder), "--force"])
    line = one_error_line(capsys)
    assert code == 2 and "never writes over its inputs" in line
    assert tree_hash(user_folder) == before


def test_force_never_writes_over_the_data_input(user_folder, capsys):
    before = tree_hash(user_folder)
    code = main(["fix", str(user_folder / "data.npz"), "--epochs", "5", "--output", str(user_folder), "--force"])
    assert code == 2 and "data.npz" in one_error_line(capsys)
    assert tree_hash(user_folder) == before
    # the input's extra arrays are still there
    assert set(np.load(user_folder / "data.npz").files) == {"X", "y", "X_test", "y_test"}


@pytest.mark.parametrize("argv", [
    ["check", "{data}", "--target", "income", "--no-probe", "-o", "{data}"],
    ["check", "{data}", "--target", "income", "--no-probe", "--output", "{link}"],
    ["compare", "{data}", "--target", "income", "-o", "{data}"],
    ["lr-find", "{data}", "--target", "income", "-o", "{data}"],
    ["check-log", "{log}", "--target-var", "10", "-o", "{log}"],
    ["check-log", "{log}", "--data", "{data}", "--target", "income", "-o", "{data}"],
])
def test_output_equal_to_an_input_is_exit_2_and_the_input_is_unchanged(tmp_path, capsys, argv):
    data = tmp_path / "income.csv"
    data.write_bytes(open(INCOME_CSV, "rb").read())
    log = tmp_path / "training.log"
    log.write_text("epoch,loss\n0,10\n1,5\n2,3\n")
    link = tmp_path / "link.csv"
    link.symlink_to(data)
    before = tree_hash(tmp_path)
    code = main([a.format(data=data, log=log, link=link) for a in argv])
    assert code == 2 and "input" in one_error_line(capsys)
    assert tree_hash(tmp_path) == before


def test_an_output_name_taken_by_a_folder_is_refused_before_any_work(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "model.keras").mkdir(parents=True)
    code = main(["fix", INCOME_CSV, "--target", "income", "--epochs", "5", "--output", str(out), "--force"])
    assert code == 2 and "folder" in one_error_line(capsys)
    assert sorted(os.listdir(out)) == ["model.keras"]
    (tmp_path / "notes.txt").write_text("mine")
    code = main(["fix", INCOME_CSV, "--target", "income", "--output", str(tmp_path / "notes.txt")])
    assert code == 2 and "is a file" in one_error_line(capsys)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "report.json"
    target.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(str(target)) as tmp:
            with open(tmp, "w") as fh:
                fh.write("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and os.listdir(tmp_path) == ["report.json"]
    atomic_write(str(target), "new")
    assert target.read_text() == "new" and os.listdir(tmp_path) == ["report.json"]


def test_output_dir_is_all_or_nothing(tmp_path):
    out = tmp_path / "result"
    with pytest.raises(RuntimeError):
        with OutputDir(str(out), ["a.txt", "b.txt"]) as od:
            open(od.path("a.txt"), "w").write("a")
            raise RuntimeError("the repair failed")
    assert not out.exists()  # created by the run, removed with it
    with OutputDir(str(out), ["a.txt", "b.txt"]) as od:
        open(od.path("a.txt"), "w").write("a")
        open(od.path("b.txt"), "w").write("b")
        od.commit()
    assert sorted(os.listdir(out)) == ["a.txt", "b.txt"]  # no temporary folder, no lock left
    with pytest.raises(InputError, match="already holds a.txt, b.txt"):
        OutputDir(str(out), ["a.txt", "b.txt"]).__enter__()
    with OutputDir(str(out), ["a.txt", "b.txt"], force=True) as od:
        open(od.path("a.txt"), "w").write("A")
        raise_later = od  # only a.txt in the new result: b.txt stays from the previous one
        od.commit()
    assert (out / "a.txt").read_text() == "A" and (out / "b.txt").read_text() == "b"
    assert raise_later.committed == [str(out / "a.txt")]


def test_a_second_run_into_a_locked_folder_is_refused_and_a_stale_lock_is_taken_over(tmp_path):
    out = tmp_path / "result"
    with OutputDir(str(out), ["a.txt"]):
        assert os.path.exists(out / LOCK_NAME)
        with pytest.raises(InputError, match="in use by another fitdoctor run"):
            OutputDir(str(out), ["a.txt"]).__enter__()
    assert not out.exists()
    out.mkdir()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (out / LOCK_NAME).write_text(dead.stdout)  # a run that was killed
    lock = DirectoryLock(str(out)).acquire()
    assert (out / LOCK_NAME).read_text().strip() == str(os.getpid())
    lock.release()
    assert os.listdir(out) == []


def test_two_concurrent_lock_attempts_one_wins(tmp_path):
    wins, errors = [], []
    barrier = threading.Barrier(8)

    def attempt():
        barrier.wait()
        try:
            wins.append(DirectoryLock(str(tmp_path)).acquire())
        except InputError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and len(errors) == 7


@pytest.mark.slow
def test_two_concurrent_fix_runs_one_result_and_one_exit_2(tmp_path):
    out = tmp_path / "fixed"
    cmd = [sys.executable, "-m", "fitdoctor", "fix", INCOME_CSV, "--target", "income", "--epochs", "20", "--output", str(out)]
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    results = [(p.wait(timeout=600), p.stdout.read(), p.stderr.read()) for p in procs]
    codes = sorted(r[0] for r in results)
    assert codes[0] in (0, 1) and codes[1] == 2, results
    loser = next(r for r in results if r[0] == 2)
    assert "Traceback" not in loser[2] and len(loser[2].strip().splitlines()) == 1
    assert sorted(f for f in os.listdir(out)) == ["data.npz", "fix.py", "model.keras", "report.html", "report.json"]
    import keras

    keras.saving.load_model(out / "model.keras")
    json.loads((out / "report.json").read_text())


def write_csv(path, X, y, names=("a", "b", "y")):
    rows = [",".join(names)] + [",".join(map(repr, list(r) + [t])) for r, t in zip(X.tolist(), y.tolist())]
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("value", [1e160, 1e300, -1e300])
@pytest.mark.parametrize("where", ["feature", "target"])
def test_extreme_cells_are_diagnosed_not_crashed(tmp_path, capsys, value, where):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    y = X @ [1.0, 2.0] + 0.1 * rng.normal(size=60)
    if where == "feature":
        X[4, 0] = value
    else:
        y[4] = value
    write_csv(tmp_path / "d.csv", X, y)
    code = main(["check", str(tmp_path / "d.csv"), "--target", "y", "--no-probe", "--format", "json"])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in err
    report = json.loads(out)
    assert any("float32" in n and "row(s) 4" in n for n in report["notes"])
    if where == "feature":  # the least-squares reference is exact on the other rows' scale
        assert report["reference"]["mean_mse"] == pytest.approx(np.var(y))


def test_least_squares_is_scale_free_up_to_float64s_range():
    from fitdoctor.reference import compute_reference

    rng = np.random.default_rng(2)
    X = rng.normal(size=(80, 2))
    y = X @ [1.0, -2.0] + 0.3 * rng.normal(size=80)
    plain = compute_reference(X, y, nonlinear=False)
    for s in (1e160, 1e300):
        scaled = compute_reference(X * [s, 1.0], y, nonlinear=False)
        assert scaled.linear_mse == pytest.approx(plain.linear_mse, rel=1e-9)
        assert scaled.linear_coef[0] * s == pytest.approx(plain.linear_coef[0], rel=1e-9)


def test_constant_target_is_exit_2_in_one_line(tmp_path, capsys):
    X = np.random.default_rng(3).normal(size=(40, 2))
    write_csv(tmp_path / "c.csv", X, np.full(40, 5.0))
    for verb in (["check", "--no-probe"], ["fix", "--output", str(tmp_path / "o")], ["compare"]):
        code = main([verb[0], str(tmp_path / "c.csv"), "--target", "y", *verb[1:]])
        assert code == 2 and "same value" in one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_a_numeric_column_with_a_text_cell_is_reported_by_row_not_made_categorical(tmp_path, capsys):
    rng = np.random.default_rng(4)
    rows = ["a,b,y"] + [f"{a:.4f},{b:.4f},{a + 2 * b:.4f}" for a, b in rng.normal(size=(30, 2))]
    rows[4] = "?," + rows[4].split(",", 1)[1]     # data row 3
    rows[18] = rows[18].rsplit(",", 2)[0] + ",,"  + rows[18].rsplit(",", 1)[1]  # empty 'b' in data row 17
    (tmp_path / "q.csv").write_text("\n".join(rows) + "\n")
    assert main(["check", str(tmp_path / "q.csv"), "--target", "y", "--no-probe", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["data"]["feature_names"] == ["a", "b"]  # still one numeric column each
    assert any("'a' holds text ('?') at row(s) 3" in n for n in report["notes"])
    nan = next(f for f in report["findings"] if f["name"] == "nan-inf-data")
    assert nan["evidence"]["rows"] == [3, 17]
    code = main(["compare", str(tmp_path / "q.csv"), "--target", "y", "--epochs", "2", "--format", "json"])
    err = capsys.readouterr().err
    assert code == 0 and "rows 3, 17" in err


def test_several_target_columns_are_refused_never_truncated(tmp_path, capsys):
    # check and fix keep every target column (tests/test_several_targets_cli.py); compare takes one
    X = np.random.default_rng(5).normal(size=(20, 2))
    np.savez(tmp_path / "multi.npz", X=X, y=np.c_[X[:, 0], X[:, 1]])
    assert main(["compare", str(tmp_path / "multi.npz"), "--epochs", "2"]) == 2
    assert "2 columns" in one_error_line(capsys)
    write_csv(tmp_path / "m.csv", X, X[:, 0], names=("a", "b", "c"))
    assert main(["compare", str(tmp_path / "m.csv"), "--target", "b,c", "--epochs", "2"]) == 2
    assert "several target columns" in one_error_line(capsys)


def test_check_log_lists_dropped_rows_and_does_not_claim_finite_inputs(tmp_path, capsys):
    log = tmp_path / "training.log"
    log.write_text("epoch,loss\n0,10\n1,9\n2,nan\n3,nan\n")
    assert main(["check-log", str(log), "--data", INCOME_CSV, "--target", "income", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert any("rows 6, 14" in n for n in report["notes"])
    names = [f["name"] for f in report["findings"]]
    assert "nan-inf-data" in names and "exploding-gradients" not in names
    assert main(["check-log", str(log), "--target-var", "10", "--format", "json"]) == 1
    text = capsys.readouterr().out
    assert "inputs were finite" not in text and "not checked" in text
    (tmp_path / "text.log").write_text("epoch,loss\n0,10\n1,abc\n")
    assert main(["check-log", str(tmp_path / "text.log"), "--target-var", "10"]) == 2
    assert "holds text ('abc') at row(s) 1" in one_error_line(capsys)


@pytest.mark.parametrize("argv, accepted", [
    (["check-log", "L", "--epochs", "-5"], "positive whole number"),
    (["check-log", "L", "--target-var", "nan"], "above 0"),
    (["check-log", "L", "--lr", "-3"], "above 0"),
    (["check", "D", "--target", "income", "--lr", "0"], "above 0"),
    (["check", "D", "--target", "income", "--optimizer", "adamm"], "choose from"),
    (["check", "D", "--target", "income", "--loss", "msee"], "choose from"),
    (["check", "D", "--target", "income", "--seed", "-1"], "0 to 4294967295"),
    (["compare", "D", "--target", "income", "--lr", "1e-2,nan"], "above 0"),
    (["compare", "D", "--target", "income", "--optimizers", "adam,foo"], "choose from"),
    (["compare", "D", "--target", "income", "--epochs", "0"], "positive whole number"),
    (["lr-find", "D", "--target", "income", "--start-lr", "1", "--end-lr", "0.1"], "below --end-lr"),
    (["lr-find", "D", "--target", "income", "--steps", "-1"], "positive whole number"),
    (["fix", "D", "--target", "income", "--batch-size", "0", "-o", "X"], "positive whole number"),
])
def test_senseless_option_values_are_exit_2_saying_what_is_accepted(tmp_path, capsys, argv, accepted):
    log = tmp_path / "l.csv"
    log.write_text("epoch,loss\n0,1\n1,0.5\n")
    argv = [str(log) if a == "L" else INCOME_CSV if a == "D" else str(tmp_path / "x") if a == "X" else a for a in argv]
    assert exit_code(argv) == 2
    assert accepted in one_error_line(capsys)
    assert os.listdir(tmp_path) == ["l.csv"]


def exit_code(argv) -> int:
    """main()'s exit code, whether returned or raised by argparse (SystemExit)."""
    try:
        return main(argv)
    except SystemExit as exc:
        return exc.code


def test_repeated_column_names_are_said_not_renamed_silently(tmp_path, capsys):
    rng = np.random.default_rng(6)
    rows = ["a,b,a,y"] + [f"{a:.3f},{b:.3f},{c:.3f},{a + b - c:.3f}" for a, b, c in rng.normal(size=(20, 3))]
    (tmp_path / "dup.csv").write_text("\n".join(rows) + "\n")
    assert main(["check", str(tmp_path / "dup.csv"), "--target", "y", "--no-probe", "--format", "json"]) in (0, 1)
    report = json.loads(capsys.readouterr().out)
    assert any("'a' read as 'a.1'" in n for n in report["notes"])
