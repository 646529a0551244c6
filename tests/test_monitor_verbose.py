"""``Monitor(verbose=1)`` prints its findings at the end of ``model.fit``, the way Keras callbacks print.

On JAX in this process; on TensorFlow in a subprocess (the backend is chosen at import time).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest


def _diverging_fit(verbose):
    import keras

    import fitdoctor

    rng = np.random.default_rng(0)
    X = rng.random((64, 3)).astype("float32")
    y = (2 * X.sum(axis=1) + rng.standard_normal(64)).astype("float32")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=10.0), loss="mse")
    mon = fitdoctor.Monitor(verbose=verbose, X_sample=X, y_sample=y)
    model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[mon])
    return mon


def test_verbose_prints_findings_on_jax(capsys):
    mon = _diverging_fit(1)
    out = capsys.readouterr().out
    assert mon.findings_, "a learning rate of 10 should be diagnosed"
    assert out.startswith("fitdoctor.Monitor:")
    for f in mon.findings_:
        assert f"{f.code} {f.name}:" in out
    assert "Found " in out or "All checks passed" in out


def test_verbose_zero_is_silent(capsys):
    _diverging_fit(0)
    assert "fitdoctor.Monitor" not in capsys.readouterr().out


def test_verbose_follows_keras_interactive_logging_switch(capsys):
    """With ``keras.utils.disable_interactive_logging()`` Keras logs instead of printing; so does the Monitor."""
    import keras

    keras.utils.disable_interactive_logging()
    try:
        mon = _diverging_fit(1)
    finally:
        keras.utils.enable_interactive_logging()
    assert mon.findings_
    assert "fitdoctor.Monitor" not in capsys.readouterr().out


TF_SCRIPT = textwrap.dedent("""
    import numpy as np
    import tensorflow as tf
    import fitdoctor

    rng = np.random.default_rng(0)
    X = rng.random((64, 3)).astype("float32")
    y = (2 * X.sum(axis=1) + rng.standard_normal(64)).astype("float32")
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.models.Sequential([tf.keras.Input((3,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=10.0), loss="mse")
    mon = fitdoctor.Monitor(verbose=1, X_sample=X, y_sample=y)
    model.fit(X, y, epochs=3, batch_size=16, verbose=0, callbacks=[mon])
    print("RESULT " + __import__("json").dumps({"backend": tf.keras.backend.backend(),
                                                "findings": [f.code + " " + f.name for f in mon.findings_]}))
""")


@pytest.mark.slow
@pytest.mark.tensorflow
def test_verbose_prints_findings_on_tensorflow():
    pytest.importorskip("tensorflow")
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", TF_SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.split("RESULT ", 1)[1])
    assert result["backend"] == "tensorflow"
    assert result["findings"]
    printed = out.stdout.split("RESULT ", 1)[0]
    assert "fitdoctor.Monitor:" in printed
    for line in result["findings"]:
        assert line + ":" in printed
