"""Describe a Keras model and its training configuration as plain values.

Nothing here modifies the model: we read layer configs, weights (copies) and the compiled
optimizer's hyper-parameters only.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: Keras' default learning rates, used when only an optimizer name is given.
DEFAULT_LR = {
    "adam": 1e-3, "adamw": 1e-3, "adamax": 1e-3, "nadam": 1e-3, "rmsprop": 1e-3, "adagrad": 1e-3,
    "adadelta": 1e-3, "sgd": 1e-2, "ftrl": 1e-3, "lion": 1e-3, "lamb": 1e-3,
}
#: optimizers whose step is roughly lr * sign(gradient): their steps do not grow with the gradient
ADAPTIVE = {"adam", "adamw", "adamax", "nadam", "rmsprop", "adagrad", "adadelta", "lion", "lamb"}

_LOSS_ALIASES = {
    "mse": "mse", "mean_squared_error": "mse", "meansquarederror": "mse",
    "mae": "mae", "mean_absolute_error": "mae", "meanabsoluteerror": "mae",
    "huber": "huber", "huber_loss": "huber",
    "log_cosh": "log_cosh", "logcosh": "log_cosh",
    "msle": "msle", "mean_squared_logarithmic_error": "msle", "meansquaredlogarithmicerror": "msle",
    "mape": "mape", "mean_absolute_percentage_error": "mape", "meanabsolutepercentageerror": "mape",
    "binary_crossentropy": "binary_crossentropy", "binarycrossentropy": "binary_crossentropy",
    "categorical_crossentropy": "categorical_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    "sparse_categorical_crossentropy": "sparse_categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "binary_focal_crossentropy": "binary_focal_crossentropy",
    "binaryfocalcrossentropy": "binary_focal_crossentropy",
    "hinge": "hinge", "squared_hinge": "squared_hinge", "squaredhinge": "squared_hinge",
    "categorical_hinge": "categorical_hinge", "categoricalhinge": "categorical_hinge",
    "kl_divergence": "kl_divergence", "kld": "kl_divergence", "kldivergence": "kl_divergence",
    "poisson": "poisson", "cosine_similarity": "cosine_similarity",
    "cosinesimilarity": "cosine_similarity",
}
CLASSIFICATION_LOSSES = {
    "binary_crossentropy", "categorical_crossentropy", "sparse_categorical_crossentropy",
    "binary_focal_crossentropy", "hinge", "squared_hinge", "categorical_hinge", "kl_divergence",
}
#: range each output activation can reach
ACTIVATION_RANGE = {
    "sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "softmax": (0.0, 1.0),
    "tanh": (-1.0, 1.0), "softsign": (-1.0, 1.0), "hard_tanh": (-1.0, 1.0),
    "relu": (0.0, np.inf), "softplus": (0.0, np.inf), "elu": (-1.0, np.inf),
    "selu": (-1.7581, np.inf), "relu6": (0.0, 6.0), "exponential": (0.0, np.inf),
}
LINEAR_ACTIVATIONS = {"linear", None, "None"}


def canonical_loss(loss: Any) -> str:
    """Map a Keras loss (string, function or object) to a canonical lower-case name."""
    if loss is None:
        return "mse"
    if isinstance(loss, str):
        key = loss
    elif not callable(loss) or hasattr(loss, "__name__") or (type(loss).__module__ or "").startswith("keras"):
        key = getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    else:  # the user's Loss subclass: Keras numbers its auto-generated names per instance; the class is stable
        import re

        key = re.sub(r"(?<!^)(?=[A-Z])", "_", type(loss).__name__)
    key = str(key).lower()
    return _LOSS_ALIASES.get(key, _LOSS_ALIASES.get(key.replace("_", ""), key))


#: every loss name fitdoctor knows the kind of (a loss outside this set is the user's own)
BUILTIN_LOSSES = frozenset(_LOSS_ALIASES.values())


def is_custom_loss(name: str) -> bool:
    """True for a loss fitdoctor does not know (a user's function or ``Loss`` subclass): rules that
    need the loss's kind say "custom loss `NAME`: not judged" instead of guessing."""
    return str(name) not in BUILTIN_LOSSES


def custom_loss_note(name: str) -> str:
    return f"custom loss `{name}`: not judged"


@dataclass(frozen=True)
class TrainingConfig:
    """The configuration a model is (or will be) trained with.

    ``optimizer_config`` is the optimizer's full Keras serialisation (``keras.optimizers.serialize``
    as a JSON string, so the configuration stays hashable): momentum, nesterov, betas, epsilon,
    amsgrad, weight decay, clipping, EMA and learning-rate schedules travel with it. ``loss_object``
    is the loss as the user gave it when it is not a plain name (a ``Loss`` instance or subclass, a
    function); ``loss`` is its canonical name.
    """

    optimizer: str = "adam"
    learning_rate: float = 1e-3
    loss: str = "mse"
    epochs: int | None = None
    batch_size: int | None = 32
    momentum: float = 0.0
    clipnorm: float | None = None
    huber_delta: float = 1.0
    optimizer_config: str | None = None
    loss_object: Any = None

    @property
    def adaptive(self) -> bool:
        return self.optimizer in ADAPTIVE

    @property
    def custom_loss(self) -> bool:
        return is_custom_loss(self.loss)

    @property
    def optimizer_settings(self) -> dict[str, Any]:
        """The optimizer's settings that differ from its Keras defaults (learning rate excluded)."""
        return optimizer_settings(self.optimizer_config)

    def steps(self, n_rows: int) -> int | None:
        """Optimizer steps in the whole run: epochs x ceil(n / batch_size)."""
        if self.epochs is None:
            return None
        bs = self.batch_size or 32
        return int(self.epochs * int(np.ceil(max(n_rows, 1) / bs)))

    def replace(self, **kw) -> "TrainingConfig":
        return replace(self, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["optimizer_config"] = None if self.optimizer_config is None else json.loads(self.optimizer_config)
        d["loss_object"] = None if self.loss_object is None else loss_display_name(self.loss_object)
        return d


def loss_display_name(loss: Any) -> str:
    """How a loss is named in messages: its string, a function's ``__name__`` or a class name."""
    if isinstance(loss, str):
        return loss
    return getattr(loss, "__name__", None) or type(loss).__name__


def loss_keywords(loss: Any) -> dict[str, Any]:
    """The keyword arguments a Keras built-in ``Loss`` object passes to its function (``delta`` of Huber)."""
    kw = getattr(loss, "_fn_kwargs", None)
    return dict(kw) if isinstance(kw, dict) else {}


def serialize_optimizer(opt: Any) -> str | None:
    """The optimizer's full Keras serialisation as a JSON string (None for a name or a failure)."""
    if opt is None or isinstance(opt, str):
        return None
    try:
        import keras

        return json.dumps(keras.optimizers.serialize(opt), sort_keys=True, default=_json_default)
    except Exception:
        return None


def _json_default(v: Any):
    try:
        return float(v)
    except (TypeError, ValueError):
        return str(v)


_DEFAULT_SETTINGS_CACHE: dict[str, dict] = {}


def optimizer_settings(optimizer_config: str | None) -> dict[str, Any]:
    """Entries of a serialised optimizer config that differ from a default instance of its class
    (``name`` and ``learning_rate`` excluded; a learning-rate schedule appears as ``schedule``)."""
    if not optimizer_config:
        return {}
    ser = json.loads(optimizer_config)
    cfg = dict(ser.get("config", {}))
    cls = ser.get("class_name", "")
    if cls not in _DEFAULT_SETTINGS_CACHE:
        try:
            import keras

            _DEFAULT_SETTINGS_CACHE[cls] = keras.optimizers.get(cls.lower() if cls.lower() in DEFAULT_LR else cls).get_config()
        except Exception:
            _DEFAULT_SETTINGS_CACHE[cls] = {}
    default = _DEFAULT_SETTINGS_CACHE[cls]
    out = {}
    for k, v in cfg.items():
        if k in ("name", "learning_rate"):
            continue
        if k in default and default[k] == v:
            continue
        if k not in default and v in (None, False, 0, 0.0):
            continue
        out[k] = v
    if isinstance(cfg.get("learning_rate"), dict):
        out["schedule"] = cfg["learning_rate"]
    return out


def optimizer_name_of(opt: Any) -> str:
    if isinstance(opt, str):
        return opt.lower()
    return type(opt).__name__.lower()


def _optimizer_lr(opt: Any) -> float | None:
    lr = getattr(opt, "learning_rate", None)
    if lr is None:
        return None
    try:
        return float(np.asarray(lr))
    except (TypeError, ValueError):
        try:  # a schedule: its initial value
            return float(lr(0))
        except Exception:
            return None


def read_training_config(
    model=None, *, optimizer=None, learning_rate=None, loss=None, epochs=None, batch_size=None
) -> TrainingConfig:
    """Configuration from explicit arguments, else the compiled model, else Keras defaults."""
    opt_obj = optimizer
    if opt_obj is None and model is not None:
        opt_obj = getattr(model, "optimizer", None)
    name = optimizer_name_of(opt_obj) if opt_obj is not None else "adam"
    lr = learning_rate
    if lr is None and opt_obj is not None and not isinstance(opt_obj, str):
        lr = _optimizer_lr(opt_obj)
        if lr is not None:  # a float32 variable: 0.01 reads back as 0.009999999776; 7 digits is its precision
            lr = float(f"{lr:.7g}")
    if lr is None:
        lr = DEFAULT_LR.get(name, 1e-3)
    momentum = float(getattr(opt_obj, "momentum", 0.0) or 0.0) if not isinstance(opt_obj, str) else 0.0
    clip = getattr(opt_obj, "clipnorm", None) if opt_obj is not None and not isinstance(opt_obj, str) else None
    loss_obj = loss if loss is not None else (getattr(model, "loss", None) if model is not None else None)
    delta = 1.0
    if loss_obj is not None and not isinstance(loss_obj, str):  # Keras's Huber keeps delta in its fn kwargs
        delta = float(getattr(loss_obj, "delta", None) or loss_keywords(loss_obj).get("delta", 1.0) or 1.0)
    return TrainingConfig(
        optimizer=name,
        learning_rate=float(lr),
        loss=canonical_loss(loss_obj),
        epochs=None if epochs is None else int(epochs),
        batch_size=32 if batch_size is None else int(batch_size),
        momentum=momentum if name == "sgd" else 0.0,
        clipnorm=None if clip is None else float(clip),
        huber_delta=delta,
        optimizer_config=serialize_optimizer(opt_obj),
        loss_object=None if loss_obj is None or isinstance(loss_obj, str) else loss_obj,
    )


@dataclass(frozen=True)
class LayerInfo:
    name: str
    class_name: str
    units: int | None = None
    activation: str | None = None
    kernel_initializer: str | None = None
    l1: float = 0.0
    l2: float = 0.0
    dropout: float = 0.0
    n_params: int = 0
    fan_in: int | None = None
    kernel_std: float | None = None
    bias_abs_mean: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What the rules need to know about a model."""

    n_inputs: int
    output_units: int
    output_activation: str | None
    layers: tuple[LayerInfo, ...] = field(default_factory=tuple)
    is_linear: bool = True
    n_params: int = 0
    assumed: bool = False  # True when no model was given and the seed's Dense(1) is assumed

    @property
    def hidden_activations(self) -> list[str]:
        return [l.activation for l in self.layers[:-1] if l.activation is not None]

    @classmethod
    def seed_linear(cls, n_inputs: int, n_outputs: int = 1) -> "ModelInfo":
        """The seeds' model: ``Sequential([Dense(n_outputs)])`` (one unit per target column)."""
        n_params = (n_inputs + 1) * n_outputs
        layer = LayerInfo(name="dense", class_name="Dense", units=n_outputs, activation="linear",
                          kernel_initializer="glorot_uniform", n_params=n_params, fan_in=n_inputs)
        return cls(n_inputs=n_inputs, output_units=n_outputs, output_activation="linear", layers=(layer,),
                   is_linear=True, n_params=n_params, assumed=True)


_PASSIVE_LAYERS = {"InputLayer", "Dropout", "Normalization", "Rescaling", "Flatten", "Reshape",
                   "GaussianNoise", "Identity", "BatchNormalization", "LayerNormalization"}
#: layers that are linear maps of their inputs (they select, reorder, pad, sum or average values)
_LINEAR_LAYERS = _PASSIVE_LAYERS | {
    "Permute", "RepeatVector", "Cropping1D", "Cropping2D", "Cropping3D", "ZeroPadding1D", "ZeroPadding2D",
    "ZeroPadding3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianDropout", "AlphaDropout", "Concatenate", "Add", "Subtract", "Average"}
#: layers with a kernel that are linear maps when their activation is linear (a convolution is a
#: matrix product over its receptive field; a SimpleRNN without activation is a linear recurrence).
#: LSTM/GRU multiply gates by states and are never linear.
_KERNEL_LAYERS = {"Dense", "EinsumDense", "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
                  "Conv3DTranspose", "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
                  "SimpleRNN"}


def kernel_fan_in(shape) -> int:
    """Keras's fan-in of a kernel: its rows for a matrix (Dense, LSTM/GRU ``kernel``); input channels
    times the receptive field for a convolution kernel ``(k..., in, out)``."""
    shape = tuple(int(d) for d in shape)
    if len(shape) <= 2:
        return shape[0]
    return int(np.prod(shape[:-2])) * shape[-2]


def _activation_name(act: Any) -> str | None:
    if act is None:
        return None
    if isinstance(act, str):
        return act
    if isinstance(act, dict):
        return act.get("config", act).get("name") if isinstance(act.get("config", act), dict) else str(act)
    return getattr(act, "__name__", None) or type(act).__name__.lower()


def _reg(cfg: dict, key: str) -> tuple[float, float]:
    r = cfg.get("kernel_regularizer")
    if not r:
        return 0.0, 0.0
    c = r.get("config", r) if isinstance(r, dict) else {}
    return float(c.get("l1", 0.0) or 0.0), float(c.get("l2", 0.0) or 0.0)


def describe_model(model) -> ModelInfo:
    """Read a Keras model's structure and initial-weight statistics (no modification)."""
    layers: list[LayerInfo] = []
    linear = True
    for layer in _flat_layers(model):
        cls = type(layer).__name__
        cfg = layer.get_config()
        act = _activation_name(cfg.get("activation"))
        if cls == "Activation":
            act = _activation_name(cfg.get("activation"))
        l1, l2 = _reg(cfg, "kernel_regularizer")
        weights = [np.asarray(w) for w in layer.get_weights()]
        kernel = next((w for w in weights if w.ndim >= 2), None)
        bias = next((w for w in weights if w.ndim == 1), None)
        init = cfg.get("kernel_initializer")
        init_name = init.get("class_name") if isinstance(init, dict) else (init if isinstance(init, str) else None)
        info = LayerInfo(
            name=layer.name, class_name=cls, units=cfg.get("units"), activation=act,
            kernel_initializer=init_name, l1=l1, l2=l2, dropout=float(cfg.get("rate", 0.0) or 0.0) if cls == "Dropout" else 0.0,
            n_params=int(sum(w.size for w in weights)),
            fan_in=kernel_fan_in(kernel.shape) if kernel is not None else None,
            kernel_std=float(kernel.std()) if kernel is not None else None,
            bias_abs_mean=float(np.abs(bias).mean()) if bias is not None and bias.size else None,
        )
        layers.append(info)
        if cls in _LINEAR_LAYERS:
            continue
        if cls in _KERNEL_LAYERS:
            if act not in LINEAR_ACTIVATIONS and layer is not last_dense(model):
                linear = False
        elif cls == "Activation":
            if act not in LINEAR_ACTIVATIONS:
                linear = False
        else:
            linear = False
    out_shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    out_units = int(out_shape[-1]) if out_shape is not None and out_shape[-1] is not None else 1
    in_shape = model.inputs[0].shape if getattr(model, "inputs", None) else None
    n_inputs = int(in_shape[-1]) if in_shape is not None and in_shape[-1] is not None else 0
    out_act = _output_activation(layers)
    return ModelInfo(
        n_inputs=n_inputs, output_units=out_units, output_activation=out_act, layers=tuple(layers),
        is_linear=linear, n_params=int(model.count_params()) if model.built else 0,
    )


def _flat_layers(model):
    out = []
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and type(layer).__name__ in ("Sequential", "Functional", "Model"):
            out.extend(_flat_layers(layer))
        else:
            out.append(layer)
    return out


def last_dense(model):
    dense = [l for l in _flat_layers(model) if type(l).__name__ == "Dense"]
    return dense[-1] if dense else None


def _output_activation(layers: list[LayerInfo]) -> str | None:
    """The activation applied last: an Activation layer after the final Dense counts."""
    for info in reversed(layers):
        if info.class_name in ("Activation", "Dense") or info.activation is not None:
            if info.class_name in _PASSIVE_LAYERS:
                continue
            return info.activation or "linear"
    return "linear"


def _without_names(config):
    """A model config with every layer/model name removed: two builds of one architecture are equal."""
    if isinstance(config, dict):
        return {k: _without_names(v) for k, v in config.items() if k != "name"}
    if isinstance(config, (list, tuple)):
        return [_without_names(v) for v in config]
    return config


def architecture_signature(model) -> str:
    """The model's architecture (its config without names) and variable shapes, as a cache key:
    two models with equal signatures run the same computation on their own variables."""
    import json

    shapes = [(tuple(v.shape), str(v.dtype), bool(v.trainable)) for v in model.variables]
    return (json.dumps(_without_names(model.get_config()), sort_keys=True, default=str) + repr(shapes)
            + _derived_state_digest(model))


def _derived_state_digest(model) -> str:
    """A digest of the variables of layers that compute constants from them (``finalize_state``:
    an adapted ``Normalization`` keeps its mean and variance as tensors, not variables). A compiled
    program closes over those constants, so two such models share a program only when those
    variables are equal (measured: a Normalization adapted on other data reused a program and
    diverged where model.fit reached 12.3)."""
    import hashlib

    import keras

    from .replica import walk_layers

    digest = hashlib.sha1()
    # Keras >= 3.1x has no Layer.finalize_state (only the preprocessing layers define it): without
    # this getattr every signature raised and the engine's program cache never hit
    base = getattr(keras.layers.Layer, "finalize_state", None)
    for layer in walk_layers(model):
        if getattr(type(layer), "finalize_state", base) not in (None, base):
            for v in layer.variables:
                digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(v)).tobytes())
    return digest.hexdigest()


#: layers that transform inputs without learning (what the first trainable layer sees is their output)
PREPROCESSING_LAYERS = {"Normalization", "Rescaling", "Discretization", "CategoryEncoding", "Identity",
                        "Reshape", "Flatten", "Permute"}
#: preprocessing layers that put the inputs on a standard scale
SCALING_LAYERS = {"Normalization", "Rescaling"}


def leading_preprocessing(model) -> list:
    """The model's preprocessing layers in front of its first trainable layer (single-input models).

    Empty for models with several inputs, for a model whose first layer learns, and for models
    whose layers cannot be listed (subclassed).
    """
    if model is None or len(getattr(model, "inputs", None) or []) != 1:
        return []
    from .replica import walk_layers

    out = []
    for layer in walk_layers(model):
        cls = type(layer).__name__
        if cls == "InputLayer" or hasattr(layer, "layers"):
            continue
        if cls not in PREPROCESSING_LAYERS:
            break
        out.append(layer)
    return out


def scales_inputs(model) -> bool:
    """True when the model standardises or rescales its inputs itself (a leading Normalization/Rescaling)."""
    return any(type(l).__name__ in SCALING_LAYERS for l in leading_preprocessing(model))


def preprocess_inputs(model, X):
    """``X`` after the model's leading preprocessing layers, as float64 of rank 2 (None when there are none)."""
    layers = [l for l in leading_preprocessing(model) if type(l).__name__ in SCALING_LAYERS]
    if not layers:
        return None
    import keras

    h = np.asarray(X, dtype=np.float32)
    try:
        for layer in leading_preprocessing(model):
            h = keras.ops.convert_to_numpy(layer(h))
    except Exception:  # a layer that cannot run on its own: the rules see the raw inputs
        return None
    h = np.asarray(h, dtype=np.float64)
    return h.reshape(len(h), -1)


def check_target_varies(y) -> None:
    """Raise InputError when every finite target value is the same: there is nothing to regress
    (every loss ratio would be against an optimum of exactly zero)."""
    from ..errors import InputError

    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(len(y), -1) if y.ndim else y.reshape(1, 1)
    fin = y[np.isfinite(y).all(axis=1)] if len(y) else y
    if len(fin) >= 2 and np.all(fin.max(axis=0) == fin.min(axis=0)):
        value = float(fin[0, 0])
        raise InputError(f"the target is constant (every value is {value:g}): there is nothing to regress; "
                         "check the target column")
