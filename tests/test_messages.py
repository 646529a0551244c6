"""Every message fitdoctor writes reads as words and numbers, never as a raw float rendering.

Scanned: the findings (message, fix title, notes, text report) of every bundled example
(``fitdoctor.examples``) with its probe, of every rule's firing fixture (tests/rule_fixtures.py), of
data whose least-squares optimum is exactly 0, and the output and HTML page of ``fitdoctor demo``.
Forbidden: Python's ``inf``/``nan`` spellings, ``infx``, a ratio to an optimum of 0, "within 5% of 0".
"""
from __future__ import annotations

import html
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import rule_fixtures as rf

FORBIDDEN = {
    "python's inf": re.compile(r"(?<![\w.-])-?inf(?![\w-])"),
    "python's nan": re.compile(r"(?<![\w.-])nan(?![\w-])"),
    "infx": re.compile(r"inf(inite|inity)?x", re.I),
    "within 5% of 0": re.compile(r"within \d+% of 0(?![.\d])"),
}
#: only where the optimum is 0: a ratio to it means nothing
RATIO_TO_OPTIMUM = re.compile(r"x (the|its) [\w -]*optimum")


def forbidden(text: str, *, zero_optimum: bool = False) -> list[str]:
    hits = [f"{name}: ...{text[max(0, m.start() - 40):m.end() + 40]}..."
            for name, pat in FORBIDDEN.items() for m in pat.finditer(text)]
    if zero_optimum:
        hits += [f"ratio to a zero optimum: {text}" for _ in RATIO_TO_OPTIMUM.finditer(text)]
    return hits


def _report_texts(report) -> list[str]:
    out = [report.to_text()]
    for f in report.findings:
        out.append(f.message)
        if f.fix is not None:
            out.append(f.fix.title)
    return out + list(report.notes)


def test_the_scan_catches_raw_renderings():
    assert forbidden("probe ended at inf = infx the optimum")
    assert forbidden("loss nan after 3 epochs")
    assert forbidden("to come within 5% of 0 (reference)")
    assert forbidden("1.2e+03x the least-squares optimum", zero_optimum=True)
    assert not forbidden("the loss became NaN or infinite; information, infinitely, nano, within 5% of 0.7264")


@pytest.mark.parametrize("name", rf.STATIC_RULES)
def test_rule_fixture_messages(name):
    from fitdoctor.rules import get_rule

    findings = rf.run_rule(get_rule(name), rf.firing(name))
    assert findings, f"{name}'s firing fixture should fire"
    for f in findings:
        texts = [f.message] + ([f.fix.title] if f.fix else [])
        hits = [h for t in texts for h in forbidden(t)]
        assert hits == [], hits


@pytest.mark.slow
@pytest.mark.parametrize("example", ["scaling", "learning-rate", "capacity", "income"])
def test_bundled_example_messages(example):
    import fitdoctor

    ex = fitdoctor.load_example(example)
    report = fitdoctor.diagnose(None, ex.X, ex.y, optimizer=ex.optimizer, learning_rate=ex.learning_rate,
                                loss=ex.loss, epochs=ex.epochs, batch_size=ex.batch_size,
                                feature_names=list(ex.feature_names), target_name=ex.target_name)
    hits = [h for t in _report_texts(report) for h in forbidden(t)]
    assert hits == [], hits
    # feature names come from the data
    for f in report.findings:
        assert not re.search(r"'x\d+'", f.message), f.message


@pytest.mark.slow
def test_messages_when_the_optimum_is_zero():
    """Noise-free linear targets: the least-squares MSE is 0, so no message may give a ratio to it."""
    import fitdoctor

    rng = np.random.default_rng(0)
    X = rng.random((64, 2)) * [1000, 1]
    y = 3 * X[:, 0] - 2 * X[:, 1] + 5
    report = fitdoctor.diagnose(None, X, y, optimizer="adam", learning_rate=1e-3, epochs=20, batch_size=32,
                                nonlinear_reference=False)
    assert report.reference.linear_mse < 1e-6
    texts = _report_texts(report)
    hits = [h for t in texts for h in forbidden(t, zero_optimum=True)]
    assert hits == [], hits


@pytest.mark.slow
def test_demo_output_and_page(tmp_path):
    out = tmp_path / "demo.html"
    env = {**os.environ, "KERAS_BACKEND": "jax", "FITDOCTOR_CACHE_DIR": "off"}
    res = subprocess.run([sys.executable, "-m", "fitdoctor", "demo", "--output", str(out)], capture_output=True,
                         text=True, env=env, timeout=600, cwd=tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    hits = forbidden(res.stdout)
    page = out.read_text(encoding="utf-8")
    page = re.sub(r"<style>.*?</style>", " ", page, flags=re.S)
    page = re.sub(r'src="data:[^"]*"', " ", page)
    text = html.unescape(re.sub(r"<[^>]+>", " ", page))
    hits += forbidden(text)
    assert hits == [], hits
