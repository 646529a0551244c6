"""docs/getting-started.md is what docs/getting_started.py prints today: its numbers cannot drift."""
import difflib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_getting_started_is_regenerated_by_its_script():
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    res = subprocess.run([sys.executable, str(ROOT / "docs" / "getting_started.py")], capture_output=True,
                         text=True, env=env, timeout=900, cwd=ROOT)
    assert res.returncode == 0, res.stderr[-2000:]
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    diff = "\n".join(difflib.unified_diff(page.splitlines(), res.stdout.splitlines(), "page", "script", lineterm=""))
    assert res.stdout == page, ("docs/getting-started.md drifted; regenerate it with "
                                "`python docs/getting_started.py > docs/getting-started.md`:\n" + diff[:4000])


def test_getting_started_needs_only_what_ships():
    page = (ROOT / "docs" / "getting-started.md").read_text(encoding="utf-8")
    assert "load_example('income')" in page  # the data comes from the package
    for gone in ("/path/to", "seed document", "the seeds"):
        assert gone not in page.lower(), gone
    assert not re.search(r"seed 00\d", page, re.I), "mentions a seed document the reader does not have"
    assert (ROOT / "docs" / "how-it-decides.md").exists()
