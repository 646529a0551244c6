"""Step bounds shared by the optimisation rules, computed once per context.

* Adaptive optimizers (Adam, RMSprop, ...) move each parameter by about one learning rate per
  step whatever the gradient, so reaching a parameter at distance d takes at least d / lr steps;
  Adagrad's steps shrink as lr / sqrt(t), so it covers about 2 lr sqrt(T) in T steps.
* Plain gradient descent on the MSE of a linear output layer is a quadratic problem with Hessian
  ``H = 2/n [A 1]^T [A 1]`` (A: the inputs of the output layer): it is stable for
  ``lr < 2 / lambda_max`` and the excess loss after t steps is
  ``sum_i lambda_i / 2 * e_i^2 * (1 - lr lambda_i)^(2t)`` (e: initial error in the eigenbasis).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: a run "has converged" when its excess loss is below this fraction of the optimum
TOLERANCE = 0.01


@dataclass(frozen=True)
class StepBounds:
    optimizer: str
    adaptive: bool
    learning_rate: float
    steps_given: int | None
    steps_per_epoch: int
    exact: bool                       # True when the output layer's problem is the whole problem
    steps_needed: float               # estimate / lower bound at the given learning rate
    steps_needed_scaled_targets: float
    steps_needed_lr10: float          # at 10x the learning rate (inf when that is unstable for SGD)
    parameter: str                    # the parameter that must travel farthest (adaptive)
    distance: float                   # how far it must travel
    distance_scaled_targets: float
    lr_max: float | None              # largest stable SGD learning rate (2 / lambda_max)
    lambda_max: float
    lambda_min: float
    predicted_final_loss: float | None  # SGD, exact quadratic prediction after the given steps

    @property
    def epochs_needed(self) -> float:
        return self.steps_needed / max(self.steps_per_epoch, 1)


def _adaptive_steps(distance: float, lr: float, optimizer: str) -> float:
    if lr <= 0:
        return float("inf")
    if optimizer == "adagrad":  # sum_{t<=T} lr / sqrt(t) ~ 2 lr sqrt(T)
        return (distance / (2 * lr)) ** 2
    return distance / lr


def _gd_excess(lams: np.ndarray, err: np.ndarray, lr: float, t: float) -> float:
    """Excess MSE after t full-batch GD steps on a quadratic: sum lam/2 e^2 (1 - lr lam)^(2t)."""
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        return float(np.sum(0.5 * lams * err**2 * np.abs(1 - lr * lams) ** (2 * t)))


def _gd_steps(lams: np.ndarray, err: np.ndarray, lr: float, target: float) -> float:
    """Smallest t with excess <= target (bisection on a monotone function); inf if unstable."""
    if lr <= 0 or np.any(np.abs(1 - lr * lams[lams > 0]) >= 1):
        return float("inf")
    if _gd_excess(lams, err, lr, 0) <= target:
        return 0.0
    hi = 1.0
    while _gd_excess(lams, err, lr, hi) > target:
        hi *= 2
        if hi > 1e15:
            return float("inf")
    lo = hi / 2
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _gd_excess(lams, err, lr, mid) > target else (lo, mid)
    return hi


def step_bounds(ctx) -> StepBounds:
    if "step_bounds" in ctx.cache:
        return ctx.cache["step_bounds"]
    cfg = ctx.config
    lr = cfg.learning_rate
    H, w0, b0, exact = ctx.output_layer_inputs
    n_sample = len(H)
    y = ctx.yc[:n_sample]
    mu, sigma = float(ctx.yc.mean()), float(ctx.yc.std()) or 1.0
    A = np.c_[H, np.ones(n_sample)]
    theta0 = np.r_[w0, b0]
    names = [f"kernel[{i}]" for i in range(H.shape[1])] + ["bias"]
    # columns scaled by powers of two (exact) for the solves: magnitudes up to float64's range
    from ...reference import pow2_scale

    cs = pow2_scale(np.max(np.abs(A), axis=0))  # 1 for ordinary magnitudes
    if exact:
        theta_star = np.linalg.lstsq(A / cs, y, rcond=None)[0] / cs
        theta_star_s = np.linalg.lstsq(A / cs, (y - mu) / sigma, rcond=None)[0] / cs
        dist = np.abs(theta_star - theta0)
        dist_s = np.abs(theta_star_s - theta0)
        j = int(np.argmax(dist))
        distance, distance_s, parameter = float(dist[j]), float(dist_s.max()), names[j]
    else:
        # first order: one step moves the mean output by at most lr * (1 + sum_j |mean h_j|)
        pred0 = ctx.initial_predictions
        reach = 1.0 + float(np.abs(H.mean(axis=0)).sum())
        distance = abs(mu - float(np.mean(pred0))) / reach
        distance_s = abs(float(np.mean(pred0))) / reach
        parameter = "output (mean prediction)"
    k = float(cs.max())
    As = A / k if k != 1.0 else A
    lams, V = np.linalg.eigh(2.0 * (As.T @ As) / n_sample)
    with np.errstate(over="ignore"):
        lams = np.clip(lams * k * k, 0.0, None)
    lam_max = float(lams.max())
    pos = lams[lams > lam_max * 1e-12]
    lam_min = float(pos.min()) if len(pos) else 0.0
    lr_max = 2.0 / lam_max if lam_max > 0 else None
    steps_given = ctx.total_steps
    predicted = None
    if cfg.adaptive:
        needed = _adaptive_steps(distance, lr, cfg.optimizer)
        needed_s = _adaptive_steps(distance_s, lr, cfg.optimizer)
        needed_10 = _adaptive_steps(distance, 10 * lr, cfg.optimizer)
    else:
        theta_star, *_ = np.linalg.lstsq(A, y, rcond=None)
        theta_star_s, *_ = np.linalg.lstsq(A, (y - mu) / sigma, rcond=None)
        opt = float(np.mean((A @ theta_star - y) ** 2))
        err = V.T @ (theta0 - theta_star)
        err_s = V.T @ (theta0 - theta_star_s)
        opt_s = opt / sigma**2
        target = TOLERANCE * max(opt, 1e-12 * float(np.var(y)) + 1e-300)
        needed = _gd_steps(lams, err, lr, target)
        needed_s = _gd_steps(lams, err_s, lr, TOLERANCE * max(opt_s, 1e-300))
        needed_10 = _gd_steps(lams, err, 10 * lr, target)
        if steps_given is not None:
            predicted = opt + _gd_excess(lams, err, lr, steps_given)
        distance, distance_s = float(np.linalg.norm(err)), float(np.linalg.norm(err_s))
        parameter = "all (quadratic model)"
    out = StepBounds(
        optimizer=cfg.optimizer, adaptive=cfg.adaptive, learning_rate=lr, steps_given=steps_given,
        steps_per_epoch=ctx.steps_per_epoch, exact=exact, steps_needed=float(needed),
        steps_needed_scaled_targets=float(needed_s), steps_needed_lr10=float(needed_10),
        parameter=parameter, distance=distance, distance_scaled_targets=distance_s, lr_max=lr_max,
        lambda_max=lam_max, lambda_min=lam_min, predicted_final_loss=predicted,
    )
    ctx.cache["step_bounds"] = out
    return out


def target_dominated(b: StepBounds) -> bool:
    """The step count is set by the targets' scale: standardising them cuts it at least 10x."""
    return b.adaptive and b.steps_needed_scaled_targets * 10 <= b.steps_needed


def budget(ctx) -> float:
    """Steps available: the given total, or 10,000 when the number of epochs is unknown."""
    return float(ctx.total_steps) if ctx.total_steps is not None else 1e4


def largest_weight_needed(ctx) -> float:
    """max |theta*| of the output layer's least-squares solution: an Adam step of lr above it overshoots."""
    if "largest_weight" not in ctx.cache:
        H = ctx.output_layer_inputs[0]
        theta, *_ = np.linalg.lstsq(np.c_[H, np.ones(len(H))], ctx.yc[: len(H)], rcond=None)
        ctx.cache["largest_weight"] = float(np.abs(theta).max())
    return ctx.cache["largest_weight"]
