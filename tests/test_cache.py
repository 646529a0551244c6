"""The on-disk compilation cache: where it lives, how to turn it off, and that a second process uses it."""
import json
import os
import subprocess
import sys

import pytest

from fitdoctor.experiments.cache import default_cache_dir

SRC = os.path.join(os.path.dirname(__file__), "..", "src")


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("FITDOCTOR_CACHE_DIR", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    for off in ("off", "0", "false", "None", ""):
        monkeypatch.setenv("FITDOCTOR_CACHE_DIR", off)
        assert default_cache_dir() is None
    monkeypatch.delenv("FITDOCTOR_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "fitdoctor" / "xla"


_RUN = """
import json, sys
from fitdoctor.cli import main
from fitdoctor.examples import load_example
import numpy as np, pandas as pd
ex = load_example("income")
path = sys.argv[1]
pd.DataFrame(np.column_stack([ex.X, ex.y]), columns=[*ex.feature_names, "income"]).dropna().to_csv(path, index=False)
import jax
rc = main(["compare", path, "--target", "income", "--epochs", "50", "--output", sys.argv[2]])
print(json.dumps({"rc": rc, "cache_dir": jax.config.values.get("jax_compilation_cache_dir")}))
"""


def _compare_in_new_process(tmp_path, cache_env, tag):
    env = dict(os.environ, KERAS_BACKEND="jax", TF_CPP_MIN_LOG_LEVEL="3", FITDOCTOR_CACHE_DIR=cache_env,
               PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", _RUN, str(tmp_path / "income.csv"), str(tmp_path / f"{tag}.json")],
                         env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    with open(tmp_path / f"{tag}.json") as fh:
        return info, json.load(fh)


@pytest.mark.slow
def test_cli_keeps_programs_on_disk_and_a_second_process_reuses_them(tmp_path):
    cache = tmp_path / "xla"
    first, res1 = _compare_in_new_process(tmp_path, str(cache), "first")
    assert first["rc"] == 0 and first["cache_dir"] == str(cache)
    stored = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert any(name.startswith("jit_all_groups") for name in stored), stored  # the engine's program
    second, res2 = _compare_in_new_process(tmp_path, str(cache), "second")
    assert second["cache_dir"] == str(cache)
    # found and loaded: a program compiled again would have been written again. A tiny program that
    # compiled under the 0.05 s threshold in the first process may cross it in the second on a busy
    # machine and be stored then; the engine's programs and everything stored first must be reused.
    after = {p.name: p.stat().st_mtime_ns for p in cache.iterdir()}
    assert {name: after.get(name) for name in stored} == stored
    assert not [name for name in set(after) - set(stored) if name.startswith("jit_all_groups")]
    assert res1["runs"] == res2["runs"]  # and it computes the same curves
    off, _ = _compare_in_new_process(tmp_path, "off", "off")
    assert off["cache_dir"] is None
