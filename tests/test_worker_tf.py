"""The JAX worker process: experiments of a TensorFlow user run on the vectorised JAX engine.

Scripts run in their own processes (the Keras backend is fixed at the first ``import keras``, and
objects defined in a script's ``__main__`` are what cloudpickle must ship by value).
"""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import INCOME_CSV

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "src"))


def _run(script: str, backend: str, timeout: int = 600) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


CUSTOM = textwrap.dedent("""
    import json
    import numpy as np
    import keras
    from fitdoctor.experiments import RunSpec, train_runs
    from fitdoctor.model.inspect import canonical_loss

    def scaled_tanh(x):            # not registered with Keras: only cloudpickle can ship it
        return 2.0 * keras.ops.tanh(x)

    class Twice(keras.layers.Layer):
        def call(self, x):
            return 2.0 * x

    class HalfMSE(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return 0.5 * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

    def my_mae(y_true, y_pred):
        return keras.ops.mean(keras.ops.abs(y_true - y_pred), axis=-1)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3)) * [1.0, 10.0, 100.0] + 5
    y = X @ [1.0, 0.2, 0.03] + rng.normal(size=120)
    keras.utils.set_random_seed(0)
    norm = keras.layers.Normalization()
    norm.adapt(X.astype("float32"))         # adapted statistics: non-trainable state that must travel
    model = keras.Sequential([keras.Input((3,)), norm, keras.layers.Dense(4, activation=scaled_tanh), Twice(),
                              keras.layers.Dense(1)])
    specs = [RunSpec(optimizer="adam", learning_rate=1e-2, epochs=4, batch_size=16, loss=canonical_loss(obj),
                     loss_object=obj) for obj in (None, HalfMSE(), my_mae)]
    a = train_runs(model, X, y, specs, executor="worker")
    keras.saving.get_custom_objects()["scaled_tanh"] = scaled_tanh  # cloning in this process needs the name
    b = train_runs(model, X, y, specs, executor="inprocess")
    print(json.dumps({"worker": [r.final_mse for r in a], "inprocess": [r.final_mse for r in b],
                      "notes": [r.note for r in a], "engines": [r.engine for r in a],
                      "same_weights": all(np.allclose(u, v, rtol=1e-5, atol=1e-6)
                                          for r, s in zip(a, b) for u, v in zip(r.weights, s.weights))}))
""")


@pytest.mark.slow  # starts worker processes (Keras and JAX imported there)
def test_custom_objects_of_main_ship_by_value_and_train_identically():
    out = _run(CUSTOM, "jax")
    assert out["engines"] == ["vectorized"] * 3
    assert all("JAX worker process" in n for n in out["notes"])
    np.testing.assert_allclose(out["worker"], out["inprocess"], rtol=1e-5)
    assert out["same_weights"] is True


TF_USER = textwrap.dedent(f"""
    import json
    import numpy as np, pandas as pd
    import tensorflow as tf
    import fitdoctor

    df = pd.read_csv({INCOME_CSV!r})
    X, y = df[["age", "experience"]].to_numpy(float), df["income"].to_numpy(float)
    tf.keras.utils.set_random_seed(0)
    def user_model():
        m = tf.keras.models.Sequential([tf.keras.Input((2,)), tf.keras.layers.Dense(1)])
        m.set_weights([np.array([[0.3], [-0.2]], "float32"), np.array([0.1], "float32")])
        m.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=0.01), loss="mse")
        return m
    report = fitdoctor.diagnose(user_model(), X, y, epochs=200, batch_size=32)
    rep = fitdoctor.repair(user_model(), X, y, epochs=200, batch_size=32)
    from fitdoctor.experiments.executors import default_worker
    pid = default_worker().pid
    cmp = fitdoctor.compare(user_model(), X[np.isfinite(X).all(1)], y[np.isfinite(X).all(1)],
                            grid={{"learning_rate": [1e-2, 1e-1]}}, epochs=20)
    print(json.dumps({{"backend": tf.keras.backend.backend(), "names": sorted(report.names),
                      "confirmed": sorted(f.name for f in report.findings if f.confirmed),
                      "probe_engine": report.probe["engine"], "applied": rep.applied_names,
                      "after": rep.after_loss, "ablation_engines": sorted({{a["engine"] for a in rep.ablation}}),
                      "reused": default_worker().pid == pid, "notes": sorted({{r.note for r in cmp.runs_}})}}))
""")


@pytest.mark.slow
def test_tensorflow_user_gets_the_jax_engine_with_the_same_fixes():
    pytest.importorskip("tensorflow")
    tf_out = _run(TF_USER, "tensorflow")
    assert tf_out["backend"] == "tensorflow"
    assert tf_out["probe_engine"] == "vectorized"
    assert "vectorized" in tf_out["ablation_engines"] and "sequential" not in tf_out["ablation_engines"]
    assert tf_out["reused"] is True
    assert tf_out["notes"] == ["trained in a JAX worker process (this process runs Keras on tensorflow)"]

    # the same user model, the same starting weights, on JAX in this process
    import keras
    import pandas as pd

    import fitdoctor

    df = pd.read_csv(INCOME_CSV)
    X, y = df[["age", "experience"]].to_numpy(float), df["income"].to_numpy(float)

    def user_model():
        m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        m.set_weights([np.array([[0.3], [-0.2]], "float32"), np.array([0.1], "float32")])
        m.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
        return m

    report = fitdoctor.diagnose(user_model(), X, y, epochs=200, batch_size=32)
    rep = fitdoctor.repair(user_model(), X, y, epochs=200, batch_size=32)
    assert tf_out["names"] == sorted(report.names)
    assert tf_out["confirmed"] == sorted(f.name for f in report.findings if f.confirmed)
    assert tf_out["applied"] == rep.applied_names
    # after_loss is measured by predicting with the repaired model rebuilt in the TensorFlow process
    assert tf_out["after"] == pytest.approx(rep.after_loss, rel=0.01)


@pytest.mark.slow  # starts worker processes (Keras and JAX imported there)
def test_worker_is_reused_and_reports_input_errors():
    import keras

    from fitdoctor.errors import InputError
    from fitdoctor.experiments import RunSpec, train_runs
    from fitdoctor.experiments.executors import WorkerExecutor

    rng = np.random.default_rng(1)
    X = rng.normal(size=(64, 2))
    y = X @ [1.0, -1.0] + 3
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    worker = WorkerExecutor()
    try:
        first = train_runs(model, X, y, [RunSpec(epochs=3, learning_rate=0.05)], executor=worker)
        pid = worker.pid
        again = train_runs(model, X, y, [RunSpec(epochs=3, learning_rate=0.05), RunSpec(epochs=3, learning_rate=0.01)],
                           executor=worker)
        assert worker.pid == pid is not None
        local = train_runs(model, X, y, [RunSpec(epochs=3, learning_rate=0.05)], executor="inprocess")
        assert first[0].final_mse == pytest.approx(local[0].final_mse, rel=1e-5)
        assert again[0].final_mse == pytest.approx(first[0].final_mse, rel=1e-6)
        bad = np.array([[1.0, 2.0]] * 10)
        with pytest.raises(InputError) as here:
            train_runs(model, bad, np.ones((10, 2)), [RunSpec(epochs=1)], executor="inprocess")
        with pytest.raises(InputError) as there:
            train_runs(model, bad, np.ones((10, 2)), [RunSpec(epochs=1)], executor=worker)
        assert str(there.value) == str(here.value)  # the same one-line message, raised in this process
        assert worker.pid == pid  # an input error does not cost the worker

        def interrupt(done, total):
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            train_runs(model, X, y, [RunSpec(epochs=2)], executor=worker, callback=interrupt)
        assert worker.pid is None  # stopped mid-request: its replies would be out of step
        after = train_runs(model, X, y, [RunSpec(epochs=3, learning_rate=0.05)], executor=worker)
        assert worker.pid not in (None, pid)
        assert after[0].final_mse == pytest.approx(first[0].final_mse, rel=1e-6)
    finally:
        worker.close()
    assert worker.pid is None


def test_worker_that_cannot_start_falls_back_and_says_why():
    import keras

    from fitdoctor.experiments import RunSpec, train_runs
    from fitdoctor.experiments.executors import WorkerExecutor

    X = np.linspace(0, 1, 40).reshape(-1, 1)
    y = 2 * X[:, 0] + 1
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    broken = WorkerExecutor(python="/nonexistent/python")
    res = train_runs(model, X, y, [RunSpec(epochs=2)], executor=broken)
    assert res[0].note.startswith("JAX worker not used: the JAX worker could not be started")
    assert np.isfinite(res[0].final_mse)
    broken.close()


@pytest.mark.slow  # starts a worker process
def test_plain_fit_runs_in_the_worker_and_the_model_comes_back():
    import keras

    from fitdoctor.experiments.executors import WorkerExecutor
    from fitdoctor.fix.interventions import Recipe
    from fitdoctor.fix.training import _train_plain_from

    rng = np.random.default_rng(2)
    X = rng.normal(size=(60, 2)) * [1.0, 50.0]
    y = X @ [3.0, 0.1] + 20
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    recipe = Recipe(optimizer="adam", learning_rate=0.05, epochs=15, batch_size=16, scale_x=True, scale_y=True,
                    loss="huber", loss_object=keras.losses.Huber(delta=0.5))
    worker = WorkerExecutor()
    try:
        there = worker.call(_train_plain_from, model, X, y, recipe, seed=0)
    finally:
        worker.close()
    here = _train_plain_from(model, X, y, recipe, seed=0)
    assert there is not None, worker.unavailable_reason
    assert type(there) is type(here) and len(there.mse) == len(here.mse) == 15
    assert [layer.name for layer in there.model.layers] == [layer.name for layer in here.model.layers]
    # the model rebuilt here carries the worker's trained weights: it reproduces the MSE the worker measured
    mse_there = float(np.mean((there.model.predict(X, verbose=0).ravel() - y) ** 2))
    assert mse_there == pytest.approx(there.mse[-1], rel=1e-3)
    # the batch order may differ (the worker runs without TensorFlow loaded: another Keras data pipeline)
    assert mse_there == pytest.approx(here.mse[-1], rel=0.3)
    assert mse_there < 0.01 * float(np.var(y))
