"""fitdoctor.Monitor in a plain tf.keras script on the TensorFlow backend (own process)."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("tensorflow")

SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    import fitdoctor

    rng = np.random.default_rng(0)
    X = rng.random((100, 5)).astype("float32")
    y = (2 * X.sum(axis=1) + rng.standard_normal(100)).astype("float32")
    tf.keras.utils.set_random_seed(0)
    model = tf.keras.models.Sequential([tf.keras.Input((5,)), tf.keras.layers.Dense(1)])
    model.compile(optimizer=tf.keras.optimizers.SGD(learning_rate=10.0), loss="mse")
    mon = fitdoctor.Monitor(X_sample=X, y_sample=y)
    model.fit(X, y, epochs=5, verbose=0, callbacks=[mon])
    print(json.dumps({"backend": tf.keras.backend.backend(),
                      "findings": [[f.name, f.epoch] for f in mon.findings_],
                      "grad": mon.history_.samples[0].grad_norm}))
""")


@pytest.mark.slow
def test_monitor_in_plain_tf_keras_script():
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    src = os.path.join(os.path.dirname(__file__), "..", "src")
    env["PYTHONPATH"] = os.path.abspath(src) + os.pathsep + env.get("PYTHONPATH", "")
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["backend"] == "tensorflow"
    names = dict((n, e) for n, e in res["findings"])
    assert names.get("lr-too-high") == 0
    assert res["grad"] > 0
