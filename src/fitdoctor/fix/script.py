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


def _loss_code(recipe) -> str:
    from ..experiments.engine import make_loss
    from .training import run_spec

    spec = run_spec(recipe)
    if spec.uses_user_loss:
        obj = make_loss(spec)
        if isinstance(obj, str):
            return repr(obj)
        if _is_keras_object(obj):
            from ..model.inspect import loss_keywords

            kw = ", ".join(f"{k}={v!r}" for k, v in loss_keywords(obj).items())
            return f"keras.losses.{type(obj).__name__}({kw})"
        if isinstance(obj, type) or not hasattr(obj, "__name__"):  # a Loss subclass instance
            return f"{type(obj).__name__}()"
        return obj.__name__
    if recipe.loss == "huber":
        return f"keras.losses.Huber(delta={recipe.huber_delta:g})"
    return repr(recipe.loss)


def _is_keras_object(obj) -> bool:
    import keras

    mod = type(obj).__module__ or ""
    return mod.startswith("keras") and getattr(keras.losses, type(obj).__name__, None) is type(obj)


def _user_loss_source(recipe) -> list[str]:
    """Lines that define or import the user's own loss (a function or a Loss subclass), with a comment."""
    import inspect
    import textwrap

    from ..experiments.engine import make_loss
    from .training import run_spec

    spec = run_spec(recipe)
    if not spec.uses_user_loss:
        return []
    obj = make_loss(spec)
    if isinstance(obj, str) or _is_keras_object(obj):
        return []
    target = obj if hasattr(obj, "__name__") and not isinstance(obj, type) and inspect.isfunction(obj) else type(obj)
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
        L += ["# the (modified) architecture with its starting weights, saved beside this script",
              "core = keras.saving.load_model(os.path.join(HERE, 'initial_model.keras'), compile=False)"]
    L += [f"inputs = keras.Input(({n_inputs}))"]
    if r.scale_x:
        L += ["axes = tuple(range(X.ndim - 1))  # per feature (the last axis)",
              "x_std = X.std(axis=axes)", "x_std[x_std == 0] = 1.0",
              "hidden = keras.layers.Normalization(mean=X.mean(axis=axes), variance=x_std**2)(inputs)  # scale_inputs"]
    else:
        L += ["hidden = inputs"]
    L += ["outputs = core(hidden)", "trainer = keras.Model(inputs, outputs)",
          f"trainer.compile(optimizer={_optimizer_code(r)}, loss={_loss_code(r)})"]
    if r.scale_y:
        L += ["y_mean, y_std = y.mean(axis=0), y.std(axis=0)  # per target column",
              "y_train = (y - y_mean) / y_std  # scale_targets"]
    else:
        L += ["y_train = y"]
    cbs = _callbacks_code(r)
    cb_arg = ""
    if cbs:
        L += ["callbacks = ["] + [f"    {c}," for c in cbs] + ["]"]
        cb_arg = ", callbacks=callbacks"
    L += [f"trainer.fit(X, y_train, epochs={r.epochs}, batch_size={r.batch_size}, verbose=0{cb_arg})"]
    if r.scale_y:
        L += ["# predictions back in the original units",
              "model = keras.Model(inputs, keras.layers.Normalization(mean=y_mean, variance=y_std**2, invert=True)(outputs))"]
    else:
        L += ["model = trainer"]
    L += ["mse = float(np.mean((model.predict(X, verbose=0).reshape(len(X), -1) - y) ** 2))  # mean over rows and targets",
          "print(f'final training MSE: {mse:.6g}')",
          "if '--save' in sys.argv:",
          "    model.save(os.path.join(HERE, 'model_from_fix.keras'))",
          ""]
    return "\n".join(L)
