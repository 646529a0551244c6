"""The prediction plot of a sequence model: predicts on the windows as the model takes them, and leaves the
model usable (on JAX a `predict` that raises on wrongly shaped rows empties the model's variables)."""
import numpy as np


def test_prediction_display_on_an_lstm_keeps_the_model_usable():
    import keras

    from fitdoctor.reporting.plots import PredictionErrorDisplay

    rng = np.random.default_rng(0)
    X = rng.normal(size=(20, 12, 3)).astype("float32")
    y = X[:, -1, 0] * 2.0
    model = keras.Sequential([keras.Input((12, 3)), keras.layers.LSTM(4), keras.layers.Dense(1)])
    expected = np.asarray(model(X)).reshape(-1)
    d = PredictionErrorDisplay.from_model(model, X, y)
    assert np.allclose(np.asarray(d.y_pred).reshape(-1), expected, rtol=1e-5, atol=1e-6)
    assert np.allclose(np.asarray(model.predict(X, verbose=0)).reshape(-1), expected, rtol=1e-5, atol=1e-6)
