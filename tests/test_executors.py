"""The executor seam: train_runs hands its runs to one small interface."""
import numpy as np
import pytest

from fitdoctor.experiments.executors import Executor, InProcessExecutor


def _model_and_data():
    import keras

    rng = np.random.default_rng(0)
    X = rng.normal(size=(48, 2))
    y = X @ [2.0, -1.0] + 0.5
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]), X, y


class Recording(Executor):
    """An executor that trains in this process and records what it was given."""

    name = "recording"

    def __init__(self):
        self.calls = []

    def run(self, model, X, y, specs, *, seed=0, engine="auto", callback=None, **options):
        self.calls.append((len(specs), seed, engine))
        return InProcessExecutor().run(model, X, y, specs, seed=seed, engine=engine, callback=callback, **options)


def test_an_executor_instance_receives_the_runs_and_its_results_are_returned():
    from fitdoctor.experiments import RunSpec, train_runs

    model, X, y = _model_and_data()
    rec = Recording()
    specs = [RunSpec(epochs=3, learning_rate=lr) for lr in (0.1, 0.01)]
    seen = []
    res = train_runs(model, X, y, specs, seed=3, executor=rec, callback=lambda d, t: seen.append((d, t)))
    assert rec.calls == [(2, 3, "auto")]
    assert [r.spec for r in res] == specs
    assert seen[-1] == (2, 2)
    local = train_runs(model, X, y, specs, seed=3)
    assert [r.final_mse for r in res] == pytest.approx([r.final_mse for r in local], rel=1e-6)


def test_auto_trains_in_this_process_on_jax():
    import keras

    from fitdoctor.experiments.executors import get_executor

    assert keras.backend.backend() == "jax"
    assert get_executor(None) is None
    assert get_executor("auto") is None
    assert get_executor("inprocess") is None
    assert get_executor("worker").name == "worker"
    assert get_executor("ray").name == "ray"


def test_compare_repair_and_diagnose_pass_the_executor_down():
    import fitdoctor

    model, X, y = _model_and_data()
    model.compile(optimizer="adam", loss="mse")
    rec = Recording()
    fitdoctor.compare(model, X, y, grid={"learning_rate": [0.1, 0.01]}, epochs=3, executor=rec)
    assert rec.calls[-1][0] == 2
    n = len(rec.calls)
    fitdoctor.diagnose(model, X, y * 1000, epochs=3, executor=rec)
    assert len(rec.calls) == n + 1
    fitdoctor.repair(model, X, y, epochs=3, executor=rec)
    assert len(rec.calls) > n + 1


def test_ray_without_ray_installed_is_an_input_error(monkeypatch):
    import builtins

    from fitdoctor.errors import InputError
    from fitdoctor.experiments import RunSpec, train_runs

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("no ray")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    model, X, y = _model_and_data()
    with pytest.raises(InputError, match=r"fitdoctor\[ray\]"):
        train_runs(model, X, y, [RunSpec(epochs=1)], executor="ray")
