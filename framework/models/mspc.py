"""PCA multivariate statistical process control: Hotelling T², SPE/Q and the combined index.

The math, on standardized data ``X`` (n rows, m variables) with ``a`` retained components ``P`` and their
eigenvalues ``Λ``:

- ``T² = x' P Λ⁻¹ P' x`` with the F-distribution limit ``τ² = a(n-1)(n+1) / (n(n-a)) · F(a, n-a)``.
- ``SPE = ‖(I - PP') x‖²`` with Box's ``g·χ²(h)`` limit (``g = θ₂/θ₁``, ``h = θ₁²/θ₂``) or
  Jackson–Mudholkar's, where ``θᵢ`` are sums of the residual eigenvalues to the power i.
- Combined index ``φ = SPE/δ² + T²/τ² = x' Φ x`` (Yue & Qin, 2001) with its ``g·χ²(h)`` limit from
  ``tr(SΦ)`` and ``tr((SΦ)²)``.
- Contributions are reconstruction-based (Alcala & Qin, 2009): ``RBCⱼ = (ξⱼ' M x)² / Mⱼⱼ`` for the
  statistic's matrix ``M``; for the combined index that is ``Φ``, which weighs the T² and SPE parts
  by their limits.

Dynamic PCA (``lags > 0``) augments each row with the previous ``lags`` rows. The first rows of a block have
no history, so the block is padded with copies of its first row (in ``fit`` and in ``score`` alike); ``fit``
leaves the padded rows out of the covariance estimate. Contributions of the lagged copies are summed back onto
their variable.

Contributions cost a matrix product and a few passes over every row, more than the score itself, so
``score(X, contributions=False)`` and ``score_stream`` leave them to ``result.explain(rows)``, which computes them for
the rows asked for (the alarms, say) from the arrays the score already built.

>>> model = PCAMSPC(variance_retained=0.9).fit(X_train)
>>> result = model.score(X_live)           # result.score, result.contributions, result.extras["t2"]
>>> result, carry = model.score_stream(X_next, carry)   # continues the rows before X_next (lags)
>>> shares = result.explain(np.flatnonzero(result.score > limit))
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from framework.errors import ConfigError, DataValidationError

__all__ = ["PCAMSPC", "DetectorScores", "contribution_shares", "lagged", "with_contributions"]

_STATISTICS = ("combined", "t2", "spe")
_SPE_LIMITS = ("box", "jackson_mudholkar")
_TINY = 1e-12


@dataclass(frozen=True)
class DetectorScores:
    """What a detector says about each row: ``score`` (higher = more anomalous) and per-feature shares.

    ``contributions`` holds the shares of every row when they were asked for; ``explain(rows)`` computes them for
    the rows asked for (an index array or a slice into ``score``), the same values row for row."""

    score: np.ndarray
    contributions: np.ndarray | None = None  # (n_rows, n_features), rows sum to 1
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    explain: Callable[[np.ndarray | slice], np.ndarray] | None = field(default=None, repr=False, compare=False)


def lagged(X: np.ndarray, lags: int) -> np.ndarray:
    """``[X_t, X_{t-1}, …, X_{t-lags}]`` side by side; the first rows are padded with copies of ``X[0]``."""
    if lags == 0:
        return X
    n = X.shape[0]
    padded = np.vstack([np.repeat(X[:1], lags, axis=0), X])
    return np.hstack([padded[lags - k : lags - k + n] for k in range(lags + 1)])


def contribution_shares(contrib: np.ndarray) -> np.ndarray:
    """Scale non-negative per-feature contributions so each row sums to 1 (uniform when a row is all zero).

    Overflowed entries (inf, from huge readings) count as the largest float; rows are scaled by their maximum
    first so that the sum cannot overflow."""
    if not np.isfinite(contrib).all():  # the common case skips this copy
        contrib = np.nan_to_num(contrib, nan=0.0, posinf=np.finfo(np.float64).max)
    peak = _row_max(contrib)[:, None]
    positive = peak > 0
    shares = contrib / np.where(positive, peak, 1.0)
    shares /= shares.sum(axis=1, keepdims=True)  # at least 1 where the peak is positive
    if not positive.all():
        shares[~positive[:, 0]] = 1.0 / contrib.shape[1]
    return shares


def _row_max(values: np.ndarray) -> np.ndarray:
    """The largest value of each row of a NaN-free array (the same value as ``values.max(axis=1)``, found with
    ``argmax``, which numpy runs several times faster on short rows)."""
    if values.shape[1] == 0:
        return values.max(axis=1)
    return np.take_along_axis(values, values.argmax(axis=1)[:, None], axis=1)[:, 0]


class PCAMSPC:
    """PCA-based MSPC detector on standardized data; ``score`` is the chosen statistic.

    Parameters
    ----------
    variance_retained
        Keep the fewest components that explain at least this share of the variance.
    n_components
        A fixed number of components instead (overrides ``variance_retained``).
    alpha
        Significance level of the theoretical control limits (``t2_limit_``, ``spe_limit_``, ``limit_``).
    lags
        Dynamic PCA: lagged copies of the variables to add (0 = static PCA).
    statistic
        ``"combined"`` (default), ``"t2"`` or ``"spe"``.
    spe_limit
        ``"box"`` (g·χ²(h), default) or ``"jackson_mudholkar"``.
    """

    def __init__(
        self,
        variance_retained: float = 0.9,
        n_components: int | None = None,
        alpha: float = 0.01,
        lags: int = 0,
        statistic: Literal["combined", "t2", "spe"] = "combined",
        spe_limit: Literal["box", "jackson_mudholkar"] = "box",
    ) -> None:
        self.variance_retained = variance_retained
        self.n_components = n_components
        self.alpha = alpha
        self.lags = lags
        self.statistic = statistic
        self.spe_limit = spe_limit

    @classmethod
    def accepted_params(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    @property
    def context_rows(self) -> int:
        """Rows of history each scored row looks back on."""
        return int(self.lags)

    def check_params(self) -> None:
        """Raise ``ConfigError`` naming the first invalid hyperparameter."""

        def bad(name: str, reason: str) -> ConfigError:
            return ConfigError(f"{reason}, got {getattr(self, name)!r}", field=f"model.params.{name}")

        if not _is_number(self.variance_retained) or not 0 < self.variance_retained <= 1:
            raise bad("variance_retained", "must be a number in (0, 1]")
        if self.n_components is not None and (not _is_int(self.n_components) or self.n_components < 1):
            raise bad("n_components", "must be a positive integer or null")
        if not _is_number(self.alpha) or not 0 < self.alpha < 0.5:
            raise bad("alpha", "must be a number in (0, 0.5)")
        if not _is_int(self.lags) or not 0 <= self.lags <= 50:
            raise bad("lags", "must be an integer from 0 to 50")
        if self.statistic not in _STATISTICS:
            raise bad("statistic", f"must be one of {', '.join(_STATISTICS)}")
        if self.spe_limit not in _SPE_LIMITS:
            raise bad("spe_limit", f"must be one of {', '.join(_SPE_LIMITS)}")

    def fit(self, X: np.ndarray) -> PCAMSPC:
        """Learn the loadings, eigenvalues and control limits from normal data ``X`` (standardized)."""
        from scipy import stats  # lazy: scipy.stats is slow to import

        self.check_params()
        Z = lagged(np.asarray(X, dtype=np.float64), self.lags)[self.lags :]
        n, m = Z.shape
        if n < 3:
            raise DataValidationError(f"need more than {self.lags + 2} rows to fit with lags={self.lags}", field="data")
        self.n_features_in_ = X.shape[1]
        self.mean_ = Z.mean(axis=0)
        Zc = Z - self.mean_
        eigvals, eigvecs = np.linalg.eigh(Zc.T @ Zc / (n - 1))
        eigvals, eigvecs = np.clip(eigvals[::-1], 0.0, None), eigvecs[:, ::-1]
        if self.n_components is not None:
            a = int(self.n_components)
        else:
            explained = np.cumsum(eigvals) / max(eigvals.sum(), _TINY)
            a = int(np.searchsorted(explained, self.variance_retained - 1e-12) + 1)
        a = max(1, min(a, m - 1 if m > 1 else 1, n - 2))
        self.n_components_ = a
        self.explained_variance_ratio_ = float(eigvals[:a].sum() / max(eigvals.sum(), _TINY))
        self.components_ = eigvecs[:, :a]
        self.eigenvalues_ = np.maximum(eigvals[:a], _TINY)
        residual = eigvals[a:]
        theta1, theta2, theta3 = (float(np.sum(residual**i)) for i in (1, 2, 3))

        level = 1.0 - self.alpha
        self.t2_limit_ = float(a * (n - 1) * (n + 1) / (n * (n - a)) * stats.f.ppf(level, a, n - a))
        self.spe_limit_ = self._spe_limit(stats, theta1, theta2, theta3, level)
        tau2, delta2 = self.t2_limit_, self.spe_limit_
        tr1 = a / tau2 + theta1 / delta2
        tr2 = a / tau2**2 + theta2 / delta2**2
        self.combined_limit_ = float(tr2 / tr1 * stats.chi2.ppf(level, tr1**2 / tr2))

        d_matrix = (self.components_ / self.eigenvalues_) @ self.components_.T
        c_matrix = np.eye(m) - self.components_ @ self.components_.T
        matrices = {"t2": d_matrix, "spe": c_matrix, "combined": d_matrix / tau2 + c_matrix / delta2}
        self.matrix_ = matrices[self.statistic]
        self.limit_ = {"t2": tau2, "spe": delta2, "combined": self.combined_limit_}[self.statistic]
        return self

    def _spe_limit(self, stats: Any, theta1: float, theta2: float, theta3: float, level: float) -> float:
        if theta1 <= _TINY or theta2 <= _TINY:
            return _TINY
        if self.spe_limit == "box":
            return float(theta2 / theta1 * stats.chi2.ppf(level, theta1**2 / theta2))
        h0 = 1.0 - 2.0 * theta1 * theta3 / (3.0 * theta2**2)
        c = stats.norm.ppf(level)
        inner = c * np.sqrt(2.0 * theta2 * h0**2) / theta1 + 1.0 + theta2 * h0 * (h0 - 1.0) / theta1**2
        return float(theta1 * max(inner, _TINY) ** (1.0 / h0))

    def score(self, X: np.ndarray, *, contributions: bool = True) -> DetectorScores:
        """T², SPE and the chosen statistic per row, plus reconstruction-based contribution shares."""
        result, _ = self.score_stream(X)
        return with_contributions(result) if contributions else result

    def score_stream(self, X: np.ndarray, carry: np.ndarray | None = None) -> tuple[DetectorScores, np.ndarray | None]:
        """Score ``X`` as the continuation of the rows before it: ``carry`` is what the previous call returned (the
        last ``lags`` rows; None at the start). Returns the scores (contributions on demand: ``explain``) and the
        carry for the next call. Dynamic PCA's first rows see their real history, and copies of the very first row
        before it, as in one ``score`` over all the rows."""
        X = np.asarray(X, dtype=np.float64)
        n_history = 0 if carry is None else len(carry)
        full = np.vstack([carry, X]) if n_history else X
        Z = lagged(full, self.lags)[n_history:] - self.mean_
        scores = Z @ self.components_
        t2 = np.einsum("ij,ij->i", scores, scores / self.eigenvalues_)
        residual = Z - scores @ self.components_.T
        spe = np.einsum("ij,ij->i", residual, residual)
        score = {"t2": t2, "spe": spe, "combined": spe / self.spe_limit_ + t2 / self.t2_limit_}[self.statistic]
        result = DetectorScores(score=score, extras={"t2": t2, "spe": spe}, explain=lambda rows: self._shares(Z[rows]))
        return result, (full[-self.lags :] if self.lags else None)

    def _shares(self, Z: np.ndarray) -> np.ndarray:
        """Reconstruction-based contribution shares of the centered (lagged) rows ``Z``."""
        diagonal = np.diag(self.matrix_)
        safe = np.where(diagonal > _TINY, diagonal, np.inf)
        rbc = (_row_scaled(Z) @ self.matrix_) ** 2 / safe  # shares are scale-free: no overflow
        if self.lags:
            rbc = rbc.reshape(len(Z), self.lags + 1, self.n_features_in_).sum(axis=1)
        return contribution_shares(rbc)


def with_contributions(result: DetectorScores) -> DetectorScores:
    """``result`` with the shares of every row filled in."""
    assert result.explain is not None
    return DetectorScores(result.score, result.explain(slice(None)), result.extras, result.explain)


def _row_scaled(*parts: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
    """The rows of ``parts`` divided by one common factor per row (their largest magnitude, when above 1).

    Reconstruction-based contributions are quadratic in the row, so their shares do not change, and huge
    readings (1e155) no longer overflow to inf."""
    if not all(np.isfinite(p).all() for p in parts):  # the common case skips these copies
        parts = tuple(np.nan_to_num(p) for p in parts)
    peak = _row_max(np.abs(parts[0]))
    for p in parts[1:]:
        peak = np.maximum(peak, _row_max(np.abs(p)))
    factor = np.maximum(peak, 1.0)[:, None]
    scaled = tuple(p / factor for p in parts)
    return scaled[0] if len(scaled) == 1 else scaled


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | np.number) and not isinstance(value, bool)
