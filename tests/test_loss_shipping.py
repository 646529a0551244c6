"""A run's loss object keeps all its parameters on the way to another process (the JAX worker that
trains a TensorFlow user's experiments): Keras's own get_config() drops some of them."""
import numpy as np

import keras

from fitdoctor.experiments.shipping import pack_specs, unpack_specs
from fitdoctor.experiments.specs import RunSpec


def _shipped(loss):
    spec = RunSpec(optimizer="adam", learning_rate=0.01, loss="huber", batch_size=8, epochs=1, loss_object=loss)
    return unpack_specs(pack_specs([spec]))[0].loss_object


def test_huber_delta_survives_shipping():
    y_true, y_pred = np.zeros((4, 1), "float32"), np.full((4, 1), 3.0, "float32")
    original = keras.losses.Huber(delta=2.0)
    shipped = _shipped(original)
    # delta 2: 2*3 - 2 = 4 per row; delta 1 (the default Keras's get_config falls back to) would give 2.5
    assert float(shipped(y_true, y_pred)) == float(original(y_true, y_pred)) == 4.0


def test_loss_without_hidden_parameters_ships_unchanged():
    shipped = _shipped(keras.losses.MeanSquaredError(name="my_mse"))
    assert isinstance(shipped, keras.losses.MeanSquaredError) and shipped.name == "my_mse"
