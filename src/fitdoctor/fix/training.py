"""Training a recipe: candidates on the vectorised engine, grouped by architecture.

The engine (:mod:`fitdoctor.experiments.engine`) trains runs of one architecture together; the
architecture-changing parts of a recipe become a modified clone (:mod:`.surgery`). A recipe's early
stopping and ``ReduceLROnPlateau`` (on the training loss) are part of its engine run; a plain
``model.fit`` (:func:`train_plain`) remains for early stopping on given validation rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from . import surgery
from .interventions import Recipe

#: hidden activation used when capacity is added
HIDDEN_ACTIVATION = "tanh"


@dataclass
class Trial:
    """One training run of the ablation: its recipe, what it measured, and how to rebuild it."""

    label: str
    recipe: Recipe
    names: tuple[str, ...]
    final_mse: float = float("nan")
    best_mse: float = float("nan")
    diverged: bool = False
    mse: list[float] = field(default_factory=list)
    engine: str = ""
    result: Any = None  # the engine's RunResult
    arch_model: Any = None  # the (modified) model the run was trained from
    #: what the run is for: "baseline" (the user's configuration), "alone" (one suspected fix alone),
    #: "all" (all suspected fixes, at each learning rate of the grid), "without" (all fixes but ``dropped``),
    #: "candidate" (regularisation/capacity, the kept fixes, more epochs, early stopping), "final" (all rows)
    role: str = "candidate"
    dropped: str | None = None  # the fix left out of a "without" run

    def row(self) -> dict[str, Any]:
        r = self.recipe
        return {
            "label": self.label, "role": self.role, "dropped": self.dropped, "interventions": list(self.names),
            "optimizer": r.optimizer,
            "learning_rate": r.learning_rate, "loss": r.loss, "scale_x": r.scale_x, "scale_y": r.scale_y,
            "output_activation": r.output_activation, "kernel_initializer": r.kernel_initializer,
            "hidden_units": list(r.hidden_units) if r.hidden_units else None, "clipnorm": r.clipnorm,
            "epochs": r.epochs, "final_mse": self.final_mse, "best_mse": self.best_mse,
            "diverged": self.diverged, "engine": self.engine,
        }

    def build_model(self, best: bool = False):
        """The trained model (raw inputs -> original units), standard layers only; ``best``: with the
        weights of the run's best held-out epoch (``result.best_weights``) instead of its last."""
        from ..experiments.engine import build_trained_model

        result = self.result
        if best:
            if result.best_weights is None:
                raise ValueError("the run kept no best-epoch weights (train it with keep_best=True)")
            result = replace(result, weights=result.best_weights,
                             non_trainable_weights=result.best_non_trainable_weights)
        return build_trained_model(self.arch_model, result)


def arch_model(model, n_inputs: int, recipe: Recipe, seed: int, cache: dict):
    key = recipe.architecture
    if key not in cache:
        cache[key] = surgery.modified_model(model, n_inputs, output_activation=recipe.output_activation,
                                            kernel_initializer=recipe.kernel_initializer,
                                            hidden_units=recipe.hidden_units,
                                            hidden_activation=HIDDEN_ACTIVATION, seed=seed)
        if recipe.l2 is not None or recipe.dropout is not None or recipe.width is not None:
            cache[key] = surgery.resized_model(cache[key], n_inputs, l2=recipe.l2, dropout=recipe.dropout,
                                               width=recipe.width, seed=seed)
    return cache[key]


def run_spec(recipe: Recipe):
    """The engine's description of ``recipe``'s training, its callbacks (:func:`callbacks_for`) included."""
    from ..experiments.engine import RunSpec

    spec = RunSpec(optimizer=recipe.optimizer, learning_rate=float(recipe.learning_rate), loss=recipe.loss,
                   huber_delta=float(recipe.huber_delta), scale_x=recipe.scale_x, scale_y=recipe.scale_y,
                   epochs=int(recipe.epochs), batch_size=int(recipe.batch_size), clipnorm=recipe.clipnorm,
                   momentum=float(recipe.momentum), optimizer_config=recipe.optimizer_config,
                   loss_object=recipe.loss_object)
    if not (recipe.early_stopping or recipe.reduce_lr_on_plateau):
        return spec
    settings = {}
    for cb in callbacks_for(recipe, spec=spec):
        if type(cb).__name__ == "EarlyStopping":
            settings["early_stopping_patience"] = int(cb.patience)
        elif type(cb).__name__ == "ReduceLROnPlateau":
            settings.update(reduce_lr_patience=int(cb.patience), reduce_lr_factor=float(cb.factor),
                            reduce_lr_min=float(cb.min_lr))
    return replace(spec, **settings)


def run_trials(model, X, y, trials: list[Trial], *, seed: int, cache: dict,
               done: Callable[[int], None] | None = None, executor=None, validation_data=None,
               keep_best: bool = False) -> list[Trial]:
    """Train every trial on the engine, grouped by architecture; identical recipes train once.

    ``executor``, ``validation_data``, ``keep_best``: as in :func:`fitdoctor.experiments.engine.train_runs`
    (each trial's ``result`` then holds its held-out curve and best-epoch weights)."""
    from ..experiments.engine import train_runs

    n_inputs = tuple(np.shape(X)[1:])  # one row as the model takes it
    unique: dict[Recipe, list[Trial]] = {}
    for t in trials:
        unique.setdefault(t.recipe, []).append(t)
    by_arch: dict[tuple, list[Recipe]] = {}
    for r in unique:
        by_arch.setdefault(r.architecture, []).append(r)
    for recipes in by_arch.values():
        base = arch_model(model, n_inputs, recipes[0], seed, cache)
        results = train_runs(base, X, y, [run_spec(r) for r in recipes], seed=seed, executor=executor,
                             validation_data=validation_data, keep_best=keep_best)
        for r, res in zip(recipes, results):
            for t in unique[r]:
                t.final_mse = float(res.final_mse)
                t.best_mse = float(res.best_mse)
                t.diverged = bool(res.diverged) or not np.isfinite(res.final_mse)
                t.mse = [float(v) for v in np.asarray(res.mse)]
                t.engine = res.engine
                t.result = res
                t.arch_model = base
        if done is not None:
            done(sum(len(unique[r]) for r in recipes))
    return trials


def row_errors(model, X, y) -> np.ndarray:
    """Squared error of each row (mean over target columns, original units), predicting with ``model``."""
    from ..model.replica import call_model

    pred = call_model(model, X).reshape(len(X), -1)  # model.predict costs ~0.2 s a call on TensorFlow
    y = np.asarray(y, np.float64).reshape(len(X), -1)
    if pred.shape[1] != y.shape[1]:  # one target for a model with several identical outputs: compare the first
        pred = pred[:, : y.shape[1]]
    with np.errstate(over="ignore", invalid="ignore"):
        return np.mean((pred - y) ** 2, axis=1)


def predict_mse(model, X, y) -> float:
    """Training MSE in original units, measured by predicting with ``model``."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.mean(row_errors(model, X, y)))  # mean over rows and target columns


@dataclass
class PlainRun:
    model: Any
    loss: list[float]  # per-epoch training loss, as fit reports it (standardised units when scale_y)
    mse: list[float]  # per-epoch full-data MSE in original units
    stopped_epoch: int
    best_epoch: int


def make_optimizer(recipe: Recipe):
    """The recipe's Keras optimizer (one place: :func:`fitdoctor.experiments.engine.make_optimizer`)."""
    from ..experiments.engine import make_optimizer as engine_optimizer

    return engine_optimizer(run_spec(recipe))


def make_loss(recipe: Recipe):
    """The loss ``compile`` gets (one place: :func:`fitdoctor.experiments.engine.make_loss`)."""
    import keras

    from ..experiments.engine import make_loss as engine_loss

    spec = run_spec(recipe)
    if recipe.loss == "huber" and not spec.uses_user_loss:
        return keras.losses.Huber(delta=float(recipe.huber_delta))
    return engine_loss(spec)


def callbacks_for(recipe: Recipe, *, monitor: str = "loss", spec=None) -> list:
    """EarlyStopping that restores the best weights and ReduceLROnPlateau, both on ``monitor`` (the
    training loss; ``"val_loss"`` stops on the validation loss, with a shorter patience)."""
    import keras

    cbs = []
    if recipe.early_stopping:
        patience = max(10, recipe.epochs // 10) if monitor == "val_loss" else max(50, recipe.epochs // 10)
        cbs.append(keras.callbacks.EarlyStopping(monitor=monitor, patience=patience,
                                                 min_delta=0.0, restore_best_weights=True))
    spec = spec if spec is not None else run_spec(recipe.replace(early_stopping=False, reduce_lr_on_plateau=False))
    if recipe.reduce_lr_on_plateau and not spec.has_schedule:  # a schedule's rate cannot be set
        cbs.append(keras.callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=max(15, recipe.epochs // 40),
                                                     min_lr=float(recipe.learning_rate) * 1e-3))
    return cbs


def _train_plain_from(base, X, y, recipe: Recipe, *, seed: int, validation_data=None) -> PlainRun:
    """:func:`train_plain` from ``base``, the recipe's architecture already built (the worker's side)."""
    return train_plain(base, X, y, recipe, seed=seed, cache={recipe.architecture: base}, validation_data=validation_data)


def train_plain(model, X, y, recipe: Recipe, *, seed: int, cache: dict, validation_data=None) -> PlainRun:
    """Train ``recipe`` with a plain ``model.fit`` (callbacks included) and return the portable model.

    ``validation_data=(Xv, yv)``: fit reports the validation loss and the callbacks watch it
    (early stopping on the validation loss, best weights restored). On a backend other than JAX
    the fit runs in the JAX worker process and the model comes back rebuilt in this backend."""
    import keras

    from ..experiments.executors import call_in_worker

    n_inputs = tuple(np.shape(X)[1:])
    base = arch_model(model, n_inputs, recipe, seed, cache)
    remote = call_in_worker(_train_plain_from, base, X, y, recipe, seed=seed, validation_data=validation_data)
    if remote is not None:  # a TensorFlow user's plain fit on JAX, from the same starting weights
        return remote
    keras.utils.set_random_seed(seed)
    core = surgery.clone(base, n_inputs)
    X = np.asarray(X, np.float64)
    y = np.asarray(y, np.float64).reshape(len(X), -1)  # (n, k)
    axes = tuple(range(X.ndim - 1))
    x_mean, x_std = X.mean(axis=axes), X.std(axis=axes)
    x_std[x_std == 0] = 1.0
    y_mean, y_std = y.mean(axis=0), y.std(axis=0)
    y_std[y_std == 0] = 1.0
    inp = keras.Input(n_inputs, name="raw_inputs")
    h = inp
    if recipe.scale_x:
        h = keras.layers.Normalization(mean=x_mean.astype(np.float32), variance=(x_std**2).astype(np.float32),
                                       name="scale_x")(h)
    out = core(h)
    trainer = keras.Model(inp, out)
    trainer.compile(optimizer=make_optimizer(recipe), loss=make_loss(recipe))
    ym, ys = (y_mean, y_std) if recipe.scale_y else (np.zeros(y.shape[1]), np.ones(y.shape[1]))
    y_train = ((y - ym) / ys).astype(np.float32)
    if len(out.shape) < 2:
        y_train = y_train[:, 0]
    X32 = X.astype(np.float32)
    curve: list[float] = []

    class _EpochMSE(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            # one compiled program; an eager call re-compiles an LSTM's scan every epoch on JAX
            # (0.5 s an epoch: 400 s of a 5-epoch LSTM repair); for a Dense MLP 0.5 ms instead of 3 ms
            pred = np.asarray(self.model.predict_on_batch(X32), np.float64)
            with np.errstate(over="ignore", invalid="ignore"):
                curve.append(float(np.mean((pred.reshape(len(y), -1) * ys + ym - y) ** 2)))

    fit_kw = {}
    if validation_data is not None:
        Xv = np.asarray(validation_data[0], np.float32)
        yv = ((np.asarray(validation_data[1], np.float64).reshape(len(Xv), -1) - ym) / ys).astype(np.float32)
        fit_kw["validation_data"] = (Xv, yv[:, 0] if len(out.shape) < 2 else yv)
    cbs = callbacks_for(recipe, monitor="val_loss" if validation_data is not None else "loss")
    hist = trainer.fit(X32, y_train, epochs=int(recipe.epochs), batch_size=int(recipe.batch_size), shuffle=True,
                       verbose=0, callbacks=[_EpochMSE(), *cbs], **fit_kw)
    losses = [float(v) for v in hist.history["loss"]]
    watched = [float(v) for v in hist.history["val_loss"]] if validation_data is not None else losses
    best_epoch = int(np.nanargmin(watched)) if watched and np.isfinite(watched).any() else len(watched) - 1
    # a new, uncompiled wrapper: the saved model loads without the user's loss or optimizer
    final_out = out
    if recipe.scale_y:
        final_out = keras.layers.Normalization(mean=y_mean.astype(np.float32), variance=(y_std**2).astype(np.float32),
                                               invert=True, name="unscale_y")(out)
    final = keras.Model(inp, final_out, name="repaired")
    return PlainRun(model=final, loss=losses, mse=curve, stopped_epoch=len(losses), best_epoch=best_epoch)
