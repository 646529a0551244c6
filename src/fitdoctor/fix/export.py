"""Model export: a run's weights put back into a plain Keras model that takes raw inputs and predicts in the
user's original units (standard layers only, so the saved file loads without fitdoctor)."""
from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..experiments.specs import RunResult
from ..model.replica import clone_model, copy_state, finalize_state


def build_trained_model(model, result: RunResult):
    """A plain Keras model with ``result``'s weights: raw inputs in, original target units out.

    Standardisation is expressed with standard layers (``Normalization`` in front when the run
    scaled X, ``Normalization(invert=True)`` behind when it scaled y), so ``keras.saving.load_model``
    loads the saved model without fitdoctor. The model is not compiled.
    """
    import keras
    inner = clone_model(model)
    if not inner.built:
        n_in = len(result.x_mean) if result.x_mean is not None else None
        if n_in is None:
            raise InputError("build the model (give it an Input) before build_trained_model")
        inner.build((None, n_in))
    if model.built:
        copy_state(model, inner)
    if len(result.weights) != len(inner.trainable_variables):
        raise InputError(f"the result holds {len(result.weights)} weight arrays but the model has "
                         f"{len(inner.trainable_variables)} trainable variables: pass the model the run was trained from")
    for var, w in zip(inner.trainable_variables, result.weights):
        var.assign(np.asarray(w))
    if result.non_trainable_weights and len(result.non_trainable_weights) == len(inner.non_trainable_variables):
        for var, w in zip(inner.non_trainable_variables, result.non_trainable_weights):
            var.assign(np.asarray(w))
    finalize_state(inner)  # adapted preprocessing layers recompute what their call uses
    if not result.spec.scale_x and not result.spec.scale_y:
        return inner
    if getattr(inner, "inputs", None):
        in_shape = tuple(inner.inputs[0].shape[1:])
    else:
        in_shape = _built_row_shape(inner) or _built_row_shape(model) or (len(result.x_mean),)
    inp = keras.Input(in_shape, name="raw_inputs")
    h = inp
    if result.spec.scale_x:
        h = keras.layers.Normalization(mean=np.asarray(result.x_mean, np.float32),
                                       variance=np.asarray(result.x_std, np.float32) ** 2, name="scale_x")(h)
    out = inner(h)
    if result.spec.scale_y:
        out = keras.layers.Normalization(mean=np.atleast_1d(np.asarray(result.y_mean, np.float32)),
                                         variance=np.atleast_1d(np.asarray(result.y_std, np.float32)) ** 2,
                                         invert=True, name="unscale_y")(out)
    return keras.Model(inp, out, name=f"{inner.name}_trained")


# a subclassed model has no ``inputs``; the shape it was built with (Keras's build config) is the row
# shape, e.g. (12, 3) for sequences (the sequential engine leaves ``result.x_mean`` None when X is not scaled)
def _built_row_shape(model) -> tuple | None:
    try:
        shape = (model.get_build_config() or {}).get("input_shape")
    except Exception:
        return None
    if not isinstance(shape, (list, tuple)) or len(shape) < 2 or not all(isinstance(d, int) for d in shape[1:]):
        return None
    return tuple(shape[1:])
