"""Functional models with several inputs or several outputs, as one model with one input and one output.

fitdoctor's experiments take one input array and one target array. A model with several inputs
(or outputs) is trained as an equivalent *flat* model: one input holding every input's values side
by side (each input flattened to its columns, in the model's order), sliced back into the user's
inputs with built-in layers (``Reshape`` + ``Cropping1D``: no ``Lambda``), then the user's model
(a faithful replica, never the user's object), then every output flattened and concatenated. Its
loss is the sum of the per-output losses, as ``model.fit`` of the user's model computes it. The
repaired flat model is given the user's inputs and outputs back by :func:`restore_io`, with
built-in layers only, so that ``model.keras`` loads without fitdoctor.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from .replica import clone_with_state


def _shape(t) -> tuple[int, ...]:
    return tuple(int(d) if d is not None else -1 for d in tuple(t.shape)[1:])


def is_multi_io(model) -> bool:
    """True for a model with several inputs or several outputs."""
    if model is None:
        return False
    try:
        ins, outs = getattr(model, "inputs", None) or [], getattr(model, "outputs", None) or []
    except Exception:  # a subclassed model that was never called
        return False
    return len(ins) > 1 or len(outs) > 1


@dataclass(frozen=True)
class IOLayout:
    """The user's inputs and outputs: names and per-row shapes, in the model's order."""

    input_names: tuple[str, ...]
    input_shapes: tuple[tuple[int, ...], ...]
    output_names: tuple[str, ...]
    output_shapes: tuple[tuple[int, ...], ...]

    @property
    def input_sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.input_shapes]

    @property
    def output_sizes(self) -> list[int]:
        return [int(np.prod(s)) for s in self.output_shapes]

    @property
    def several_inputs(self) -> bool:
        return len(self.input_shapes) > 1

    @property
    def several_outputs(self) -> bool:
        return len(self.output_shapes) > 1

    def flat_X(self, X) -> np.ndarray:
        """The inputs side by side: (n, sum of the inputs' sizes); one input is returned as it is."""
        parts = _parts(X, self.input_names, "X", "input")
        if not self.several_inputs:
            return np.asarray(parts[0], dtype=np.float64)
        if len(parts) != len(self.input_shapes):
            raise InputError(f"the model takes {len(self.input_shapes)} inputs ({', '.join(self.input_names)}): "
                             f"pass X as a list of {len(self.input_shapes)} arrays (Received {len(parts)})")
        n = len(parts[0])
        for name, shape, a in zip(self.input_names, self.input_shapes, parts):
            if tuple(a.shape[1:]) != shape and not (a.ndim == 1 and shape == (1,)) or len(a) != n:
                raise InputError(f"input {name!r} takes rows of shape {shape} (Received an array of shape {a.shape}; "
                                 "every input needs the same number of rows)")
        return np.concatenate([a.reshape(n, -1) for a in parts], axis=1)

    def flat_y(self, y) -> np.ndarray:
        """The targets side by side: (n, sum of the outputs' sizes); one output is returned as it is."""
        if not self.several_outputs:
            return np.asarray(y, dtype=np.float64)
        if isinstance(y, np.ndarray) and y.ndim == 2 and y.shape[1] == sum(self.output_sizes):
            return y.astype(np.float64)
        parts = _parts(y, self.output_names, "y", "output")
        if len(parts) != len(self.output_shapes):
            raise InputError(f"the model has {len(self.output_shapes)} outputs ({', '.join(self.output_names)}): "
                             f"pass y as a list of {len(self.output_shapes)} arrays (Received {len(parts)})")
        n = len(parts[0])
        for name, size, a in zip(self.output_names, self.output_sizes, parts):
            if a.size != n * size or len(a) != n:
                raise InputError(f"output {name!r} predicts {size} value(s) per row but its targets have shape "
                                 f"{a.shape} (every output needs the same number of rows)")
        return np.concatenate([a.reshape(n, -1) for a in parts], axis=1)


def _parts(values, names, what, kind) -> list[np.ndarray]:
    if isinstance(values, dict):
        missing = [n for n in names if n not in values]
        if missing:
            raise InputError(f"{what} has no entry for {kind}(s) {', '.join(map(repr, missing))}: the model's "
                             f"{kind}s are {', '.join(map(repr, names))}")
        values = [values[n] for n in names]
    if isinstance(values, (list, tuple)):
        out = []
        for v in values:
            try:
                out.append(np.asarray(v.to_numpy() if hasattr(v, "to_numpy") else v, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise InputError(f"{what} must hold numbers ({exc})") from None
        return out
    try:
        return [np.asarray(values.to_numpy() if hasattr(values, "to_numpy") else values, dtype=np.float64)]
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} must hold numbers ({exc})") from None


def layout_of(model) -> IOLayout:
    ins, outs = list(model.inputs), list(model.outputs)
    in_names = [getattr(t, "name", None) or f"input_{i}" for i, t in enumerate(ins)]
    out_names = list(getattr(model, "output_names", None) or [])
    if len(out_names) != len(outs):
        out_names = [f"output_{i}" for i in range(len(outs))]
    return IOLayout(tuple(str(n) for n in in_names), tuple(_shape(t) for t in ins),
                    tuple(str(n) for n in out_names), tuple(_shape(t) for t in outs))


def _slice(keras, x, start: int, size: int, total: int, shape, name=None):
    """Columns ``start:start+size`` of a (n, total) tensor, reshaped to ``shape`` (built-in layers only)."""
    L = keras.layers
    h = L.Reshape((total, 1))(x)
    h = L.Cropping1D((start, total - start - size))(h)
    return L.Reshape(tuple(shape), name=name)(h)


def _join(keras, tensors, sizes):
    L = keras.layers
    flat = [L.Reshape((s,))(t) for t, s in zip(tensors, sizes)]
    return flat[0] if len(flat) == 1 else L.Concatenate(axis=-1)(flat)


def flat_model(model, layout: IOLayout):
    """One input, one output around a replica of ``model`` (the user's variables are never shared)."""
    import keras

    core = clone_with_state(model)
    if layout.several_inputs:
        total = sum(layout.input_sizes)
        x = keras.Input((total,), name="inputs_side_by_side")
        parts, start = [], 0
        for shape, size in zip(layout.input_shapes, layout.input_sizes):
            parts.append(_slice(keras, x, start, size, total, shape))
            start += size
        out = core(parts)
    else:
        x = keras.Input(layout.input_shapes[0])
        out = core(x)
    if layout.several_outputs:
        out = _join(keras, list(out), layout.output_sizes)
    return keras.Model(x, out, name="flat_" + (model.name or "model"))


def restore_io(flat, layout: IOLayout):
    """``flat`` (one input, one output: the repaired flat model) with the user's inputs and outputs."""
    import keras

    inputs = [keras.Input(s, name=n) for n, s in zip(layout.input_names, layout.input_shapes)]
    h = _join(keras, inputs, layout.input_sizes) if layout.several_inputs else inputs[0]
    out = flat(h)
    if layout.several_outputs:
        total, start, outs = sum(layout.output_sizes), 0, []
        for name, shape, size in zip(layout.output_names, layout.output_shapes, layout.output_sizes):
            outs.append(_slice(keras, out, start, size, total, shape, name=name))
            start += size
        out = outs
    return keras.Model(inputs if layout.several_inputs else inputs[0], out, name=flat.name.replace("flat_", "", 1))


def _per_output_losses(loss, layout: IOLayout) -> list:
    if isinstance(loss, dict):
        return [loss.get(n, "mse") for n in layout.output_names]
    if isinstance(loss, (list, tuple)):
        return list(loss) + ["mse"] * (len(layout.output_names) - len(loss))
    return [loss if loss is not None else "mse"] * len(layout.output_names)


def output_loss_weights(model, layout: IOLayout) -> list[float]:
    """The ``loss_weights`` the user's model was compiled with, one per output (1.0 where not given)."""
    try:
        weights = (model.get_compile_config() or {}).get("loss_weights")
    except Exception:  # an uncompiled model
        weights = None
    if isinstance(weights, dict):
        return [float(weights.get(n, 1.0)) for n in layout.output_names]
    if isinstance(weights, (list, tuple)):
        return [float(w) for w in weights] + [1.0] * (len(layout.output_names) - len(weights))
    return [1.0] * len(layout.output_names)


def _loss_name(loss) -> str:
    if isinstance(loss, str):
        return loss
    return getattr(loss, "__name__", None) or getattr(loss, "name", None) or type(loss).__name__


def summed_output_loss(loss, layout: IOLayout, weights=None):
    """A ``Loss`` whose per-row value is the sum over the outputs of the user's per-row losses,
    each times its ``loss_weights`` entry (``weights``, one per output; default 1).

    ``model.fit`` of a several-output model minimises the weighted sum of the outputs' losses, each
    the mean over the batch of its per-row values: the mean over the batch of the per-row sums.
    The returned object carries ``per_output_losses``, ``loss_weights`` and ``output_names`` (what
    ``fix.py`` compiles the user's model with).
    """
    import keras

    losses = _per_output_losses(loss, layout)
    weights = [1.0] * len(losses) if weights is None else [float(w) for w in weights]
    names = sorted({_loss_name(l) for l in losses})
    sizes = layout.output_sizes
    shapes = layout.output_shapes

    def per_row(fn):
        if isinstance(fn, str):
            fn = keras.losses.get(fn)
        if isinstance(fn, keras.losses.Loss):
            return fn.call
        return fn

    fns = [per_row(l) for l in losses]

    class SumOfOutputLosses(keras.losses.Loss):
        def call(self, y_true, y_pred):
            total, start = None, 0
            for fn, w, size, shape in zip(fns, weights, sizes, shapes):
                yt = keras.ops.reshape(y_true[:, start:start + size], (-1,) + tuple(shape))
                yp = keras.ops.reshape(y_pred[:, start:start + size], (-1,) + tuple(shape))
                v = fn(keras.ops.cast(yt, yp.dtype), yp)
                if len(v.shape) > 1:  # a loss that leaves values per column: Keras averages them
                    v = keras.ops.mean(keras.ops.reshape(v, (keras.ops.shape(v)[0], -1)), axis=-1)
                v = v if w == 1.0 else v * w
                total = v if total is None else total + v
                start += size
            return total

    obj = SumOfOutputLosses(name="sum_of_output_losses")
    obj.output_losses = names  # what is summed, for notes
    obj.per_output_losses = list(losses)  # the user's loss of each output, in the model's output order
    obj.loss_weights = list(weights)
    obj.output_names = list(layout.output_names)
    return obj


@dataclass
class FlatProblem:
    """What the experiments see: one-input one-output model, X, y (and validation data)."""

    model: Any
    X: Any
    y: Any
    validation_data: Any = None
    layout: IOLayout | None = None
    notes: list[str] = field(default_factory=list)


def flatten_problem(model, X, y, validation_data=None) -> FlatProblem:
    """``model``, ``X``, ``y`` as one input and one output (unchanged for a single-input single-output model)."""
    if not is_multi_io(model):
        return FlatProblem(model, X, y, validation_data)
    import keras

    layout = layout_of(model)
    Xf, yf = layout.flat_X(X), layout.flat_y(y)
    if len(Xf) != len(yf):
        raise InputError(f"X and y must have the same number of rows (Received {len(Xf)} and {len(yf)})")
    flat = flat_model(model, layout)
    loss = getattr(model, "loss", None)
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None or loss is not None:
        opt = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer)) if optimizer is not None else "adam"
        weights = output_loss_weights(model, layout) if layout.several_outputs else None
        flat_loss = summed_output_loss(loss, layout, weights) if layout.several_outputs else loss
        flat.compile(optimizer=opt, loss=flat_loss if flat_loss is not None else "mse")
    vd = validation_data
    if vd is not None and isinstance(vd, (tuple, list)) and len(vd) >= 2:
        vd = (layout.flat_X(vd[0]), layout.flat_y(vd[1]))
    notes = []
    if layout.several_inputs:
        desc = ", ".join(f"{n} {s}" for n, s in zip(layout.input_names, layout.input_shapes))
        notes.append(f"{len(layout.input_shapes)}-input model ({desc}): the experiments feed the inputs' values side "
                     f"by side ({sum(layout.input_sizes)} columns; the data rules and references judge them so, and "
                     "input scaling is per column); the saved model takes the inputs as you give them")
    if layout.several_outputs:
        desc = ", ".join(f"{n} {s}" for n, s in zip(layout.output_names, layout.output_shapes))
        w = output_loss_weights(model, layout)
        weighted = "" if all(x == 1.0 for x in w) else f", loss_weights {', '.join(f'{x:g}' for x in w)}"
        notes.append(f"{len(layout.output_shapes)}-output model ({desc}): trained on the sum of the per-output "
                     f"losses ({', '.join(_loss_name(l) for l in _per_output_losses(loss, layout))}{weighted}), as "
                     "model.fit does (loss `SumOfOutputLosses`); MSE and the references are the mean over all output "
                     "columns; the saved model and fix.py have your outputs and per-output losses")
    return FlatProblem(flat, Xf, yf, vd, layout, notes)


def _add_notes(result, notes: list[str]) -> None:
    if notes and not any(isinstance(getattr(o, a, None), list) for o in (result, getattr(result, "report", None))
                         for a in ("notes", "notes_")):
        try:
            result.notes_ = []  # a result without notes of its own (a Comparison) gets them here
        except AttributeError:
            return
    for owner in (result, getattr(result, "report", None)):
        for attr in ("notes", "notes_"):
            existing = getattr(owner, attr, None) if owner is not None else None
            if isinstance(existing, list):
                existing[:0] = [n for n in notes if n not in existing]


def accepts_several_inputs_outputs(fn):
    """Let ``fn(model, X, y, ..., validation_data=None)`` take a model with several inputs or outputs,
    and X given as a generator or dataset of ``(x, y)`` batches (:mod:`fitdoctor.data.streams`).

    X is then a list (or a dict by input name) of arrays, y a list (or dict by output name) of
    arrays, one per output, or one array holding every output's columns side by side. ``fn`` runs on
    the flat problem (:func:`flatten_problem`); a result with a ``model`` (a repair) gets the user's
    inputs and outputs back (:func:`restore_io`), and the result's notes say what was done.
    """
    import functools

    from ..data.streams import is_stream, read_stream

    @functools.wraps(fn)
    def wrapper(model=None, X=None, y=None, *args, **kwargs):
        stream_notes: list[str] = []
        if is_stream(X):  # a generator or dataset of (x, y) batches: read once, up to a stated number of rows
            X, y, stream_notes = read_stream(X, y)
        if not is_multi_io(model):
            result = fn(model, X, y, *args, **kwargs)
            _add_notes(result, stream_notes)
            return result
        flat = flatten_problem(model, X, y, kwargs.get("validation_data"))
        flat.notes[:0] = stream_notes
        if kwargs.get("validation_data") is not None:
            kwargs["validation_data"] = flat.validation_data
        result = fn(flat.model, flat.X, flat.y, *args, **kwargs)
        if getattr(result, "model", None) is not None and hasattr(result, "recipe"):  # a repair: the user's inputs/outputs
            # ``flat_model``: the repaired flat model, which the data the repair keeps (side by side) fits
            result.flat_model = result.model
            result.model = restore_io(result.model, flat.layout)
            result.io_layout = flat.layout  # fix.py trains your inputs and outputs (fix/script.py)
        _add_notes(result, flat.notes)
        return result

    return wrapper


def columns_as_inputs(model, X: np.ndarray, where: str = "the data"):
    """A table's feature columns as the model's inputs, in order (a list for several inputs).

    For the command line: a CSV has one row of columns; a model with several inputs takes its
    first input's values from the first columns, and so on. An InputError when the counts differ.
    """
    if not is_multi_io(model) or not layout_of(model).several_inputs:
        return X
    layout = layout_of(model)
    if X.ndim > 2:
        return _channels_as_inputs(layout, X, where)
    sizes = layout.input_sizes
    if X.shape[1] != sum(sizes):
        raise InputError(f"the model's inputs ({', '.join(f'{n} {s}' for n, s in zip(layout.input_names, layout.input_shapes))}) "
                         f"take {sum(sizes)} values per row but {where} has {X.shape[1]} feature columns: the columns "
                         "feed the inputs in order")
    out, start = [], 0
    for shape, size in zip(layout.input_shapes, sizes):
        out.append(X[:, start:start + size].reshape((len(X),) + tuple(shape)))
        start += size
    return out


def _channels_as_inputs(layout, X: np.ndarray, where: str) -> list:
    """Sequences (or images) for several inputs: each input takes its channels (last axis) in order."""
    shapes = [tuple(s) for s in layout.input_shapes]
    fits = all(len(s) == X.ndim - 1 and s[:-1] == X.shape[1:-1] for s in shapes) and \
        sum(s[-1] for s in shapes) == X.shape[-1]
    if not fits:
        raise InputError(f"the model's inputs ({', '.join(f'{n} {s}' for n, s in zip(layout.input_names, shapes))}) "
                         f"cannot be cut from {where}'s rows of shape {X.shape[1:]}: give rows of shape "
                         f"{X.shape[1:-1] + (sum(s[-1] for s in shapes),)} whose last axis holds the inputs' channels in order")
    out, start = [], 0
    for s in shapes:
        out.append(X[..., start:start + s[-1]])
        start += s[-1]
    return out


def input_columns_note(model, ndim: int = 2) -> list[str]:
    """The line that says how a table's columns (``ndim`` 2) or the channels of sequences (``ndim`` > 2) were
    fed to a several-input model (empty otherwise)."""
    if not is_multi_io(model) or not layout_of(model).several_inputs:
        return []
    layout = layout_of(model)
    what = "channels" if ndim > 2 else "columns"
    sizes = [int(s[-1]) for s in layout.input_shapes] if ndim > 2 else layout.input_sizes
    parts, start = [], 0
    for name, size in zip(layout.input_names, sizes):
        parts.append(f"{name} <- {what} {start + 1}-{start + size}")
        start += size
    where = "the last axis's channels" if ndim > 2 else "the feature columns"
    return [f"{where} feed the model's {len(parts)} inputs in order ({'; '.join(parts)})"]
