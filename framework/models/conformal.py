"""Rolling-origin errors of a forecaster, and the conformal intervals and CV scores drawn from them.

One matrix serves selection, intervals and the champion gate: ``errors[i, j]`` is ``y[o_i + j] - forecast`` of
the model fitted on ``y[:origins[0]]`` and run forward (parameters fixed) from origin ``o_i``, for step ``j + 1``;
NaN where ``o_i + j`` is past the data.

Interval half-width at step ``j`` (split conformal, absolute residuals): the ``ceil((n + 1) * level) / n``
empirical quantile of ``|errors[:, j]|``. With too few errors for that quantile (fewer than
``1 / (1 - level) - 1``), the Gaussian width ``z * rms(errors[:, j])`` (at least the largest error) is used.
Widths never shrink with the step (isotonic regression over the steps), and steps past the calibrated ones grow
like ``sqrt(step)``.

>>> origins = rolling_origins(len(y), horizon=12, season_length=12)
>>> widths = conformal_widths(errors, level=0.95, h=18)
"""

from __future__ import annotations

import math

import numpy as np

from framework.metrics import normal_quantile

__all__ = ["MAX_ORIGINS", "conformal_widths", "cv_mase", "min_train", "rolling_errors", "rolling_origins"]

MAX_ORIGINS = 40  # rolling origins per fit: enough errors per step for a 95 % quantile, cheap to forward


def min_train(season_length: int) -> int:
    """The shortest prefix a model is fitted on: two seasons and two points, and at least 10."""
    return max(2 * season_length + 2, 10)


def rolling_origins(n: int, horizon: int, season_length: int, max_origins: int = MAX_ORIGINS) -> list[int]:
    """Origins over the last quarter of the series (at least ``3 * horizon`` points), at most ``max_origins``.

    The first origin is where the calibration model is fitted; an origin needs one point after it. Empty when
    the series is shorter than ``min_train + 2``.
    """
    first = max(min_train(season_length), n - max(3 * horizon, n // 4))
    if first > n - 2:
        return []
    step = max(1, math.ceil((n - 1 - first) / max_origins))
    return list(range(first, n - 1, step))[:max_origins]


def rolling_errors(y: np.ndarray, origins: list[int], forecasts: np.ndarray) -> np.ndarray:
    """``y[o + j] - forecasts[i, j]``, NaN where ``o + j`` is past the data."""
    h = forecasts.shape[1]
    index = np.asarray(origins)[:, None] + np.arange(h)[None, :]
    actual = np.where(index < len(y), y[np.minimum(index, len(y) - 1)], np.nan)
    return actual - forecasts


def cv_mase(errors: np.ndarray, scale: float) -> np.ndarray:
    """MASE per origin; only origins with the whole horizon count, unless none has it (then every origin)."""
    full = np.all(np.isfinite(errors), axis=1)
    rows = errors[full] if full.any() else errors
    with np.errstate(invalid="ignore"):
        return np.nanmean(np.abs(rows), axis=1) / scale


def conformal_widths(errors: np.ndarray, level: float, h: int) -> np.ndarray:
    """Half-widths for steps ``1..h`` from the rolling-origin ``errors`` (see the module doc).

    The widths of the first steps do not depend on ``h``: they are computed over all calibrated steps and cut.
    """
    h_out, h = h, max(h, errors.shape[1])
    z = normal_quantile(level)
    widths = np.full(h, np.nan)
    for j in range(min(h, errors.shape[1])):
        e = np.abs(errors[:, j][np.isfinite(errors[:, j])])
        if e.size >= 1 / (1 - level) - 1:
            q = min(1.0, math.ceil((e.size + 1) * level) / e.size)
            widths[j] = float(np.quantile(e, q, method="higher"))
        elif e.size:  # never below an empirical quantile, so a higher level is never narrower
            widths[j] = max(z * float(np.sqrt(np.mean(e**2))), float(np.max(e)))
    known = np.flatnonzero(np.isfinite(widths))
    if known.size == 0:
        return widths[:h_out]
    last = known[-1]
    steps = np.arange(h)
    widths[last + 1 :] = widths[last] * np.sqrt((steps[last + 1 :] + 1) / (last + 1))
    widths = np.where(np.isfinite(widths), widths, 0.0)
    from sklearn.isotonic import isotonic_regression

    return np.asarray(isotonic_regression(widths, increasing=True))[:h_out]  # unbiased, unlike a running maximum
