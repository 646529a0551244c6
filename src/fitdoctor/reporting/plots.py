"""Plots as Display objects (the scikit-learn convention).

Each Display holds the numbers it draws; a ``from_...`` class method builds it from a fitdoctor
result and calls :meth:`plot`; ``plot(ax=None)`` draws on ``ax`` (a new figure when None),
stores ``ax_`` and ``figure_`` and returns ``self``::

    disp = TrainingCurvesDisplay.from_report(report)
    disp.figure_.savefig("curves.png")

The HTML report draws the same Displays on figures that never touch ``pyplot`` (Agg canvas), so
rendering a report does not change the user's matplotlib backend.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from ..rules.data.outliers import Z_LIMIT, robust_z

__all__ = [
    "FeatureScalesDisplay",
    "LRFinderDisplay",
    "PredictionErrorDisplay",
    "TargetDistributionDisplay",
    "TrainingCurvesDisplay",
]

#: line styles of the reference optima (label -> matplotlib keyword arguments)
_REF_STYLE = {
    "mean predictor": {"color": "#888888", "linestyle": "--"},
    "least squares": {"color": "#000000", "linestyle": ":"},
    "nonlinear reference": {"color": "#7b3294", "linestyle": "-."},
}


def _new_axes(ax, figsize=(7.5, 4.2)):
    if ax is not None:
        return ax, ax.figure
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize)
    return ax, fig


def _finite_positive(values) -> np.ndarray:
    v = np.asarray(values, dtype=float).reshape(-1)
    return np.where(np.isfinite(v) & (v > 0), v, np.nan)


def _references(reference, *, linear: bool = True) -> dict[str, float]:
    """The reference optima of a :class:`fitdoctor.reference.Reference` as {label: MSE}."""
    if reference is None:
        return {}
    out = {"mean predictor": float(reference.mean_mse), "least squares": float(reference.linear_mse)}
    nl = getattr(reference, "nonlinear_mse", None)
    if nl is not None and np.isfinite(nl):
        out["nonlinear reference"] = float(nl)
    return out


def _history_curve(history) -> list[float]:
    """Per-epoch loss from a Keras ``History``, its ``.history`` dict, or a plain sequence."""
    h = getattr(history, "history", history)
    if isinstance(h, Mapping):
        for key in ("mse", "mean_squared_error", "loss"):
            if key in h:
                return [float(v) for v in h[key]]
        raise ValueError(f"the history has no 'loss' or 'mse' key. Received keys {sorted(h)}")
    return [float(v) for v in h]


# -------------------------------------------------------------------------------------------------
class TrainingCurvesDisplay:
    """Training curves on a log scale with the reference optima as horizontal lines.

    Parameters
    ----------
    curves : dict label -> per-epoch MSE (original target units). Non-finite values are gaps.
    references : dict label -> MSE ("mean predictor", "least squares", "nonlinear reference").
    title, ylabel : text of the plot.
    """

    def __init__(self, *, curves: Mapping[str, Sequence[float]], references: Mapping[str, float] | None = None,
                 title: str | None = None, ylabel: str = "training MSE (original units, log scale)",
                 diverged: Sequence[str] = (), dashed: Sequence[str] = ()):
        self.curves = curves
        self.references = references
        self.title = title
        self.ylabel = ylabel
        self.diverged = diverged
        self.dashed = dashed

    @classmethod
    def from_report(cls, report, *, ax=None, variants: bool = True) -> "TrainingCurvesDisplay":
        """The probe (or the monitored run) of a :class:`fitdoctor.Report` and each fix's probe."""
        probe = getattr(report, "probe", None) or {}
        curves: dict[str, list[float]] = {}
        diverged = []
        if probe.get("loss"):
            label = "your configuration" + (f" ({probe['spec']})" if probe.get("spec") else "")
            curves[label] = list(probe["loss"])
            if probe.get("diverged"):
                diverged.append(label)
        if variants:
            for v in probe.get("variants") or []:
                if v.get("loss"):
                    curves[f"with the fix for {v.get('finding', '?')}"] = list(v["loss"])
        data = getattr(report, "data", None) or {}
        if not curves and data.get("loss"):  # a monitored run (Monitor / diagnose_history)
            curves["training loss"] = list(data["loss"])
            if data.get("val_loss"):
                curves["validation loss"] = list(data["val_loss"])
        linear = bool((getattr(report, "model", None) or {}).get("is_linear", True))
        src = getattr(report, "source", "check")
        title = {"check": "Probe: a short training run as configured, and with each fix",
                 "fix": "Training as configured"}.get(src, "Training curve")
        refs = _references(getattr(report, "reference", None), linear=linear)
        config = getattr(report, "config", None) or {}
        if config.get("loss") not in (None, "mse", "mean_squared_error"):
            refs = {}  # the optima are MSE: they say nothing about another loss's scale
        elif not refs and data.get("target_var") is not None:
            refs = {"mean predictor": float(data["target_var"])}
        return cls(curves=curves, references=refs, title=title, diverged=diverged).plot(ax=ax)

    @classmethod
    def from_comparison(cls, comparison, *, ax=None, max_runs: int = 32,
                        heldout: bool = False) -> "TrainingCurvesDisplay":
        """Every run of a :class:`fitdoctor.Comparison` (the best ``max_runs`` on held-out MSE when there are more).

        ``heldout=False`` (default): the training MSE per epoch with the training-row references;
        ``heldout=True``: each run's held-out MSE per epoch (``val_curves_``) with the references
        measured on the same held-out rows (a ValueError when the comparison has no held-out curves)."""
        all_runs = list(getattr(comparison, "runs_", []))
        val_curves = list(getattr(comparison, "val_curves_", None) or [None] * len(all_runs))
        if heldout and any(c is None for c in val_curves):
            raise ValueError("this comparison has no held-out curve for every run (val_curves_): plot heldout=False")
        ranks = None
        df = getattr(comparison, "results_", None)
        if df is not None and "rank" in df and len(df) == len(all_runs):
            ranks = [int(v) for v in df["rank"].to_numpy()]
        order = list(range(len(all_runs)))
        if ranks is not None:  # best on held-out rows first (diverged runs rank last)
            order.sort(key=lambda i: ranks[i])
        else:
            order.sort(key=lambda i: (bool(all_runs[i].diverged),
                                      all_runs[i].final_mse if np.isfinite(all_runs[i].final_mse) else np.inf))
        # the best max_runs, drawn in grid order: a run keeps its colour in the held-out and the training figure
        order = sorted(order[:max_runs])
        runs = [all_runs[i] for i in order]
        if heldout:
            curves = {all_runs[i].spec.label(): list(val_curves[i]) for i in order}
            refs = {k: float(v) for k, v in (getattr(comparison, "heldout_references_", None) or {}).items()
                    if v is not None and np.isfinite(v)}
            if getattr(comparison, "linear_model_", False):
                refs.pop("nonlinear reference", None)
            ylabel = "held-out MSE (original units, log scale)"
        else:
            curves = {r.spec.label(): list(r.mse) for r in runs}
            refs = _references(getattr(comparison, "reference_", None))
            ylabel = "training MSE (original units, log scale)"
        diverged = [r.spec.label() for r in runs if r.diverged]
        title = f"{len(all_runs)} configurations" + (": held-out MSE per epoch" if heldout else ": training MSE per epoch")
        if len(runs) < len(all_runs):
            title += f" (best {len(runs)} on held-out rows shown)" if ranks is not None else f" (best {len(runs)} shown)"
        dashed = [r.spec.label() for r in runs if getattr(r.spec, "scale_y", False)]
        return cls(curves=curves, references=refs, title=title, ylabel=ylabel, diverged=diverged,
                   dashed=dashed).plot(ax=ax)

    @classmethod
    def from_history(cls, history, *, reference=None, label: str = "training loss", ax=None,
                     title: str | None = None) -> "TrainingCurvesDisplay":
        """A Keras ``History`` (or its dict, or a list of per-epoch losses) and optional references."""
        curve = _history_curve(history)
        return cls(curves={label: curve}, references=_references(reference), title=title or "Training curve").plot(ax=ax)

    @classmethod
    def from_repair(cls, repair, *, ax=None) -> "TrainingCurvesDisplay":
        """The user's configuration and the repaired one (both per-epoch MSE in original units)."""
        curves = {}
        before = getattr(repair, "history_before", None)
        after = getattr(repair, "history_after", None)
        diverged = []
        if before:
            curves["before: your configuration"] = list(before)
            if not np.isfinite(np.asarray(before, dtype=float)).all():
                diverged.append("before: your configuration")
        if after:
            curves["after: repaired"] = list(after)
        return cls(curves=curves, references=_references(getattr(repair, "reference", None)),
                   title="Before and after the repair", diverged=diverged).plot(ax=ax)

    def plot(self, ax=None, *, legend: bool = True) -> "TrainingCurvesDisplay":
        """Draw every curve in its own colour x line-style pair (32 distinct pairs), the optima as
        horizontal lines, and the legend below the axes.

        The y-range covers the converging runs and the optima; a diverged run is drawn up to the
        top edge, marked with an x where it leaves the range, and called "diverged" in the legend.
        A curve identical to an earlier one (within 0.1%) says so in the legend, since it hides
        under the other. Sets ``styles_`` (label -> (colour, linestyle)), ``coincident_``
        (label -> label of the curve it coincides with), ``diverged_`` and ``ylim_``.
        """
        ax, fig = _new_axes(ax)
        labels = list(self.curves)
        ys = {label: _finite_positive(self.curves[label]) for label in labels}
        diverged = [label for label in labels if _is_diverged(ys[label], label in self.diverged)]
        styles = curve_styles(len(labels), dashed=[label in self.dashed for label in labels])
        coincident = _coincident(ys)
        refs = {k: v for k, v in (self.references or {}).items()
                if v is not None and np.isfinite(v) and v > 0}
        # the y-range: converging curves and the optima, never a diverged run's 1e26
        kept = [ys[label] for label in labels if label not in diverged and np.isfinite(ys[label]).any()]
        pool = np.concatenate([k[np.isfinite(k)] for k in kept] + [np.asarray(list(refs.values()), dtype=float)]) \
            if kept or refs else np.array([])
        ylim = (float(pool.min()) / 1.6, float(pool.max()) * 1.6) if len(pool) else None
        for i, label in enumerate(labels):
            y = ys[label]
            x = np.arange(1, len(y) + 1)
            colour, style = styles[i]
            text = str(label)
            if label in diverged:
                text += " (diverged)"
            if label in coincident:
                text += f" (coincides with {coincident[label]})"
            ax.plot(x, y, label=text, color=colour, linestyle=style, linewidth=2.0 if i == 0 else 1.5)
            if not np.isfinite(y).any():
                continue
            fin = np.flatnonzero(np.isfinite(y))
            out = np.flatnonzero(np.isfinite(y) & (y > ylim[1])) if ylim else np.array([], dtype=int)
            if len(out):  # leaves the plotted range: an x on the top edge where it does
                ax.plot([x[out[0]]], [ylim[1]], marker="x", markersize=10, markeredgewidth=2, color=colour,
                        clip_on=False)
            elif fin[-1] < len(y) - 1:  # the curve stopped being finite: mark where
                ax.plot([x[fin[-1]]], [y[fin[-1]]], marker="x", markersize=10, markeredgewidth=2, color=colour)
        for label, value in refs.items():
            style = _REF_STYLE.get(label, {"color": "#444444", "linestyle": ":"})
            ax.axhline(value, linewidth=1.4, label=f"{label} {value:.4g}", **style)
        ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
        ax.set_xlabel("epoch")
        ax.set_ylabel(self.ylabel)
        if self.title:
            ax.set_title(self.title, fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
        if legend:
            legend_below(ax, ncol=1)
        self.styles_ = dict(zip(labels, styles))
        self.coincident_ = coincident
        self.diverged_ = diverged
        self.ylim_ = ylim
        self.ax_, self.figure_ = ax, fig
        return self


#: eight colours that stay apart for colour-blind readers (Paul Tol's "bright" and "muted" picks)
PALETTE = ("#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#332288", "#997700")
#: line styles cycled after the colours: 8 x 4 = 32 distinct pairs
LINESTYLES = ("-", "--", ":", "-.")


def curve_styles(n: int, *, dashed: Sequence[bool] = ()) -> list[tuple[str, str]]:
    """(colour, linestyle) for ``n`` curves, all distinct up to 32 curves.

    Up to 8 curves differ by colour, with ``dashed`` curves (for example scaled targets) drawn
    dashed; more curves take the next line style after every 8 colours.
    """
    if n <= len(PALETTE):
        return [(PALETTE[i], "--" if i < len(dashed) and dashed[i] else "-") for i in range(n)]
    return [(PALETTE[i % len(PALETTE)], LINESTYLES[(i // len(PALETTE)) % len(LINESTYLES)]) for i in range(n)]


def _is_diverged(y: np.ndarray, flagged: bool) -> bool:
    """A run diverged when flagged so, when its curve ends non-finite, or when it ends 100x above its start."""
    if flagged or not len(y) or not np.isfinite(y[-1]):
        return True
    fin = y[np.isfinite(y)]
    return bool(fin[-1] > 100 * fin[0])


def _coincident(ys: Mapping[str, np.ndarray], rtol: float = 1e-3) -> dict[str, str]:
    """label -> earlier label whose curve it matches within ``rtol`` at every finite epoch."""
    out: dict[str, str] = {}
    labels = list(ys)
    for j, b in enumerate(labels):
        for a in labels[:j]:
            if a in out:
                continue
            ya, yb = ys[a], ys[b]
            if len(ya) != len(yb) or not len(ya):
                continue
            both = np.isfinite(ya) & np.isfinite(yb)
            if both.sum() and (np.isfinite(ya) == np.isfinite(yb)).all() and \
                    np.all(np.abs(ya[both] - yb[both]) <= rtol * np.abs(ya[both])):
                out[b] = a
                break
    return out


def legend_below(ax, *, ncol: int = 1, **kw):
    """A legend under the axes, clear of the tick labels and the x-axis label.

    The offset is in points (the height of the ticks, their labels and the axis label), so it
    holds whatever size the axes end up with after layout.
    """
    import matplotlib as mpl
    from matplotlib.transforms import offset_copy

    def pts(v):
        from matplotlib.font_manager import FontProperties

        return FontProperties(size=v).get_size_in_points()

    drop = (mpl.rcParams["xtick.major.size"] + mpl.rcParams["xtick.major.pad"] + 1.3 * pts(mpl.rcParams["xtick.labelsize"])
            + mpl.rcParams["axes.labelpad"] + 1.3 * pts(mpl.rcParams["axes.labelsize"]) + 6)
    anchor = offset_copy(ax.transAxes, fig=ax.figure, y=-drop, units="points")
    return ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0.0), bbox_transform=anchor, ncol=ncol,
                     frameon=False, **kw)


# -------------------------------------------------------------------------------------------------
class FeatureScalesDisplay:
    """Scale (root mean square) of each feature before and after standardising, log scale.

    Parameters
    ----------
    feature_names : names of the columns.
    scales : RMS of each raw column (``sqrt(mean(x**2))``, what the gradient sees).
    scaled : RMS after standardising (1 for every non-constant column, 0 for a constant one);
        computed from ``std`` when not given.
    target_name, target_scale : the target's RMS, drawn as an extra bar when given.
    """

    def __init__(self, *, feature_names: Sequence[str], scales: Sequence[float], scaled: Sequence[float] | None = None,
                 target_name: str | None = None, target_scale: float | None = None):
        self.feature_names = feature_names
        self.scales = scales
        self.scaled = scaled
        self.target_name = target_name
        self.target_scale = target_scale

    @classmethod
    def from_report(cls, report, *, ax=None) -> "FeatureScalesDisplay":
        d = getattr(report, "data", None) or {}
        if not d.get("feature_rms"):
            raise ValueError("the report holds no feature statistics (report.data['feature_rms'])")
        rms = np.asarray(d["feature_rms"], dtype=float)
        std = np.asarray(d.get("feature_std", np.ones_like(rms)), dtype=float)
        names = list(d.get("feature_names") or [f"x{i}" for i in range(len(rms))])
        target_scale = None
        if d.get("target_mean") is not None and d.get("target_std") is not None:
            target_scale = float(np.hypot(d["target_mean"], d["target_std"]))  # RMS = sqrt(mean^2 + std^2)
        return cls(feature_names=names, scales=rms, scaled=np.where(std > 0, 1.0, 0.0),
                   target_name=d.get("target_name") or "target", target_scale=target_scale).plot(ax=ax)

    @classmethod
    def from_data(cls, X, y=None, *, feature_names: Sequence[str] | None = None, target_name: str = "target",
                  ax=None) -> "FeatureScalesDisplay":
        X = np.asarray(X, dtype=float)
        X = X.reshape(len(X), -1)
        ok = np.isfinite(X).all(axis=1)
        if y is not None:
            yv = np.asarray(y, dtype=float).reshape(len(X), -1)[:, 0]
            ok &= np.isfinite(yv)
        Xc = X[ok]
        rms = np.sqrt(np.mean(Xc**2, axis=0))
        std = Xc.std(axis=0)
        names = list(feature_names or [f"x{i}" for i in range(X.shape[1])])
        ts = float(np.sqrt(np.mean(yv[ok] ** 2))) if y is not None else None
        return cls(feature_names=names, scales=rms, scaled=np.where(std > 0, 1.0, 0.0), target_name=target_name,
                   target_scale=ts).plot(ax=ax)

    def plot(self, ax=None) -> "FeatureScalesDisplay":
        names = [str(n) for n in self.feature_names]
        before = np.asarray(self.scales, dtype=float)
        after = np.ones_like(before) if self.scaled is None else np.asarray(self.scaled, dtype=float)
        if self.target_scale is not None:
            names.append(f"{self.target_name} (target)")
            before = np.append(before, self.target_scale)
            after = np.append(after, 1.0)
        ax, fig = _new_axes(ax, figsize=(7.5, max(2.6, 0.45 * len(names) + 1.4)))
        pos = np.arange(len(names))
        h = 0.38
        floor = 1e-3
        ax.barh(pos - h / 2, np.maximum(before, floor), height=h, color="#d95f02", label="as given (RMS)")
        ax.barh(pos + h / 2, np.maximum(after, floor), height=h, color="#1b9e77", label="standardised")
        for p, v in zip(pos, before):
            ax.text(max(v, floor) * 1.15, p - h / 2, f"{v:.3g}", va="center")
        ax.axvline(1.0, color="black", linewidth=0.8, linestyle=":")
        ax.set_xscale("log")
        ax.set_yticks(pos)
        ax.set_yticklabels(names)
        ax.invert_yaxis()
        lo = min(floor, np.nanmin(np.maximum(before, floor))) / 2
        hi = max(10.0, np.nanmax(before) * 60) if np.isfinite(before).any() else 10.0  # room for the value labels
        ax.set_xlim(lo, hi)
        ax.set_xlabel("root mean square (log scale); 1 = unit scale")
        ax.set_title("Feature scales before and after standardising", fontsize="medium")
        legend_below(ax, ncol=2)
        ax.grid(True, axis="x", which="major", alpha=0.3)
        self.ax_, self.figure_ = ax, fig
        return self


# -------------------------------------------------------------------------------------------------
class TargetDistributionDisplay:
    """Histogram of the targets with outliers (robust z above ``z_limit``) marked.

    The robust z-score is ``(y - median) / (1.4826 * MAD)``
    (:func:`fitdoctor.rules.data.outliers.robust_z`).
    """

    def __init__(self, *, y: Sequence[float], target_name: str = "target", z_limit: float = Z_LIMIT):
        self.y = y
        self.target_name = target_name
        self.z_limit = z_limit

    @classmethod
    def from_report(cls, report, *, ax=None) -> "TargetDistributionDisplay":
        d = getattr(report, "data", None) or {}
        if not d.get("target_sample"):
            raise ValueError("the report holds no target sample (report.data['target_sample'])")
        return cls(y=d["target_sample"], target_name=d.get("target_name") or "target").plot(ax=ax)

    @classmethod
    def from_data(cls, y, *, target_name: str = "target", ax=None) -> "TargetDistributionDisplay":
        return cls(y=y, target_name=target_name).plot(ax=ax)

    def plot(self, ax=None) -> "TargetDistributionDisplay":
        ax, fig = _new_axes(ax)
        y = np.asarray(self.y, dtype=float).reshape(-1)
        y = y[np.isfinite(y)]
        z = robust_z(y) if len(y) else y
        out = np.abs(z) > self.z_limit
        self.z_ = z
        self.n_outliers_ = int(out.sum())
        bins = int(np.clip(np.sqrt(len(y)) * 2, 5, 60))
        ax.hist(y[~out], bins=bins, color="#4477aa", alpha=0.85, label=f"{int((~out).sum())} values")
        if out.any():
            ax.hist(y[out], bins=bins, color="#cc3311", alpha=0.9)
            ax.plot(y[out], np.zeros(out.sum()), "v", color="#cc3311", markersize=9, clip_on=False,
                    label=f"{int(out.sum())} outlier(s), |robust z| > {self.z_limit:g}")
        med = float(np.median(y)) if len(y) else 0.0
        ax.axvline(med, color="black", linewidth=1, linestyle=":", label=f"median {med:.4g}")
        ax.set_xlabel(f"{self.target_name}")
        ax.set_ylabel("count")
        ax.set_title(f"Target distribution ({len(y)} values)", fontsize="medium")
        legend_below(ax, ncol=1)
        self.ax_, self.figure_ = ax, fig
        return self


# -------------------------------------------------------------------------------------------------
class LRFinderDisplay:
    """The learning-rate range test: smoothed loss against the learning rate (log x) and the suggestion."""

    def __init__(self, *, lrs: Sequence[float], losses: Sequence[float], suggestion: float | None = None,
                 lr_range: tuple[float, float] | None = None, current_lr: float | None = None,
                 title: str = "Learning-rate range test", loss_label: str = "loss (smoothed)",
                 suggestion_label: str = "suggestion", marker: str | None = None, optimum: float | None = None,
                 optimum_label: str = "least-squares optimum", stopped_at: float | None = None):
        self.optimum = optimum
        self.optimum_label = optimum_label
        self.stopped_at = stopped_at
        self.lrs = lrs
        self.losses = losses
        self.suggestion = suggestion
        self.lr_range = lr_range
        self.current_lr = current_lr
        self.title = title
        self.loss_label = loss_label
        self.suggestion_label = suggestion_label
        self.marker = marker

    @classmethod
    def from_finder(cls, finder, *, current_lr: float | None = None, optimum: float | None = None,
                    ax=None) -> "LRFinderDisplay":
        """A fitted :class:`fitdoctor.LRFinder` (``lrs_``, ``losses_``, ``suggestion_``, ``range_``).

        ``optimum``: the best achievable loss on the same data (by default the finder's ``optimum_``
        when it has one), drawn as a horizontal line."""
        lr_range = getattr(finder, "range_", None)
        optimum = optimum if optimum is not None else getattr(finder, "optimum_", None)
        return cls(lrs=finder.lrs_, losses=finder.losses_, suggestion=getattr(finder, "suggestion_", None),
                   lr_range=tuple(lr_range) if lr_range is not None else None, current_lr=current_lr,
                   optimum=optimum, stopped_at=getattr(finder, "diverged_at_", None)).plot(ax=ax)

    def plot(self, ax=None) -> "LRFinderDisplay":
        ax, fig = _new_axes(ax)
        lrs = np.asarray(self.lrs, dtype=float)
        losses = np.asarray(self.losses, dtype=float)
        ax.plot(lrs, np.where(np.isfinite(losses) & (losses > 0), losses, np.nan), color="#4477aa",
                label=self.loss_label, marker=self.marker)
        if self.lr_range is not None:
            ax.axvspan(self.lr_range[0], self.lr_range[1], color="#1b9e77", alpha=0.15,
                       label=f"suggested range {self.lr_range[0]:.2g} to {self.lr_range[1]:.2g}")
        if self.suggestion is not None:
            ax.axvline(self.suggestion, color="#1b9e77", linewidth=1.8, label=f"{self.suggestion_label} {self.suggestion:.3g}")
        if self.current_lr is not None:
            ax.axvline(self.current_lr, color="#cc3311", linestyle="--", label=f"your learning rate {self.current_lr:.3g}")
        if self.optimum is not None and np.isfinite(self.optimum) and self.optimum > 0:
            ax.axhline(self.optimum, color="#000000", linestyle=":", linewidth=1.4,
                       label=f"{self.optimum_label} {self.optimum:.4g}")
        if self.stopped_at is not None:
            ax.axvline(self.stopped_at, color="#888888", linestyle="-.", linewidth=1.2,
                       label=f"sweep stopped at {self.stopped_at:.3g} (raw loss jumped)")
        ax.set_xscale("log")
        if (losses[np.isfinite(losses)] > 0).all() and np.isfinite(losses).any():
            ax.set_yscale("log")
        ax.set_xlabel("learning rate (log scale)")
        ax.set_ylabel("training loss")
        ax.set_title(self.title, fontsize="medium")
        ax.grid(True, which="major", alpha=0.3)
        legend_below(ax, ncol=1)
        self.ax_, self.figure_ = ax, fig
        return self


# -------------------------------------------------------------------------------------------------
class PredictionErrorDisplay:
    """Predicted against actual, or residuals against predicted, for a (repaired) model.

    ``kind`` is ``"actual_vs_predicted"`` (the diagonal is a perfect fit) or
    ``"residual_vs_predicted"`` (residual = actual - predicted; zero is a perfect fit).
    """

    KINDS = ("actual_vs_predicted", "residual_vs_predicted")

    def __init__(self, *, y_true: Sequence[float], y_pred: Sequence[float], target_name: str = "target"):
        self.y_true = y_true
        self.y_pred = y_pred
        self.target_name = target_name

    @classmethod
    def from_predictions(cls, y_true, y_pred, *, target_name: str = "target", kind: str = "actual_vs_predicted",
                         ax=None) -> "PredictionErrorDisplay":
        return cls(y_true=y_true, y_pred=y_pred, target_name=target_name).plot(ax=ax, kind=kind)

    @classmethod
    def from_model(cls, model, X, y, *, target_name: str = "target", kind: str = "actual_vs_predicted",
                   ax=None) -> "PredictionErrorDisplay":
        """Predict with a Keras model on the finite rows of ``X``, ``y`` (``X`` in the shape the model takes:
        tables, sequences, images). The model is called directly, never through ``predict``: on JAX a
        ``predict`` that raises leaves the model's variables without values."""
        from ..model.replica import call_model

        X = np.asarray(X, dtype=float)
        y = np.asarray(y, dtype=float).reshape(len(X), -1)[:, 0]
        ok = np.isfinite(X.reshape(len(X), -1)).all(axis=1) & np.isfinite(y)
        pred = call_model(model, X[ok]).reshape(ok.sum(), -1)[:, 0]
        return cls.from_predictions(y[ok], pred, target_name=target_name, kind=kind, ax=ax)

    @classmethod
    def from_repair(cls, repair, *, kind: str = "actual_vs_predicted", ax=None) -> "PredictionErrorDisplay":
        """The repaired model on the training data the repair saw (rows with NaN/inf left out)."""
        X = getattr(repair, "_X", None)
        y = getattr(repair, "_y", None)
        if X is None or y is None:
            raise ValueError("the repair holds no training data to predict on")
        model = getattr(repair, "flat_model", None) or repair.model  # several inputs: X holds them side by side
        return cls.from_model(model, X, y, target_name=getattr(repair, "target_name", "target"), kind=kind, ax=ax)

    def plot(self, ax=None, *, kind: str = "actual_vs_predicted") -> "PredictionErrorDisplay":
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {self.KINDS}. Received kind={kind!r}")
        ax, fig = _new_axes(ax, figsize=(5, 4.5))
        t = np.asarray(self.y_true, dtype=float).reshape(-1)
        p = np.asarray(self.y_pred, dtype=float).reshape(-1)
        name = self.target_name
        if kind == "actual_vs_predicted":
            ax.scatter(p, t, s=18, alpha=0.7, color="#4477aa")
            both = np.concatenate([t, p])
            both = both[np.isfinite(both)]
            if len(both):
                lo, hi = both.min(), both.max()
                ax.plot([lo, hi], [lo, hi], color="black", linestyle=":", linewidth=1, label="perfect fit")
            ax.set_xlabel(f"predicted {name}")
            ax.set_ylabel(f"actual {name}")
            ax.set_title("Predicted vs actual (dotted: perfect fit)", fontsize="medium")
        else:
            ax.scatter(p, t - p, s=18, alpha=0.7, color="#4477aa")
            ax.axhline(0.0, color="black", linestyle=":", linewidth=1)
            ax.set_xlabel(f"predicted {name}")
            ax.set_ylabel("residual (actual - predicted)")
            ax.set_title("Residuals", fontsize="medium")
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(4))
        ax.yaxis.set_major_locator(MaxNLocator(6))
        ax.grid(True, alpha=0.3)
        self.kind_ = kind
        self.ax_, self.figure_ = ax, fig
        return self
