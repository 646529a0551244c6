"""Train many configurations of one model: vectorised on JAX, sequential ``model.fit`` elsewhere.

Every run starts from the model's own current weights (clones or stateless copies; the model is
never modified) and sees the same data in the same way ``model.fit(X, y, epochs, batch_size,
shuffle=True)`` would: a fresh permutation every epoch, a last partial batch, the Keras
optimizers' own update rules and defaults, the epoch loss reported as the batch-size-weighted
mean of the batch losses.

The vectorised engine (the ``"vectorized"`` engine) groups runs that share optimizer class, loss,
batch size and epochs; inside a group the parameters, optimizer states (learning rate included)
and input/target standardisations are stacked and trained together with ``jax.vmap`` over
``model.stateless_call`` / ``optimizer.stateless_apply``, with ``jax.lax.scan`` over batches and
epochs, all under one ``jax.jit``. Runs in a group share the shuffling order (one permutation per
epoch from ``seed``), which makes them comparable. The last partial batch is padded to the batch
size and masked out of the loss, so its gradient is that of the mean over its real rows.

Where the engine cannot express the model (not the JAX backend, batch-dependent layers such as
BatchNormalization, a model that fails to trace) the runs are sequential ``model.fit`` calls on
clones, and the result says so (``engine="sequential"``, ``note``).
"""
from __future__ import annotations

import contextlib
import functools
import gc
import itertools
from collections import OrderedDict
from dataclasses import dataclass, field, asdict
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import InputError
from ..model.inspect import canonical_loss, architecture_signature

#: a run has diverged when its MSE is non-finite or ends above this multiple of its initial MSE
DIVERGENCE_FACTOR = 1e3
#: layers whose output for one row depends on the other rows of the batch (padding would change it)
_BATCH_DEPENDENT = {"BatchNormalization", "GroupNormalization", "UnitNormalization_batch"}
ENGINES = ("auto", "vectorized", "sequential")


@dataclass(frozen=True)
class RunSpec:
    """One training configuration."""

    optimizer: str = "adam"        # Keras optimizer name
    learning_rate: float = 1e-3
    loss: str = "mse"              # Keras loss name (mse, mae, huber, log_cosh, ...)
    huber_delta: float = 1.0       # in the units the model is trained in (standardised when scale_y)
    scale_x: bool = False          # standardise inputs (mean/std of the training X)
    scale_y: bool = False          # standardise targets; predictions are inverted back to original units
    epochs: int = 100
    batch_size: int = 32
    clipnorm: float | None = None
    momentum: float = 0.0          # SGD only

    def label(self) -> str:
        parts = [self.optimizer, f"lr={self.learning_rate:g}"]
        if self.loss != "mse":
            parts.append(f"huber(delta={self.huber_delta:g})" if self.loss == "huber" else self.loss)
        if self.momentum:
            parts.append(f"momentum={self.momentum:g}")
        if self.clipnorm:
            parts.append(f"clipnorm={self.clipnorm:g}")
        if self.scale_x:
            parts.append("scale_x")
        if self.scale_y:
            parts.append("scale_y")
        return " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunResult:
    """What one run measured. Curves are per epoch; ``mse`` is always in the original target units."""

    spec: RunSpec
    loss: np.ndarray        # training loss as model.fit reports it (x y_std**2 for mse, x y_std for mae when scale_y)
    mse: np.ndarray         # MSE on the full training data after each epoch, original units
    final_mse: float
    best_mse: float
    diverged: bool
    weights: list[np.ndarray]   # final trainable weights, in model.trainable_variables order
    x_mean: np.ndarray | None = None
    x_std: np.ndarray | None = None
    y_mean: float | None = None
    y_std: float | None = None
    engine: str = "vectorized"
    initial_mse: float = float("nan")   # MSE of the starting weights, original units
    note: str = ""                      # why the sequential engine was used, when it was
    non_trainable_weights: list[np.ndarray] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.spec.label()


# --------------------------------------------------------------------------------------------
# helpers shared by both engines


def _keras():
    import keras

    return keras


def make_optimizer(spec: RunSpec):
    """A fresh Keras optimizer for ``spec`` (its Keras defaults for everything not in the spec)."""
    keras = _keras()
    cfg: dict[str, Any] = {"learning_rate": float(spec.learning_rate)}
    if spec.clipnorm:
        cfg["clipnorm"] = float(spec.clipnorm)
    if spec.momentum and spec.optimizer == "sgd":
        cfg["momentum"] = float(spec.momentum)
    try:
        return keras.optimizers.get({"class_name": spec.optimizer, "config": cfg})
    except (ValueError, TypeError):
        raise InputError(f"unknown optimizer {spec.optimizer!r}: use a Keras optimizer name such as adam, sgd, rmsprop, adagrad "
                         f"(Received optimizer={spec.optimizer!r})") from None


def make_loss(spec: RunSpec) -> Callable:
    """The per-sample Keras loss function ``f(y_true, y_pred) -> (batch,)`` for ``spec``."""
    keras = _keras()
    name = canonical_loss(spec.loss)
    if name == "huber":
        delta = float(spec.huber_delta)

        def huber(y_true, y_pred):
            return keras.losses.huber(y_true, y_pred, delta=delta)

        return huber
    try:
        fn = keras.losses.get(name)
    except (ValueError, TypeError):
        fn = None
    if fn is None or not callable(fn):
        raise InputError(f"unknown loss {spec.loss!r}: use a Keras loss name such as mse, mae, huber, log_cosh "
                         f"(Received loss={spec.loss!r})")
    return fn


def _validate_specs(specs: Sequence[RunSpec]) -> None:
    checked = set()
    for s in specs:
        if not (np.isfinite(s.learning_rate) and s.learning_rate > 0):
            raise InputError(f"learning rates must be positive numbers (Received learning_rate={s.learning_rate!r})")
        if int(s.epochs) < 1 or int(s.batch_size) < 1:
            raise InputError(f"epochs and batch_size must be positive (Received epochs={s.epochs!r}, batch_size={s.batch_size!r})")
        kind = (s.optimizer, s.clipnorm, s.momentum, s.loss, s.huber_delta)
        if kind not in checked:  # building a Keras optimizer costs a millisecond: once per kind
            make_optimizer(s)
            make_loss(s)
            checked.add(kind)


@dataclass
class _Data:
    X: np.ndarray   # float32 (n, d), raw
    y: np.ndarray   # float32, shaped like the model output (n,) or (n, 1)
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float

    def norm(self, spec: RunSpec) -> tuple[np.ndarray, np.ndarray, np.float32, np.float32]:
        d = self.X.shape[1]
        xm = self.x_mean if spec.scale_x else np.zeros(d, np.float32)
        xs = self.x_std if spec.scale_x else np.ones(d, np.float32)
        ym = np.float32(self.y_mean if spec.scale_y else 0.0)
        ys = np.float32(self.y_std if spec.scale_y else 1.0)
        return xm, xs, ym, ys

    def transformed(self, spec: RunSpec) -> tuple[np.ndarray, np.ndarray]:
        xm, xs, ym, ys = self.norm(spec)
        return (self.X - xm) / xs, (self.y - ym) / ys


def _prepare_data(base, X, y) -> _Data:
    X = np.asarray(X, dtype=np.float64)
    if X.ndim == 1:
        X = X.reshape(-1, 1)
    y = np.asarray(y, dtype=np.float64).reshape(len(X), -1)
    if y.shape[1] != 1:
        raise InputError(f"fitdoctor trains single-output regression; y has {y.shape[1]} columns (Received y.shape={y.shape})")
    if not (np.isfinite(X).all() and np.isfinite(y).all()):
        raise InputError("X and y must be finite: drop the rows with NaN or infinite values first (Dataset.dropna())")
    if len(X) < 1:
        raise InputError("no rows to train on")
    out_rank = len(base.outputs[0].shape) if getattr(base, "outputs", None) else 2
    x_std = X.std(axis=0)
    x_std[x_std == 0] = 1.0
    y_std = float(y.std()) or 1.0
    return _Data(
        X=X.astype(np.float32),
        y=(y if out_rank >= 2 else y[:, 0]).astype(np.float32),
        x_mean=X.mean(axis=0).astype(np.float32),
        x_std=x_std.astype(np.float32),
        y_mean=float(y.mean()),
        y_std=y_std,
    )


def _base_model(model, X: np.ndarray, seed: int):
    """A clone of ``model`` carrying its current weights (built on X when the model is not)."""
    keras = _keras()
    keras.utils.set_random_seed(seed)
    try:
        base = keras.models.clone_model(model)
    except Exception as exc:  # subclassed models without get_config
        raise InputError(f"cannot clone the model ({type(exc).__name__}): give a Sequential or functional Keras model") from None
    if not base.built:
        base.build((None, X.shape[1]))
    if model.built:
        base.set_weights(model.get_weights())
    return base


def _batch_dependent_layers(model) -> list[str]:
    found = []
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", []) or [])
        if type(layer).__name__ in _BATCH_DEPENDENT:
            found.append(type(layer).__name__)
    return found


def vectorized_unsupported_reason(model) -> str | None:
    """Why the vectorised engine cannot train ``model`` (None when it can)."""
    keras = _keras()
    if keras.backend.backend() != "jax":
        return f"the vectorised engine needs the JAX backend (KERAS_BACKEND={keras.backend.backend()})"
    bad = _batch_dependent_layers(model)
    if bad:
        return f"{bad[0]} mixes rows within a batch, which the vectorised engine does not reproduce"
    return None


def _converted_loss(curve: np.ndarray, spec: RunSpec, y_std: float) -> np.ndarray:
    curve = np.asarray(curve, dtype=np.float64)
    if spec.scale_y:
        name = canonical_loss(spec.loss)
        if name == "mse":
            return curve * y_std**2
        if name == "mae":
            return curve * y_std
    return curve


def _result(spec, loss_curve, mse_curve, mse0, weights, ntw, data: _Data, engine, note="") -> RunResult:
    mse_curve = np.asarray(mse_curve, dtype=np.float64)
    finite = mse_curve[np.isfinite(mse_curve)]
    final = float(mse_curve[-1]) if len(mse_curve) else float("nan")
    diverged = bool(len(finite) < len(mse_curve) or (np.isfinite(mse0) and final > DIVERGENCE_FACTOR * max(mse0, 1e-300)))
    return RunResult(
        spec=spec,
        loss=_converted_loss(loss_curve, spec, data.y_std),
        mse=mse_curve,
        final_mse=final,
        best_mse=float(finite.min()) if len(finite) else float("inf"),
        diverged=diverged,
        weights=[np.asarray(w) for w in weights],
        x_mean=data.x_mean.astype(np.float64) if spec.scale_x else None,
        x_std=data.x_std.astype(np.float64) if spec.scale_x else None,
        y_mean=data.y_mean if spec.scale_y else None,
        y_std=data.y_std if spec.scale_y else None,
        engine=engine,
        initial_mse=float(mse0),
        note=note,
        non_trainable_weights=[np.asarray(w) for w in ntw],
    )


# --------------------------------------------------------------------------------------------
# sequential engine: model.fit on a clone per run


def _predict(model, X: np.ndarray, chunk: int = 65536) -> np.ndarray:
    keras = _keras()
    outs = [keras.ops.convert_to_numpy(model(X[i:i + chunk], training=False)) for i in range(0, len(X), chunk)]
    return np.concatenate(outs).reshape(len(X), -1)[:, 0].astype(np.float64)


def _mse_orig(model, Xs, y_orig, ym, ys) -> float:
    with np.errstate(over="ignore", invalid="ignore"):
        pred = _predict(model, Xs) * float(ys) + float(ym)
        return float(np.mean((pred - y_orig) ** 2))


def _run_sequential(base, data: _Data, spec: RunSpec, seed: int, note: str = "") -> RunResult:
    keras = _keras()
    Xs, ys_ = data.transformed(spec)
    _, _, ym, ysd = data.norm(spec)
    y_orig = data.y.reshape(len(data.y), -1)[:, 0].astype(np.float64)
    m = keras.models.clone_model(base)
    m.set_weights(base.get_weights())
    loss_fn = make_loss(spec)
    m.compile(optimizer=make_optimizer(spec), loss=loss_fn)
    mse0 = _mse_orig(m, Xs, y_orig, ym, ysd)
    curve: list[float] = []

    class _EpochMSE(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            curve.append(_mse_orig(self.model, Xs, y_orig, ym, ysd))

    keras.utils.set_random_seed(seed)
    hist = m.fit(Xs, ys_, epochs=int(spec.epochs), batch_size=int(spec.batch_size), shuffle=True,
                 verbose=0, callbacks=[_EpochMSE()])
    weights = [keras.ops.convert_to_numpy(v.value) for v in m.trainable_variables]
    ntw = [keras.ops.convert_to_numpy(v.value) for v in m.non_trainable_variables]
    return _result(spec, hist.history["loss"], curve, mse0, weights, ntw, data, "sequential", note)


# --------------------------------------------------------------------------------------------
# vectorised engine


def _group_key(spec: RunSpec, fused: bool = False):
    """Runs with equal keys train in one vmapped program; fused runs of any of the fused optimizers share one."""
    shape = (canonical_loss(spec.loss), float(spec.huber_delta), int(spec.batch_size), int(spec.epochs))
    if fused:
        return ("fused",) + shape
    return (spec.optimizer,) + shape + (spec.clipnorm, float(spec.momentum))


def shuffled_batches(n: int, batch_size: int, n_epochs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-epoch permutations cut into batches: indices (E, S, B) and a mask (E, S, B) of real rows.

    The last partial batch is padded with row 0 and a mask of 0.
    """
    rng = np.random.default_rng(seed)
    steps = -(-n // batch_size)
    idx = np.zeros((n_epochs, steps * batch_size), np.int32)
    mask = np.zeros((n_epochs, steps * batch_size), np.float32)
    for e in range(n_epochs):
        idx[e, :n] = rng.permutation(n)
        mask[e, :n] = 1.0
    return idx.reshape(n_epochs, steps, batch_size), mask.reshape(n_epochs, steps, batch_size)


class _Stepper:
    """Stateless pieces of one training step for a model, a Keras optimizer (template) and a loss."""

    fused = False

    def __init__(self, base, optimizer, loss_fn):
        self.base = base
        self.opt = optimizer
        self.loss_fn = loss_fn
        optimizer.build(base.trainable_variables)
        self.lr_pos = [i for i, v in enumerate(optimizer.variables)
                       if v is getattr(optimizer, "_learning_rate", None) or v.name == "learning_rate"]
        if len(self.lr_pos) != 1:
            raise RuntimeError("cannot locate the optimizer's learning-rate variable")
        self.lr_pos = self.lr_pos[0]

    def model_state(self):
        tv = [v.value for v in self.base.trainable_variables]
        ntv = [v.value for v in self.base.non_trainable_variables]
        return tv, ntv

    def initial_state(self):
        tv, ntv = self.model_state()
        return tv, ntv, [v.value for v in self.opt.variables]

    def stacked_optimizer_states(self, specs: Sequence[RunSpec]):
        """The optimizer state of every run, stacked on a first axis (learning rates set by ``with_lr``)."""
        return _stack([v.value for v in self.opt.variables], len(specs))

    def with_lr(self, ov, lr):
        import jax.numpy as jnp

        ov = list(ov)
        ov[self.lr_pos] = jnp.asarray(lr, dtype=ov[self.lr_pos].dtype)
        return ov

    def update(self, ov, grads, tv):
        return self.opt.stateless_apply(ov, grads, tv)

    def step(self, tv, ntv, ov, xb, yb, mb):
        """One optimizer step on a (masked) batch: returns new state and the batch loss."""
        import jax
        import jax.numpy as jnp

        def objective(tv_):
            pred, ntv2, losses = self.base.stateless_call(tv_, ntv, xb, training=True, return_losses=True)
            per = jnp.reshape(self.loss_fn(yb, pred), (xb.shape[0], -1)).mean(axis=1)
            per = jnp.where(mb > 0, per, 0.0)
            value = jnp.sum(per) / jnp.maximum(jnp.sum(mb), 1.0)
            for extra in losses:
                value = value + extra
            return value, ntv2

        (value, ntv2), grads = jax.value_and_grad(objective, has_aux=True)(tv)
        tv2, ov2 = self.update(ov, grads, tv)
        return tv2, ntv2, ov2, value

    def full_mse(self, tv, ntv, X, y, xm, xs, ym, ys):
        """MSE on all rows, in original target units (inference mode)."""
        import jax.numpy as jnp

        pred, _ = self.base.stateless_call(tv, ntv, (X - xm) / xs, training=False)
        pred = jnp.reshape(pred, y.shape) * ys + ym
        return jnp.mean((pred - y) ** 2)


# One update rule that reproduces Keras's SGD (with momentum), Adam, RMSprop and Adagrad, so that
# runs of different optimizers share ONE compiled program (compilation, not training, is what a
# grid of small models costs). Per run and per weight tensor, with t = 1, 2, ...:
#
#     g     <- g * clip / max(||g||, clip)                 when clipnorm is set (Keras clip_by_norm)
#     m     <- m + (g - m) * (1 - b1)                        (b1 = 0: m = g)
#     v     <- keep * v + add * g**2                         (v starts at v0)
#     alpha  = lr * scale * (sqrt(1 - b2**t) / (1 - b1**t) if bias else 1)
#     w     <- w - alpha * m / (sqrt(v + eps_in) + eps_out)
#
#   Adam      b1=beta_1  keep=beta_2 add=1-beta_2  eps_in=0        eps_out=epsilon bias  v0=0
#   RMSprop   b1=0       keep=rho    add=1-rho     eps_in=epsilon  eps_out=0             v0=0
#   Adagrad   b1=0       keep=1      add=1         eps_in=epsilon  eps_out=0             v0=initial_accumulator_value
#   SGD       b1=momentum keep=add=0               eps_in=1        eps_out=0             scale=1/(1-momentum)
#
# (Keras's SGD momentum buffer is m_k = momentum * m_(k-1) - lr * g_k, which for a constant learning
# rate equals -lr / (1 - momentum) times the moving average above.) Anything else (Nesterov,
# AMSGrad, centred RMSprop, weight decay, EMA, other optimizers) uses the Keras optimizer itself.
_FUSED_KEYS = ("lr", "b1", "keep", "add", "eps_in", "eps_out", "bias", "scale", "clip")


def fused_coefficients(spec: RunSpec) -> dict[str, float] | None:
    """The fused update rule's coefficients for ``spec`` (None when the rule cannot express it)."""
    c = _fused_coefficients(spec.optimizer, spec.clipnorm, float(spec.momentum))
    return None if c is None else {**c, "lr": float(spec.learning_rate)}


@functools.lru_cache(maxsize=64)
def _fused_coefficients(optimizer: str, clipnorm: float | None, momentum: float) -> dict[str, float] | None:
    opt = make_optimizer(RunSpec(optimizer=optimizer, clipnorm=clipnorm, momentum=momentum))
    cfg = opt.get_config()
    if any(cfg.get(k) for k in ("clipvalue", "global_clipnorm", "weight_decay", "use_ema",
                                "gradient_accumulation_steps", "loss_scale_factor")):
        return None
    kind = type(opt).__name__
    c = {"lr": float(cfg["learning_rate"]), "b1": 0.0, "keep": 0.0, "add": 0.0, "eps_in": 0.0, "eps_out": 0.0,
         "bias": 0.0, "scale": 1.0, "clip": float(cfg.get("clipnorm") or 0.0), "v0": 0.0}
    if kind == "Adam" and not cfg.get("amsgrad"):
        c.update(b1=cfg["beta_1"], keep=cfg["beta_2"], add=1.0 - cfg["beta_2"], eps_out=cfg["epsilon"], bias=1.0)
    elif kind == "RMSprop" and not cfg.get("centered") and not cfg.get("momentum"):
        c.update(keep=cfg["rho"], add=1.0 - cfg["rho"], eps_in=cfg["epsilon"])
    elif kind == "Adagrad":
        c.update(keep=1.0, add=1.0, eps_in=cfg["epsilon"], v0=cfg["initial_accumulator_value"])
    elif kind == "SGD" and not cfg.get("nesterov") and 0.0 <= cfg.get("momentum", 0.0) < 1.0:
        c.update(b1=float(cfg.get("momentum") or 0.0), eps_in=1.0, scale=1.0 / (1.0 - float(cfg.get("momentum") or 0.0)))
    else:
        return None
    return {k: float(v) for k, v in c.items()}


class _FusedStepper(_Stepper):
    """A step with the fused update rule: the optimizer is data (per-run coefficients), not code."""

    fused = True

    def __init__(self, base, loss_fn):
        self.base = base
        self.loss_fn = loss_fn

    def _state(self, coef: dict[str, float]):
        tv, _ = self.model_state()
        m = [np.zeros(np.shape(w), np.float32) for w in tv]
        v = [np.full(np.shape(w), coef["v0"], np.float32) for w in tv]
        return {"m": m, "v": v, "t": np.float32(0.0), "c": {k: np.float32(coef[k]) for k in _FUSED_KEYS}}

    def initial_state(self, spec: RunSpec | None = None):
        tv, ntv = self.model_state()
        return tv, ntv, self._state(fused_coefficients(spec or RunSpec()))

    def stacked_optimizer_states(self, specs: Sequence[RunSpec]):
        states = [self._state(fused_coefficients(s)) for s in specs]
        import jax

        return jax.tree_util.tree_map(lambda *a: np.stack(a), *states)

    def with_lr(self, ov, lr):
        c = dict(ov["c"])
        c["lr"] = lr
        return {**ov, "c": c}

    def update(self, ov, grads, tv):
        import jax.numpy as jnp

        c, t = ov["c"], ov["t"] + 1.0
        alpha = c["lr"] * c["scale"] * jnp.where(c["bias"] > 0, jnp.sqrt(1.0 - c["keep"] ** t) / (1.0 - c["b1"] ** t), 1.0)
        new_w, new_m, new_v = [], [], []
        for w, g, m, v in zip(tv, grads, ov["m"], ov["v"]):
            g = g.astype(w.dtype)
            norm = jnp.sqrt(jnp.sum(g * g))
            g = jnp.where(c["clip"] > 0, g * c["clip"] / jnp.maximum(norm, c["clip"]), g)
            m = m + (g - m) * (1.0 - c["b1"])
            v = c["keep"] * v + c["add"] * g * g
            new_w.append(w - alpha * m / (jnp.sqrt(v + c["eps_in"]) + c["eps_out"]))
            new_m.append(m)
            new_v.append(v)
        return new_w, {"m": new_m, "v": new_v, "t": t, "c": c}


def _fusable(base, spec: RunSpec) -> bool:
    if fused_coefficients(spec) is None:
        return False
    return all(str(v.dtype) == "float32" for v in base.trainable_variables)


def _make_stepper(base, spec: RunSpec, fused: bool) -> _Stepper:
    if fused:
        return _FusedStepper(base, make_loss(spec))
    return _Stepper(base, make_optimizer(spec), make_loss(spec))


def _stack(values: list, n: int) -> list[np.ndarray]:
    """``n`` copies of each array, stacked on a new first axis (numpy: no device program)."""
    return [np.ascontiguousarray(np.broadcast_to(np.asarray(v), (n,) + tuple(np.shape(v)))) for v in values]


#: XLA options for the engine's programs: they run for milliseconds, so compile time dominates.
#: Measured on this CPU for the 16-run benchmark grid: compiling takes 0.32 s with XLA's defaults,
#: 0.23 s at backend optimisation level 0, and 0.08 s when XLA's CPU fusion emitters are also
#: turned off (the older elemental emitters generate less LLVM IR); the programs' run time is
#: unchanged at this size. Tried in order; an XLA build that rejects an option gets the next set.
_COMPILER_OPTIONS = (
    {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False},
    {"xla_backend_optimization_level": 0},
    {},
)


def _group_program(base, data: _Data, specs: list[RunSpec], seed: int, fused: bool = False):
    """The vmapped training function of one group, its arguments, and how to turn outputs into results."""
    import jax
    import jax.numpy as jnp

    spec0 = specs[0]
    n, R = len(data.X), len(specs)
    E, B = int(spec0.epochs), int(spec0.batch_size)
    stepper = _make_stepper(base, spec0, fused)
    tv0, ntv0 = stepper.model_state()
    norms = [data.norm(s) for s in specs]
    xm = np.stack([a[0] for a in norms])
    xs = np.stack([a[1] for a in norms])
    ym = np.array([a[2] for a in norms], np.float32)
    ys = np.array([a[3] for a in norms], np.float32)
    lrs = np.array([s.learning_rate for s in specs], np.float32)
    idx, mask = shuffled_batches(n, B, E, seed)
    counts = mask.sum(axis=2)  # (E, S) real rows per batch

    # vmap the step and the evaluation (not the scans): tracing stays cheap
    def step_one(tv, ntv, ov, xm, xs, ym, ys, X, Y, ib, mb):
        return stepper.step(tv, ntv, ov, (X[ib] - xm) / xs, (Y[ib] - ym) / ys, mb)

    def mse_one(tv, ntv, xm, xs, ym, ys, X, Y):
        return stepper.full_mse(tv, ntv, X, Y, xm, xs, ym, ys)

    step_all = jax.vmap(step_one, in_axes=(0, 0, 0, 0, 0, 0, 0, None, None, None, None))
    mse_all = jax.vmap(mse_one, in_axes=(0, 0, 0, 0, 0, 0, None, None))

    def fn(tv, ntv, ov, lr, xm, xs, ym, ys, X, Y, idx, mask, counts):
        ov = jax.vmap(stepper.with_lr)(ov, lr)

        def batch(carry, inp):
            tv, ntv, ov = carry
            ib, mb = inp
            tv, ntv, ov, values = step_all(tv, ntv, ov, xm, xs, ym, ys, X, Y, ib, mb)
            return (tv, ntv, ov), values

        def epoch(carry, inp):
            ib, mb, cnt = inp
            carry, values = jax.lax.scan(batch, carry, (ib, mb))  # values: (S, R)
            ep_loss = jnp.sum(values * cnt[:, None], axis=0) / jnp.sum(cnt)
            return carry, (ep_loss, mse_all(carry[0], carry[1], xm, xs, ym, ys, X, Y))

        mse0 = mse_all(tv, ntv, xm, xs, ym, ys, X, Y)
        (tv, ntv, ov), (losses, mses) = jax.lax.scan(epoch, (tv, ntv, ov), (idx, mask, counts))
        return tv, ntv, losses.T, mses.T, mse0

    args = (_stack(tv0, R), _stack(ntv0, R), stepper.stacked_optimizer_states(specs), lrs, xm, xs, ym, ys,
            data.X, data.y, idx, mask, counts)

    def finalize(out) -> list[RunResult]:
        tv, ntv, losses, mses, mse0 = out
        tv = [np.asarray(v) for v in tv]
        ntv = [np.asarray(v) for v in ntv]
        losses, mses, mse0 = np.asarray(losses), np.asarray(mses), np.asarray(mse0)
        return [_result(s, losses[r], mses[r], float(mse0[r]), [v[r] for v in tv], [v[r] for v in ntv], data,
                        "vectorized") for r, s in enumerate(specs)]

    return fn, args, finalize


#: compiled programs of this process, keyed by everything that shapes them (see _program_key)
_PROGRAM_CACHE: "OrderedDict[Any, Any]" = OrderedDict()
_PROGRAM_CACHE_SIZE = 32


def _program_key(kind: str, base, groups: list[list[RunSpec]], args, fused: Sequence[bool] | None = None) -> Any:
    import jax

    try:
        signature = architecture_signature(base)
    except Exception:  # a model that cannot describe itself: compile every time
        return None
    leaves = jax.tree_util.tree_leaves(args)
    fused = list(fused) if fused is not None else [False] * len(groups)
    return (kind, signature, tuple((_group_key(g[0], f), len(g)) for g, f in zip(groups, fused)),
            tuple((tuple(np.shape(a)), str(getattr(a, "dtype", type(a)))) for a in leaves))


@contextlib.contextmanager
def _no_gc():
    """Pause Python's cyclic garbage collector while tracing: tracing allocates many small objects,
    and with TensorFlow and Keras loaded each full collection walks a large heap (measured: a third
    of a first compilation's time). Nothing is leaked: collection resumes afterwards."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _compile(lowered):
    for i, options in enumerate(_COMPILER_OPTIONS):
        try:
            return lowered.compile(compiler_options=options) if options else lowered.compile()
        except Exception:  # an XLA build without one of the options: try the next set
            if i == len(_COMPILER_OPTIONS) - 1:
                raise


def _compile_and_run(fn, args, key=None):
    """jit, lower and compile ``fn`` for ``args`` (reusing a program compiled for the same key), run it."""
    import jax

    compiled = _PROGRAM_CACHE.get(key) if key is not None else None
    if compiled is None:
        with _no_gc():
            lowered = jax.jit(fn).lower(*args)
            compiled = _compile(lowered)
        if key is not None:
            _PROGRAM_CACHE[key] = compiled
            while len(_PROGRAM_CACHE) > _PROGRAM_CACHE_SIZE:
                _PROGRAM_CACHE.popitem(last=False)
    else:
        _PROGRAM_CACHE.move_to_end(key)
    return compiled(*args)


def _run_vectorized_groups(base, data: _Data, groups: list[list[RunSpec]], seed: int,
                           fused: Sequence[bool]) -> list[list[RunResult]]:
    """Train all groups in ONE compiled program (one XLA compilation instead of one per group)."""
    programs = [_group_program(base, data, specs, seed, f) for specs, f in zip(groups, fused)]
    fns = [p[0] for p in programs]

    def all_groups(all_args):
        return [f(*a) for f, a in zip(fns, all_args)]

    all_args = ([p[1] for p in programs],)
    outs = _compile_and_run(all_groups, all_args, key=_program_key("train", base, groups, all_args, fused))
    return [p[2](o) for p, o in zip(programs, outs)]


# --------------------------------------------------------------------------------------------


def train_runs(model, X, y, specs: list[RunSpec], *, seed: int = 0, engine: str = "auto",
               callback: Callable[[int, int], None] | None = None) -> list[RunResult]:
    """Train ``model`` once per spec, from its current weights; return one RunResult per spec, in order.

    ``engine``: ``"auto"`` (vectorised where possible, else sequential), ``"vectorized"`` (raise
    when impossible) or ``"sequential"`` (``model.fit`` on a clone per run).
    ``callback(done, total)`` is called as runs finish. The model is never modified.
    """
    if engine not in ENGINES:
        raise InputError(f"engine must be one of {', '.join(ENGINES)} (Received engine={engine!r})")
    specs = list(specs)
    if not specs:
        return []
    _validate_specs(specs)
    base = _base_model(model, np.asarray(X).reshape(len(X), -1), seed)
    data = _prepare_data(base, X, y)
    total = len(specs)
    results: list[RunResult | None] = [None] * total
    done = 0

    reason = vectorized_unsupported_reason(base) if engine != "sequential" else "sequential engine requested"
    if engine == "vectorized" and reason:
        raise InputError(f"the vectorised engine cannot train this model: {reason}")

    groups: dict[Any, list[int]] = {}
    for i, s in enumerate(specs):
        groups.setdefault(_group_key(s, reason is None and _fusable(base, s)), []).append(i)
    members = list(groups.values())
    fused = {id(m): key[0] == "fused" for key, m in groups.items()}

    def store(idx_list, group_results):
        nonlocal done
        for i, r in zip(idx_list, group_results):
            results[i] = r
        done += len(idx_list)
        if callback is not None:
            callback(done, total)

    pending = members
    notes = {id(m): reason or "" for m in members}
    if reason is None:
        try:
            outs = _run_vectorized_groups(base, data, [[specs[i] for i in m] for m in members], seed,
                                          [fused[id(m)] for m in members])
            for m, out in zip(members, outs):
                store(m, out)
            pending = []
        except InputError:
            raise
        except Exception:  # find the group(s) the engine cannot express, train the others vectorised
            pending = []
            for m in members:
                try:
                    store(m, _run_vectorized_groups(base, data, [[specs[i] for i in m]], seed, [fused[id(m)]])[0])
                except InputError:
                    raise
                except Exception as exc:
                    if engine == "vectorized":
                        raise
                    msg = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
                    notes[id(m)] = f"vectorised engine failed ({type(exc).__name__}: {msg})"
                    pending.append(m)
    for m in pending:
        for i in m:
            results[i] = _run_sequential(base, data, specs[i], seed, notes[id(m)])
            done += 1
            if callback is not None:
                callback(done, total)
    return results  # type: ignore[return-value]


def build_trained_model(model, result: RunResult):
    """A plain Keras model with ``result``'s weights: raw inputs in, original target units out.

    Standardisation is expressed with standard layers (``Normalization`` in front when the run
    scaled X, ``Normalization(invert=True)`` behind when it scaled y), so ``keras.saving.load_model``
    loads the saved model without fitdoctor. The model is not compiled.
    """
    keras = _keras()
    inner = keras.models.clone_model(model)
    if not inner.built:
        n_in = len(result.x_mean) if result.x_mean is not None else None
        if n_in is None:
            raise InputError("build the model (give it an Input) before build_trained_model")
        inner.build((None, n_in))
    if model.built:
        inner.set_weights(model.get_weights())
    if len(result.weights) != len(inner.trainable_variables):
        raise InputError(f"the result holds {len(result.weights)} weight arrays but the model has "
                         f"{len(inner.trainable_variables)} trainable variables: pass the model the run was trained from")
    for var, w in zip(inner.trainable_variables, result.weights):
        var.assign(np.asarray(w))
    if result.non_trainable_weights and len(result.non_trainable_weights) == len(inner.non_trainable_variables):
        for var, w in zip(inner.non_trainable_variables, result.non_trainable_weights):
            var.assign(np.asarray(w))
    if not result.spec.scale_x and not result.spec.scale_y:
        return inner
    n_in = int(inner.inputs[0].shape[-1]) if getattr(inner, "inputs", None) else len(result.x_mean)
    inp = keras.Input((n_in,), name="raw_inputs")
    h = inp
    if result.spec.scale_x:
        h = keras.layers.Normalization(mean=np.asarray(result.x_mean, np.float32),
                                       variance=np.asarray(result.x_std, np.float32) ** 2, name="scale_x")(h)
    out = inner(h)
    if result.spec.scale_y:
        out = keras.layers.Normalization(mean=[float(result.y_mean)], variance=[float(result.y_std) ** 2],
                                         invert=True, name="unscale_y")(out)
    return keras.Model(inp, out, name=f"{inner.name}_trained")


def grid_specs(grid: dict[str, list], base: RunSpec) -> list[RunSpec]:
    """The product of the grid's lists, each applied on top of ``base``."""
    from dataclasses import replace

    keys = list(grid)
    return [replace(base, **dict(zip(keys, combo))) for combo in itertools.product(*(grid[k] for k in keys))]


# --------------------------------------------------------------------------------------------
# learning-rate sweeps (used by find_lr): one optimizer step per learning rate


def sweep_batches(n: int, batch_size: int, steps: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``steps`` consecutive batches of shuffled epochs, as (T, B) indices and mask."""
    per_epoch = -(-n // batch_size)
    idx, mask = shuffled_batches(n, batch_size, -(-steps // per_epoch), seed)
    return idx.reshape(-1, batch_size)[:steps], mask.reshape(-1, batch_size)[:steps]


def sweep_losses(model, X, y, spec: RunSpec, lrs: np.ndarray, *, seeds: Sequence[int] = (0,),
                 engine: str = "auto") -> tuple[np.ndarray, str]:
    """Batch losses of a learning-rate sweep: step t uses ``lrs[t]`` on the t-th batch.

    One sweep per seed (the seed sets the batch order), all from the model's current weights; the
    loss of a step is measured in the forward pass before its update (in the units trained in).
    Returns (losses of shape (len(seeds), len(lrs)), engine used).
    """
    _validate_specs([spec])
    lrs = np.asarray(lrs, dtype=np.float32)
    base = _base_model(model, np.asarray(X).reshape(len(X), -1), seeds[0])
    data = _prepare_data(base, X, y)
    n, B, T = len(data.X), int(spec.batch_size), len(lrs)
    batches = [sweep_batches(n, B, T, s) for s in seeds]
    reason = vectorized_unsupported_reason(base) if engine != "sequential" else "sequential engine requested"
    if reason is None:
        try:
            return _sweep_vectorized(base, data, spec, lrs, batches), "vectorized"
        except InputError:
            raise
        except Exception:
            if engine == "vectorized":
                raise
    elif engine == "vectorized":
        raise InputError(f"the vectorised engine cannot train this model: {reason}")
    return np.stack([_sweep_sequential(base, data, spec, lrs, b) for b in batches]), "sequential"


def _sweep_vectorized(base, data: _Data, spec: RunSpec, lrs, batches) -> np.ndarray:
    import jax

    stepper = _Stepper(base, make_optimizer(spec), make_loss(spec))
    tv0, ntv0, ov0 = stepper.initial_state()
    xm, xs, ym, ys = data.norm(spec)
    idx = np.stack([b[0] for b in batches])
    mask = np.stack([b[1] for b in batches])
    R = len(batches)

    def sweep_one(tv, ntv, ov, idx, mask, lrs, X, Y):
        def step(carry, inp):
            tv, ntv, ov = carry
            ib, mb, lr = inp
            ov = stepper.with_lr(ov, lr)
            tv, ntv, ov, value = stepper.step(tv, ntv, ov, (X[ib] - xm) / xs, (Y[ib] - ym) / ys, mb)
            return (tv, ntv, ov), value

        _, values = jax.lax.scan(step, (tv, ntv, ov), (idx, mask, lrs))
        return values

    fn = jax.vmap(sweep_one, in_axes=(0, 0, 0, 0, 0, None, None, None))
    out = _compile_and_run(fn, (_stack(tv0, R), _stack(ntv0, R), _stack(ov0, R), idx, mask, lrs, data.X, data.y))
    return np.asarray(out, dtype=np.float64)


def _sweep_sequential(base, data: _Data, spec: RunSpec, lrs, batch) -> np.ndarray:
    keras = _keras()
    idx, mask = batch
    Xs, ys_ = data.transformed(spec)
    m = keras.models.clone_model(base)
    m.set_weights(base.get_weights())
    opt = make_optimizer(spec)
    m.compile(optimizer=opt, loss=make_loss(spec))
    out = np.full(len(lrs), np.nan)
    for t, lr in enumerate(lrs):
        rows = idx[t][mask[t] > 0]
        opt.learning_rate = float(lr)
        m.reset_metrics()
        logs = m.train_on_batch(Xs[rows], ys_[rows], return_dict=True)
        out[t] = float(logs["loss"])
        if not np.isfinite(out[t]):
            break
    return out
