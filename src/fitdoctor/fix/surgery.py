"""Model surgery: modified clones of the user's model for the interventions that change layers.

The user's model is never touched: every function here clones it (``keras.models.clone_model``
with changed layer configs) and copies the weights where the shapes still match.
"""
from __future__ import annotations

import numpy as np


def _dense_layers(model) -> list:
    return [l for l in model.layers if type(l).__name__ == "Dense"]


def _ensure_built(model, n_inputs):
    """Build ``model``; ``n_inputs`` is the feature count or the full input shape without the batch."""
    if isinstance(n_inputs, (tuple, list)):
        shape = tuple(n_inputs)
    else:
        shape = (int(n_inputs),)
    if not getattr(model, "built", False):
        try:
            model.build((None,) + shape)
        except Exception:  # a subclassed model: call it once
            model(np.zeros((1,) + shape, dtype="float32"))
    return model


def clone(model, n_inputs: int):
    """A fresh copy of ``model`` with the same weights (the original is left alone)."""

    from ..model.replica import clone_model, copy_state

    copy = clone_model(model)
    _ensure_built(copy, n_inputs)
    if model.built:
        try:
            copy_state(model, copy)  # every variable, adapted statistics included
        except ValueError:
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
    from ..model.replica import finalize_state

    finalize_state(dst)


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
        from ..model.replica import clone_model

        new = clone_model(probe, clone_function=clone_function)
        _ensure_built(new, n_inputs)
        if kernel_initializer is None:
            _copy_weights(probe, new)
    return new


def _with_hidden(probe, n_inputs, hidden_units, activation, clone_function, last_dense):
    import keras

    layers = [keras.Input(tuple(n_inputs) if isinstance(n_inputs, (tuple, list)) else (int(n_inputs),))]
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


def resizable(model) -> bool:
    """True when :func:`resized_model` can change ``model``'s width and dropout: a ``Sequential``
    stack of Dense layers (with Dropout, Activation and preprocessing layers around them)."""
    import keras

    if not isinstance(model, keras.Sequential):
        return False
    allowed = {"Dense", "Dropout", "Activation", "Normalization", "Rescaling", "Flatten", "BatchNormalization"}
    dense = _dense_layers(model)
    return bool(dense) and all(type(l).__name__ in allowed for l in model.layers)


def resized_model(model, n_inputs, *, l2: float | None = None, dropout: float | None = None,
                  width: int | None = None, seed: int = 0):
    """A clone of ``model`` with its regularisation or hidden width changed (small-data repairs).

    * ``l2``: every Dense kernel gets ``L2(l2)`` (0 removes kernel, bias and activity penalties);
    * ``dropout``: the model's Dropout layers are removed and, when > 0, one ``Dropout(dropout)``
      follows each hidden Dense layer;
    * ``width``: every hidden Dense layer gets ``width`` units; 0 removes the hidden layers (the
      linear model: the preprocessing layers and the output unit).
    ``None`` keeps that part. Layers whose shapes are unchanged keep their weights. Width and
    dropout need a :func:`resizable` model (ValueError otherwise); ``l2`` works on any model.
    """
    import keras

    from ..model.replica import clone_model, finalize_state

    keras.utils.set_random_seed(seed)
    probe = clone(model, n_inputs)

    def regularised(cfg: dict) -> dict:
        if l2 is not None:
            cfg["kernel_regularizer"] = keras.regularizers.L2(float(l2)) if l2 > 0 else None
            cfg["bias_regularizer"] = None
            cfg["activity_regularizer"] = None
        return cfg

    if dropout is None and width is None:
        def clone_function(layer):
            cfg = layer.get_config()
            if type(layer).__name__ == "Dense":
                cfg = regularised(cfg)
            return type(layer).from_config(cfg)

        new = clone_model(probe, clone_function=clone_function)
        _ensure_built(new, n_inputs)
        _copy_weights(probe, new)
        return new
    if not resizable(probe):
        raise ValueError("width and dropout changes need a Sequential stack of Dense layers")
    dense = _dense_layers(probe)
    last = dense[-1]
    first_dense_at = probe.layers.index(dense[0])
    last_at = probe.layers.index(last)
    pairs = []  # (source layer, new layer): weights copied where the shapes match
    layers = []
    for i, layer in enumerate(probe.layers):
        kind = type(layer).__name__
        if width == 0 and first_dense_at <= i < last_at:
            continue  # the linear model: no hidden layers, no activations between them
        if kind == "Dropout" and dropout is not None:
            continue
        cfg = layer.get_config()
        cfg.pop("name", None)
        if kind == "Dense":
            cfg = regularised(cfg)
            if layer is not last and width:
                cfg["units"] = int(width)
        new_layer = type(layer).from_config(cfg)
        layers.append(new_layer)
        pairs.append((layer, new_layer))
        if kind == "Dense" and layer is not last and dropout:
            layers.append(keras.layers.Dropout(float(dropout), seed=seed))
    shape = tuple(n_inputs) if isinstance(n_inputs, (tuple, list)) else (int(n_inputs),)
    new = keras.Sequential([keras.Input(shape)] + layers)
    _ensure_built(new, n_inputs)
    for src, dst in pairs:
        ws, wd = src.get_weights(), dst.get_weights()
        if ws and len(ws) == len(wd) and all(a.shape == b.shape for a, b in zip(ws, wd)):
            dst.set_weights(ws)
    finalize_state(new)
    return new
