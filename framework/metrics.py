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

Range-aware detection (``range_detection_metrics``), for anomalies that last (a level shift, a variance change):

==========================  ===================================================================================
``pa_precision``,           point-adjusted (Xu et al. 2018): an episode with at least one alarm counts as wholly
``pa_recall``, ``pa_f1``    detected, then point-wise scores. Generous: one alarm in a long episode scores it all
``range_precision``,        range-based (Tatbul et al. 2018): mean over alarm runs of the share inside an episode,
``range_recall``,           and over episodes of the share alarmed (``alpha`` rewards mere existence); flat
``range_f1``                positional bias, cardinality factor one (``range_precision_recall``)
``range_pr_auc``            area under the range-based precision-recall curve of the score (``range_pr_auc``)
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
    "point_adjust",
    "range_detection_metrics",
    "range_pr_auc",
    "range_precision_recall",
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


def point_adjust(truth: np.ndarray, alarm: np.ndarray) -> np.ndarray:
    """The alarm with every episode that holds at least one alarm filled in (the point adjustment of Xu et al.,
    "Unsupervised Anomaly Detection via Variational Auto-Encoder for Seasonal KPIs in Web Applications", WWW 2018).

    >>> point_adjust(np.array([0, 1, 1, 1, 0]), np.array([0, 0, 1, 0, 1])).astype(int)
    array([0, 1, 1, 1, 1])
    """
    y = np.asarray(truth).astype(bool)
    adjusted = np.asarray(alarm).astype(bool).copy()
    starts, ends = episodes(y)
    if len(starts):
        detected = _overlap(adjusted, starts, ends) > 0
        episode = np.cumsum(np.bincount(starts, minlength=len(y))) - 1  # the episode a truth row belongs to
        adjusted |= y & detected[np.maximum(episode, 0)]
    return adjusted


def _overlap(mask: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """How many rows of ``mask`` each run ``[start, end)`` holds."""
    cum = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
    return cum[ends] - cum[starts]


def range_precision_recall(
    truth: np.ndarray, alarm: np.ndarray, *, alpha: float = 0.0, cardinality: str = "one"
) -> tuple[float, float]:
    """Range-based precision and recall (Tatbul, Lee, Zdonik, Alam & Gottschlich, "Precision and Recall for Time
    Series", NeurIPS 2018), with the flat positional bias.

    The real ranges R_i are the episodes of ``truth``, the predicted ranges P_j the runs of ``alarm``.
    Recall = mean over R_i of ``alpha * [R_i meets an alarm] + (1 - alpha) * gamma * |R_i & alarm| / |R_i|``;
    precision = mean over P_j of ``gamma * |P_j & truth| / |P_j|`` (no existence reward). ``gamma`` is the
    cardinality factor: 1 when the range meets at most one range of the other side, else 1 (``"one"``) or
    1 / how many it meets (``"reciprocal"``, which penalises a detection broken into pieces). With single-point
    episodes and alarms these are the point-wise precision and recall. Undefined (no alarm, no episode) is NaN.

    >>> range_precision_recall(np.array([0, 1, 1, 1, 1, 0]), np.array([0, 1, 0, 0, 0, 1]))
    (0.5, 0.25)
    """
    if cardinality not in ("one", "reciprocal"):
        raise ValueError(f"cardinality must be 'one' or 'reciprocal', got {cardinality!r}")
    y = np.asarray(truth).astype(bool)
    a = np.asarray(alarm).astype(bool)
    both = y & a
    pieces = both & ~np.concatenate([[False], both[:-1]])  # each run of both lies in one R_i and one P_j
    scores = []
    for mask in (y, a):  # recall over the real ranges, then precision over the predicted ones
        starts, ends = episodes(mask)
        if not len(starts):
            scores.append(float("nan"))
            continue
        share = _overlap(both, starts, ends) / (ends - starts)
        if cardinality == "reciprocal":
            meets = _overlap(pieces, starts, ends)
            share = share / np.maximum(meets, 1)
        if mask is y:
            share = alpha * (share > 0) + (1 - alpha) * share
        scores.append(float(np.mean(share)))
    recall, precision = scores
    return precision, recall


def range_pr_auc(truth: np.ndarray, score: np.ndarray, *, alpha: float = 0.0, max_thresholds: int = 250) -> float:
    """Area under the range-based precision-recall curve of ``score`` (``range_precision_recall``, cardinality one).

    Every distinct score is a threshold (alarm = ``score >= threshold``; NaN never alarms; above
    ``max_thresholds`` distinct values, that many evenly spaced quantiles of them, as the range-AUC of Paparrizos
    et al., VLDB 2022, does). The area is the step sum of average precision, ``sum (R_k - R_k-1) * P_k`` from
    the highest threshold down, starting at recall 0; with cardinality one the range recall only grows as the
    threshold falls. NaN without an episode.

    >>> range_pr_auc(np.array([0, 1, 1, 0]), np.array([0.1, 0.9, 0.2, 0.5]))  # (0.5 * 1 + 0.5 * 2/3)
    0.8333333333333333
    """
    y = np.asarray(truth).astype(bool)
    s = np.asarray(score, dtype=float)
    if not y.any():
        return float("nan")
    values = np.unique(s[np.isfinite(s)])[::-1]
    if len(values) > max_thresholds:
        values = values[np.linspace(0, len(values) - 1, max_thresholds).round().astype(int)]
    s = np.where(np.isnan(s), -np.inf, s)
    area, last_recall = 0.0, 0.0
    for threshold in values:
        precision, recall = range_precision_recall(y, s >= threshold, alpha=alpha)
        area += (recall - last_recall) * precision
        last_recall = recall
    return float(area)


def range_detection_metrics(
    truth: np.ndarray, alarm: np.ndarray, score: np.ndarray | None = None, *, alpha: float = 0.0
) -> dict[str, float]:
    """The range-aware vocabulary above: ``pa_*`` (point-adjusted), ``range_*`` (Tatbul et al.) and, given
    ``score`` (larger is more anomalous), ``range_pr_auc``."""
    y = np.asarray(truth).astype(bool)
    alarm = np.asarray(alarm).astype(bool)
    adjusted = point_adjust(y, alarm)
    tp, fp, fn = int(np.sum(adjusted & y)), int(np.sum(adjusted & ~y)), int(np.sum(~adjusted & y))
    precision, recall = range_precision_recall(y, alarm, alpha=alpha)
    return {
        "pa_precision": tp / (tp + fp) if tp + fp else float("nan"),
        "pa_recall": tp / (tp + fn) if tp + fn else float("nan"),
        "pa_f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else float("nan"),
        "range_precision": precision,
        "range_recall": recall,
        "range_f1": 2 * precision * recall / (precision + recall) if precision + recall > 0 else float("nan"),
        "range_pr_auc": range_pr_auc(y, score, alpha=alpha) if score is not None else float("nan"),
    }


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
