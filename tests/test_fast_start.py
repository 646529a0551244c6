"""The verbs that train nothing import neither Keras nor JAX; `import fitdoctor` stays lazy (issue 14, item 5)."""
import json
import os
import subprocess
import sys

import pytest

from conftest import INCOME_CSV

HEAVY = ("keras", "jax", "tensorflow", "torch")


def modules_after(argv) -> tuple[int, list[str]]:
    """Run fitdoctor.cli.main(argv) in a fresh interpreter; (exit code, heavy modules it imported)."""
    code = ("import sys, json, io, contextlib\n"
            "from fitdoctor.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = main({argv!r})\n"
            f"print(json.dumps([rc, sorted(m for m in {HEAVY!r} if m in sys.modules)]))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rc, loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    return rc, loaded


@pytest.mark.parametrize("argv", [
    ["check", INCOME_CSV, "--target", "income", "--no-probe"],
    ["check", INCOME_CSV, "--target", "income", "--no-probe", "--format", "json"],
    ["explain", "adam-large-target"],
    ["rules"],
    ["check-log", "LOG", "--target-var", "6.9e7"],
    ["check-log", "LOG", "--data", INCOME_CSV, "--target", "income", "--optimizer", "adam", "--lr", "0.01"],
])
def test_verbs_that_train_nothing_import_neither_keras_nor_jax(tmp_path, argv):
    log = tmp_path / "training.log"
    log.write_text("epoch,loss\n" + "\n".join(f"{e},{6.9e7 * 0.999 ** e}" for e in range(50)) + "\n")
    rc, loaded = modules_after([str(log) if a == "LOG" else a for a in argv])
    assert rc in (0, 1)
    assert loaded == []


def test_import_fitdoctor_is_lazy():
    proc = subprocess.run([sys.executable, "-c", "import sys, fitdoctor; fitdoctor.__version__; "
                           "print(sorted(m for m in sys.modules if m.split('.')[0] in "
                           "('keras', 'jax', 'tensorflow', 'pandas', 'sklearn', 'matplotlib', 'scipy')))"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr
