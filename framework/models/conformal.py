"""Rolling-origin errors of a forecaster, and the conformal intervals and CV scores drawn from them.

One matrix serves selection, intervals and the champion gate: ``errors[i, j]`` is ``y[o_i + j] - forecast`` of
the model fitted on ``y[:origins[0]]`` and run forward (parameters fixed) from origin ``o_i``, for step ``j + 1``;
NaN where ``o_i + j`` is past the data.

Interval half-width at step ``j`` (split conformal, absolute residuals): the ``ceil((n + 1) * level) / n``
empirical quantile of ``|errors[:, j]|``. With too few errors for that quantile (fewer than
``1 / (1 - level) - 1``), the Gaussian width ``z * rms(errors[:, j])`` (at least the largest error) is used.
Widths never shrink with the step (isotonic regression over the steps), and steps past the calibrated ones grow
like ``sqrt(step)``.

Errors grow with the level on many positive series (a multiplicative season, exponential growth), so absolute
errors from the calibration origins under-cover once the series has grown past them. The errors are therefore
scaled before the quantile, by ``level ** beta``: ``level`` is the mean absolute value of the season before the
origin (``local_level``), and ``beta`` is Guerrero's (1993) variance-mean exponent of the series (``level_exponent``:
the slope of log block sd on log block mean over blocks of one season; ``beta = 1 - lambda`` of his Box-Cox
choice), clipped to ``[0, 1]``. ``beta = 0`` (a series that is not positive, too short, or whose spread does not
grow with its level) is the plain absolute-error interval; ``beta = 1`` gives relative errors. The width at
forecast time is the quantile of the scaled errors times the scale at the state's end, so it follows the level
as ``extend`` moves the state.

>>> origins = rolling_origins(len(y), horizon=12, season_length=12)
>>> widths = conformal_widths(errors, level=0.95, h=18)
"""

from __future__ import annotations

import math

import numpy as np

from framework.metrics import normal_quantile

__all__ = [
    "MAX_ORIGINS",
    "conformal_widths",
    "cv_mase",
    "level_exponent",
    "local_level",
    "min_train",
    "rolling_errors",
    "rolling_origins",
]

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


def level_exponent(y: np.ndarray, season_length: int) -> float:
    """Guerrero's exponent ``beta`` in ``sd ~ mean ** beta`` over blocks of one season (2 points when ``m < 2``).

    The blocks are the last ``k`` whole seasons; 0 when the series has a value <= 0, fewer than 3 blocks or fewer
    than 3 blocks with a spread.
    """
    y = np.asarray(y, dtype="float64")
    period = max(int(season_length), 2)
    k = len(y) // period
    if k < 3 or not np.all(np.isfinite(y)) or np.min(y) <= 0:
        return 0.0
    blocks = y[len(y) - k * period :].reshape(k, period)
    mean, sd = blocks.mean(axis=1), blocks.std(axis=1, ddof=1)
    spread = sd > 0
    if spread.sum() < 3 or np.ptp(np.log(mean[spread])) == 0:
        return 0.0
    slope = np.polyfit(np.log(mean[spread]), np.log(sd[spread]), 1)[0]
    return float(np.clip(slope, 0.0, 1.0))


def local_level(y: np.ndarray, ends: list[int] | np.ndarray, season_length: int) -> np.ndarray:
    """Mean of ``|y|`` over the season before each position in ``ends`` (at least one point)."""
    period = max(int(season_length), 1)
    return np.array([float(np.mean(np.abs(y[max(0, e - period) : e]))) for e in ends])


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
