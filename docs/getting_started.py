"""Regenerate docs/getting-started.md: run every command and code block on the bundled income example.

    python docs/getting_started.py > docs/getting-started.md

Every output on the page is what this script captured; tests/test_getting_started.py runs it again
and fails when the page drifts. Times are replaced by "(time varies)", the only part that is not
reproducible.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile

PAGE = [
    ("md", """# Getting started: the income example, end to end

This page walks through fitdoctor on one of the examples that ship with it: 20 people, their
`age` and `experience`, and their `income` in dollars (two cells of `experience` are empty). The
model is a single `Dense(1)` unit trained with Adam at learning rate 0.01 for 200 epochs with
MSE. It does not converge, and the question is why.

Every command and every output below was produced by `docs/getting_started.py` (Keras 3 on the
JAX backend, CPU), and a test reruns it, so the page cannot drift from the code. Training numbers
can differ in the last digits on other machines.

First write the example to a CSV file, as your own data would be:
"""),
    ("sh", "python -c \"import fitdoctor; fitdoctor.load_example('income').frame().to_csv('income.csv', index=False)\""),
    ("md", """
The four steps are: **check** (what is wrong, before a long training), **compare** (see it in the
training curves), **fix** (repair it and prove each change), **report** (one page to read and
share).

## 1. Check: what is wrong, with numbers
"""),
    ("sh", "fitdoctor check income.csv --target income --optimizer adam --lr 0.01 --epochs 200"),
    ("md", """
How to read it:

* One line a finding, `CODE name: [severity] message`, most important first. `[*]` means
  fitdoctor knows a fix; `(confirmed)` means a short controlled experiment (the *probe*: your
  configuration trained briefly, then again with only that fix) cut the loss at least in half.
  The last line counts the lines above it.
* **O301 adam-large-target** is the main cause: Adam moves each weight by about one learning rate
  per step, and the bias must travel to the targets' mean, tens of thousands of dollars, so 200
  steps at 0.01 cannot get there; with standardised targets a few dozen steps would do.
* **D101 nan-inf-data**: two empty cells. One such row in a batch makes the loss NaN.
* The reference line says what is achievable: predicting the mean, and the best linear model
  (closed-form least squares). The probe's final loss is given as a multiple of that optimum.

Each rule is documented in [rules.md](rules.md) and by `fitdoctor explain CODE`;
[how-it-decides.md](how-it-decides.md) says how the numbers are made.

## 2. Compare: see it in the curves

`compare` trains many configurations together from the same starting weights and reports the
training MSE in the original units, so runs with and without scaled targets compare directly:
"""),
    ("sh", "fitdoctor compare income.csv --target income --optimizers adam,sgd --lr 1e-2,1e-3 --scale-y both"),
    ("md", """
## 3. Fix: repair it, and prove each change
"""),
    ("sh", "fitdoctor fix income.csv --target income --optimizer adam --lr 0.01 --epochs 200 --output fixed"),
    ("md", """
`fix` runs an ablation: the baseline, each suspected fix alone, all fixes together at a few
learning rates, and all fixes with each one left out. A fix is kept only when leaving it out
makes the training MSE measurably worse. `fixed/model.keras` is a plain Keras model (raw age and
experience in, dollars out; no fitdoctor needed to load it), and `fixed/fix.py` reproduces the
training with plain Keras.

## 4. Report: one page to read and share

Every verb writes a self-contained HTML page (figures embedded, no network, no script; readable
on a phone) with `--format html` or an `.html` output:
"""),
    ("sh", "fitdoctor check income.csv --target income --optimizer adam --lr 0.01 --epochs 200 --format html --output check.html"),
    ("md", """
## The same in Python (and in a notebook)

In a notebook, a `Report`, `Comparison`, `LRFinder` or `Repair` shown as a cell's last value
renders as the same HTML view.
"""),
    ("py", """import numpy as np
import fitdoctor

ex = fitdoctor.load_example("income")
model = ex.compiled_model(seed=0)
report = fitdoctor.diagnose(model, ex.X, ex.y, epochs=200, feature_names=list(ex.feature_names),
                            target_name=ex.target_name)
print(report)
print(report.names)

fixed = fitdoctor.repair(model, ex.X, ex.y, epochs=200, feature_names=list(ex.feature_names),
                         target_name=ex.target_name)
print(fixed.applied_names, fixed.reached_optimum)
"""),
    ("md", """
The plots are Display objects in the scikit-learn style: `TrainingCurvesDisplay`
(`from_report`, `from_comparison`, `from_history`, `from_repair`), `FeatureScalesDisplay`,
`TargetDistributionDisplay`, `LRFinderDisplay.from_finder(fitdoctor.find_lr(model, X, y))` and
`PredictionErrorDisplay`; each `.plot(ax=None)` returns the Display with `ax_` and `figure_`.

## Next

* [rules.md](rules.md): every rule, what it detects, why it matters, and the fix.
* [how-it-decides.md](how-it-decides.md): the references, the step bound, the probe, the ablation.
* `fitdoctor --help`, `fitdoctor <verb> --help`: all options and exit codes.
"""),
]

TIME = re.compile(r"\b\d+(\.\d+)? ?s\b(?! ?\w)")


def _clean(text: str) -> str:
    lines = [ln.rstrip() for ln in text.splitlines()]
    return TIME.sub("(time varies)", "\n".join(lines)).strip("\n")


def _shell(cmd: str, cwd: str, env: dict) -> str:
    argv = cmd.split(" ", 1)
    if argv[0] == "fitdoctor":
        full = [sys.executable, "-m", "fitdoctor"] + _split(argv[1])
    else:
        full = [sys.executable] + _split(argv[1])
    res = subprocess.run(full, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    notes = [ln for ln in res.stderr.splitlines() if ln.startswith("fitdoctor")]
    out = "\n".join(notes + res.stdout.splitlines())
    tail = f"\n(exit status {res.returncode})" if res.returncode else ""
    return _clean(out) + tail


def _split(s: str) -> list[str]:
    import shlex

    return shlex.split(s)


def build() -> str:
    env = {**os.environ, "KERAS_BACKEND": "jax", "FITDOCTOR_CACHE_DIR": "off", "TF_CPP_MIN_LOG_LEVEL": "3"}
    os.environ["KERAS_BACKEND"] = "jax"
    out: list[str] = []
    with tempfile.TemporaryDirectory(prefix="fitdoctor-docs-") as tmp:
        ns: dict = {}
        for kind, text in PAGE:
            if kind == "md":
                out.append(text.strip("\n") + "\n")
            elif kind == "sh":
                result = _shell(text, tmp, env)
                out.append(f"```console\n$ {text}\n{result}\n```\n".replace("\n\n```", "\n```"))
            else:
                buf = io.StringIO()
                cwd = os.getcwd()
                os.chdir(tmp)
                try:
                    with contextlib.redirect_stdout(buf):
                        exec(compile(text, "getting-started", "exec"), ns)
                finally:
                    os.chdir(cwd)
                out.append(f"```python\n{text.strip()}\n```\n\nprints\n\n```text\n{_clean(buf.getvalue())}\n```\n")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(build())
