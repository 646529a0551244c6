"""The training engine: vectorised runs agree with model.fit, the model is never modified."""
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402

from fitdoctor.errors import InputError  # noqa: E402
from fitdoctor.examples import load_example  # noqa: E402
from fitdoctor.reference import least_squares  # noqa: E402
from fitdoctor.experiments import RunSpec, build_trained_model, train_runs  # noqa: E402
from fitdoctor.experiments import engine as engine_module  # noqa: E402
from fitdoctor.experiments.engine import fused_coefficients, shuffled_batches  # noqa: E402

jax_only = pytest.mark.skipif(keras.backend.backend() != "jax", reason="the vectorised engine needs JAX")


def income():
    ex = load_example("income")
    ok = np.isfinite(ex.X).all(axis=1)
    return ex, ex.X[ok], ex.y[ok]


@pytest.mark.slow
@jax_only
def test_vectorized_curves_agree_with_model_fit_full_batch():
    ex, X, y = income()  # 18 rows, batch 32: one full batch per epoch, deterministic
    model = ex.build_model(0)
    specs = [
        RunSpec("adam", 1e-2, scale_x=True, scale_y=True, epochs=30, batch_size=32),
        RunSpec("sgd", 1e-2, scale_x=True, epochs=30, batch_size=32),
        RunSpec("rmsprop", 1e-1, epochs=30, batch_size=32),
        RunSpec("adagrad", 1e-1, scale_y=True, loss="huber", huber_delta=0.5, epochs=30, batch_size=32),
        RunSpec("sgd", 1e-2, scale_x=True, scale_y=True, momentum=0.9, clipnorm=1.0, loss="mae", epochs=30, batch_size=32),
        RunSpec("nadam", 1e-2, scale_x=True, scale_y=True, epochs=30, batch_size=32),  # Keras's own update rule
    ]
    vec = train_runs(model, X, y, specs, engine="vectorized")
    seq = train_runs(model, X, y, specs, engine="sequential")
    for a, b in zip(vec, seq):
        assert a.engine == "vectorized" and b.engine == "sequential"
        np.testing.assert_allclose(a.mse, b.mse, rtol=1e-4, err_msg=a.spec.label())
        np.testing.assert_allclose(a.loss, b.loss, rtol=1e-4, err_msg=a.spec.label())
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_allclose(wa, wb, rtol=1e-3, atol=1e-5)
    # the runs really differ from each other (the comparison is not vacuous)
    finals = [r.final_mse for r in vec]
    assert max(finals) / min(finals) > 10


@jax_only
def test_last_partial_batch_and_shuffling_follow_numpy_sgd():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(10, 2))
    y = X @ np.array([1.5, -2.0]) + 0.5
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    w0, b0 = [np.asarray(v, np.float64) for v in model.get_weights()]
    lr, epochs, bs = 0.1, 2, 4  # batches of 4, 4 and 2 rows
    res = train_runs(model, X, y, [RunSpec("sgd", lr, epochs=epochs, batch_size=bs)], seed=5, engine="vectorized")[0]
    idx, mask = shuffled_batches(10, bs, epochs, 5)
    w, b = w0[:, 0].copy(), float(b0[0])
    epoch_losses = []
    for e in range(epochs):
        total = 0.0
        for s in range(idx.shape[1]):
            rows = idx[e, s][mask[e, s] > 0]
            err = X[rows] @ w + b - y[rows]
            total += np.mean(err**2) * len(rows)
            w -= lr * 2 * X[rows].T @ err / len(rows)   # d/dw mean(err^2)
            b -= lr * 2 * err.mean()
        epoch_losses.append(total / 10)
    np.testing.assert_allclose(res.weights[0][:, 0], w, rtol=1e-4)
    np.testing.assert_allclose(res.weights[1][0], b, rtol=1e-4)
    np.testing.assert_allclose(res.loss, epoch_losses, rtol=1e-4)
    np.testing.assert_allclose(res.mse[-1], np.mean((X @ w + b - y) ** 2), rtol=1e-4)


def test_model_is_never_modified_and_runs_start_from_its_weights():
    ex, X, y = income()
    model = ex.compiled_model(0)
    before = [w.copy() for w in model.get_weights()]
    opt_before = model.optimizer
    res = train_runs(model, X, y, [RunSpec("adam", 1e-2, epochs=5), RunSpec("sgd", 1e-3, scale_y=True, epochs=5)])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert model.optimizer is opt_before
    # epoch-0 MSE of the unscaled run is the untrained model's MSE on the data
    pred = np.asarray(model(X.astype(np.float32)))[:, 0]
    np.testing.assert_allclose(res[0].initial_mse, np.mean((pred - y) ** 2), rtol=1e-5)


def test_build_trained_model_predicts_raw_to_original_units(tmp_path):
    ex, X, y = income()
    model = ex.build_model(0)
    res = train_runs(model, X, y, [RunSpec("adam", 1e-2, scale_x=True, scale_y=True, epochs=120)])[0]
    trained = build_trained_model(model, res)
    path = str(tmp_path / "trained.keras")
    trained.save(path)
    loaded = keras.saving.load_model(path)
    pred = np.asarray(loaded.predict(X.astype(np.float32), verbose=0))[:, 0]
    np.testing.assert_allclose(np.mean((pred - y) ** 2), res.final_mse, rtol=1e-3)
    assert res.final_mse < 1.1 * least_squares(X, y)[2]  # it did train, to the optimum


def test_batch_dependent_model_trains_vectorised_with_its_last_batch_at_its_true_size():
    """BatchNormalization mixes the rows of a batch: the engine trains an epoch's partial last batch as
    its own step of n % B rows, so its first epoch equals model.fit's over the same batches (with the
    padded batch it did not: 3.945 vs 4.127). The learning-rate sweep pads its batches and refuses it."""
    from fitdoctor.experiments.replica_check import check_replica
    from fitdoctor.experiments.sweep import sweep_losses

    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = X @ np.array([1.0, 2.0, -1.0, 0.5]) + 0.1 * rng.normal(size=90)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.BatchNormalization(), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.05, momentum=0.9), "mse")
    for spec in (RunSpec("sgd", 0.05, momentum=0.9, epochs=3, batch_size=32), RunSpec("adam", 1e-2, epochs=3, batch_size=32)):
        res = train_runs(model, X, y, [spec])[0]
        assert res.engine == "vectorized" and np.isfinite(res.mse).all() and len(res.mse) == 3
        check = check_replica(model, X, y, spec)
        assert check.agrees is True, check.check
    with pytest.raises(InputError, match="BatchNormalization"):
        sweep_losses(model, X, y, RunSpec(epochs=1), np.geomspace(1e-4, 1e-1, 10), engine="vectorized")


def test_bad_specs_are_input_errors():
    ex, X, y = income()
    model = ex.build_model(0)
    with pytest.raises(InputError, match="optimizer='adamm'"):
        train_runs(model, X, y, [RunSpec("adamm")])
    with pytest.raises(InputError, match="learning_rate"):
        train_runs(model, X, y, [RunSpec(learning_rate=-1.0)])
    with pytest.raises(InputError, match="NaN"):
        train_runs(model, ex.X, ex.y, [RunSpec(epochs=1)])


@pytest.mark.slow
def test_tensorflow_backend_uses_sequential_fits():
    # in process (executor="inprocess") TensorFlow trains with sequential fits; by default a JAX
    # worker process trains them on the vectorised engine (tests/test_worker_tf.py)
    code = (
        "import numpy as np, keras\n"
        "from fitdoctor.experiments import RunSpec, train_runs\n"
        "rng = np.random.default_rng(0); X = rng.normal(size=(16, 2)); y = X @ [1.0, 2.0]\n"
        "m = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])\n"
        "r = train_runs(m, X, y, [RunSpec('sgd', 0.1, epochs=30, batch_size=16)], executor='inprocess')[0]\n"
        "print(r.engine, r.final_mse < 0.05 * r.initial_mse, 'JAX' in r.note)\n"
    )
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3",
               PYTHONPATH=os.pathsep.join([os.path.join(os.path.dirname(__file__), "..", "src"), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-3:] == ["sequential", "True", "True"]


FUSED_SPECS = [
    RunSpec("adam", 3e-2, scale_x=True, scale_y=True),
    RunSpec("adam", 1e-3, clipnorm=0.5, scale_x=True),
    RunSpec("sgd", 5e-2, scale_x=True, scale_y=True),
    RunSpec("sgd", 1e-2, momentum=0.9, scale_x=True, scale_y=True),
    RunSpec("rmsprop", 1e-2, scale_x=True, scale_y=True, loss="huber", huber_delta=0.7),
    RunSpec("adagrad", 2e-1, scale_x=True, scale_y=True),
]


def _mlp_problem():
    rng = np.random.default_rng(7)
    X = rng.normal(size=(45, 3)) * [1.0, 10.0, 0.1] + [0.0, 5.0, 0.0]
    y = np.sin(X[:, 0]) + 0.1 * X[:, 1] + 3.0 * X[:, 2] + 0.05 * rng.normal(size=45)
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    return model, X, y


@jax_only
def test_fused_update_rule_matches_keras_optimizers_over_minibatches(monkeypatch):
    """Several shuffled minibatches a epoch with a partial last one (45 rows, batches of 8), a hidden layer:
    the fused rule (one program for all optimizers) against each Keras optimizer's own stateless update."""
    model, X, y = _mlp_problem()
    specs = [replace(s, epochs=12, batch_size=8) for s in FUSED_SPECS]
    assert all(fused_coefficients(s) is not None for s in specs)
    fused = train_runs(model, X, y, specs, engine="vectorized", seed=3)
    monkeypatch.setattr(engine_module, "_fusable", lambda base, spec: False)
    engine_module.clear_program_cache()
    keras_rule = train_runs(model, X, y, specs, engine="vectorized", seed=3)
    for a, b in zip(fused, keras_rule):
        np.testing.assert_allclose(a.mse, b.mse, rtol=2e-4, err_msg=a.label)
        np.testing.assert_allclose(a.loss, b.loss, rtol=2e-4, err_msg=a.label)
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_allclose(wa, wb, rtol=1e-3, atol=1e-5, err_msg=a.label)
    assert len({round(r.final_mse, 6) for r in fused}) == len(fused)  # six different trajectories


@jax_only
def test_runs_trained_together_equal_runs_trained_alone():
    """Stacking optimizers in one program must not leak state between runs."""
    model, X, y = _mlp_problem()
    specs = [replace(s, epochs=6, batch_size=16) for s in FUSED_SPECS]
    together = train_runs(model, X, y, specs, engine="vectorized", seed=0)
    for spec, run in zip(specs, together):
        alone = train_runs(model, X, y, [spec], engine="vectorized", seed=0)[0]
        np.testing.assert_allclose(run.mse, alone.mse, rtol=1e-5, err_msg=spec.label())


def test_fused_rule_declines_what_it_cannot_express():
    assert fused_coefficients(RunSpec("nadam")) is None
    assert fused_coefficients(RunSpec("adamw")) is None
    adagrad = fused_coefficients(RunSpec("adagrad", 0.5))
    assert adagrad["lr"] == 0.5 and adagrad["v0"] == pytest.approx(0.1)  # Keras's initial accumulator
    sgd = fused_coefficients(RunSpec("sgd", 0.1, momentum=0.9))
    assert sgd["scale"] == pytest.approx(10.0)


@jax_only
def test_by_epoch_program_matches_the_whole_program_and_serves_every_epoch_count(monkeypatch):
    from fitdoctor.experiments import programs

    rng = np.random.default_rng(0)
    X = rng.normal(size=(96, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=96)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    specs = [RunSpec("adam", 1e-2, epochs=4, batch_size=16), RunSpec("sgd", 1e-2, scale_x=True, epochs=4, batch_size=16)]
    engine_module.clear_program_cache()
    whole = train_runs(model, X, y, specs, seed=0)
    monkeypatch.setattr(programs, "BY_EPOCH_ABOVE_WORK", 0.0)
    engine_module.clear_program_cache()
    by_epoch = train_runs(model, X, y, specs, seed=0)
    for a, b in zip(whole, by_epoch):
        np.testing.assert_allclose(b.mse, a.mse, rtol=1e-6)
        np.testing.assert_allclose(b.loss, a.loss, rtol=1e-6)
        assert b.initial_mse == pytest.approx(a.initial_mse, rel=1e-6)
        assert b.engine == "vectorized"
    # a shorter and a longer run of the same configurations reuse the one compiled program
    n_programs = len(programs._PROGRAM_CACHE)
    short = train_runs(model, X, y, [replace(s, epochs=2) for s in specs], seed=0)
    train_runs(model, X, y, [replace(s, epochs=7) for s in specs], seed=0)
    assert len(programs._PROGRAM_CACHE) == n_programs
    # the first epochs of the short run are the first epochs of the long one (same batches)
    np.testing.assert_allclose(short[0].mse, by_epoch[0].mse[:2], rtol=1e-6)


@jax_only
@pytest.mark.parametrize("program", ["whole", "by-epoch"])
def test_evaluation_in_chunks_of_rows_gives_the_curves_of_one_pass(program, monkeypatch):
    """Large evaluations pass their rows in chunks (the last one padded): same curves, same training."""
    from fitdoctor.experiments import programs

    rng = np.random.default_rng(1)
    X = rng.normal(size=(1101, 2))
    y = np.sin(2 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.normal(size=1101)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(6, activation="relu"), keras.layers.Dense(1)])
    specs = [RunSpec("adam", 1e-2, epochs=2, batch_size=128), RunSpec("sgd", 1e-1, scale_x=True, epochs=2, batch_size=128)]
    val = (X[:300] + 0.5, y[:300])
    monkeypatch.setattr(programs, "BY_EPOCH_ABOVE_WORK", 0.0 if program == "by-epoch" else 1e30)
    runs = {}
    for name, chunk_rows in (("at once", 10**9), ("chunks", 1)):
        monkeypatch.setattr(programs, "EVAL_CHUNK_RUN_ROWS", chunk_rows)
        monkeypatch.setattr(programs, "EVAL_MIN_CHUNK", 256)  # 1,101 rows: 5 chunks of 221, 4 padded; 300: none
        engine_module.clear_program_cache()
        runs[name] = train_runs(model, X, y, specs, seed=0, validation_data=val)
    assert programs._eval_chunks(1101, 2) == 5 and programs._eval_chunks(300, 2) == 1
    for a, b in zip(runs["at once"], runs["chunks"]):
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_array_equal(wa, wb)  # training never depends on the evaluation
        np.testing.assert_allclose(b.mse, a.mse, rtol=1e-6)
        np.testing.assert_allclose(b.val_mse, a.val_mse, rtol=1e-6)
        assert b.initial_mse == pytest.approx(a.initial_mse, rel=1e-6)
        assert len(b.mse) == 2
    engine_module.clear_program_cache()


@jax_only
def test_clipped_and_unclipped_fused_groups_do_not_share_a_program():
    """A fused group without clipnorm leaves the gradient norms out of its program: a later group that
    clips (same shapes) must compile its own program, not reuse that one."""
    model, X, y = _mlp_problem()
    plain = [RunSpec("adam", 1e-1, epochs=3, batch_size=16), RunSpec("sgd", 1e-1, epochs=3, batch_size=16)]
    clipped = [replace(s, clipnorm=1e-3) for s in plain]
    engine_module.clear_program_cache()
    first = train_runs(model, X, y, plain, engine="vectorized", seed=0)
    after = train_runs(model, X, y, clipped, engine="vectorized", seed=0)
    engine_module.clear_program_cache()
    alone = train_runs(model, X, y, clipped, engine="vectorized", seed=0)
    for p, a, c in zip(first, after, alone):
        np.testing.assert_allclose(a.mse, c.mse, rtol=1e-6)
        assert not np.allclose(a.mse, p.mse, rtol=1e-3)  # a tiny clipnorm slows training down


def _held_out_problem():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(120, 3))
    y = X @ np.array([1.0, 2.0, -1.0]) + np.sin(3 * X[:, 0]) + 0.3 * rng.normal(size=120)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    # Adam at a high rate overfits 90 rows: its held-out MSE is lowest before the last epoch
    specs = [RunSpec("adam", 3e-2, epochs=25, batch_size=16), RunSpec("sgd", 1e-2, scale_x=True, epochs=25, batch_size=16)]
    return model, X[:90], y[:90], X[90:], y[90:], specs


def _val_mse(model, result, Xv, yv, best=False):
    if best:
        result = replace(result, weights=result.best_weights, non_trainable_weights=result.best_non_trainable_weights)
    pred = np.asarray(build_trained_model(model, result)(Xv.astype(np.float32)), np.float64).ravel()
    return float(np.mean((pred - yv) ** 2))


@pytest.mark.parametrize("program", ["whole", "by-epoch", "sequential"])
def test_held_out_curve_and_best_epoch_weights(program, monkeypatch):
    from fitdoctor.experiments import programs

    if program != "sequential" and keras.backend.backend() != "jax":
        pytest.skip("the vectorised engine needs JAX")
    monkeypatch.setattr(programs, "BY_EPOCH_ABOVE_WORK", 0.0 if program == "by-epoch" else 1e30)
    model, X, y, Xv, yv, specs = _held_out_problem()
    engine = "sequential" if program == "sequential" else "vectorized"
    runs = train_runs(model, X, y, specs, seed=0, engine=engine, validation_data=(Xv, yv), keep_best=True)
    plain = train_runs(model, X, y, specs, seed=0, engine=engine)
    for r, p in zip(runs, plain):
        assert r.engine == engine and len(r.val_mse) == 25
        # the curve's last value is the held-out MSE of the run's final weights
        assert r.val_mse[-1] == pytest.approx(_val_mse(model, r, Xv, yv), rel=1e-4)
        # ... and its initial value that of the starting weights (on inputs standardised as the run sees them)
        Xin = (Xv - r.x_mean) / r.x_std if r.spec.scale_x else Xv
        start = np.asarray(model(Xin.astype(np.float32)), np.float64).ravel()
        assert r.initial_val_mse == pytest.approx(float(np.mean((start - yv) ** 2)), rel=1e-4)
        # the kept weights are those of the epoch with the lowest held-out MSE
        assert r.best_epoch == int(np.argmin(r.val_mse)) + 1
        assert _val_mse(model, r, Xv, yv, best=True) == pytest.approx(float(np.min(r.val_mse)), rel=1e-4)
        # held-out rows never train: the training curve and the final weights are those of a run without them
        np.testing.assert_allclose(r.mse, p.mse, rtol=1e-5)
        assert p.val_mse is None and p.best_epoch is None
    assert runs[0].best_epoch < 25  # the overfitting run: best weights are not the last ones
    assert not np.allclose(runs[0].best_weights[0], runs[0].weights[0])
    # the best weights are those of a run stopped at that epoch (the same batches up to it)
    stopped = train_runs(model, X, y, [replace(specs[0], epochs=runs[0].best_epoch)], seed=0, engine=engine)[0]
    for a, b in zip(stopped.weights, runs[0].best_weights):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_keep_best_needs_held_out_rows_and_they_must_fit_x():
    model, X, y, Xv, yv, specs = _held_out_problem()
    with pytest.raises(InputError, match="keep_best"):
        train_runs(model, X, y, specs[:1], keep_best=True)
    with pytest.raises(InputError, match="shaped like X"):
        train_runs(model, X, y, specs[:1], validation_data=(Xv[:, :2], yv))
    with pytest.raises(InputError, match="one target row"):
        train_runs(model, X, y, specs[:1], validation_data=(Xv, yv[:-1]))


@jax_only
def test_early_stopping_and_reduce_lr_on_plateau_follow_keras_callbacks():
    ex, X, y = income()  # 18 rows, batch 32: one full batch per epoch, deterministic
    model = ex.build_model(0)
    common = {"scale_x": True, "scale_y": True, "epochs": 60, "batch_size": 32}
    specs = [RunSpec("adam", 0.5, early_stopping_patience=5, reduce_lr_patience=3, reduce_lr_min=5e-4, **common),
             RunSpec("sgd", 0.05, reduce_lr_patience=4, reduce_lr_min=1e-4, **common),
             RunSpec("adam", 0.05, early_stopping_patience=8, **common)]
    vec = train_runs(model, X, y, specs, engine="vectorized")
    seq = train_runs(model, X, y, specs, engine="sequential")  # model.fit with Keras's own callbacks
    for a, b in zip(vec, seq):
        assert len(a.loss) == len(b.loss), a.spec.label()  # stopped at the same epoch
        np.testing.assert_allclose(a.mse, b.mse, rtol=1e-3, err_msg=a.spec.label())
        assert a.final_mse == pytest.approx(b.final_mse, rel=1e-3)
        for wa, wb in zip(a.weights, b.weights):
            np.testing.assert_allclose(wa, wb, rtol=1e-3, atol=1e-5)
    # the callbacks acted: early stopping stopped and restored an earlier epoch; the rate was reduced
    assert len(vec[0].loss) < 60 and len(vec[2].loss) < 60
    assert vec[2].final_mse < vec[2].mse[-1]
    plain = train_runs(model, X, y, [replace(specs[0], reduce_lr_patience=None)], engine="vectorized")[0]
    k = min(len(plain.mse), len(vec[0].mse))
    assert not np.allclose(plain.mse[:k], vec[0].mse[:k], rtol=1e-3)
