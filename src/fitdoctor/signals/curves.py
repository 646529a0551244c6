"""Statistics of a loss curve shared by the training-time rules.

Everything here is scale-free: it works on ratios of losses (to their own minimum, to the
reference optimum, to ``var(y)``) and on relative changes, so that an income in dollars and a
target in [0, 1] are judged alike.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: a loss "has diverged" when it rises to this multiple of its best value so far
DIVERGENCE_FACTOR = 10.0
#: a run counts as converged when its excess over the floor is at most this fraction of the floor
CONVERGED_EXCESS = 0.05
#: fewest epochs a tail window holds
MIN_TAIL = 5


def as_curve(values) -> np.ndarray:
    return np.asarray([float(v) if v is not None else math.nan for v in values], dtype=np.float64)


def first_nonfinite(curve) -> int | None:
    bad = np.flatnonzero(~np.isfinite(as_curve(curve)))
    return int(bad[0]) if len(bad) else None


def finite_prefix(curve) -> np.ndarray:
    """The curve up to (not including) its first non-finite value."""
    c = as_curve(curve)
    i = first_nonfinite(c)
    return c if i is None else c[:i]


def tail_window(n: int) -> int:
    """Epochs in the tail looked at: the last 20% of the run, at least 5 (all when fewer)."""
    return min(n, max(MIN_TAIL, int(round(0.2 * n))))


def linear_fit(t: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """Least-squares line ``v ~ a + b t``: (slope b, intercept a, R^2)."""
    if len(t) < 2:
        return 0.0, float(v[0]) if len(v) else 0.0, 0.0
    b, a = np.polyfit(t, v, 1)
    resid = v - (a + b * t)
    var = float(np.var(v))
    r2 = 1.0 - float(np.var(resid)) / var if var > 0 else 1.0
    return float(b), float(a), r2


@dataclass(frozen=True)
class Divergence:
    began: int          # first epoch whose loss is at least 2x the best loss before it
    best_epoch: int
    best_loss: float
    peak_loss: float    # inf when the loss became non-finite
    ratio: float        # peak / best


def divergence(curve) -> Divergence | None:
    """A loss that rises to >= 10x its best value so far (or becomes non-finite after rising)."""
    c = as_curve(curve)
    nf = first_nonfinite(c)
    fin = c if nf is None else c[:nf]
    if len(fin) < 2 and nf is None:
        return None
    best = np.minimum.accumulate(fin) if len(fin) else fin
    rose = np.flatnonzero(fin[1:] >= 2.0 * best[:-1]) + 1 if len(fin) > 1 else np.array([], int)
    if nf is not None:
        # a NaN counts as divergence only when the loss was already climbing before it
        if not len(rose):
            return None
        began = int(rose[0])
        return Divergence(began, int(np.argmin(fin[:began])), float(best[began - 1]), math.inf, math.inf)
    if not len(rose):
        return None
    began = int(rose[0])
    b_loss = float(best[began - 1])
    after = fin[began:]
    ratio = float(after.max()) / max(b_loss, 1e-300)
    if ratio < DIVERGENCE_FACTOR or fin[-1] < 2.0 * b_loss:
        return None  # a spike it recovered from is not divergence
    return Divergence(began, int(np.argmin(fin[:began])), b_loss, float(after.max()), ratio)


@dataclass(frozen=True)
class Oscillation:
    began: int
    sign_change_fraction: float   # of consecutive epoch-to-epoch changes in the tail
    relative_amplitude: float     # median |change| / median loss in the tail
    net_change: float             # relative change over the tail (negative: falling)


def oscillation(curve) -> Oscillation | None:
    """Loss going up and down by >= 10% of itself without net progress over the tail."""
    c = finite_prefix(curve)
    if len(c) < 2 * MIN_TAIL:
        return None
    w = max(tail_window(len(c)), 8) if len(c) >= 8 else len(c)
    tail = c[-w:]
    d = np.diff(tail)
    signs = np.sign(d[d != 0])
    if len(signs) < 4:
        return None
    changes = float(np.mean(signs[1:] != signs[:-1]))
    level = float(np.median(tail))
    amp = float(np.median(np.abs(d))) / max(level, 1e-300)
    net = float(tail[-1] - tail[0]) / max(level, 1e-300)
    if changes < 0.5 or amp < 0.1 or net < -amp:
        return None
    jumps = np.flatnonzero(c[1:] >= 1.1 * c[:-1]) + 1
    began = int(jumps[0]) if len(jumps) else len(c) - w
    return Oscillation(began, changes, amp, net)


@dataclass(frozen=True)
class Decline:
    """How the tail of a curve falls, and how many more epochs it needs to reach its floor."""

    falling: bool                 # steadily: negative trend, >= 60% of the changes negative
    relative_drop: float          # (first - last) / first over the tail window
    window: int
    floor: float                  # what the curve is heading for (reference optimum or extrapolated)
    floor_source: str             # "reference" or "extrapolated"
    shape: str                    # "linear-sqrt" (adaptive steps: sqrt(excess) falls linearly) or "exponential"
    r2: float                     # of the shape's fit over the tail
    rate: float                   # per epoch: slope of sqrt(excess) (linear-sqrt) or decay factor (exponential)
    epochs_needed: float          # more epochs until the excess is <= 5% of the floor (inf: never)
    excess_fraction: float        # (last - floor) / last: the share of the final loss still removable


def aitken_floor(c: np.ndarray) -> float | None:
    """Limit of a geometrically converging curve from three equally spaced points (Aitken's delta^2):
    ``L_inf = (L1 L3 - L2^2) / (L1 + L3 - 2 L2)``."""
    n = len(c)
    if n < 3:
        return None
    k = (n - 1) // 2
    l1, l2, l3 = float(c[-1 - 2 * k]), float(c[-1 - k]), float(c[-1])
    den = l1 + l3 - 2 * l2
    if den <= 0 or not (l1 > l2 > l3):
        return None
    return max(0.0, (l1 * l3 - l2 * l2) / den)


def decline(curve, *, floor: float | None = None, adaptive: bool | None = None) -> Decline | None:
    """Trend of the curve's tail and an extrapolation of the epochs still needed.

    Two shapes are fitted to the excess ``e_t = L_t - floor`` over the tail:

    * adaptive optimizers move each weight ~lr per step, so the residual shrinks linearly and
      ``sqrt(e_t) ~ a - b t`` (epochs needed: ``(sqrt(e_T) - sqrt(tol floor)) / b``);
    * gradient descent near a minimum shrinks the excess geometrically, ``e_t ~ e_T rho^(t-T)``
      (epochs needed: ``ln(e_T / (tol floor)) / -ln rho``).

    The better fit (R^2) gives the estimate; ``adaptive=True`` prefers the first on ties.
    """
    c = finite_prefix(curve)
    if len(c) < MIN_TAIL:
        return None
    w = tail_window(len(c))
    tail = c[-w:]
    t = np.arange(w, dtype=np.float64)
    d = np.diff(tail)
    slope, _, _ = linear_fit(t, tail)
    last = float(tail[-1])
    # a trend, not noise: the slope is >= 3 standard errors below zero
    resid = tail - np.polyval(np.polyfit(t, tail, 1), t) if w >= 3 else np.zeros(w)
    se = float(np.std(resid)) / math.sqrt(float(np.sum((t - t.mean()) ** 2)) or 1.0)
    significant = slope < 0 and (se == 0 or -slope >= 3.0 * se)
    falling = bool(significant and np.mean(d < 0) >= 0.6 and tail[-1] < tail[0])
    rel_drop = float(tail[0] - tail[-1]) / max(abs(float(tail[0])), 1e-300)
    source = "reference"
    if floor is None or floor >= last:
        ext = aitken_floor(c[-max(w, min(len(c), 3 * w)):])
        if floor is None or (ext is not None and ext < last):
            floor, source = (ext if ext is not None else 0.0), "extrapolated"
    floor = max(0.0, min(float(floor), last))
    excess = np.clip(tail - floor, 0.0, None)
    tol = CONVERGED_EXCESS * max(floor, 1e-12 * max(last, 1e-300))
    e_last = float(excess[-1])
    frac = e_last / max(last, 1e-300)
    if e_last <= tol or not falling:
        return Decline(falling, rel_drop, w, floor, source, "flat", 1.0, 0.0,
                       0.0 if e_last <= tol else math.inf, frac)
    # shape 1: sqrt(excess) linear in t
    s_slope, _, s_r2 = linear_fit(t, np.sqrt(excess))
    n_sqrt = (math.sqrt(e_last) - math.sqrt(tol)) / -s_slope if s_slope < 0 else math.inf
    # shape 2: log(excess) linear in t
    pos = excess > 0
    if pos.sum() >= 3:
        g_slope, _, g_r2 = linear_fit(t[pos], np.log(excess[pos]))
        n_exp = math.log(e_last / tol) / -g_slope if g_slope < 0 else math.inf
    else:
        g_slope, g_r2, n_exp = 0.0, -math.inf, math.inf
    use_sqrt = s_r2 > g_r2 or (adaptive and s_r2 >= g_r2 - 0.01)
    if use_sqrt:
        return Decline(falling, rel_drop, w, floor, source, "linear-sqrt", s_r2, -s_slope, max(0.0, n_sqrt), frac)
    return Decline(falling, rel_drop, w, floor, source, "exponential", g_r2, math.exp(g_slope), max(0.0, n_exp), frac)


def first_epoch_at_or_below(curve, level: float) -> int | None:
    c = as_curve(curve)
    idx = np.flatnonzero(np.isfinite(c) & (c <= level))
    return int(idx[0]) if len(idx) else None


# -- trace-level analyses shared by several rules (cached on the trace) --------------------------
def _cached(trace, key, fn):
    cache = trace.cache
    if key not in cache:
        cache[key] = fn()
    return cache[key]


def step_divergence(trace) -> Divergence | None:
    """Divergence in the per-step losses (smoothed by a running median of 5), when the epoch
    curve diverged or turned non-finite: it says at which step the climb began."""
    steps = as_curve(trace.step_loss or [])
    if len(steps) < 3:
        return None
    nf = first_nonfinite(steps)
    fin = steps if nf is None else steps[:nf]
    if len(fin) < 3:
        return None
    k = min(5, len(fin))
    smooth = np.array([np.median(fin[max(0, i - k + 1): i + 1]) for i in range(len(fin))])
    return divergence(smooth if nf is None else np.r_[smooth, math.nan])


def unstable(trace) -> bool:
    """Divergence, oscillation or a non-finite loss: the curve's shape is not a slow descent."""
    return _cached(trace, "unstable", lambda: bool(
        trace.nonfinite_epoch is not None or divergence(trace.loss) is not None
        or oscillation(trace.loss) is not None))


def tail_decline(trace) -> Decline | None:
    """:func:`decline` of the trace's loss towards the reference optimum (linear models; the
    nonlinear reference is only an estimate, so other models extrapolate their own floor)."""
    def compute():
        floor = trace.optimum if trace.is_linear else None
        return decline(trace.loss, floor=floor, adaptive=trace.adaptive)
    return _cached(trace, "decline", compute)


@dataclass(frozen=True)
class AdamCrawl:
    began: int
    slope: float          # per epoch, of sqrt(loss - floor)
    r2: float
    epochs_needed: float  # more epochs until within 5% of the floor
    floor: float
    large_targets: bool | None
    gap: float | None     # final loss / optimum
    var_ratio: float | None  # final loss / var(y)


def adam_crawl(trace) -> AdamCrawl | None:
    """The signature of an adaptive optimizer walking towards large targets.

    Adam moves every weight by ~lr per step, so the mean prediction approaches the targets' mean
    at a constant speed: ``sqrt(L_t - L*) ~ a - b t`` (loss falling by a roughly constant amount
    per epoch), while the loss is >= 10x the optimum (or var y). Epochs needed:
    ``(sqrt(L_T - L*) - sqrt(0.05 L*)) / b``.
    """
    def compute():
        if trace.adaptive is False or not trace.mse_comparable or unstable(trace):
            return None
        c = trace.finite_loss
        if len(c) < MIN_TAIL:
            return None
        large = None
        if trace.y_mean is not None and trace.variance:
            large = trace.y_mean ** 2 >= 10.0 * trace.variance
            if not large or c[0] > 3.0 * (trace.y_mean ** 2 + trace.variance):
                return None  # the loss is not the targets' offset (e.g. huge predictions from unscaled inputs)
        last = float(c[-1])
        gap = trace.gap(last)
        var = trace.variance
        var_ratio = last / var if var else None
        if gap is not None:
            if gap < 10.0:
                return None
        elif var_ratio is None or var_ratio < 10.0:
            return None
        floor = trace.optimum if trace.optimum is not None else 0.0
        start = len(c) // 2 if len(c) >= 2 * MIN_TAIL else 0
        t = np.arange(start, len(c), dtype=np.float64)
        s = np.sqrt(np.clip(c[start:] - floor, 0.0, None))
        slope, _, r2 = linear_fit(t, s)
        if slope >= 0 or r2 < 0.9:
            return None
        tol = math.sqrt(CONVERGED_EXCESS * floor)
        needed = (float(s[-1]) - tol) / -slope
        return AdamCrawl(start, -slope, r2, max(0.0, needed), floor, large, gap, var_ratio)
    return _cached(trace, "adam_crawl", compute)


#: gradient norms this many times their early level count as exploding
GROWTH_FACTOR = 100.0


def gradient_growth(trace) -> dict | None:
    """First sample whose global gradient norm is >= 100x the early level (median of the first
    three samples) or non-finite; None when it never happens or nothing was sampled."""
    norms = [(s.epoch, s.step, s.grad_norm) for s in trace.samples if s.grad_norm is not None]
    if len(norms) < 2:
        return None
    early = [g for _, _, g in norms[:3] if math.isfinite(g) and g > 0]
    if not early:
        return None
    base = float(np.median(early))
    for epoch, step, g in norms[1:]:
        if not math.isfinite(g) or g >= GROWTH_FACTOR * base:
            return {"epoch": int(epoch), "step": int(step), "early_gradient_norm": base,
                    "gradient_norm": float(g), "gradient_growth": float(g) / base if math.isfinite(g) else math.inf}
    return None
