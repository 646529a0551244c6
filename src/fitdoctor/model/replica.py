"""Faithful replicas of a user's model: a clone that carries ALL of the model's state.

``keras.models.clone_model`` rebuilds the layers from their configs with fresh variables. A
faithful replica also needs every variable's value, not only the trainable ones: the adapted
``mean``/``variance``/``count`` of a ``Normalization`` layer, the vocabularies of lookups, the
``moving_mean``/``moving_variance`` of ``BatchNormalization``. Copying them is not enough for the
preprocessing layers: ``Normalization`` computes the tensors its ``call`` uses from its adapted
variables in ``finalize_state()`` (Keras does this after ``adapt`` and after loading a saved
model, but not after ``set_weights`` or ``assign``). Without it a replica's Normalization
divides by the variance it was built with (ones), while the same model saved and reloaded uses
the adapted statistics. Every function here ends by finalising the state of every layer.
"""
from __future__ import annotations

from typing import Any

import numpy as np


def walk_layers(model) -> list:
    """Every layer inside ``model`` (nested models included), depth first, the model excluded."""
    out, stack = [], list(reversed(list(getattr(model, "layers", []) or [])))
    while stack:
        layer = stack.pop()
        out.append(layer)
        stack.extend(reversed(list(getattr(layer, "layers", []) or [])))
    return out


def finalize_state(model) -> None:
    """Recompute the derived tensors of layers with ``finalize_state`` (adapted preprocessing layers)."""
    for layer in walk_layers(model):
        fin = getattr(layer, "finalize_state", None)
        if callable(fin) and getattr(layer, "built", False):
            try:
                fin()
            except Exception:  # a layer whose state is not adapted (nothing to finalise)
                pass


def copy_state(src, dst) -> None:
    """Copy every variable (trainable and not) of ``src`` into ``dst`` and finalise ``dst``.

    The two models must have the same architecture (a clone). Raises ``ValueError`` when their
    variables do not match one to one.
    """
    a, b = list(src.weights), list(dst.weights)
    if len(a) != len(b):
        raise ValueError(f"cannot copy the model's state: {len(a)} variables into {len(b)}")
    for va, vb in zip(a, b):
        if tuple(va.shape) != tuple(vb.shape):
            raise ValueError(f"cannot copy variable {va.path} of shape {tuple(va.shape)} into shape {tuple(vb.shape)}")
    for va, vb in zip(a, b):
        value = _read(va)
        if value is not None:
            vb.assign(value)
    finalize_state(dst)


def _read(variable):
    """A variable's value as numpy, or None for a variable whose value was never created (a random
    seed generator's state that no call has used yet: the copy keeps its own)."""
    try:
        return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable.value)
    except TypeError:
        return None


def assign_variables(variables, values) -> None:
    for var, value in zip(variables, values):
        var.assign(np.asarray(value))


def dummy_inputs(model, n: int = 1) -> Any:
    """Zeros shaped like the model's inputs (a list for several inputs), for building a clone."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return None
    arrays = [np.zeros((n,) + tuple(int(d or 1) for d in t.shape[1:]), dtype="float32") for t in inputs]
    return arrays[0] if len(arrays) == 1 else arrays


def _compile_objects(model) -> dict[str, Any]:
    """The user's own objects in the model's compile settings, by the name Keras serialises them under."""
    out: dict[str, Any] = {}
    for obj in (getattr(model, "loss", None), getattr(model, "optimizer", None)):
        if obj is None or isinstance(obj, str):
            continue
        if callable(obj) and hasattr(obj, "__name__") and not isinstance(obj, type):
            out[obj.__name__] = obj
        out[type(obj).__name__] = type(obj)
    return out


def clone_model(model, **kwargs):
    """``keras.models.clone_model`` that also works for models compiled with the user's own loss
    (a plain function or an unregistered ``Loss`` subclass): Keras rebuilds the compile config of a
    cloned Sequential model and cannot locate unregistered objects by name."""
    import keras

    with keras.saving.custom_object_scope(_compile_objects(model)):
        copy = keras.models.clone_model(model, **kwargs)
    uncompile(copy)
    return copy


def uncompile(model) -> None:
    """Forget a clone's compile settings (Keras compiles a clone of a compiled Sequential model):
    a replica is compiled by whoever trains it, and a model saved from it must load without the
    user's loss (its saved compile config would name a function the loading process may not have)."""
    if getattr(model, "compiled", False):
        model.compiled = False


def clone_with_state(model, input_shape: tuple | None = None):
    """A clone of ``model`` carrying all of its current state (never the same object)."""
    copy = clone_model(model)
    if not copy.built:
        if getattr(model, "inputs", None):
            copy(dummy_inputs(model))
        elif input_shape is not None:
            try:
                copy.build(input_shape)
            except Exception:
                copy(np.zeros((1,) + tuple(input_shape[1:]), dtype="float32"))
    if model.built:
        copy_state(model, copy)
    return copy


def state_snapshot(model) -> list[np.ndarray]:
    """Copies of every variable's value (to check a model was left unchanged)."""
    return [v for v in (_read(w) for w in model.weights) if v is not None]


def call_model(model, X, *, chunk: int = 4096) -> np.ndarray:
    """``model(X, training=False)`` in chunks, as float64 numpy.

    Used instead of ``model.predict`` on the user's model and on sub-models sharing its layers:
    on the JAX backend ``predict`` moves the variables' values out while it runs, and an
    exception inside it (rows of the wrong shape) leaves the user's variables without values.
    On JAX the call is one compiled program per architecture and row count, shared by every
    model of that architecture (:func:`_compiled_call`): an eager call of an LSTM traces its
    scan anew every time (measured: 0.44 s a call, 12 s of a 30 s repair).
    """
    import keras

    X = np.asarray(X, dtype=np.float32)
    run = _compiled_call(model)
    outs = []
    for i in range(0, len(X), chunk):
        rows = X[i:i + chunk]
        if run is not None:
            try:
                out = run([v.value for v in model.trainable_variables],
                          [v.value for v in model.non_trainable_variables], rows)
            except Exception:  # a model the compiled call cannot express: call it eagerly from now on
                run, out = None, model(rows, training=False)
        else:
            out = model(rows, training=False)
        outs.append(np.asarray(keras.ops.convert_to_numpy(out), dtype=np.float64))
    return np.concatenate(outs) if outs else np.zeros((0,))


#: compiled inference calls of this process, by architecture signature: (weak reference to the model
#: whose layers the program was traced through, the jitted function)
_COMPILED_CALLS: "dict[str, tuple[Any, Any]]" = {}
_COMPILED_CALLS_SIZE = 16


def _compiled_call(model):
    """A jitted ``stateless_call(trainable, non_trainable, rows)`` for models of ``model``'s architecture
    (JAX backend, built models; None otherwise). The signature includes the values that some layers
    turn into constants (an adapted Normalization's statistics), so a program is shared only by models
    that compute the same function of their variables."""
    import weakref

    import keras

    if keras.backend.backend() != "jax" or not getattr(model, "built", False):
        return None
    from .inspect import architecture_signature

    try:
        key = architecture_signature(model)
    except Exception:  # a model that cannot describe itself: call it eagerly
        return None
    entry = _COMPILED_CALLS.get(key)
    if entry is not None and entry[0]() is not None:
        return entry[1]
    import jax

    template = weakref.ref(model)
    mode = {"training": False} if call_takes_training(model) else {}

    def run(tv, ntv, rows):
        traced = template()
        if traced is None:
            raise RuntimeError("the model this program was traced through is gone")
        return traced.stateless_call(tv, ntv, rows, **mode)[0]

    fn = jax.jit(run)
    _COMPILED_CALLS.pop(key, None)
    _COMPILED_CALLS[key] = (template, fn)
    while len(_COMPILED_CALLS) > _COMPILED_CALLS_SIZE:
        _COMPILED_CALLS.pop(next(iter(_COMPILED_CALLS)))
    return fn


def call_takes_training(model) -> bool:
    """Whether ``model.call`` accepts ``training`` (by name or through ``**kwargs``).

    ``stateless_call`` passes its keywords to ``call`` itself, and Keras's own JAX trainer passes
    ``training`` only to a ``call`` that accepts it."""
    return accepts_keyword(model.call, "training")


def accepts_keyword(fn, name: str) -> bool:
    """Whether ``fn`` accepts the keyword ``name`` (by name or through ``**kwargs``; True when its
    signature cannot be read)."""
    import inspect

    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.name == name or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
