"""The Ray executor on a local Ray instance with 2 CPUs: same fixes and losses as in-process."""
import json

import numpy as np
import pytest

from conftest import INCOME_CSV

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def _income():
    import pandas as pd

    df = pd.read_csv(INCOME_CSV)
    return df[["age", "experience"]].to_numpy(float), df["income"].to_numpy(float)


def _user_model():
    import keras

    m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    m.set_weights([np.array([[0.3], [-0.2]], "float32"), np.array([0.1], "float32")])
    m.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    return m


@pytest.mark.slow
def test_repair_on_ray_matches_in_process(local_ray):
    import fitdoctor

    X, y = _income()
    on_ray = fitdoctor.repair(_user_model(), X, y, epochs=200, batch_size=32, executor="ray")
    local = fitdoctor.repair(_user_model(), X, y, epochs=200, batch_size=32)
    assert on_ray.applied_names == local.applied_names
    assert on_ray.after_loss == pytest.approx(local.after_loss, rel=0.01)
    engines = {a["engine"] for a in on_ray.ablation}
    assert "vectorized" in engines


@pytest.mark.slow
def test_compare_cli_on_ray_matches_in_process(local_ray, tmp_path, capsys):
    from fitdoctor.cli import main

    args = ["compare", INCOME_CSV, "--target", "income", "--optimizers", "adam,sgd", "--lr", "1e-2,1e-3",
            "--scale-y", "both", "--epochs", "30", "--format", "json"]
    assert main(args + ["--executor", "ray"]) in (0, 1)
    on_ray = json.loads(capsys.readouterr().out)
    assert main(args + ["--executor", "inprocess"]) in (0, 1)
    local = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in on_ray["runs"]] == [r["label"] for r in local["runs"]]
    def finite(v):
        return isinstance(v, (int, float)) and bool(np.isfinite(v))

    assert any(finite(r["final_mse"]) for r in local["runs"])
    for a, b in zip(on_ray["runs"], local["runs"]):
        assert a["note"].startswith("trained by a Ray task")
        if finite(b["final_mse"]):
            assert a["final_mse"] == pytest.approx(b["final_mse"], rel=0.01)
        else:
            assert not finite(a["final_mse"])


def test_unknown_executor_is_an_input_error():
    import keras

    from fitdoctor.errors import InputError
    from fitdoctor.experiments import RunSpec, train_runs

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    with pytest.raises(InputError, match="executor must be one of"):
        train_runs(model, np.ones((4, 1)), np.ones(4), [RunSpec(epochs=1)], executor="spark")
