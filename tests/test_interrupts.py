"""Ctrl-C at seeded random moments of `fix` and `compare -o x.png` (issue 13): exit 130, one line, no
traceback, and the output absent, the previous complete result, or the new complete one."""
import hashlib
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import INCOME_CSV
from fitdoctor.safe_io import LOCK_NAME, TMP_PREFIX

pytestmark = pytest.mark.slow

MOMENTS = 10
FIX_FILES = {"data.npz", "fix.py", "model.keras", "report.html", "report.json"}


def launch(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "fitdoctor", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env={**os.environ, "KERAS_BACKEND": "jax"})


def timed_run(args, cwd):
    start = time.perf_counter()
    proc = launch(args, cwd)
    out, err = proc.communicate(timeout=600)
    assert proc.returncode in (0, 1), err[-2000:]
    assert "Traceback" not in err, err[-2000:]
    return time.perf_counter() - start


def interrupt_at(args, cwd, delay):
    """(exit code, stderr, whether the process was still running when SIGINT was sent)."""
    proc = launch(args, cwd)
    time.sleep(delay)
    running = proc.poll() is None
    if running:
        proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=600)
    return proc.returncode, err, running


def digest(folder):
    return {f: hashlib.sha256(open(os.path.join(folder, f), "rb").read()).hexdigest() for f in os.listdir(folder)}


def assert_clean_interrupt(code, err, running, delay=None, duration=None):
    assert "Traceback" not in err and "Exception ignored" not in err, err[-3000:]
    if running:
        assert code == 130, (delay, duration, err[-3000:])
        lines = [line for line in err.strip().splitlines() if line.startswith("fitdoctor: interrupted")]
        assert len(lines) == 1 and lines[0].startswith("fitdoctor: interrupted"), err[-3000:]
        assert err.strip().splitlines()[-1] == lines[0]
    else:  # it had finished: a complete run
        assert code in (0, 1), err[-3000:]


#: the earliest moment: Python's own start-up (before any fitdoctor code runs) takes up to a few tenths of
#: a second on a loaded 2-core machine, and a Ctrl-C there is Python's, not fitdoctor's
EARLIEST = 0.5


def moments(duration, seed):
    rng = random.Random(seed)
    return sorted(rng.uniform(EARLIEST, max(0.9 * duration, EARLIEST + 0.1)) for _ in range(MOMENTS))


def test_sigint_during_fix_leaves_nothing_half_written(tmp_path):
    import json

    import keras

    args = [INCOME_CSV, "--target", "income", "--epochs", "20"]
    baseline = tmp_path / "baseline"
    timed_run(["fix", *args, "--output", str(baseline)], tmp_path)  # fills the compilation cache
    duration = timed_run(["fix", *args, "--output", str(tmp_path / "timed")], tmp_path)
    previous = digest(baseline)
    assert set(previous) == FIX_FILES
    signalled = 0
    for i, delay in enumerate(moments(duration, seed=13)):
        out = tmp_path / f"out{i}"
        had_previous = i % 2 == 0
        if had_previous:  # a folder holding an earlier complete result, replaced with --force
            shutil.copytree(baseline, out)
        code, err, running = interrupt_at(["fix", *args, "--output", str(out), "--force"], tmp_path, delay)
        signalled += running
        assert_clean_interrupt(code, err, running, delay, duration)
        if not out.exists():
            assert not had_previous
            continue
        names = set(os.listdir(out))
        assert not any(n.startswith(TMP_PREFIX) or n == LOCK_NAME for n in names), names
        if had_previous and digest(out) == previous:
            continue  # the previous complete result, untouched
        assert names == FIX_FILES, (delay, names, err)  # else the new complete result, which loads
        keras.saving.load_model(out / "model.keras")
        json.loads((out / "report.json").read_text())
    assert signalled >= MOMENTS - 2, (signalled, duration)


def test_sigint_during_compare_png_never_leaves_a_truncated_png(tmp_path):
    import matplotlib.image

    args = [INCOME_CSV, "--target", "income", "--epochs", "20", "--optimizers", "adam", "--lr", "1e-2"]
    timed_run(["compare", *args, "-o", str(tmp_path / "baseline.png")], tmp_path)  # fills the compilation cache
    duration = timed_run(["compare", *args, "-o", str(tmp_path / "timed.png")], tmp_path)
    previous = (tmp_path / "baseline.png").read_bytes()
    signalled = 0
    for i, delay in enumerate(moments(duration, seed=31)):
        folder = tmp_path / f"run{i}"
        folder.mkdir()
        had_previous = i % 2 == 0
        if had_previous:
            (folder / "x.png").write_bytes(previous)
        code, err, running = interrupt_at(["compare", *args, "-o", "x.png"], folder, delay)
        signalled += running
        assert_clean_interrupt(code, err, running, delay, duration)
        names = os.listdir(folder)
        assert not any(n.startswith(TMP_PREFIX) for n in names), names
        if not names:
            assert not had_previous
            continue
        data = (folder / "x.png").read_bytes()
        if had_previous and data == previous:
            continue
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data[-12:-4] == b"\x00\x00\x00\x00IEND"
        assert matplotlib.image.imread(folder / "x.png").ndim == 3
    assert signalled >= MOMENTS - 2, (signalled, duration)


def test_sigint_right_after_start_is_one_line(tmp_path):
    code, err, running = interrupt_at(["check", INCOME_CSV, "--target", "income"], tmp_path, 0.3)
    assert running
    assert_clean_interrupt(code, err, running)
    assert "nothing written" in err
