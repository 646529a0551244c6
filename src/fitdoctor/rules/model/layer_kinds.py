"""What the model rules need to know about layers beyond Dense: kernels and their fans, ReLU units,
recurrent layers, and which layers keep an output activation's range.

The rules written for Dense stacks (bad-init, dying-relu, output-activation-range,
underfit-capacity) read layers through these helpers, so that a Conv1D/2D, LSTM, GRU, SimpleRNN,
Embedding or BatchNormalization model is judged by the same measure, or named as not judged.
"""
from __future__ import annotations

import math

import numpy as np

from ...model.replica import walk_layers

#: recurrent layers: their units are gated over time steps (a "unit" is not a column of one output)
RECURRENT = frozenset({"LSTM", "GRU", "SimpleRNN", "RNN", "Bidirectional", "ConvLSTM1D", "ConvLSTM2D",
                       "ConvLSTM3D"})
#: layers whose weights are a lookup table (no fan-in: no variance-preserving scale applies)
LOOKUP = frozenset({"Embedding"})
#: layers after which a bounded activation keeps its range (they select, reorder, or average values)
RANGE_KEEPING = frozenset({"InputLayer", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
                           "GaussianDropout", "AlphaDropout", "Flatten", "Reshape", "Permute", "RepeatVector",
                           "Identity", "Cropping1D", "Cropping2D", "Cropping3D", "GlobalAveragePooling1D",
                           "GlobalAveragePooling2D", "GlobalAveragePooling3D", "GlobalMaxPooling1D",
                           "GlobalMaxPooling2D", "GlobalMaxPooling3D", "AveragePooling1D", "AveragePooling2D",
                           "AveragePooling3D", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "TimeDistributed"})


def kind(layer) -> str:
    return type(layer).__name__


def leaf_layers(model) -> list:
    """The model's layers, nested models opened (a nested model is not a layer of its own here)."""
    return [l for l in walk_layers(model) if not hasattr(l, "layers")]


def kernels(layer) -> list[tuple[str, np.ndarray]]:
    """(variable name, values) of the layer's kernels: ``kernel``, ``recurrent_kernel``,
    ``depthwise_kernel``, ``pointwise_kernel`` (biases, BatchNormalization's scale and offset and
    embedding tables are not kernels)."""
    out = []
    for v in getattr(layer, "trainable_weights", []):
        name = str(getattr(v, "name", "")).split("/")[-1].split(":")[0]
        if name.endswith("kernel") and len(v.shape) >= 2:
            out.append((name, np.asarray(v.numpy() if hasattr(v, "numpy") else v, dtype=np.float64)))
    return out


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Keras's fans of a kernel: (in, out) for a matrix; times the receptive field for a convolution
    (``fan_in = shape[-2] * prod(shape[:-2])``, ``fan_out = shape[-1] * prod(shape[:-2])``)."""
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    receptive = int(math.prod(shape[:-2]))
    return int(shape[-2]) * receptive, int(shape[-1]) * receptive


def units_of(layer, kernel: np.ndarray) -> int:
    """How many units a kernel feeds (what symmetry would make identical): ``units``/``filters``."""
    for attr in ("units", "filters"):
        v = getattr(layer, attr, None)
        if isinstance(v, int):
            return v
    return int(kernel.shape[-1])


def activation_name(layer) -> str | None:
    """The name of the layer's activation (``"relu"``, ``"sigmoid"``, ...), or None when it has none."""
    act = getattr(layer, "activation", None)
    if act is None:
        return None
    name = getattr(act, "__name__", None) or (act if isinstance(act, str) else type(act).__name__)
    return str(name).lower()


def is_relu_layer(layer) -> bool:
    """True when every output of the layer is a plain ReLU (zero below zero): a Dense or
    convolution with ``activation="relu"``, ``Activation("relu")``, or a ``ReLU`` layer with no
    negative slope and threshold 0."""
    k = kind(layer)
    if k in RECURRENT:
        return False
    if k == "ReLU":
        return not float(getattr(layer, "negative_slope", 0.0) or 0.0) and not float(getattr(layer, "threshold", 0.0) or 0.0)
    return activation_name(layer) == "relu"


def recurrent_relu_layers(model) -> list:
    """Recurrent layers whose activation is ReLU: their units are not judged by dead-unit counts."""
    return [l for l in leaf_layers(model) if kind(l) in RECURRENT and activation_name(l) == "relu"]


def unit_axis(layer) -> int:
    """The axis of the layer's output that holds its units (channels): the last one unless the
    layer is ``data_format="channels_first"``."""
    return 1 if getattr(layer, "data_format", None) == "channels_first" else -1


def dead_unit_fraction(out: np.ndarray, axis: int = -1) -> float:
    """The fraction of units (along ``axis``) that are <= 0 for every row and every position."""
    out = np.moveaxis(np.asarray(out), axis, -1)
    per_unit = out.reshape(-1, out.shape[-1])
    return float((per_unit <= 0).all(axis=0).mean()) if per_unit.size else 0.0


def output_activation(model) -> tuple[str | None, str | None, str | None]:
    """(activation, layer name, reason) of what bounds the model's output.

    Walks back from the last layer over layers that keep a range (:data:`RANGE_KEEPING`) to the
    first layer with an activation. ``reason`` is set (and the activation None) when a layer
    in between rescales its input (BatchNormalization, Rescaling, a Lambda, ...): then the
    output's range is not known and nothing may be concluded from the activation. A recurrent
    layer's output lies in its activation's range (tanh for LSTM/GRU/SimpleRNN by default).
    """
    layers = leaf_layers(model)
    outputs = getattr(model, "outputs", None) or []
    if len(outputs) > 1:
        return None, None, "the model has several outputs"
    for layer in reversed(layers):
        k = kind(layer)
        if k in RANGE_KEEPING:
            continue
        if k == "ReLU":
            if float(getattr(layer, "negative_slope", 0.0) or 0.0) or getattr(layer, "max_value", None) is not None:
                return None, layer.name, f"the output layer {layer.name!r} is a ReLU with a slope or a ceiling"
            return "relu", layer.name, None
        if k == "Softmax":
            return "softmax", layer.name, None
        act = activation_name(layer)
        if act is not None:
            return act, layer.name, None
        return None, layer.name, f"layer {layer.name!r} ({k}) comes after the last activation and changes its range"
    return None, None, "no layer with an activation"


def add_note(ctx, note: str) -> None:
    """Add an info note to the report being built from ``ctx`` (once: a rule may run twice)."""
    notes = getattr(ctx, "notes", None)
    if isinstance(notes, list) and note not in notes:
        notes.append(note)
