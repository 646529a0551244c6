"""Shipping a batch of runs to another process: the model, its state, the losses, the results.

A model travels as its Keras config (``model.to_json()``), the values of ALL its variables
(trainable and not, in ``model.weights`` order), and the classes and functions it uses that Keras
does not know by name (custom layers, activations, initializers), pickled with ``cloudpickle``:
by value when they live in ``__main__`` or a notebook, by reference when their module can be
imported. A spec's ``loss_object`` travels as its class and config (a ``Loss``) or pickled by
value (a function). Results come back as plain arrays and rejoin the caller's own specs.

Nothing here imports Keras or JAX at module level: the receiving process picks its backend
before its first ``import keras``.
"""
from __future__ import annotations

import io
import json
import types
from dataclasses import fields, replace
from typing import Any, Sequence

import numpy as np

#: packages whose classes and functions every process can import by name
_IMPORTABLE_ROOTS = ("keras", "jax", "numpy", "builtins", "tensorflow", "torch", "math", "functools")


class NotShippable(Exception):
    """The model or a spec cannot be sent to another process; the message says why."""


def _dumps(obj) -> bytes:
    try:
        import cloudpickle
    except ImportError:  # plain pickle ships what is importable by name
        import pickle

        return pickle.dumps(obj)
    return cloudpickle.dumps(obj)


def _loads(data: bytes):
    import pickle

    return pickle.loads(data)


def _is_user_object(obj) -> bool:
    module = getattr(obj, "__module__", None) or ""
    return bool(module) and module.split(".")[0] not in _IMPORTABLE_ROOTS


def _custom_objects(model) -> dict[str, Any]:
    """Classes and functions of ``model`` that a fresh Keras cannot find by name."""
    import keras

    from ..model.replica import walk_layers

    found: dict[str, Any] = {}

    def add_class(cls) -> None:
        if _is_user_object(cls):
            found[cls.__name__] = cls
            try:
                found[keras.saving.get_registered_name(cls)] = cls
            except Exception:
                pass

    def visit(value, depth: int = 0) -> None:
        if depth > 2:
            return
        if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
            if _is_user_object(value):
                found[value.__name__] = value
        elif isinstance(value, (list, tuple)):
            for v in value:
                visit(v, depth + 1)
        elif isinstance(value, dict):
            for v in value.values():
                visit(v, depth + 1)
        elif hasattr(value, "get_config") and not isinstance(value, type):
            add_class(type(value))

    for layer in [model, *walk_layers(model)]:
        add_class(type(layer))
        for v in list(vars(layer).values()):
            if not isinstance(v, keras.layers.Layer):
                visit(v)
    return found


def pack_model(model) -> dict[str, Any]:
    """Everything another process needs to rebuild ``model`` with its current state."""
    import keras

    try:
        config = model.to_json()
    except Exception as exc:
        raise NotShippable(f"the model has no Keras config ({type(exc).__name__}): a subclassed model without "
                           "get_config cannot be sent to another process") from None
    try:
        custom = _dumps(_custom_objects(model))
    except Exception as exc:
        raise NotShippable(f"a custom object of the model cannot be pickled ({type(exc).__name__}: "
                           f"{str(exc)[:100]}); install cloudpickle or make it importable") from None
    weights = None
    if model.built:
        weights = [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.weights]
    inputs = getattr(model, "inputs", None)
    input_shape = tuple(int(d or 1) for d in inputs[0].shape[1:]) if inputs else None
    return {"config": config, "custom": custom, "weights": weights, "input_shape": input_shape}


def unpack_model(packed: dict[str, Any], row_shape: tuple = ()):
    """The model of :func:`pack_model`, rebuilt in this process's backend with every variable's value."""
    import keras

    from ..model.replica import finalize_state

    custom = _loads(packed["custom"])
    with keras.saving.custom_object_scope(custom):
        model = keras.models.model_from_json(packed["config"], custom_objects=custom)
    weights = packed["weights"]
    if weights is None:
        return model
    if not model.built:
        shape = packed.get("input_shape") or tuple(row_shape)
        model(np.zeros((1,) + tuple(shape), np.float32))
    variables = list(model.weights)
    if len(variables) != len(weights):
        raise NotShippable(f"the rebuilt model has {len(variables)} variables, the original {len(weights)}")
    for var, w in zip(variables, weights):
        if tuple(var.shape) != tuple(np.shape(w)):
            raise NotShippable(f"variable {var.path} rebuilt with shape {tuple(var.shape)}, the original has {np.shape(w)}")
    for var, w in zip(variables, weights):
        var.assign(np.asarray(w))
    finalize_state(model)
    return model


def _pack_loss(obj) -> tuple[str, Any]:
    import keras

    if isinstance(obj, keras.losses.Loss):
        return "loss", (_dumps(type(obj)), json.dumps(_loss_config(obj), default=str))
    return "pickled", _dumps(obj)


# Keras 3's Huber.get_config() omits `delta` (CosineSimilarity and SparseCategoricalCrossentropy
# omit `axis`), so Huber(delta=2.0) arrived in the worker as Huber(delta=1.0) and the replica check failed on TF
def _loss_config(obj) -> dict[str, Any]:
    """``obj.get_config()`` plus the loss function's keyword arguments its constructor takes but the config lacks."""
    import inspect

    config = dict(obj.get_config())
    try:
        params = inspect.signature(type(obj).__init__).parameters
    except (TypeError, ValueError):
        return config
    kwargs = getattr(obj, "_fn_kwargs", None)  # what a keras LossFunctionWrapper passes to its function
    for key, value in (kwargs.items() if isinstance(kwargs, dict) else ()):
        if key in params and key not in config:
            config[key] = value
    return config


def _unpack_loss(packed: tuple[str, Any]):
    kind, payload = packed
    if kind == "loss":
        cls_bytes, config = payload
        return _loads(cls_bytes).from_config(json.loads(config))
    return _loads(payload)


def pack_specs(specs: Sequence) -> list:
    """The specs with each user loss object replaced by its packed form (shared objects packed once)."""
    packed: dict[int, tuple[str, Any]] = {}
    out = []
    for s in specs:
        if s.loss_object is None:
            out.append((s, None))
            continue
        key = id(s.loss_object)
        if key not in packed:
            try:
                packed[key] = _pack_loss(s.loss_object)
            except Exception as exc:
                raise NotShippable(f"the loss {s.loss_object!r} cannot be pickled ({type(exc).__name__})") from None
        out.append((replace(s, loss_object=None), key))
    return [out, packed]


def unpack_specs(packed: list) -> list:
    pairs, losses = packed
    objects = {k: _unpack_loss(v) for k, v in losses.items()}
    return [s if key is None else replace(s, loss_object=objects[key]) for s, key in pairs]


def pack_results(results: Sequence) -> list[dict[str, Any]]:
    """Results as plain dicts of arrays and numbers (their specs stay with the caller)."""
    out = []
    for r in results:
        d = {f.name: getattr(r, f.name) for f in fields(r) if f.name != "spec"}
        out.append(d)
    return out


def unpack_results(packed: Sequence[dict[str, Any]], specs: Sequence, note: str) -> list:
    """RunResults carrying the caller's own specs, with ``note`` in front of each result's note."""
    from .engine import RunResult

    out = []
    for d, s in zip(packed, specs):
        d = dict(d)
        d["note"] = "; ".join(p for p in (note, d.get("note", "")) if p)
        out.append(RunResult(spec=s, **d))
    return out


def run_packed(packed_model: dict[str, Any], X: np.ndarray, y: np.ndarray, packed_specs: list, *, seed: int,
               engine: str, callback=None, **options) -> list[dict[str, Any]]:
    """Rebuild the model and specs here and train them in this process (the receiving side)."""
    from .engine import train_runs

    import keras

    custom = _loads(packed_model["custom"])
    # the engine clones the model, so its classes must resolve by name for the whole call (a scope
    # alone is not enough: Keras resets its scoped objects when it clears its session)
    keras.saving.get_custom_objects().update(custom)
    with keras.saving.custom_object_scope(custom):
        model = unpack_model(packed_model, row_shape=tuple(np.shape(X)[1:]) or (1,))
        specs = unpack_specs(packed_specs)
        return pack_results(train_runs(model, X, y, specs, seed=seed, engine=engine, callback=callback,
                                       executor="inprocess", **options))


def frame(obj) -> bytes:
    """One message: 8-byte length, then the pickle."""
    data = _dumps(obj)
    return len(data).to_bytes(8, "little") + data


def read_frame(stream: io.BufferedReader):
    """The next message of ``stream`` (None at end of stream)."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    size = int.from_bytes(head, "little")
    data = bytearray()
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data.extend(chunk)
    return _loads(bytes(data))


def pack_value(value) -> tuple[str, Any]:
    """A dataclass value (a run's configuration) with its ``loss_object`` packed apart."""
    from dataclasses import is_dataclass

    loss = getattr(value, "loss_object", None) if is_dataclass(value) else None
    if loss is None:
        return "plain", _dumps(value)
    try:
        packed_loss = _pack_loss(loss)
    except Exception as exc:
        raise NotShippable(f"the loss {loss!r} cannot be pickled ({type(exc).__name__})") from None
    return "with_loss", (_dumps(replace(value, loss_object=None)), packed_loss)


def unpack_value(packed: tuple[str, Any]):
    kind, payload = packed
    if kind == "plain":
        return _loads(payload)
    value, loss = payload
    return replace(_loads(value), loss_object=_unpack_loss(loss))


def pack_model_result(result) -> dict[str, Any]:
    """A dataclass result holding a trained Keras ``model``: the model packed, the other fields as they are."""
    fields_ = {f.name: getattr(result, f.name) for f in fields(result) if f.name != "model"}
    return {"type": _dumps(type(result)), "fields": fields_, "model": pack_model(result.model)}


def unpack_model_result(packed: dict[str, Any]):
    import keras

    custom = _loads(packed["model"]["custom"])
    keras.saving.get_custom_objects().update(custom)
    with keras.saving.custom_object_scope(custom):
        model = unpack_model(packed["model"])
    return _loads(packed["type"])(model=model, **packed["fields"])


def call_packed(fn_bytes: bytes, packed_model: dict[str, Any], X, y, packed_value, kwargs: dict[str, Any]):
    """The receiving side of :meth:`WorkerExecutor.call`: ``fn(model, X, y, value, **kwargs)``, result packed."""
    import keras

    custom = _loads(packed_model["custom"])
    keras.saving.get_custom_objects().update(custom)
    with keras.saving.custom_object_scope(custom):
        model = unpack_model(packed_model, row_shape=tuple(np.shape(X)[1:]) or (1,))
        result = _loads(fn_bytes)(model, X, y, unpack_value(packed_value), **kwargs)
        return pack_model_result(result)
