"""docs/: the rule reference is generated from the rules' docstrings and must not drift."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fitdoctor.reporting.docs import rules_reference_markdown
from fitdoctor.rules import RULES

ROOT = Path(__file__).resolve().parents[1]
RULES_MD = ROOT / "docs" / "rules.md"
REGENERATE = "PYTHONPATH=src python -m fitdoctor.reporting.docs > docs/rules.md"


def test_rules_reference_matches_the_docstrings():
    committed = RULES_MD.read_text(encoding="utf-8")
    generated = rules_reference_markdown()
    assert committed == generated, f"docs/rules.md is out of date with the rules' docstrings: run `{REGENERATE}`"


def test_the_generator_command_writes_the_same_text():
    out = subprocess.run([sys.executable, "-m", "fitdoctor.reporting.docs"], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout == RULES_MD.read_text(encoding="utf-8")


def test_every_rule_has_its_page_and_table_row():
    text = RULES_MD.read_text(encoding="utf-8")
    for rule in RULES:
        assert f"### {rule.name} ({rule.code})" in text
        assert re.search(rf"^\| {rule.code} \| \[`{re.escape(rule.name)}`\]\(#{rule.name}-{rule.code.lower()}\) \|",
                         text, re.M)
        for section in ("What it does", "Why is this bad?", "Example", "Use instead"):
            assert f"#### {section}" in text.split(f"### {rule.name} ({rule.code})", 1)[1]


def test_a_docstring_change_is_caught(monkeypatch):
    """The comparison above can fail: editing one docstring changes the generated page."""
    cls = RULES[0] if isinstance(RULES[0], type) else type(RULES[0])
    before = rules_reference_markdown()
    monkeypatch.setattr(cls, "__doc__", cls.__doc__.replace("## What it does", "## What it does\nEDITED", 1))
    after = rules_reference_markdown()
    assert after != before and "EDITED" in after


def test_getting_started_walks_through_the_income_example():
    text = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    for command in ("fitdoctor check income.csv", "fitdoctor compare income.csv", "fitdoctor fix income.csv",
                    "--format html"):
        assert command in text, command
    # the output shown is the real output: the findings the check prints on the same data today
    # (the page runs on the bundled income example: docs/getting_started.py writes it to income.csv)
    from fitdoctor.diagnosis import diagnose
    from fitdoctor.examples import load_example

    ds = load_example("income")
    report = diagnose(None, ds.X, ds.y, optimizer="adam", learning_rate=0.01, epochs=200, probe=False,
                      feature_names=list(ds.feature_names), target_name=ds.target_name)
    shown = set(re.findall(r"^([DMOT]\d{3} [a-z-]+):", text, re.M))
    assert shown == {f"{f.code} {f.name}" for f in report.findings}
