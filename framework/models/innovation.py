"""A dynamic detector for closed loops: VAR-style innovations, their EWMA and the static level.

A controller hides a fault by moving a valve until the measured variable is back at its setpoint. What stays
visible is (a) the valve itself, at a new level, and (b) a change in how the variables move together from one
sample to the next. The detector watches both on standardized data ``Z``:

- **Innovation.** A ridge regression predicts every variable from the last ``lags`` samples of all variables
  (a regularised VAR); the one-step prediction error ``e_t = z_t - B'[z_{t-1} … z_{t-L}]`` is white under
  normal operation and is monitored with PCA-MSPC (the combined T²/SPE index).
- **Level.** PCA-MSPC on ``z_t`` itself (combined index).
- **Persistent shift.** A multivariate EWMA of the innovations, ``w_t = λ e_t + (1-λ) w_{t-1}`` (Lowry et al.,
  1992), with Hotelling's T² against the innovations' covariance (ridge-regularised). A step that the controller
  compensates leaves a small lasting offset in a manipulated variable: hidden in one noisy sample, plain in the
  average of the last ``1/λ`` innovations. ``score`` starts the filter at 0 at its first row (so ``fit``'s
  ``context_rows`` include the rows after which an earlier row weighs less than 1 %); ``score_stream`` carries the
  filter's state and the last ``lags`` rows from call to call, so streamed batches continue exactly where one
  ``score`` over all the rows would be.

``score`` is the largest of the three indices, each divided by its 99th percentile on the fitting rows (so that
no part dominates the false alarms). Contributions are reconstruction-based (Alcala & Qin, 2009) in each part,
weighed by the same scales and summed per variable.

``lags="auto"`` (default) and ``ridge="auto"`` choose the lag count (1–6) and the penalty by the one-step error
on the last 20 % of the fitting rows (time order), then refit on all of them: no tuning to a benchmark.

>>> detector = VARInnovation().fit(Z_train)      # Z standardized, rows in time order
>>> detector.score(Z_live).score
>>> result, carry = detector.score_stream(Z_next, carry)   # carry: None at the start of a stream
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

import numpy as np

from framework.errors import ConfigError, DataValidationError
from framework.models.mspc import (
    PCAMSPC,
    DetectorScores,
    _is_int,
    _is_number,
    _row_scaled,
    contribution_shares,
    lagged,
    with_contributions,
)

__all__ = ["InnovationCarry", "VARInnovation"]

_LAG_GRID = (1, 2, 3, 4, 5, 6)
_RIDGE_GRID = (1e-3, 1e-2, 1e-1, 1.0)


def _design(Z: np.ndarray, lags: int) -> tuple[np.ndarray, np.ndarray]:
    """Regressors ``[z_{t-1} … z_{t-L}]`` and targets ``z_t`` (the first rows padded with copies of ``Z[0]``)."""
    L = lagged(Z, lags)
    m = Z.shape[1]
    return L[:, m:], L[:, :m]


def _ridge(R: np.ndarray, Y: np.ndarray, penalty: float) -> tuple[np.ndarray, np.ndarray]:
    """Coefficients and intercept of ``Y ≈ R B + c`` with penalty ``penalty · n`` on ``B``."""
    r_mean, y_mean = R.mean(axis=0), Y.mean(axis=0)
    Rc = R - r_mean
    gram = Rc.T @ Rc + penalty * len(R) * np.eye(R.shape[1])
    B = np.linalg.solve(gram, Rc.T @ (Y - y_mean))
    return B, y_mean - r_mean @ B


@dataclass(frozen=True)
class InnovationCarry:
    """What ``VARInnovation.score_stream`` carries between calls: the last ``lags`` rows (fewer at the start of a
    stream, from its very first row on) and the EWMA filter's state after the last row (``scipy.signal.lfilter``'s
    ``zf``)."""

    rows: np.ndarray
    ewma: np.ndarray


class VARInnovation:
    """Regularised-VAR innovations and static level, each monitored by PCA-MSPC (see the module doc).

    Parameters
    ----------
    lags
        Past samples of every variable used to predict the present (``"auto"``: chosen on held-out rows).
    ridge
        Ridge penalty per row on the standardized regressors (``"auto"``: chosen with ``lags``).
    variance_retained
        Variance kept by both PCA monitors.
    alpha
        Significance level of the monitors' theoretical limits.
    ewma
        Smoothing weight ``λ`` of the innovations' EWMA (0.1: an average over about the last 10 rows).
    """

    def __init__(
        self,
        lags: int | str = "auto",
        ridge: float | str = "auto",
        variance_retained: float = 0.9,
        alpha: float = 0.01,
        ewma: float = 0.1,
    ) -> None:
        self.lags = lags
        self.ridge = ridge
        self.variance_retained = variance_retained
        self.alpha = alpha
        self.ewma = ewma

    @classmethod
    def accepted_params(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    @property
    def context_rows(self) -> int:
        """Rows of history each scored row looks back on."""
        lags = int(getattr(self, "lags_", max(_LAG_GRID) if self.lags == "auto" else self.lags))
        return lags + int(np.ceil(np.log(0.01) / np.log(1.0 - self.ewma)))

    def check_params(self) -> None:
        """Raise ``ConfigError`` naming the first invalid hyperparameter."""

        def bad(name: str, reason: str) -> ConfigError:
            return ConfigError(f"{reason}, got {getattr(self, name)!r}", field=f"model.params.{name}")

        if self.lags != "auto" and (not _is_int(self.lags) or not 1 <= self.lags <= 20):
            raise bad("lags", "must be 'auto' or an integer from 1 to 20")
        if self.ridge != "auto" and (not _is_number(self.ridge) or not 0 <= self.ridge <= 1e6):
            raise bad("ridge", "must be 'auto' or a number from 0 to 1e6")
        if not _is_number(self.variance_retained) or not 0 < self.variance_retained <= 1:
            raise bad("variance_retained", "must be a number in (0, 1]")
        if not _is_number(self.alpha) or not 0 < self.alpha < 0.5:
            raise bad("alpha", "must be a number in (0, 0.5)")
        if not _is_number(self.ewma) or not 0.01 <= self.ewma <= 1:
            raise bad("ewma", "must be a number in [0.01, 1]")

    def fit(self, Z: np.ndarray) -> VARInnovation:
        """Choose lags and penalty, fit the VAR on ``Z`` (standardized, time order) and both monitors."""
        self.check_params()
        Z = np.asarray(Z, dtype=np.float64)
        n, m = Z.shape
        lag_grid = _LAG_GRID if self.lags == "auto" else (int(self.lags),)
        ridge_grid = _RIDGE_GRID if self.ridge == "auto" else (float(self.ridge),)
        if n < max(lag_grid) + m + 10:
            raise DataValidationError(f"need at least {max(lag_grid) + m + 10} rows to fit a VAR", field="data")
        self.lags_, self.ridge_ = self._choose(Z, lag_grid, ridge_grid)
        R, Y = _design(Z, self.lags_)
        R, Y = R[self.lags_ :], Y[self.lags_ :]
        self.coef_, self.intercept_ = _ridge(R, Y, self.ridge_)
        innovations = Y - R @ self.coef_ - self.intercept_
        self.n_features_in_ = m
        self.innovation_ = PCAMSPC(variance_retained=self.variance_retained, alpha=self.alpha).fit(innovations)
        self.level_ = PCAMSPC(variance_retained=self.variance_retained, alpha=self.alpha).fit(Z)
        covariance = np.cov(innovations, rowvar=False) * self.ewma / (2.0 - self.ewma)
        covariance += 1e-3 * np.trace(covariance) / m * np.eye(m)
        self.ewma_precision_ = np.linalg.inv(covariance)
        self.scales_ = np.ones(3)
        parts = self._parts(Z)
        self.scales_ = np.array([max(float(np.quantile(p[self.context_rows :], 0.99)), 1e-12) for p in parts])
        return self

    def _choose(self, Z: np.ndarray, lag_grid: tuple[int, ...], ridge_grid: tuple[float, ...]) -> tuple[int, float]:
        if len(lag_grid) == 1 and len(ridge_grid) == 1:
            return lag_grid[0], ridge_grid[0]
        cut = int(0.8 * len(Z))
        best: tuple[float, int, float] | None = None
        for lags in lag_grid:
            R, Y = _design(Z, lags)
            fit_rows, test_rows = slice(lags, cut), slice(cut, None)
            for penalty in ridge_grid:
                B, c = _ridge(R[fit_rows], Y[fit_rows], penalty)
                error = float(np.mean((Y[test_rows] - R[test_rows] @ B - c) ** 2))
                if best is None or error < best[0] * (1 - 1e-3):  # prefer the simpler model on a near-tie
                    best = (error, lags, penalty)
        assert best is not None
        return best[1], best[2]

    def _innovations(self, Z: np.ndarray) -> np.ndarray:
        R, Y = _design(Z, self.lags_)
        return Y - R @ self.coef_ - self.intercept_

    def _smoothed(self, innovations: np.ndarray, state: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The EWMA of the innovations from the filter state ``state`` (None: started at 0), and the state after
        them (a linear filter: ``scipy.signal.lfilter``; its state is exact, so a continuation equals one pass)."""
        from scipy.signal import lfilter

        if state is None:
            state = np.zeros((1, innovations.shape[1]))
        return lfilter([self.ewma], [1.0, self.ewma - 1.0], innovations, axis=0, zi=state)

    def _parts(self, Z: np.ndarray) -> list[np.ndarray]:
        """The three indices per row, each over its scale."""
        innovations = self._innovations(Z)
        w, _ = self._smoothed(innovations)
        return self._indices(Z, innovations, w)

    def _indices(self, Z: np.ndarray, innovations: np.ndarray, w: np.ndarray) -> list[np.ndarray]:
        return [
            self.innovation_.score(innovations, contributions=False).score / self.scales_[0],
            self.level_.score(Z, contributions=False).score / self.scales_[1],
            np.einsum("ij,ij->i", w @ self.ewma_precision_, w) / self.scales_[2],  # w' P w through BLAS
        ]

    def score(self, X: np.ndarray, *, contributions: bool = True) -> DetectorScores:
        """The largest scaled index per row, the three parts in ``extras``, and reconstruction-based shares."""
        result, _ = self.score_stream(X)
        return with_contributions(result) if contributions else result

    def score_stream(
        self, X: np.ndarray, carry: InnovationCarry | None = None
    ) -> tuple[DetectorScores, InnovationCarry]:
        """Score ``X`` as the continuation of the rows before it (``carry``: what the previous call returned, None at
        the start of a stream); contributions on demand (``result.explain(rows)``). Returns the carry for the next
        call. The regressors of the first rows are the real previous rows, and the EWMA goes on from its state."""
        X = np.asarray(X, dtype=np.float64)
        n_history = 0 if carry is None else len(carry.rows)
        full = np.vstack([carry.rows, X]) if n_history else X
        innovations = self._innovations(full)[n_history:]
        w, state = self._smoothed(innovations, None if carry is None else carry.ewma)
        innovation, level, shift = self._indices(X, innovations, w)
        extras: dict[str, Any] = {"innovation_index": innovation, "level_index": level, "shift_index": shift}
        score = np.maximum(np.maximum(innovation, level), shift)

        def explain(rows: np.ndarray | slice) -> np.ndarray:
            centered = _row_scaled(innovations[rows] - self.innovation_.mean_, X[rows] - self.level_.mean_, w[rows])
            matrices = (self.innovation_.matrix_, self.level_.matrix_, self.ewma_precision_)
            rbc = np.zeros_like(centered[0])
            for matrix, part, scale in zip(matrices, centered, self.scales_, strict=True):
                diagonal = np.diag(matrix)
                safe = np.where(diagonal > 1e-12, diagonal, np.inf)
                rbc += (part @ matrix) ** 2 / safe / scale
            return contribution_shares(rbc)

        result = DetectorScores(score=score, extras=extras, explain=explain)
        return result, InnovationCarry(rows=full[-self.lags_ :], ewma=state)
