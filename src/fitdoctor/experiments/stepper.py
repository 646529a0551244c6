"""The JAX pieces of one training step: batch order, the stateless step of a Keras optimizer, and the fused
update that lets runs of different optimizers share one program."""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ..model.inspect import canonical_loss
from ..model.replica import call_takes_training
from .specs import RunSpec, _keras, _optimizer_kind, make_optimizer, per_sample_loss


def _group_key(spec: RunSpec, fused: bool = False):
    """Runs with equal keys train in one vmapped program; fused runs of any of the fused optimizers share one."""
    user_loss = id(spec.loss_object) if spec.uses_user_loss else None
    shape = (canonical_loss(spec.loss), float(spec.huber_delta), user_loss, int(spec.batch_size), int(spec.epochs))
    # callbacks are part of the program (their settings are per-run data)
    callbacks = (spec.early_stopping_patience is not None, spec.reduce_lr_patience is not None)
    if fused:
        return ("fused",) + shape + callbacks
    # a schedule has no learning-rate variable to set per run: each rate is its own group
    return ((spec.optimizer,) + shape + (spec.clipnorm, float(spec.momentum),
            spec.optimizer_config if spec.uses_user_optimizer else None,
            float(spec.learning_rate) if spec.has_schedule else None) + callbacks)


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
        self.takes_training = call_takes_training(base)
        self.lr_pos = [i for i, v in enumerate(optimizer.variables)
                       if v is getattr(optimizer, "_learning_rate", None) or v.name == "learning_rate"]
        schedule = isinstance(getattr(optimizer, "_learning_rate", None),
                              _keras().optimizers.schedules.LearningRateSchedule)
        if schedule and not self.lr_pos:
            self.lr_pos = None  # the schedule computes the rate from the iteration count (one rate per group)
        elif len(self.lr_pos) != 1:
            raise RuntimeError("cannot locate the optimizer's learning-rate variable")
        else:
            self.lr_pos = self.lr_pos[0]

    def _mode(self, training: bool) -> dict:
        """``training=`` for the model's ``call`` when it takes one: ``stateless_call`` passes its keywords to
        ``call`` itself, and Keras's own JAX trainer passes ``training`` only to a ``call`` that accepts it
        (a subclassed model whose ``call(self, x)`` takes none failed here with a TypeError)."""
        return {"training": training} if self.takes_training else {}

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
        if self.lr_pos is None:
            return ov
        ov[self.lr_pos] = jnp.asarray(lr, dtype=ov[self.lr_pos].dtype)
        return ov

    def update(self, ov, grads, tv):
        return self.opt.stateless_apply(ov, grads, tv)

    def step(self, tv, ntv, ov, xb, yb, mb):
        """One optimizer step on a (masked) batch: returns new state and the batch loss."""
        import jax
        import jax.numpy as jnp

        def objective(tv_):
            pred, ntv2, losses = self.base.stateless_call(tv_, ntv, xb, return_losses=True, **self._mode(True))
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
        return self.mse_of(self.predict(tv, ntv, X, xm, xs), y, ym, ys)

    def predict(self, tv, ntv, X, xm, xs):
        """The model's output for rows ``X`` (standardised with ``xm``/``xs``), inference mode, scaled units."""
        pred, _ = self.base.stateless_call(tv, ntv, (X - xm) / xs, **self._mode(False))
        return pred

    @staticmethod
    def mse_of(pred, y, ym, ys):
        """MSE of :meth:`predict`'s output against ``y``, in original target units."""
        import jax.numpy as jnp

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
    config = spec.optimizer_config if spec.uses_user_optimizer else None
    c = _fused_coefficients(spec.optimizer, spec.clipnorm, float(spec.momentum), config)
    return None if c is None else {**c, "lr": float(spec.learning_rate)}


@functools.lru_cache(maxsize=64)
def _fused_coefficients(optimizer: str, clipnorm: float | None, momentum: float,
                        optimizer_config: str | None = None) -> dict[str, float] | None:
    """Coefficients of the fused rule, or None when the optimizer has any setting the rule cannot
    express (then Keras's own ``stateless_apply`` runs it)."""
    kind, cfg = _optimizer_kind(optimizer, clipnorm, momentum, optimizer_config)
    if any(cfg.get(k) for k in ("clipvalue", "global_clipnorm", "weight_decay", "use_ema",
                                "gradient_accumulation_steps", "loss_scale_factor")):
        return None
    if isinstance(cfg.get("learning_rate"), dict) or not isinstance(cfg.get("learning_rate"), (int, float)):
        return None  # a learning-rate schedule
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
    """A step with the fused update rule: the optimizer is data (per-run coefficients), not code.

    ``clips``: whether any run of the program clips its gradients (``clipnorm``); when none does the
    program leaves out the per-tensor norms (the same numbers: clipping selects ``g`` unchanged then)."""

    fused = True
    clips = True

    def __init__(self, base, loss_fn):
        self.base = base
        self.loss_fn = loss_fn
        self.takes_training = call_takes_training(base)

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
        """The rule above, per run (under ``vmap``). Written with ``jax.lax`` primitives, not
        ``jax.numpy``: the same operations in the same order (the same numbers), but each jax.numpy
        call is a jitted function whose tracing costs far more (measured: 21 ms of the income
        grid's 0.2 s first call went to tracing this update with jax.numpy)."""
        import jax.numpy as jnp
        from jax import lax

        one, zero = np.float32(1.0), np.float32(0.0)
        c, t = ov["c"], lax.add(ov["t"], one)

        def each(scalar, like):  # a per-run coefficient, broadcast to a weight tensor's shape
            return lax.broadcast_in_dim(scalar, np.shape(like), ())

        correction = lax.div(lax.sqrt(lax.sub(one, lax.pow(c["keep"], t))), lax.sub(one, lax.pow(c["b1"], t)))
        alpha = lax.mul(lax.mul(c["lr"], c["scale"]), lax.select(lax.gt(c["bias"], zero), correction, one))
        new_w, new_m, new_v = [], [], []
        for w, g, m, v in zip(tv, grads, ov["m"], ov["v"]):
            g = lax.convert_element_type(g, w.dtype)
            if self.clips:
                norm = jnp.sqrt(jnp.sum(g * g))
                g = jnp.where(c["clip"] > 0, g * c["clip"] / jnp.maximum(norm, c["clip"]), g)
            m = lax.add(m, lax.mul(lax.sub(g, m), each(lax.sub(one, c["b1"]), m)))
            v = lax.add(lax.mul(each(c["keep"], v), v), lax.mul(lax.mul(each(c["add"], g), g), g))
            step = lax.div(lax.mul(each(alpha, m), m),
                           lax.add(lax.sqrt(lax.add(v, each(c["eps_in"], v))), each(c["eps_out"], v)))
            new_w.append(lax.sub(w, step))
            new_m.append(m)
            new_v.append(v)
        return new_w, {"m": new_m, "v": new_v, "t": t, "c": c}


def _fusable(base, spec: RunSpec) -> bool:
    if fused_coefficients(spec) is None:
        return False
    return all(str(v.dtype) == "float32" for v in base.trainable_variables)


def _make_stepper(base, spec: RunSpec, fused: bool) -> _Stepper:
    if fused:
        return _FusedStepper(base, per_sample_loss(spec))
    return _Stepper(base, make_optimizer(spec), per_sample_loss(spec))


def _stack(values: list, n: int) -> list[np.ndarray]:
    """``n`` copies of each array, stacked on a new first axis (numpy: no device program)."""
    return [np.ascontiguousarray(np.broadcast_to(np.asarray(v), (n,) + tuple(np.shape(v)))) for v in values]
