"""``fix.py``: a short, readable script that reproduces the repaired training with plain Keras.

The script imports numpy and keras only (pandas for a CSV/Parquet file), reads the data file it
was generated for (or ``data.npz`` saved beside it), applies the kept fixes as code, trains, and
prints the final training MSE in the original target units, measured by predicting.
"""
from __future__ import annotations

from .training import callbacks_for

_OPTIMIZER_CLASSES = {
    "adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad", "adamw": "AdamW",
    "nadam": "Nadam", "adamax": "Adamax", "adadelta": "Adadelta", "ftrl": "Ftrl", "lion": "Lion",
}


#: the regularisers a Dense layer's config can name that the script writes as code
_REGULARIZERS = {"L1": ("l1",), "L2": ("l2",), "L1L2": ("l1", "l2")}


def _regularizer_code(value) -> str | None:
    """``keras.regularizers.L2(l2=0.01)`` for a serialised L1/L2/L1L2 regulariser; "" for none; None
    for one the script cannot write (a custom regulariser: the model file carries it instead)."""
    if value is None:
        return ""
    if not isinstance(value, dict) or value.get("class_name") not in _REGULARIZERS:
        return None
    cfg = value.get("config") or {}
    kw = ", ".join(f"{k}={float(cfg.get(k, 0.0)):.7g}" for k in _REGULARIZERS[value["class_name"]])
    return f"keras.regularizers.{value['class_name']}({kw})"


def dense_stack(model) -> list[str] | None:
    """Python source for the model's layers when it is a plain Sequential stack of Dense layers
    (with their L1/L2 regularisers) and Dropout layers, else None."""
    import keras

    if not isinstance(model, keras.Sequential):
        return None
    lines = []
    for layer in model.layers:
        kind = type(layer).__name__
        cfg = layer.get_config()
        if kind == "Dropout":
            lines.append(f"keras.layers.Dropout({float(cfg['rate']):g})")
            continue
        if kind != "Dense":
            return None
        args = [str(cfg["units"])]
        act = cfg.get("activation")
        if act not in (None, "linear"):
            args.append(f"activation={act!r}")
        init = cfg.get("kernel_initializer")
        init_name = init.get("class_name") if isinstance(init, dict) else init
        if init_name and init_name not in ("GlorotUniform", "glorot_uniform"):
            args.append(f"kernel_initializer={_snake(init_name)!r}")
        for key in ("kernel_regularizer", "bias_regularizer", "activity_regularizer"):
            code = _regularizer_code(cfg.get(key))
            if code is None:
                return None
            if code:
                args.append(f"{key}={code}")
        lines.append(f"keras.layers.Dense({', '.join(args)})")
    return lines


def _architecture_comments(recipe) -> list[str]:
    """Comment lines naming the repair's regularisation and capacity changes (Recipe.l2, dropout, width)."""
    out = []
    if recipe.width == 0:
        out.append("# linear_model: the hidden layers removed (inputs straight to the output unit)")
    elif recipe.width is not None:
        out.append(f"# narrow_network: every hidden Dense layer has {int(recipe.width)} units")
    if recipe.l2 is not None and recipe.l2 > 0:
        out.append(f"# l2_penalty: kernel_regularizer=keras.regularizers.L2({recipe.l2:g}) on every Dense layer")
    elif recipe.l2 is not None:
        out.append("# remove_regularization: no kernel, bias or activity regulariser on any Dense layer")
    if recipe.dropout:
        out.append(f"# add_dropout: Dropout({recipe.dropout:g}) after each hidden Dense layer")
    elif recipe.dropout is not None:
        out.append("# no Dropout layers (the repair removed them)")
    return out


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _optimizer_code(recipe) -> str:
    """The optimizer exactly as the recipe trains it: class and every non-default setting."""
    import json

    from ..model.inspect import optimizer_settings, serialize_optimizer
    from .training import make_optimizer

    opt = make_optimizer(recipe)
    cls = type(opt).__name__
    settings = optimizer_settings(serialize_optimizer(opt))
    schedule = settings.pop("schedule", None)
    if schedule is not None:
        sched_cfg = {k: v for k, v in schedule.get("config", {}).items() if k != "name"}
        args = [f"learning_rate=keras.optimizers.schedules.{schedule.get('class_name')}(**{sched_cfg!r})"]
    else:
        args = [f"learning_rate={float(recipe.learning_rate):.7g}"]
    args += [f"{k}={v!r}" for k, v in settings.items()]
    if getattr(__import__("keras").optimizers, cls, None) is type(opt):
        return f"keras.optimizers.{cls}({', '.join(args)})"
    ser = json.loads(serialize_optimizer(opt) or "{}")
    return f"keras.optimizers.deserialize({ser!r})"


def _one_loss_code(obj) -> str:
    """Python source for one loss as ``compile`` takes it: a name, a built-in ``Loss`` with its settings,
    an instance of the user's ``Loss`` subclass, or the user's function by name."""
    if isinstance(obj, str):
        return repr(obj)
    if _is_keras_object(obj):
        from ..model.inspect import loss_keywords

        kw = ", ".join(f"{k}={v!r}" for k, v in loss_keywords(obj).items())
        return f"keras.losses.{type(obj).__name__}({kw})"
    if isinstance(obj, type):  # a Loss subclass given as a class
        return f"{obj.__name__}()"
    if not hasattr(obj, "__name__"):  # a Loss subclass instance
        return f"{type(obj).__name__}()"
    return obj.__name__


def _user_loss(recipe):
    """The user's loss object the recipe trains with (None when the recipe names a built-in loss)."""
    from ..experiments.engine import make_loss
    from .training import run_spec

    spec = run_spec(recipe)
    return make_loss(spec) if spec.uses_user_loss else None


def _loss_code(recipe) -> str:
    obj = _user_loss(recipe)
    if obj is not None:
        return _one_loss_code(obj)
    if recipe.loss == "huber":
        return f"keras.losses.Huber(delta={recipe.huber_delta:g})"
    return repr(recipe.loss)


def _output_losses(recipe, layout) -> tuple[list[str], list[float]]:
    """Per-output loss code and ``loss_weights`` that make ``model.fit`` of a several-output model minimise
    what fitdoctor's flat replica minimised: the user's losses and weights while the recipe keeps them;
    a loss the repair chose is the mean over every output column, i.e. each output's mean times its share
    of the columns."""
    obj = _user_loss(recipe)
    per = getattr(obj, "per_output_losses", None)
    if per is not None:
        return [_one_loss_code(l) for l in per], [float(w) for w in obj.loss_weights]
    sizes = layout.output_sizes
    return [_loss_code(recipe)] * len(sizes), [size / sum(sizes) for size in sizes]


def _is_keras_object(obj) -> bool:
    import keras

    mod = type(obj).__module__ or ""
    return mod.startswith("keras") and getattr(keras.losses, type(obj).__name__, None) is type(obj)


def _user_loss_source(recipe) -> list[str]:
    """Lines that define or import the user's own loss(es) (a function or a Loss subclass), with a comment."""
    obj = _user_loss(recipe)
    if obj is None:
        return []
    lines, seen = [], set()
    for one in getattr(obj, "per_output_losses", None) or [obj]:
        if isinstance(one, str) or _is_keras_object(one):
            continue
        src = _loss_source(one)
        if src and src[0] not in seen:
            seen.add(src[0])
            lines += src
    return lines


def _loss_source(obj) -> list[str]:
    import inspect
    import textwrap

    target = obj if inspect.isfunction(obj) or isinstance(obj, type) else type(obj)
    name = target.__name__
    try:
        src = textwrap.dedent(inspect.getsource(target)).rstrip()
        return [f"# your loss `{name}`, copied from its source (fitdoctor trains with it as you compiled it)", src, "", ""]
    except (OSError, TypeError):
        mod = getattr(target, "__module__", None)
        if mod and mod != "__main__":
            return [f"from {mod} import {name}  # your loss `{name}` (fitdoctor trains with it as you compiled it)", ""]
        return [f"# your loss `{name}`: its source was not available; define it here before running this script",
                f"# def {name}(y_true, y_pred): ...", ""]


def _callbacks_code(recipe) -> list[str]:
    out = []
    for cb in callbacks_for(recipe):
        name = type(cb).__name__
        if name == "EarlyStopping":
            out.append(f"keras.callbacks.EarlyStopping(monitor='loss', patience={cb.patience}, restore_best_weights=True)")
        elif name == "ReduceLROnPlateau":
            out.append(f"keras.callbacks.ReduceLROnPlateau(monitor='loss', factor={cb.factor:g}, "
                       f"patience={cb.patience}, min_lr={cb.min_lr:.3g})")
    return out


def _io_helpers(layout) -> list[str]:
    """For a model with several inputs or outputs: their names and shapes, and the functions that cut the
    data's columns into them and join them in the model (built-in layers only)."""
    if layout is None or not (layout.several_inputs or layout.several_outputs):
        return []
    ins = ", ".join(f"({n!r}, {tuple(s)!r})" for n, s in zip(layout.input_names, layout.input_shapes))
    outs = ", ".join(f"({n!r}, {tuple(s)!r})" for n, s in zip(layout.output_names, layout.output_shapes))
    L = ["# your model's inputs and outputs (name, shape of one row), in order: the data holds the inputs' values",
         "# side by side (X's columns) and the outputs' targets side by side (y's columns)",
         f"INPUTS = [{ins}]", f"OUTPUTS = [{outs}]", "", "",
         "def split(A, parts):",
         '    """A\'s columns cut into one array per input (or output), each shaped as the model takes it."""',
         "    out, start = [], 0",
         "    for _, shape in parts:",
         "        size = int(np.prod(shape))",
         "        out.append(A[:, start:start + size].reshape((len(A),) + tuple(shape)))",
         "        start += size",
         "    return out",
         "", ""]
    if layout.several_inputs:
        L += ["def side_by_side(tensors, parts):",
              '    """The inputs as one tensor of their values side by side."""',
              "    flat = [keras.layers.Reshape((int(np.prod(shape)),))(t) for t, (_, shape) in zip(tensors, parts)]",
              "    return keras.layers.Concatenate()(flat)",
              "", ""]
    if layout.several_outputs:
        L += ["def cut(tensor, parts):",
              '    """One tensor of columns cut into your outputs, each named and shaped as yours."""',
              "    total = sum(int(np.prod(shape)) for _, shape in parts)",
              "    h = keras.layers.Reshape((total, 1))(tensor)",
              "    out, start = [], 0",
              "    for name, shape in parts:",
              "        size = int(np.prod(shape))",
              "        part = keras.layers.Cropping1D((start, total - start - size))(h)",
              "        out.append(keras.layers.Reshape(tuple(shape), name=name)(part))",
              "        start += size",
              "    return out",
              "", ""]
    return L


def _custom_class_imports(model) -> list[str]:
    """Imports of the modules that register the user's own model and layer classes (a subclassed model):
    ``load_model`` of the architecture file needs them."""
    if model is None:
        return []
    from ..model.replica import walk_layers

    lines, seen = [], set()
    for obj in [model] + walk_layers(model):
        cls = type(obj)
        mod = cls.__module__ or ""
        if mod.split(".")[0] == "keras" or (mod, cls.__name__) in seen:
            continue
        seen.add((mod, cls.__name__))
        if mod == "__main__":
            lines.append(f"# your class `{cls.__name__}` was defined in your script: define or import it here, "
                         "registered with @keras.saving.register_keras_serializable(), before loading")
        else:
            lines.append(f"import {mod}  # registers your class `{cls.__name__}` (load_model needs it)")
    return lines


def render_fix_script(rep, *, data_file: str | None = None) -> str:
    """The source of ``fix.py`` for the :class:`~fitdoctor.fix.Repair` ``rep``."""
    r = rep.recipe
    in_shape = tuple(int(d) for d in rep._X.shape[1:]) if rep._X is not None else (len(rep.feature_names),)
    n_inputs = ", ".join(str(d) for d in in_shape) + ("," if len(in_shape) == 1 else "")
    stack = dense_stack(rep._arch_model) if getattr(rep, "_arch_model", None) is not None else None
    applied = rep.applied or []
    doc = [f'"""Repaired training for {rep.target_name!r}, written by `fitdoctor fix` (plain Keras: fitdoctor is not needed).',
           ""]
    if applied:
        doc.append("Fixes kept, each measured by fitdoctor (training MSE in original units, without -> with):")
        for a in applied:
            without = "n/a" if a.loss_without is None else f"{a.loss_without:.4g}"
            with_ = "n/a" if a.loss_with is None else f"{a.loss_with:.4g}"
            doc.append(f"  - {a.name}: {a.description} ({without} -> {with_})")
    else:
        doc.append("No fix was kept: this is your configuration as it was.")
    doc += [f"fitdoctor measured a final training MSE of {rep.after_loss:.6g} (optimum {rep.optimum:.6g}).", "",
            "Usage: python fix.py [DATA] [--save]   (DATA defaults to the file below; --save writes model_from_fix.keras)", '"""']
    default = repr(data_file) if data_file else 'os.path.join(HERE, "data.npz")'
    L = doc + [
        "import os",
        "import sys",
        "",
        "import numpy as np",
        "import keras",
        "",
        *_user_loss_source(r),
        "HERE = os.path.dirname(os.path.abspath(__file__))",
        "ARGS = [a for a in sys.argv[1:] if not a.startswith('--')]",
        f"DATA = ARGS[0] if ARGS else {default}",
        f"TARGET = {rep.target_name!r}",
        "",
        "",
        "def load(path):",
        "    if path.endswith('.npz'):",
        "        data = np.load(path)",
        "        X = np.asarray(data['X'], dtype=float)",
        "        return X, np.asarray(data['y'], dtype=float).reshape(len(X), -1)",
        "    import pandas as pd",
        "    frame = pd.read_parquet(path) if path.endswith(('.parquet', '.pq')) else pd.read_csv(path, sep=None, engine='python')",
        "    targets = TARGET.split(',')  # one column, or several separated by commas",
        "    y = frame[targets].to_numpy(dtype=float)",
        "    return frame.drop(columns=targets).to_numpy(dtype=float), y",
        "",
        "",
        *_io_helpers(getattr(rep, "io_layout", None)),
        "X, y = load(DATA)",
    ]
    if r.drop_nonfinite:
        L += ["keep = np.isfinite(X.reshape(len(X), -1)).all(axis=1) & np.isfinite(y).all(axis=1)  # drop_nonfinite_rows",
              "print(f'dropped rows {np.flatnonzero(~keep).tolist()} (NaN or inf)')",
              "X, y = X[keep], y[keep]"]
    else:
        L += ["keep = np.isfinite(X.reshape(len(X), -1)).all(axis=1) & np.isfinite(y).all(axis=1)",
              "X, y = X[keep], y[keep]  # no NaN/inf in the data fitdoctor saw; kept for safety"]
    L += [f"keras.utils.set_random_seed({int(rep.seed)})", ""]
    L += _architecture_comments(r)
    if stack is not None:
        L += ["core = keras.Sequential(["]
        L += [f"    keras.Input(({n_inputs})),"] + [f"    {s}," for s in stack] + ["])"]
    else:
        if getattr(rep, "io_layout", None) is not None:
            L += ["# the architecture fitdoctor trained, with its starting weights, saved beside this script: your model",
                  "# inside one that takes the inputs' values side by side and gives the outputs' columns side by side"]
        else:
            L += ["# the (modified) architecture with its starting weights, saved beside this script"]
        L += _custom_class_imports(getattr(rep, "_arch_model", None))
        L += ["core = keras.saving.load_model(os.path.join(HERE, 'initial_model.keras'), compile=False)"]
    layout = getattr(rep, "io_layout", None)  # a model with several inputs or outputs (model.multi_io)
    several_in = layout is not None and layout.several_inputs
    several_out = layout is not None and layout.several_outputs
    if several_in:
        L += ["inputs = [keras.Input(shape, name=name) for name, shape in INPUTS]  # your model's inputs",
              "joined = side_by_side(inputs, INPUTS)  # their values side by side, as the architecture file takes them"]
        src, X_in = "joined", "X_in"
    else:
        L += [f"inputs = keras.Input(({n_inputs}))"]
        src, X_in = "inputs", "X"
    if r.scale_x:
        L += ["axes = tuple(range(X.ndim - 1))  # per feature (the last axis)",
              "x_std = X.std(axis=axes)", "x_std[x_std == 0] = 1.0",
              f"hidden = keras.layers.Normalization(mean=X.mean(axis=axes), variance=x_std**2)({src})  # scale_inputs"]
    else:
        L += [f"hidden = {src}"]
    L += ["flat_out = core(hidden)"]
    L += ["outputs = cut(flat_out, OUTPUTS)  # your model's outputs, named as yours" if several_out else "outputs = flat_out",
          "trainer = keras.Model(inputs, outputs)"]
    if several_out:
        codes, weights = _output_losses(r, layout)
        L += ["trainer.compile(",
              f"    optimizer={_optimizer_code(r)},",
              f"    loss=[{', '.join(codes)}],  # one per output, in OUTPUTS order"]
        if any(w != 1.0 for w in weights):
            L += [f"    loss_weights=[{', '.join(repr(float(w)) for w in weights)}],"]
        L += [")"]
    else:
        L += [f"trainer.compile(optimizer={_optimizer_code(r)}, loss={_loss_code(r)})"]
    if r.scale_y:
        L += ["y_mean, y_std = y.mean(axis=0), y.std(axis=0)  # per target column",
              "y_train = (y - y_mean) / y_std  # scale_targets"]
    else:
        L += ["y_train = y"]
    if several_in:
        L += ["X_in = split(X, INPUTS)  # one array per input"]
    y_fit = "split(y_train, OUTPUTS)" if several_out else "y_train"
    cbs = _callbacks_code(r)
    cb_arg = ""
    if cbs:
        L += ["callbacks = ["] + [f"    {c}," for c in cbs] + ["]"]
        cb_arg = ", callbacks=callbacks"
    L += [f"trainer.fit({X_in}, {y_fit}, epochs={r.epochs}, batch_size={r.batch_size}, verbose=0{cb_arg})"]
    if r.scale_y:
        unscaled = "keras.layers.Normalization(mean=y_mean, variance=y_std**2, invert=True)(flat_out)"
        L += ["# predictions back in the original units",
              f"unscaled = {unscaled}",
              "model = keras.Model(inputs, " + ("cut(unscaled, OUTPUTS))" if several_out else "unscaled)")]
    else:
        L += ["model = trainer"]
    if several_out:
        L += [f"pred = np.concatenate([p.reshape(len(X), -1) for p in model.predict({X_in}, verbose=0)], axis=1)"]
    else:
        L += [f"pred = model.predict({X_in}, verbose=0).reshape(len(X), -1)"]
    L += ["mse = float(np.mean((pred - y) ** 2))  # mean over rows and targets",
          "print(f'final training MSE: {mse:.6g}')",
          "if '--save' in sys.argv:",
          "    model.save(os.path.join(HERE, 'model_from_fix.keras'))",
          ""]
    return "\n".join(L)
