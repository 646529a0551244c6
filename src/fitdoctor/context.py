"""Context: everything the checks before training look at, computed once and cached."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from .model.inspect import ModelInfo, TrainingConfig, last_dense
from .reference import Moments, Reference, compute_reference, moments

#: rows used at most for statistics that do not need them all (predictions of the initial model)
SAMPLE_ROWS = 2048


@dataclass
class Context:
    X: np.ndarray
    y: np.ndarray
    config: TrainingConfig
    model_info: ModelInfo
    feature_names: list[str] = field(default_factory=list)
    target_name: str = "y"
    model: Any = None  # the user's Keras model (read only), or None
    notes: list[str] = field(default_factory=list)
    seed: int = 0
    nonlinear_reference: bool = True
    validation_data: tuple | None = None
    y_shape: tuple = ()  # the shape of y as the user gave it
    cache: dict = field(default_factory=dict, repr=False)  # shared results of rule helpers
    #: one row as the model takes it: (12, 3) for sequences; () when X is the model's own (n, d) table.
    #: ``X`` itself is always a 2-D table (sequences and images flattened) for the statistics.
    input_shape: tuple = ()
    #: every target column (n, k); ``y`` is the first column, which the data rules judge
    Y: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, dtype=np.float64)
        if self.X.ndim == 1:
            self.X = self.X.reshape(-1, 1)
        if self.X.ndim > 2:
            self.input_shape = self.input_shape or tuple(self.X.shape[1:])
            self.X = self.X.reshape(len(self.X), -1)
        if not self.y_shape:
            self.y_shape = tuple(np.shape(self.y))
        table = np.asarray(self.y, dtype=np.float64).reshape(len(self.X), -1)
        if self.Y is None:
            self.Y = table
        self.y = table[:, 0]
        if not self.feature_names:
            self.feature_names = [f"x{i}" for i in range(self.X.shape[1])]

    # -- rows -------------------------------------------------------------------------------
    @cached_property
    def finite_rows(self) -> np.ndarray:
        # one reduction answers the common case: a NaN or inf anywhere makes the total non-finite
        with np.errstate(over="ignore", invalid="ignore"):
            total_finite = np.isfinite(self.X.sum()) and np.isfinite(self.y.sum())
        if total_finite:
            return np.ones(len(self.y), dtype=bool)
        return np.isfinite(self.X).all(axis=1) & np.isfinite(self.y)

    @property
    def n_targets(self) -> int:
        return int(self.Y.shape[1]) if self.Y is not None and self.Y.ndim == 2 else 1

    @cached_property
    def Xc_model(self) -> np.ndarray:
        """The finite rows shaped as the model takes them (``Xc`` for tables)."""
        return self.Xc.reshape((len(self.Xc),) + tuple(self.input_shape)) if self.input_shape else self.Xc

    @cached_property
    def Xc(self) -> np.ndarray:
        return self.X if self.finite_rows.all() else self.X[self.finite_rows]

    @cached_property
    def yc(self) -> np.ndarray:
        return self.y if self.finite_rows.all() else self.y[self.finite_rows]

    @cached_property
    def n(self) -> int:
        return int(self.finite_rows.sum())

    # -- statistics -------------------------------------------------------------------------
    @cached_property
    def moments(self) -> Moments:
        """Means and centred covariances of the finite rows (one streaming pass)."""
        return moments(self.Xc, self.yc)

    @cached_property
    def x_mean(self) -> np.ndarray:
        return self.moments.x_mean

    @cached_property
    def x_std(self) -> np.ndarray:
        return self.moments.x_std

    # -- what the first trainable layer sees ------------------------------------------------
    @cached_property
    def X_seen(self) -> np.ndarray:
        """The finite rows after the model's own leading preprocessing layers (``Normalization``,
        ``Rescaling``): what its first trainable layer sees. ``Xc`` when the model has none."""
        if self.model is None:
            return self.Xc
        from .model.inspect import preprocess_inputs

        if self.input_shape:
            return self.Xc
        seen = preprocess_inputs(self.model, self.Xc)
        if seen is None or seen.shape != self.Xc.shape or not np.isfinite(seen).all():
            return self.Xc
        return seen

    @cached_property
    def inputs_preprocessed(self) -> bool:
        """True when the model scales its inputs itself (the data rules judge ``X_seen``)."""
        return self.X_seen is not self.Xc

    @cached_property
    def seen_moments(self) -> Moments:
        """Moments of ``X_seen`` (the raw moments when the model has no preprocessing)."""
        return moments(self.X_seen, self.yc) if self.inputs_preprocessed else self.moments

    @cached_property
    def x_scale(self) -> np.ndarray:
        """Root mean square of each column as the first trainable layer sees it: the magnitude a
        Dense kernel sees (after the model's own Normalization, when it has one)."""
        m = self.seen_moments
        return np.hypot(m.x_std, m.x_mean)  # sqrt(std^2 + mean^2) without overflow at 1e160

    @cached_property
    def varying(self) -> np.ndarray:
        """Columns with non-zero spread."""
        return self.x_std > 1e-12 * np.maximum(np.abs(self.x_mean), 1.0)

    @cached_property
    def reference(self) -> Reference:
        """References on the finite rows (sequences and images: on the flattened rows). With several
        target columns every reference is the mean over the columns of each column's reference, as
        the MSE the experiments report is the mean over the columns."""
        first = compute_reference(self.Xc, self.yc, nonlinear=self.nonlinear_reference, seed=self.seed,
                                  m=self.moments)
        if self.n_targets == 1:
            return first
        Yc = self.Y[self.finite_rows] if not self.finite_rows.all() else self.Y
        refs = [first] + [compute_reference(self.Xc, Yc[:, j], nonlinear=self.nonlinear_reference, seed=self.seed)
                          for j in range(1, self.n_targets)]
        return mean_reference(refs)

    @cached_property
    def gram_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the MSE Hessian of a linear model on the inputs its first trainable layer
        sees (raw inputs, or after the model's own Normalization), ``2/n [X 1]^T [X 1]``."""
        m = self.seen_moments
        p = len(m.x_mean)
        G = np.empty((p + 1, p + 1))
        with np.errstate(over="ignore", invalid="ignore"):
            G[:p, :p] = m.cov + np.outer(m.x_mean, m.x_mean)
        G[:p, p] = G[p, :p] = m.x_mean
        G[p, p] = 1.0
        if not np.isfinite(G).all():  # magnitudes beyond ~1e154: decompose G / k^2 and scale back (inf if it overflows)
            k = float(np.max(m.x_scale))
            t, u = m.x_scale / k, m.x_mean / k
            G[:p, :p] = m.cov_scaled * np.outer(t, t) + np.outer(u, u)
            G[:p, p] = G[p, :p] = u / k
            G[p, p] = 1.0 / k / k
            with np.errstate(over="ignore"):
                return np.clip(np.linalg.eigvalsh(2.0 * G) * k * k, 0.0, None)
        return np.clip(np.linalg.eigvalsh(2.0 * G), 0.0, None)

    @cached_property
    def standardized_gram_eigenvalues(self) -> np.ndarray:
        """The same after standardising the varying columns: the correlation matrix's eigenvalues and 1 (bias)."""
        idx = np.flatnonzero(self.varying)
        m = self.moments
        sd = self.x_std[idx] / m.x_scale[idx]  # the scaled moments stay finite at any magnitude
        R = m.cov_scaled[np.ix_(idx, idx)] / np.outer(sd, sd)
        return np.clip(2.0 * np.r_[np.linalg.eigvalsh(R), 1.0], 0.0, None)

    @cached_property
    def initial_predictions(self) -> np.ndarray:
        """Predictions of the model as given (a sample of rows); zeros for the assumed seed model."""
        rows = self.Xc_model[:SAMPLE_ROWS]
        if self.model is None:
            return np.zeros(len(rows))
        from .model.replica import call_model

        pred = call_model(self.model, rows)
        return pred.reshape(len(rows), -1)[:, 0].astype(np.float64)

    @cached_property
    def output_layer_inputs(self) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """(H, w0, b0, exact): the inputs of the final Dense layer on a sample of rows, its initial
        weights, and whether the model is linear up to it (then H is an affine map of X and the
        least-squares solution on H is exactly where the output layer must go)."""
        rows = self.Xc[:SAMPLE_ROWS]
        if self.model is None:
            return rows, np.zeros(rows.shape[1]), 0.0, True
        if self.input_shape:  # sequences/images: the output layer's inputs are no affine map of the rows
            return rows, np.zeros(rows.shape[1]), 0.0, False
        last = last_dense(self.model)
        if last is None or last.units != 1:
            return rows, np.zeros(rows.shape[1]), 0.0, False
        kernel, *rest = [np.asarray(w, dtype=np.float64) for w in last.get_weights()]
        bias = float(rest[0][0]) if rest else 0.0
        try:
            import keras

            feeder = keras.Model(self.model.inputs, last.input)
            from .model.replica import call_model

            H = call_model(feeder, rows)
        except Exception:
            if kernel.shape[0] != rows.shape[1]:
                return rows, np.zeros(rows.shape[1]), 0.0, False
            H = rows
        H = H.reshape(len(rows), -1)
        if not np.isfinite(H).all():  # float32 overflowed (inputs beyond ~3e38): judge the float64 rows
            if kernel.shape[0] != rows.shape[1]:
                return rows, np.zeros(rows.shape[1]), 0.0, False
            H = rows
        return H, kernel[:, 0], bias, bool(self.model_info.is_linear)

    @property
    def steps_per_epoch(self) -> int:
        return int(np.ceil(max(self.n, 1) / (self.config.batch_size or 32)))

    @property
    def total_steps(self) -> int | None:
        return self.config.steps(self.n)

    @property
    def optimum(self) -> float:
        return self.reference.optimum(linear=self.model_info.is_linear)


def mean_reference(refs: list[Reference]) -> Reference:
    """The references of several target columns combined as the mean over the columns (the MSE of
    a multi-output model is the mean of its columns' MSEs); coefficients are the first column's.
    Each column's var(y) is kept: the noiseless floor is per target (reference.combine_targets)."""
    from .reference import combine_targets

    return combine_targets(list(refs))
