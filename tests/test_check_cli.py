"""fitdoctor check on the command line: the acceptance cases of the check issue and bad input."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import INCOME_CSV
from fitdoctor.cli import main


def run_cli(*args, cwd=None):
    """Run the installed CLI in a fresh process (exit code, stdout, stderr)."""
    proc = subprocess.run([sys.executable, "-m", "fitdoctor", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=600)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture(scope="module")
def income_adam():
    return run_cli("check", INCOME_CSV, "--target", "income", "--optimizer", "adam", "--lr", "0.01",
                   "--epochs", "200", "--batch-size", "32", "--format", "json")


def test_income_adam_exits_1_with_the_seed_003_findings(income_adam):
    code, out, err = income_adam
    assert code == 1, err
    report = json.loads(out)
    by_name = {f["name"]: f for f in report["findings"]}
    assert {"nan-inf-data", "target-scale", "adam-large-target"} <= set(by_name)
    # the two empty 'experience' cells, by row (counting data rows from 0)
    assert by_name["nan-inf-data"]["evidence"]["rows"] == [6, 14]
    alt = by_name["adam-large-target"]["evidence"]
    assert alt["steps_given"] == 200 and alt["steps_needed"] > 1000 * 200
    # the probe confirmed it: standardising the targets alone ended far lower
    assert by_name["adam-large-target"]["confirmed"] is True
    assert report["reference"]["linear_mse"] == pytest.approx(1.3046e6, rel=1e-3)


def test_income_sgd_does_not_report_adam_large_target():
    code, out, err = run_cli("check", INCOME_CSV, "--target", "income", "--optimizer", "sgd", "--lr", "0.01",
                             "--epochs", "200", "--batch-size", "32", "--format", "json", "--no-probe")
    names = [f["name"] for f in json.loads(out)["findings"]]
    assert code == 1
    assert "adam-large-target" not in names
    assert "lr-too-high" in names   # raw ages ~40: SGD at 0.01 is above 2 / lambda_max


def test_text_output_is_one_line_per_finding_and_a_summary(tmp_path, capsys):
    code = main(["check", INCOME_CSV, "--target", "income", "--lr", "0.01", "--no-probe"])
    out = capsys.readouterr().out.strip().splitlines()
    finding_lines = [l for l in out if l[:1] in "DMOT" and l[1:4].isdigit()]
    assert code == 1
    assert any(l.startswith("O301 adam-large-target: ") for l in finding_lines)
    assert out[-1].startswith("Found ") and "fixable" in out[-1]


def test_markdown_and_output_file(tmp_path):
    target = tmp_path / "sub" / "report.md"
    code = main(["check", INCOME_CSV, "--target", "income", "--no-probe", "--format", "markdown", "--output", str(target)])
    text = target.read_text()
    assert code == 1 and text.startswith("# fitdoctor report") and "`target-scale`" in text


def test_clean_data_exits_0(tmp_path, capsys):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = X @ [0.5, -0.3, 0.8] + 0.1 * rng.standard_normal(300)
    y = (y - y.mean()) / y.std()
    path = tmp_path / "clean.csv"
    np.savetxt(path, np.c_[X, y], delimiter=",", header="a,b,c,y", comments="")
    code = main(["check", str(path), "--target", "y", "--lr", "0.01", "--epochs", "100"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "All checks passed" in out


def test_semicolon_csv_parquet_and_npz_are_read(tmp_path, capsys):
    import pandas as pd

    df = pd.read_csv(INCOME_CSV).dropna()
    df.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    df.to_parquet(tmp_path / "data.parquet")
    np.savez(tmp_path / "data.npz", X=df[["age", "experience"]].to_numpy(), y=df["income"].to_numpy())
    for path, target in ((tmp_path / "semi.csv", "income"), (tmp_path / "data.parquet", "income"), (tmp_path / "data.npz", "y")):
        assert main(["check", str(path), "--target", target, "--no-probe", "--format", "json"]) == 1
        report = json.loads(capsys.readouterr().out)
        assert report["data"]["n_rows"] == 18
        assert "target-scale" in [f["name"] for f in report["findings"]]


def test_text_columns_are_one_hot_encoded_and_reported(tmp_path, capsys):
    path = tmp_path / "cities.csv"
    rows = ["city,size,price"] + [f"{c},{s},{3 * s + (10 if c == 'b' else 0)}" for c, s in zip("abab" * 10, range(40))]
    path.write_text("\n".join(rows))
    main(["check", str(path), "--target", "price", "--no-probe", "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert any("one-hot" in n and "city" in n for n in report["notes"])
    assert report["data"]["feature_names"] == ["city_a", "city_b", "size"]  # in place, in file order


BAD_INPUTS = {
    "missing file": (None, "does not exist"),
    "misspelled target": ("a,b,income\n1,2,3\n2,3,4\n", "did you mean 'income'"),
    "empty file": ("", "is empty"),
    "one row": ("a,b,income\n1,2,3\n", "only one data row"),
    "all-NaN column": ("a,b,income\n1,,3\n2,,4\n3,,5\n", "empty in every row"),
    "non-numeric target": ("a,income\n1,cat\n2,dog\n", "not numeric"),
    "float64 overflow": ("a,income\n1,1e400\n2,3\n3,4\n", "too large for float64"),
    "no feature column": ("income\n1\n2\n3\n", "no feature column besides the target"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path):
    content, expected = BAD_INPUTS[case]
    path = tmp_path / "data.csv"
    if content is not None:
        path.write_text(content)
    target = "Income" if case == "misspelled target" else "income"
    code, out, err = run_cli("check", str(path), "--target", target, "--no-probe")
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert expected in err


def test_a_file_that_is_not_a_keras_model_is_exit_2(tmp_path):
    bogus = tmp_path / "model.keras"
    bogus.write_bytes(b"PK\x03\x04 not really a zip")
    code, out, err = run_cli("check", INCOME_CSV, "--target", "income", "--model", str(bogus), "--no-probe")
    assert code == 2 and "Traceback" not in err and "Keras model" in err


def test_bad_option_values_are_exit_2():
    code, out, err = run_cli("check", INCOME_CSV, "--target", "income", "--epochs", "-3")
    assert code == 2 and "positive whole number" in err and len(err.strip().splitlines()) == 1


def test_pyproject_selectors_apply_and_unknown_ones_say_where(tmp_path):
    (tmp_path / "pyproject.toml").write_text('[tool.fitdoctor]\nignore = ["D", "O304"]\n')
    code, out, err = run_cli("check", INCOME_CSV, "--target", "income", "--no-probe", "--format", "json", cwd=tmp_path)
    names = {f["name"] for f in json.loads(out)["findings"]}
    assert "adam-large-target" in names and not any(f.startswith(("nan", "target")) for f in names)
    (tmp_path / "pyproject.toml").write_text('[tool.fitdoctor]\nselect = ["Z9"]\n')
    code, out, err = run_cli("check", INCOME_CSV, "--target", "income", "--no-probe", cwd=tmp_path)
    assert code == 2 and "pyproject.toml [tool.fitdoctor]" in err


def test_explain_every_code_and_name(capsys):
    from fitdoctor.rules import RULES

    for rule in RULES:
        for key in (rule.code, rule.name):
            assert main(["explain", key]) == 0
            out = capsys.readouterr().out
            assert f"{rule.name} ({rule.code})" in out and "## Why is this bad?" in out


def test_help_teaches():
    code, out, err = run_cli("check", "--help")
    assert code == 0 and "examples:" in out and "exit codes" in out


@pytest.mark.skipif(__import__("importlib.util").util.find_spec("tensorflow") is None,
                    reason="TensorFlow is not installed: nothing to keep unloaded")
def test_jax_commands_do_not_load_tensorflow_and_a_saved_model_still_loads(tmp_path):
    """With TensorFlow installed (the test extras), a JAX-backend command neither imports it nor
    prints its start-up log lines; --model files and the repaired model.keras still work."""
    script = (
        "import sys\nfrom fitdoctor.cli import main\n"
        f"codes = [main(['check', {INCOME_CSV!r}, '--target', 'income', '--epochs', '20', '--format', 'json', "
        f"'--output', {str(tmp_path / 'c.json')!r}]),\n"
        f"         main(['fix', {INCOME_CSV!r}, '--target', 'income', '--epochs', '50', '--output', {str(tmp_path / 'fixed')!r}]),\n"
        f"         main(['check', {INCOME_CSV!r}, '--target', 'income', '--epochs', '20', '--no-probe', "
        f"'--model', {str(tmp_path / 'fixed' / 'model.keras')!r}])]\n"
        "print(codes, 'tensorflow' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    codes, tf_loaded = proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert json.loads(codes)[1] in (0, 1) and json.loads(codes)[2] in (0, 1)   # ran, not an input error (2)
    assert tf_loaded == "False"
    assert "oneDNN" not in proc.stderr and "absl::InitializeLog" not in proc.stderr
