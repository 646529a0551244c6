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


def _dense_stack(model) -> list[str] | None:
    """Python source for the model's layers when it is a plain stack of Dense layers, else None."""
    import keras

    if not isinstance(model, keras.Sequential):
        return None
    lines = []
    for layer in model.layers:
        if type(layer).__name__ != "Dense":
            return None
        cfg = layer.get_config()
        args = [str(cfg["units"])]
        act = cfg.get("activation")
        if act not in (None, "linear"):
            args.append(f"activation={act!r}")
        init = cfg.get("kernel_initializer")
        init_name = init.get("class_name") if isinstance(init, dict) else init
        if init_name and init_name not in ("GlorotUniform", "glorot_uniform"):
            args.append(f"kernel_initializer={_snake(init_name)!r}")
        lines.append(f"keras.layers.Dense({', '.join(args)})")
    return lines


def _snake(name: str) -> str:
    import re

    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def _optimizer_code(recipe) -> str:
    args = [f"learning_rate={recipe.learning_rate:.6g}"]
    if recipe.clipnorm:
        args.append(f"clipnorm={recipe.clipnorm:g}")
    cls = _OPTIMIZER_CLASSES.get(recipe.optimizer)
    if cls:
        return f"keras.optimizers.{cls}({', '.join(args)})"
    cfg = ", ".join(f"{a.split('=')[0]!r}: {a.split('=')[1]}" for a in args)
    return f"keras.optimizers.get({{'class_name': {recipe.optimizer!r}, 'config': {{{cfg}}}}})"


def _loss_code(recipe) -> str:
    if recipe.loss == "huber":
        return f"keras.losses.Huber(delta={recipe.huber_delta:g})"
    return repr(recipe.loss)


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
    n_inputs = int(rep._X.shape[1]) if rep._X is not None else len(rep.feature_names)
    stack = _dense_stack(rep._arch_model) if getattr(rep, "_arch_model", None) is not None else None
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
        "HERE = os.path.dirname(os.path.abspath(__file__))",
        "ARGS = [a for a in sys.argv[1:] if not a.startswith('--')]",
        f"DATA = ARGS[0] if ARGS else {default}",
        f"TARGET = {rep.target_name!r}",
        "",
        "",
        "def load(path):",
        "    if path.endswith('.npz'):",
        "        data = np.load(path)",
        "        return np.asarray(data['X'], dtype=float), np.asarray(data['y'], dtype=float).reshape(-1)",
        "    import pandas as pd",
        "    frame = pd.read_parquet(path) if path.endswith(('.parquet', '.pq')) else pd.read_csv(path, sep=None, engine='python')",
        "    y = frame.pop(TARGET).to_numpy(dtype=float)",
        "    return frame.to_numpy(dtype=float), y",
        "",
        "",
        "X, y = load(DATA)",
    ]
    if r.drop_nonfinite:
        L += ["keep = np.isfinite(X).all(axis=1) & np.isfinite(y)  # drop_nonfinite_rows",
              "print(f'dropped rows {np.flatnonzero(~keep).tolist()} (NaN or inf)')",
              "X, y = X[keep], y[keep]"]
    else:
        L += ["keep = np.isfinite(X).all(axis=1) & np.isfinite(y)",
              "X, y = X[keep], y[keep]  # no NaN/inf in the data fitdoctor saw; kept for safety"]
    L += [f"keras.utils.set_random_seed({int(rep.seed)})", ""]
    if stack is not None:
        L += ["core = keras.Sequential(["]
        L += [f"    keras.Input(({n_inputs},)),"] + [f"    {s}," for s in stack] + ["])"]
    else:
        L += ["# the (modified) architecture with its starting weights, saved beside this script",
              "core = keras.saving.load_model(os.path.join(HERE, 'initial_model.keras'), compile=False)"]
    L += [f"inputs = keras.Input(({n_inputs},))"]
    if r.scale_x:
        L += ["x_std = X.std(axis=0)", "x_std[x_std == 0] = 1.0",
              "hidden = keras.layers.Normalization(mean=X.mean(axis=0), variance=x_std**2)(inputs)  # scale_inputs"]
    else:
        L += ["hidden = inputs"]
    L += ["outputs = core(hidden)", "trainer = keras.Model(inputs, outputs)",
          f"trainer.compile(optimizer={_optimizer_code(r)}, loss={_loss_code(r)})"]
    if r.scale_y:
        L += ["y_mean, y_std = y.mean(), y.std()", "y_train = (y - y_mean) / y_std  # scale_targets"]
    else:
        L += ["y_train = y"]
    cbs = _callbacks_code(r)
    cb_arg = ""
    if cbs:
        L += ["callbacks = ["] + [f"    {c}," for c in cbs] + ["]"]
        cb_arg = ", callbacks=callbacks"
    L += [f"trainer.fit(X, y_train.reshape(-1, 1), epochs={r.epochs}, batch_size={r.batch_size}, verbose=0{cb_arg})"]
    if r.scale_y:
        L += ["# predictions back in the original units",
              "model = keras.Model(inputs, keras.layers.Normalization(mean=[y_mean], variance=[y_std**2], invert=True)(outputs))"]
    else:
        L += ["model = trainer"]
    L += ["mse = float(np.mean((model.predict(X, verbose=0).reshape(-1) - y) ** 2))",
          "print(f'final training MSE: {mse:.6g}')",
          "if '--save' in sys.argv:",
          "    model.save(os.path.join(HERE, 'model_from_fix.keras'))",
          ""]
    return "\n".join(L)
