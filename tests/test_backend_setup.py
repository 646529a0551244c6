"""A missing Keras backend is one clear line from fitdoctor that says what to set (README's first lines)."""
import os
import subprocess
import sys

import pytest


def test_missing_backend_says_what_to_set(tmp_path):
    try:
        import torch  # noqa: F401
        pytest.skip("torch is installed: no missing backend to provoke")
    except ImportError:
        pass
    env = {**os.environ, "KERAS_BACKEND": "torch", "KERAS_HOME": str(tmp_path)}
    code = "import fitdoctor\ntry:\n    fitdoctor.Monitor\nexcept ImportError as e:\n    print('ERR', e)\n"
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    line = [l for l in res.stdout.splitlines() if l.startswith("ERR ")]
    assert line, res.stderr[-1500:]
    assert "export KERAS_BACKEND=jax" in line[0] and "'torch' is not installed" in line[0]


def test_readme_says_what_to_set_right_after_the_two_commands():
    readme = open(os.path.join(os.path.dirname(__file__), "..", "README.md"), encoding="utf-8").read()
    blocks = readme.split("```")
    after = blocks[4].strip().splitlines()[0]  # the first line after the second command block
    assert "export KERAS_BACKEND=jax" in after
