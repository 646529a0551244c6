"""Model surgery: modified clones of the user's model for the interventions that change layers.

The user's model is never touched: every function here clones it (``keras.models.clone_model``
with changed layer configs) and copies the weights where the shapes still match.
"""
from __future__ import annotations

import numpy as np


def _dense_layers(model) -> list:
    return [l for l in model.layers if type(l).__name__ == "Dense"]


def _ensure_built(model, n_inputs: int):
    if not model.built or not getattr(model, "inputs", None):
        try:
            model.build((None, n_inputs))
        except Exception:  # a subclassed model: call it once
            model(np.zeros((1, n_inputs), dtype="float32"))
    return model


def clone(model, n_inputs: int):
    """A fresh copy of ``model`` with the same weights (the original is left alone)."""
    import keras

    copy = keras.models.clone_model(model)
    _ensure_built(copy, n_inputs)
    if model.built:
        _copy_weights(model, copy)
    return copy


def _copy_weights(src, dst) -> None:
    """Copy layer weights from ``src`` to ``dst`` where layer order and shapes match."""
    src_layers = [l for l in src.layers if l.weights]
    dst_layers = [l for l in dst.layers if l.weights]
    for a, b in zip(src_layers, dst_layers):
        wa, wb = a.get_weights(), b.get_weights()
        if len(wa) == len(wb) and all(x.shape == y.shape for x, y in zip(wa, wb)):
            b.set_weights(wa)


def modified_model(model, n_inputs: int, *, output_activation: str | None = None,
                   kernel_initializer: str | None = None, hidden_units: tuple[int, ...] | None = None,
                   hidden_activation: str = "tanh", seed: int = 0):
    """A clone of ``model`` with the architecture changes of a recipe applied.

    * ``output_activation``: the activation of the last Dense layer (a trailing Activation layer
      becomes linear too);
    * ``kernel_initializer``: every Dense kernel re-initialised with it, biases zero;
    * ``hidden_units``: hidden Dense layers inserted before the output unit (a model that is not
      ``Sequential`` is replaced by an MLP ending in its output unit).
    Weights are copied from the user's model wherever the layer's shape is unchanged and its
    initializer is not replaced.
    """
    import keras

    if output_activation is None and kernel_initializer is None and hidden_units is None:
        return clone(model, n_inputs)
    keras.utils.set_random_seed(seed)
    probe = clone(model, n_inputs)  # a built copy whose layers we can read
    dense = _dense_layers(probe)
    last_dense = dense[-1] if dense else None
    trailing_acts = []
    if last_dense is not None:
        after = probe.layers[probe.layers.index(last_dense) + 1:]
        trailing_acts = [l for l in after if type(l).__name__ == "Activation"]

    def clone_function(layer):
        cfg = layer.get_config()
        cls = type(layer)
        if output_activation is not None:
            if layer is last_dense:
                cfg["activation"] = output_activation
            elif layer in trailing_acts:
                cfg["activation"] = "linear"
        if kernel_initializer is not None and type(layer).__name__ == "Dense":
            cfg["kernel_initializer"] = kernel_initializer
            cfg["bias_initializer"] = "zeros"
        return cls.from_config(cfg)

    if hidden_units is not None:
        new = _with_hidden(probe, n_inputs, hidden_units, hidden_activation, clone_function, last_dense)
    else:
        new = keras.models.clone_model(probe, clone_function=clone_function)
        _ensure_built(new, n_inputs)
        if kernel_initializer is None:
            _copy_weights(probe, new)
    return new


def _with_hidden(probe, n_inputs, hidden_units, activation, clone_function, last_dense):
    import keras

    layers = [keras.Input((n_inputs,))]
    if isinstance(probe, keras.Sequential):
        body = [l for l in probe.layers if l is not last_dense]
        idx = probe.layers.index(last_dense) if last_dense is not None else len(probe.layers)
        before, after = body[:idx], body[idx:]
        layers += [clone_function(l) for l in before]
    else:
        after = []
    layers += [keras.layers.Dense(int(u), activation=activation) for u in hidden_units]
    if last_dense is not None:
        out_cfg = clone_function(last_dense).get_config()
        out_cfg.pop("name", None)
        layers.append(keras.layers.Dense.from_config(out_cfg))
    else:
        layers.append(keras.layers.Dense(1))
    layers += [clone_function(l) for l in after]
    return keras.Sequential(layers)
