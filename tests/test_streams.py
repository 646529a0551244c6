"""Data given as a generator or dataset of (x, y) batches (issue 11 item 5): read once, up to a stated
number of rows, and the report says so."""
import numpy as np
import pytest

import keras

import fitdoctor
from fitdoctor.data.streams import MAX_STREAM_ROWS, is_stream, read_stream
from fitdoctor.errors import InputError


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3)) * np.array([1.0, 5.0, 0.2])
    y = X @ np.array([2.0, -0.3, 4.0]) + 1.0 + 0.05 * rng.normal(size=n)
    return X, y


def _batches(X, y, size=16):
    for i in range(0, len(X), size):
        yield X[i:i + size], y[i:i + size]


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss="mse")
    return model


def test_read_stream_reads_every_row_in_order_and_stops_at_the_limit():
    X, y = _data()
    assert is_stream(_batches(X, y)) and not is_stream(X) and not is_stream([X, X])
    Xa, ya, notes = read_stream(_batches(X, y))
    np.testing.assert_array_equal(Xa, X)
    np.testing.assert_array_equal(ya, y)
    assert notes == ["data read from a generator: the first 64 rows (all of it)"]
    Xa, ya, notes = read_stream(_batches(X, y), max_rows=40)  # 40 is not a multiple of the batch size
    np.testing.assert_array_equal(Xa, X[:40])
    assert len(ya) == 40 and "the first 40 rows (the limit, 40; the rest of the stream was not read)" in notes[0]
    assert MAX_STREAM_ROWS == 100_000


def test_read_stream_keeps_several_inputs_and_refuses_malformed_batches():
    X, y = _data()
    Xa, ya, _ = read_stream(([X[i:i + 8], X[i:i + 8, :2]], y[i:i + 8]) for i in range(0, 64, 8))
    assert isinstance(Xa, list) and Xa[0].shape == (64, 3) and Xa[1].shape == (64, 2) and ya.shape == (64,)
    with pytest.raises(InputError, match="tuple"):
        read_stream(x for x in [X[:8]])
    with pytest.raises(InputError, match="y=None"):
        read_stream(_batches(X, y), y)
    with pytest.raises(InputError, match="no batches"):
        read_stream(iter([]))


def test_diagnose_and_compare_take_a_generator_and_say_how_many_rows_they_read():
    X, y = _data()
    model = _model()
    report = fitdoctor.diagnose(model, _batches(X, y), epochs=5, probe=False)
    assert any("data read from a generator: the first 64 rows" in n for n in report.notes)
    from_arrays = fitdoctor.compare(model, X, y, epochs=5, batch_size=16)
    from_stream = fitdoctor.compare(model, _batches(X, y), epochs=5, batch_size=16)
    np.testing.assert_allclose(from_stream.results_["final_loss"], from_arrays.results_["final_loss"], rtol=1e-6)
    assert any("the first 64 rows" in n for n in from_stream.notes_)


@pytest.mark.slow  # a repair of a linear model on 64 rows (~10 s)
def test_repair_takes_a_generator():
    X, y = _data()
    rep = fitdoctor.repair(_model(), _batches(X, 1e3 * y + 1e4), epochs=20)
    assert any("data read from a generator: the first 64 rows" in n for n in rep.report.notes)
    pred = np.asarray(rep.model.predict(X, verbose=0)).reshape(-1)
    assert np.mean((pred - (1e3 * y + 1e4)) ** 2) == pytest.approx(rep.after_loss, rel=1e-4)


_TF_DATA = """
import os
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np
import tensorflow as tf
from fitdoctor.data.streams import is_stream, read_stream
X = np.arange(60, dtype="float32").reshape(20, 3)
y = X.sum(axis=1)
ds = tf.data.Dataset.from_tensor_slices((X, y)).batch(8)
assert is_stream(ds)
Xa, ya, notes = read_stream(ds, max_rows=12)
assert np.array_equal(Xa, X[:12]) and np.array_equal(ya, y[:12]), (Xa, ya)
print(notes[0])
"""


def test_a_tf_data_dataset_is_read_like_a_generator():
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("tensorflow is not installed")
    run = subprocess.run([sys.executable, "-c", _TF_DATA], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "data read from a tf.data.Dataset: the first 12 rows (the limit, 12" in run.stdout
