"""One vocabulary of detection and forecast metrics, shared by every experiment type.

Detection, from a truth vector (1 = fault or anomaly), a boolean alarm and optionally a score:

==========================  ===================================================================================
``detection_rate``          share of episodes (maximal runs of truth = 1) with at least one alarm inside
``false_alarm_rate``        share of normal rows (truth = 0) that alarm: a rate, never a count
``mean_detection_delay``    rows from an episode's start to its first alarm, over detected episodes
``precision``, ``recall``,  point-wise, of the alarm
``f1``
``roc_auc``, ``pr_auc``     of the score (``pr_auc`` is the average precision)
``n_episodes``              how many episodes the truth holds
==========================  ===================================================================================

Forecast, from actuals, a point forecast and an interval: ``mase``, ``smape`` (percent), ``mae``, ``rmse``,
``coverage`` (share inside the interval) and ``msis`` (mean scaled interval score, Gneiting & Raftery 2007, as in M4).
Undefined values are NaN.

>>> detection_metrics(np.array([0, 1, 1, 0]), np.array([False, False, True, False]))["mean_detection_delay"]
1.0
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "detection_metrics",
    "episodes",
    "forecast_metrics",
    "mase_scale",
    "normal_quantile",
]


def episodes(truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) row of each maximal run of ``truth`` = 1."""
    edges = np.diff(np.concatenate([[0], np.asarray(truth, dtype=np.int8), [0]]))
    return np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)


def detection_metrics(
    truth: np.ndarray,
    alarm: np.ndarray,
    score: np.ndarray | None = None,
    times: np.ndarray | None = None,
) -> dict[str, float]:
    """The detection vocabulary above; with ``times`` (datetime64) also ``mean_detection_delay_s``."""
    y = np.asarray(truth).astype(bool)
    alarm = np.asarray(alarm).astype(bool)
    tp, fp, fn = int(np.sum(alarm & y)), int(np.sum(alarm & ~y)), int(np.sum(~alarm & y))
    metrics = {
        "precision": tp / (tp + fp) if tp + fp else np.nan,
        "recall": tp / (tp + fn) if tp + fn else np.nan,
        "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan,
        "false_alarm_rate": float(alarm[~y].mean()) if (~y).any() else np.nan,
        "roc_auc": np.nan,
        "pr_auc": np.nan,
    }
    if score is not None and 0 < y.sum() < len(y):
        from sklearn.metrics import average_precision_score, roc_auc_score

        finite = np.nan_to_num(np.asarray(score, dtype=float), nan=0.0, posinf=np.finfo(float).max)
        metrics["roc_auc"] = float(roc_auc_score(y, finite))
        metrics["pr_auc"] = float(average_precision_score(y, finite))
    starts, ends = episodes(y)
    alarm_rows = np.flatnonzero(alarm)
    nxt = np.searchsorted(alarm_rows, starts)
    first = alarm_rows[np.minimum(nxt, len(alarm_rows) - 1)] if len(alarm_rows) else starts
    detected = (nxt < len(alarm_rows)) & (first < ends)
    metrics["n_episodes"] = float(len(starts))
    metrics["detection_rate"] = float(detected.mean()) if len(starts) else np.nan
    metrics["mean_detection_delay"] = float(np.mean(first - starts, where=detected)) if detected.any() else np.nan
    if times is not None:
        delays = (times[first] - times[starts]) / np.timedelta64(1, "s")
        metrics["mean_detection_delay_s"] = float(np.mean(delays, where=detected)) if detected.any() else np.nan
    return {key: float(value) for key, value in metrics.items()}


def mase_scale(y: np.ndarray, season_length: int) -> float:
    """In-sample MAE of the seasonal naive forecast (lag ``season_length``, or 1 if the series is too short)."""
    lag = season_length if len(y) > season_length else 1
    diffs = np.abs(y[lag:] - y[:-lag])
    scale = float(np.mean(diffs)) if diffs.size else float("nan")
    return scale if scale > 0 else float("nan")


def forecast_metrics(
    actual: np.ndarray,
    mean: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    scale: float,
    level: float | None = None,
) -> dict[str, float]:
    """MASE (scaled by ``scale``), sMAPE (percent), MAE, RMSE, interval coverage and, given the interval's
    ``level`` (e.g. 0.95), its MSIS."""
    err = actual - mean
    mae = float(np.mean(np.abs(err)))
    denom = np.abs(actual) + np.abs(mean)
    ratio = np.divide(2 * np.abs(err), denom, out=np.zeros_like(denom, dtype=float), where=denom > 0)
    metrics = {
        "mase": mae / scale if scale > 0 else float("nan"),
        "smape": float(100 * np.mean(ratio)),
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "coverage": float(np.mean((actual >= lower) & (actual <= upper))),
    }
    if level is not None:
        alpha = 1.0 - level
        penalty = (2 / alpha) * ((lower - actual) * (actual < lower) + (actual - upper) * (actual > upper))
        metrics["msis"] = float(np.mean(upper - lower + penalty)) / scale if scale > 0 else float("nan")
    return metrics


def normal_quantile(level: float) -> float:
    """The two-sided standard-normal quantile of a central interval of ``level`` (1.96 for 0.95)."""
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))
