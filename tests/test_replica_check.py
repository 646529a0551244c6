"""Issue 11 item 2: compare() and repair() check the engine's replica against model.fit once before trusting
their runs; when they disagree every run trains with model.fit and the result says why."""
import numpy as np
import pytest

import keras

import fitdoctor
from fitdoctor.experiments.engine import RunSpec, train_runs
from fitdoctor.experiments.replica_check import CHECK_BATCHES, check_replica, check_rows


@keras.saving.register_keras_serializable(package="fitdoctor_tests")
class BatchCentre(keras.layers.Layer):
    """Subtracts the batch's mean: it mixes rows within a batch, which the engine's padded last batch does not
    reproduce (not one of the layers the engine knows to be batch-dependent)."""

    def call(self, x):
        return x - keras.ops.mean(x, axis=0, keepdims=True)


def _data(n=34, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) + 3.0
    return X, X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=n)


def _model(front=None, seed=0):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((3,))] + ([front] if front is not None else [])
    model = keras.Sequential(layers + [keras.layers.Dense(4, activation="relu"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    return model


def test_check_rows_are_a_seeded_subsample_of_a_few_batches():
    rows = check_rows(10_000, 32, seed=3)
    assert len(rows) == CHECK_BATCHES * 32 and np.all(np.diff(rows) > 0)
    assert np.array_equal(rows, check_rows(10_000, 32, seed=3))
    assert np.array_equal(check_rows(50, 32), np.arange(50))


def test_dense_only_model_is_not_checked():
    X, y = _data()
    check = check_replica(_model(), X, y, RunSpec(optimizer="sgd", learning_rate=0.05, epochs=2))
    assert check.agrees is None and not check.sequential and check.executor is None


def test_adapted_normalization_replica_agrees():
    X, y = _data()
    norm = keras.layers.Normalization()
    norm.adapt(X)
    check = check_replica(_model(norm), X, y, RunSpec(optimizer="sgd", learning_rate=0.05, epochs=2))
    assert check.agrees is True and not check.sequential, check.check


def test_a_batch_mixing_layer_disagrees_and_its_runs_go_sequential():
    X, y = _data()
    model = _model(BatchCentre())
    spec = RunSpec(optimizer="sgd", learning_rate=0.05, epochs=1, batch_size=32)
    check = check_replica(model, X, y, spec)
    assert check.agrees is False and check.sequential
    assert "disagree" in check.note and "model.fit" in check.note
    # the executor it hands out trains with model.fit, each run saying why
    res = train_runs(model, X, y, [spec], executor=check.executor)[0]
    assert res.engine == "sequential" and "disagree" in res.note


def test_compare_reruns_sequential_when_the_replica_disagrees():
    X, y = _data()
    model = _model(BatchCentre())
    before = [w.copy() for w in model.get_weights()]
    cmp = fitdoctor.compare(model, X, y, epochs=3, validation_split=0.25)
    assert cmp.replica_.agrees is False
    assert set(cmp.results_["engine"]) == {"sequential"}
    assert any("disagree" in n for n in cmp.notes_)
    assert cmp.to_dict()["replica"]["sequential"] is True
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))  # the user's model untouched


def test_compare_keeps_the_engine_when_the_replica_agrees():
    X, y = _data()
    norm = keras.layers.Normalization()
    norm.adapt(X)
    cmp = fitdoctor.compare(_model(norm), X, y, epochs=3, validation_split=0.25)
    assert cmp.replica_.agrees is True
    assert set(cmp.results_["engine"]) == {"vectorized"}
    assert not any("disagree" in n for n in cmp.notes_)


def test_repair_setup_checks_the_replica_once_and_says_so():
    """repair's first step runs the check; a disagreeing replica hands out the sequential executor."""
    from fitdoctor.fix.repair import RepairBudget, _setup

    X, y = _data()
    budget = RepairBudget(2)
    s = _setup(_model(BatchCentre()), X, y, optimizer=None, loss=None, epochs=2, batch_size=None,
               validation_data=None, validation_split=0.25, seed=0, learning_rate=None, noise_floor=None,
               feature_names=None, target_name="y", budget=budget)
    assert s.replica.sequential and s.replica.executor is not None
    assert any("disagree" in n for n in s.notes)
    assert "replica check" in budget.stage_seconds


@pytest.mark.slow
def test_repair_trains_every_run_with_model_fit_when_the_replica_disagrees():
    X, y = _data()
    rep = fitdoctor.repair(_model(BatchCentre()), X, y, epochs=2, validation_split=0.25)
    assert {row["engine"] for row in rep.ablation_} == {"sequential"}
    assert any("disagree" in n for n in rep.report.notes)


def test_find_lr_sweeps_with_model_fit_when_the_replica_disagrees():
    X, y = _data()  # 34 rows: the first fold's 27 training rows end in a padded batch
    model = _model(BatchCentre())
    before = [w.copy() for w in model.get_weights()]
    lr = fitdoctor.find_lr(model, X, y, steps=12)
    assert lr.replica_.agrees is False and lr.engine_ == "sequential"
    assert any("disagree" in n for n in lr.notes_)
    assert lr.to_dict()["replica"]["sequential"] is True
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_find_lr_keeps_the_engine_when_the_replica_agrees():
    X, y = _data(n=120)
    norm = keras.layers.Normalization()
    norm.adapt(X)
    lr = fitdoctor.find_lr(_model(norm), X, y, steps=12)
    assert lr.replica_.agrees is True and lr.engine_ == "vectorized"
    assert not any("disagree" in n for n in lr.notes_)
