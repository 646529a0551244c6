"""The code snippets of the scaling fixes are complete: run as shown, they put the layer into the model."""
import numpy as np
import pytest

import rule_fixtures as rf


@pytest.mark.parametrize("name", ["feature-scale", "ill-conditioned", "target-scale"])
def test_normalization_snippet_puts_the_layer_in_the_model(name):
    import keras

    from fitdoctor.rules import get_rule

    scenario = rf.firing(name)
    findings = rf.run_rule(get_rule(name), scenario)
    assert findings and findings[0].fix is not None
    snippet = findings[0].fix.snippet
    X = np.asarray(scenario.X, dtype="float32")[:64]
    y = np.asarray(scenario.y, dtype="float32")[:64]
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((X.shape[1],)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    ns = {"keras": keras, "np": np, "X": X, "y": y, "model": model}
    exec(snippet, ns)
    out = ns["model"]
    assert any(isinstance(layer, keras.layers.Normalization) for layer in out.layers), snippet
    pred = np.asarray(out.predict(X, verbose=0))
    assert pred.shape == (len(X), 1) and np.isfinite(pred).all()
