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

    def __post_init__(self) -> None:
        self.X = np.asarray(self.X, dtype=np.float64)
        if self.X.ndim == 1:
            self.X = self.X.reshape(-1, 1)
        if not self.y_shape:
            self.y_shape = tuple(np.shape(self.y))
        self.y = np.asarray(self.y, dtype=np.float64).reshape(len(self.X), -1)[:, 0]
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

    @cached_property
    def x_scale(self) -> np.ndarray:
        """Root mean square of each column: the magnitude a Dense kernel sees."""
        return np.sqrt(self.x_std**2 + self.x_mean**2)

    @cached_property
    def varying(self) -> np.ndarray:
        """Columns with non-zero spread."""
        return self.x_std > 1e-12 * np.maximum(np.abs(self.x_mean), 1.0)

    @cached_property
    def reference(self) -> Reference:
        return compute_reference(self.Xc, self.yc, nonlinear=self.nonlinear_reference, seed=self.seed,
                                 m=self.moments)

    @cached_property
    def gram_eigenvalues(self) -> np.ndarray:
        """Eigenvalues of the MSE Hessian of a linear model on the raw inputs, ``2/n [X 1]^T [X 1]``."""
        m = self.moments
        p = len(m.x_mean)
        G = np.empty((p + 1, p + 1))
        G[:p, :p] = m.cov + np.outer(m.x_mean, m.x_mean)
        G[:p, p] = G[p, :p] = m.x_mean
        G[p, p] = 1.0
        return np.clip(np.linalg.eigvalsh(2.0 * G), 0.0, None)

    @cached_property
    def standardized_gram_eigenvalues(self) -> np.ndarray:
        """The same after standardising the varying columns: the correlation matrix's eigenvalues and 1 (bias)."""
        idx = np.flatnonzero(self.varying)
        sd = self.x_std[idx]
        R = self.moments.cov[np.ix_(idx, idx)] / np.outer(sd, sd)
        return np.clip(2.0 * np.r_[np.linalg.eigvalsh(R), 1.0], 0.0, None)

    @cached_property
    def initial_predictions(self) -> np.ndarray:
        """Predictions of the model as given (a sample of rows); zeros for the assumed seed model."""
        rows = self.Xc[:SAMPLE_ROWS]
        if self.model is None:
            return np.zeros(len(rows))
        pred = np.asarray(self.model.predict(rows.astype(np.float32), verbose=0, batch_size=512))
        return pred.reshape(len(rows), -1)[:, 0].astype(np.float64)

    @cached_property
    def output_layer_inputs(self) -> tuple[np.ndarray, np.ndarray, float, bool]:
        """(H, w0, b0, exact): the inputs of the final Dense layer on a sample of rows, its initial
        weights, and whether the model is linear up to it (then H is an affine map of X and the
        least-squares solution on H is exactly where the output layer must go)."""
        rows = self.Xc[:SAMPLE_ROWS]
        if self.model is None:
            return rows, np.zeros(rows.shape[1]), 0.0, True
        last = last_dense(self.model)
        if last is None or last.units != 1:
            return rows, np.zeros(rows.shape[1]), 0.0, False
        kernel, *rest = [np.asarray(w, dtype=np.float64) for w in last.get_weights()]
        bias = float(rest[0][0]) if rest else 0.0
        try:
            import keras

            feeder = keras.Model(self.model.inputs, last.input)
            H = np.asarray(feeder.predict(rows.astype(np.float32), verbose=0, batch_size=512), dtype=np.float64)
        except Exception:
            if kernel.shape[0] != rows.shape[1]:
                return rows, np.zeros(rows.shape[1]), 0.0, False
            H = rows
        H = H.reshape(len(rows), -1)
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
