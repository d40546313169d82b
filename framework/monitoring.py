"""Drift, alerts and retrain decisions for a scored stream: pure functions of the data, no network.

Three detectors, each calibrated on the reference (the data of the model in service), never on a fixed p-value:

- ``FeatureDrift``: per feature, a distance between the window and the reference (``wasserstein``, ``ks`` or
  ``psi``). Its threshold comes from the same distance between contiguous chunks of the reference, at the window's
  size, and the rest of the reference (NannyML's approach; contiguous chunks carry the data's autocorrelation).
  The chunk distances are matched by a gamma law and the threshold is its ``1 - alpha / n_features`` quantile
  (Bonferroni across features; ``alpha = window / 1_000_000``, so about one false event per million stationary rows
  at any window size); its mean and spread are taken at upper confidence bounds when the reference holds few
  independent chunks.
- ``ScoreChange``: a one-sided CUSUM on the model's own score (SPE/T²/combined index for PCA, ``|residual|``
  for forecasts), mapped to normal quantiles of the reference scores and averaged over blocks of rows. Its
  block variance and its decision limit come from the reference (Siegmund's ARL approximation), so a correlation
  change that no single feature shows still raises it.
- ``ForecastTracker``: rolling MASE and interval coverage over the last ``over_rows`` rows that brought actuals,
  checked against ``on_metric`` at each window's end.

``decide`` is the retrain rule (README, "Retraining on drift"): in fault detection, drift while the alarm rate is
above its limit is a *fault* (reported, never retrained on); drift with the alarm rate inside it is *benign* and
retrains only with ``on_drift``; ``cooldown_rows`` rows must pass after a retrain before drift or a metric may
trigger the next. ``StreamMonitor`` ties them together for a stream scorer:

>>> monitor = StreamMonitor("pump-7", model, reference=train)
>>> update = monitor.observe(batch, predictions)        # once per scored micro-batch
>>> update.events, update.retrain_rows                 # JSON-ready dicts; rows to retrain on, or None
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from framework.config import ExperimentSpec, MetricTrigger, MonitoringSpec, RetrainPolicy
from framework.errors import DataValidationError

__all__ = [
    "Decision",
    "FeatureDrift",
    "ForecastTracker",
    "MonitorUpdate",
    "ScoreChange",
    "StreamMonitor",
    "WindowStats",
    "alarm_rate_limit",
    "decide",
    "drift_statistic",
]

Method = Literal["wasserstein", "ks", "psi"]
Kind = Literal["detection", "forecast"]

FALSE_EVENT_ROWS = 1_000_000  # stationary rows per expected false feature-drift event (sets each window's alpha)
MAX_REFERENCE_ROWS = 20_000  # the most recent reference rows kept per feature
N_CHUNKS = 100  # reference chunks drawn to calibrate each feature's threshold
PSI_BINS = 10
PSI_FLOOR = 1e-4  # bin share used for an empty bin (PSI is infinite otherwise)
CUSUM_K = 0.5  # allowance, in block standard deviations: tuned to a shift of one block sigma
CUSUM_ARL_ROWS = 2_000_000  # in-control average run length of the score CUSUM, in rows
BLOCKS_PER_WINDOW = 20
MIN_BLOCK_ROWS = 10


# -------------------------------------------------------------------------------------------- statistics
def _ecdf(sorted_values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Share of ``sorted_values`` <= each grid point (broadcasts over leading axes of ``sorted_values``)."""
    if sorted_values.ndim == 1:
        return np.searchsorted(sorted_values, grid, side="right") / len(sorted_values)
    return np.stack([np.searchsorted(row, grid, side="right") for row in sorted_values]) / sorted_values.shape[1]


def drift_statistic(method: Method, window: np.ndarray, reference: np.ndarray) -> float:
    """``wasserstein`` (W1), ``ks`` (the two-sample KS statistic D) or ``psi`` (on the reference's deciles).

    W1 and D equal ``scipy.stats.wasserstein_distance`` and ``scipy.stats.ks_2samp(...).statistic``; they are
    computed here from the two empirical CDFs because scipy's 1-D Wasserstein costs ~30 ms a call (scipy 1.17).
    """
    x, ref = np.sort(window[np.isfinite(window)]), np.sort(reference[np.isfinite(reference)])
    if not len(x) or not len(ref):
        return float("nan")
    if method == "psi":
        edges = _psi_edges(ref)
        return float(_psi(_bin_shares(x, edges), _bin_shares(ref, edges)))
    grid = np.sort(np.concatenate([x, ref]))
    gap = np.abs(_ecdf(x, grid[:-1]) - _ecdf(ref, grid[:-1]))
    return float(np.sum(gap * np.diff(grid))) if method == "wasserstein" else float(gap.max(initial=0.0))


def _psi_edges(sorted_ref: np.ndarray) -> np.ndarray:
    return np.unique(np.quantile(sorted_ref, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))


def _bin_shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def _psi(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    p, q = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
    return np.sum((p - q) * np.log(p / q), axis=-1)


def _chunk_statistics(method: Method, reference: np.ndarray, starts: np.ndarray, size: int) -> np.ndarray:
    """The statistic of each contiguous chunk ``reference[s:s+size]`` against the rest of the reference."""
    values = reference[np.isfinite(reference)]
    n = len(values)
    chunks = np.sort(np.stack([values[s : s + size] for s in starts]), axis=1)
    grid = np.sort(values)
    if method == "psi":
        edges = _psi_edges(grid)
        inside = np.stack([_bin_shares(row, edges) for row in chunks])
        rest = (_bin_shares(grid, edges) * n - inside * size) / (n - size)
        return _psi(inside, rest)
    inside = _ecdf(chunks, grid[:-1])
    rest = (_ecdf(grid, grid[:-1]) * n - inside * size) / (n - size)
    gap = np.abs(inside - rest)
    return gap @ np.diff(grid) if method == "wasserstein" else gap.max(axis=1)


def _upper_quantile(samples: np.ndarray, level: float, n_independent: int) -> float:
    """``level`` quantile of a gamma law matched to ``samples``' mean and spread, each taken at an upper
    confidence bound for a reference of ``n_independent`` independent chunks (a short reference: a higher bar)."""
    from scipy.stats import chi2, gamma

    n = max(n_independent, 2)
    sd = float(samples.std(ddof=1)) * math.sqrt((n - 1) / chi2.ppf(0.2, n - 1))
    mean = float(samples.mean()) + float(samples.std(ddof=1)) / math.sqrt(n)
    if not sd > 0 or not mean > 0:
        return float(samples.max()) if len(samples) else float("inf")
    shape = (mean / sd) ** 2
    return float(gamma.ppf(level, shape, scale=sd * sd / mean))


# ------------------------------------------------------------------------------------------ detectors
@dataclass(frozen=True)
class FeatureResult:
    feature: str
    statistic: float
    threshold: float

    @property
    def drifted(self) -> bool:
        return bool(self.statistic > self.threshold)


class FeatureDrift:
    """Per-feature drift of a window against the reference, each feature with its calibrated threshold.

    >>> detector = FeatureDrift("wasserstein", window=2000).fit(train[["s01", "s02"]])
    >>> [r for r in detector.check(live.tail(2000)) if r.drifted]
    """

    def __init__(
        self,
        method: Method = "wasserstein",
        window: int = 2000,
        *,
        false_event_rows: int = FALSE_EVENT_ROWS,
        seed: int = 0,
    ) -> None:
        self.method, self.window, self.false_event_rows, self.seed = method, window, false_event_rows, seed

    def fit(self, reference: pd.DataFrame) -> FeatureDrift:
        """Keep the reference and calibrate one threshold per column; it needs at least two windows of rows."""
        if len(reference) < 2 * self.window:
            raise DataValidationError(
                f"drift needs a reference of at least 2 windows ({2 * self.window} rows); got {len(reference)}",
                field="monitoring.window",
            )
        rng = np.random.default_rng(self.seed)
        alpha = min(self.window / self.false_event_rows, 0.5)  # per window, all features together
        level = 1 - alpha / max(reference.shape[1], 1)
        reference = reference.tail(MAX_REFERENCE_ROWS)
        self.features_ = [str(c) for c in reference.columns]
        self.reference_ = {str(c): reference[c].to_numpy(dtype=float) for c in reference.columns}
        thresholds = {}
        for feature, values in self.reference_.items():
            finite = values[np.isfinite(values)]
            if len(finite) < 2 * self.window or np.ptp(finite) == 0:
                continue  # constant or mostly missing: nothing to compare
            starts = rng.integers(0, len(finite) - self.window + 1, size=N_CHUNKS)
            samples = _chunk_statistics(self.method, finite, starts, self.window)
            thresholds[feature] = _upper_quantile(samples, level, len(finite) // self.window)
        self.thresholds_ = thresholds
        return self

    def check(self, window: pd.DataFrame) -> list[FeatureResult]:
        """One result per calibrated feature present in ``window``."""
        columns = {str(c): c for c in window.columns}
        return [
            FeatureResult(f, drift_statistic(self.method, window[columns[f]].to_numpy(float), self.reference_[f]), thr)
            for f, thr in self.thresholds_.items()
            if f in columns
        ]


class ScoreChange:
    """One-sided CUSUM on the model's score, calibrated on the reference scores (in time order).

    Each score becomes the normal quantile of its rank among the reference scores; block means of ``block``
    rows are standardised by the reference's block variance (measured on window-long chunks, so slow
    autocorrelation counts, and taken at its upper 80 % confidence bound) and fed to ``S = max(0, S + u - k)``;
    ``S > h`` is a change, then ``S`` restarts.

    >>> change = ScoreChange(window=2000).fit(reference_scores)
    >>> change.update(live_scores)      # row offsets (within the call) where a change was signalled
    """

    def __init__(self, window: int = 2000, *, arl_rows: int = CUSUM_ARL_ROWS, seed: int = 0) -> None:
        self.window, self.arl_rows, self.seed = window, arl_rows, seed

    def fit(self, scores: np.ndarray) -> ScoreChange:
        from scipy.stats import chi2

        scores = np.asarray(scores, dtype=float)
        scores = scores[np.isfinite(scores)]
        self.block_ = max(MIN_BLOCK_ROWS, self.window // BLOCKS_PER_WINDOW)
        if len(scores) < 2 * self.window:
            raise DataValidationError(
                f"the score detector needs at least 2 windows of reference scores ({2 * self.window})",
                field="monitoring.window",
            )
        self.reference_ = np.sort(scores)
        z = self._normal_scores(scores)
        blocks_per_window = self.window // self.block_
        rng = np.random.default_rng(self.seed)
        starts = rng.integers(0, len(z) - self.window + 1, size=N_CHUNKS)
        window_means = np.array([z[s : s + blocks_per_window * self.block_].mean() for s in starts])
        n_blocks = len(z) // self.block_
        block_means = z[: n_blocks * self.block_].reshape(n_blocks, self.block_).mean(axis=1)
        self.center_ = float(z.mean())
        sigma = max(window_means.std(ddof=1) * math.sqrt(blocks_per_window), block_means.std(ddof=1))
        independent = max(len(z) // self.window, 2)  # upper 80 % bound of sigma from that many windows
        self.sigma_ = float(sigma * math.sqrt((independent - 1) / chi2.ppf(0.2, independent - 1)))
        self.h_ = _cusum_limit(CUSUM_K, self.arl_rows / self.block_)
        self.statistic_ = 0.0
        self._pending = np.empty(0)
        return self

    def _normal_scores(self, scores: np.ndarray) -> np.ndarray:
        from scipy.stats import norm

        n = len(self.reference_)
        ranks = np.searchsorted(self.reference_, scores, side="right")
        return norm.ppf(np.clip(ranks, 0.5, n - 0.5) / n)

    def update(self, scores: np.ndarray) -> list[int]:
        """Feed scores in stream order; returns the offsets (into ``scores``) of each signalled change."""
        ends, _, signalled = self.path(scores)
        return ends[signalled].tolist()

    def path(self, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Feed scores in stream order; per completed block: its last row's offset into ``scores``, the
        statistic ``S`` after it (before a restart) and whether it signalled. Rows without a score (a forecast
        row with no actual yet) are skipped."""
        scores = np.asarray(scores, dtype=float)
        rows = np.flatnonzero(np.isfinite(scores))
        carried = len(self._pending)
        values = np.concatenate([self._pending, scores[rows]])
        n_blocks = len(values) // self.block_
        self._pending = values[n_blocks * self.block_ :]
        z = self._normal_scores(values[: n_blocks * self.block_]).reshape(n_blocks, self.block_).mean(axis=1)
        u = (z - self.center_) / self.sigma_ - CUSUM_K
        path, signalled, s = np.empty(n_blocks), np.zeros(n_blocks, dtype=bool), self.statistic_
        for j, step in enumerate(u):  # one step per block (window/20 rows), not per row
            s = max(0.0, s + step)
            path[j], signalled[j] = s, s > self.h_
            if signalled[j]:
                s = 0.0
        self.statistic_ = s
        return rows[np.arange(1, n_blocks + 1) * self.block_ - carried - 1], path, signalled


def _cusum_limit(k: float, arl_blocks: float) -> float:
    """Decision limit ``h`` of a one-sided CUSUM for an in-control ARL (Siegmund's approximation, N(0,1) steps)."""
    from scipy.optimize import brentq

    def arl(h: float) -> float:
        b = h + 1.166
        return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k) - arl_blocks

    return float(brentq(arl, 0.1, 100.0))


class ForecastTracker:
    """Rolling MASE and interval coverage over the last ``rows`` forecasts that got their actuals.

    >>> tracker = ForecastTracker(rows=500, scale=model.scale_)
    >>> tracker.update(predictions)          # predictions with actual, forecast, lower, upper
    >>> tracker.values()                     # {"mase": ..., "coverage": ...}, NaN until rows are in
    """

    def __init__(self, rows: int = 500, scale: float = float("nan")) -> None:
        self.rows, self.scale = rows, scale
        self._errors = np.empty(0)
        self._inside = np.empty(0, dtype=bool)

    def update(self, predictions: pd.DataFrame) -> None:
        if not {"actual", "forecast"} <= set(predictions.columns):
            return
        actual = predictions["actual"].to_numpy(dtype=float)
        forecast = predictions["forecast"].to_numpy(dtype=float)
        known = np.isfinite(actual) & np.isfinite(forecast)
        lower = predictions.get("lower", pd.Series(-np.inf, index=predictions.index)).to_numpy(dtype=float)
        upper = predictions.get("upper", pd.Series(np.inf, index=predictions.index)).to_numpy(dtype=float)
        self._errors = np.concatenate([self._errors, np.abs(actual - forecast)[known]])[-self.rows :]
        inside = (actual >= lower) & (actual <= upper)
        self._inside = np.concatenate([self._inside, inside[known]])[-self.rows :]

    @property
    def n_rows(self) -> int:
        return len(self._errors)

    def values(self) -> dict[str, float]:
        if not self.n_rows:
            return {"mase": float("nan"), "coverage": float("nan")}
        mase = float(self._errors.mean() / self.scale) if self.scale > 0 else float("nan")
        return {"mase": mase, "coverage": float(self._inside.mean())}

    def breached(self, trigger: MetricTrigger) -> bool:
        """The trigger's metric over a full ``over_rows`` rows is past its bound."""
        if self.n_rows < min(trigger.over_rows, self.rows):
            return False
        value = self.values()[trigger.metric]
        return bool(value > trigger.bound) if trigger.above is not None else bool(value < trigger.bound)

    def reset(self) -> None:
        """Forget the rows (after a retrain: the next version is judged on its own forecasts)."""
        self._errors, self._inside = np.empty(0), np.empty(0, dtype=bool)


# ---------------------------------------------------------------------------------------------- policy
@dataclass(frozen=True)
class WindowStats:
    """What one evaluation window showed."""

    start_row: int
    end_row: int  # exclusive, counted from the start of the stream
    alarm_rate: float
    alarm_rate_limit: float
    features: tuple[FeatureResult, ...] = ()
    score_change: bool = False
    score_statistic: float = 0.0
    score_threshold: float = float("inf")
    metrics: dict[str, float] = field(default_factory=dict)
    metric_breached: bool = False

    def to_metrics(self) -> dict[str, float]:
        """Flat metrics for the monitoring run (logged at step ``end_row``): rows, alarm rate, each feature's
        statistic over its threshold (above 1 is drift), the score CUSUM over its limit, MASE and coverage."""
        metrics = {
            "rows": float(self.end_row - self.start_row),
            "alarm_rate": self.alarm_rate,
            "drift_features": float(len(self.drifted_features)),
            "score_cusum_ratio": self.score_statistic / self.score_threshold if self.score_threshold else 0.0,
        }
        metrics |= {f"drift_ratio.{r.feature}": r.statistic / r.threshold for r in self.features if r.threshold > 0}
        return metrics | {k: v for k, v in self.metrics.items() if np.isfinite(v)}

    @property
    def drifted_features(self) -> list[FeatureResult]:
        return [r for r in self.features if r.drifted]

    @property
    def drift(self) -> bool:
        return bool(self.drifted_features) or self.score_change

    @property
    def alarming(self) -> bool:
        return self.alarm_rate > self.alarm_rate_limit


@dataclass(frozen=True)
class Decision:
    """The policy's verdict on one window: its kind, the events to publish, and whether to retrain."""

    kind: Literal["normal", "drift", "fault", "alert"]
    events: list[dict[str, Any]]
    retrain: bool = False
    reason: str = ""


def alarm_rate_limit(target: float, window: int) -> float:
    """The alarm rate a window may show before it is an alarm episode: the champion gate's bound,
    ``target + max(target, 3·sqrt(target·(1 - target) / window))``, with ``target`` at least one alarm per window."""
    target = max(target, 1.0 / window)
    return float(target + max(target, 3 * math.sqrt(target * (1 - target) / window)))


def decide(
    experiment: str,
    stats: WindowStats,
    *,
    kind: Kind,
    policy: RetrainPolicy,
    monitoring: MonitoringSpec,
    rows_since_retrain: int,
    previous: str = "normal",
) -> Decision:
    """The retrain rule for one window; pure (the caller keeps ``previous``, the last window's kind).

    - fault detection, drift while alarming: ``fault`` (event, never a retrain);
    - drift otherwise: ``drift``; retrain when ``on_drift`` and ``cooldown_rows`` rows passed since the last one;
    - a forecast metric past its bound for ``over_rows`` rows: retrain, under the same cooldown;
    - alarms without drift: ``alert``.
    Events are published when the kind changes (an episode starts), and whenever the action is a retrain.
    """
    alerts = monitoring.alerts
    drift = stats.drift and (alerts.drift or bool(policy.on_drift))
    cooling = rows_since_retrain < policy.cooldown_rows
    if drift and stats.alarming and kind == "detection":
        verdict, action = "fault", "none: drift during an alarm episode is a fault, never retrained on"
    elif drift:
        verdict = "drift"
        if not policy.on_drift:
            action = "none: retrain.on_drift is off"
        elif cooling:
            action = f"none: cooldown, {policy.cooldown_rows - rows_since_retrain} rows left"
        else:
            action = "retrain"
    elif stats.alarming:
        verdict, action = "alert", "none: alarm rate above its limit"
    else:
        verdict, action = "normal", "none"
    events = []
    if verdict != "normal" and (verdict != previous or action == "retrain"):
        events.append(_event(experiment, verdict, stats, monitoring, action))
    retrain = action == "retrain"
    if not retrain and stats.metric_breached and policy.on_metric is not None and verdict != "fault":
        trigger = policy.on_metric
        metric_action = (
            f"none: cooldown, {policy.cooldown_rows - rows_since_retrain} rows left" if cooling else "retrain"
        )
        events.append(_metric_event(experiment, stats, trigger, metric_action))
        retrain = not cooling
    return Decision(verdict, events, retrain, action if action == "retrain" else ("on_metric" if retrain else ""))


def _window(stats: WindowStats) -> dict[str, int]:
    return {"start_row": stats.start_row, "end_row": stats.end_row, "rows": stats.end_row - stats.start_row}


def _event(experiment: str, kind: str, stats: WindowStats, monitoring: MonitoringSpec, action: str) -> dict[str, Any]:
    drifted = stats.drifted_features
    score = {"score": (stats.score_statistic, stats.score_threshold)} if stats.score_change else {}
    values = {r.feature: (r.statistic, r.threshold) for r in drifted} | score
    return {
        "experiment": experiment,
        "kind": kind,
        "features": list(values),
        "statistic": monitoring.drift.method if drifted else ("score_cusum" if stats.score_change else "alarm_rate"),
        "values": {r.feature: r.statistic for r in drifted}
        | ({"score": stats.score_statistic} if stats.score_change else {}),
        "thresholds": {r.feature: r.threshold for r in drifted}
        | ({"score": stats.score_threshold} if stats.score_change else {}),
        "alarm_rate": stats.alarm_rate,
        "alarm_rate_limit": stats.alarm_rate_limit,
        "window": _window(stats),
        "action": action,
    }


def _metric_event(experiment: str, stats: WindowStats, trigger: MetricTrigger, action: str) -> dict[str, Any]:
    return {
        "experiment": experiment,
        "kind": "metric",
        "features": [],
        "statistic": trigger.metric,
        "values": {trigger.metric: stats.metrics.get(trigger.metric, float("nan"))},
        "thresholds": {trigger.metric: trigger.bound},
        "over_rows": trigger.over_rows,
        "window": _window(stats),
        "action": action,
    }


# ------------------------------------------------------------------------------------------ the monitor
@dataclass
class MonitorUpdate:
    """What one ``observe`` call produced."""

    windows: list[WindowStats] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    retrain_rows: pd.DataFrame | None = None  # rows to retrain on (not flagged), when a retrain is due
    retrain_reason: str = ""


class StreamMonitor:
    """Drift, alerts and retrain decisions for one served model; the scorer calls ``observe`` per micro-batch.

    With ``reference`` (the model's training rows) it calibrates at once; without, on the first
    ``reference_windows`` windows of rows it observes (rows the model flagged are left out of the features'
    reference). Results never depend on how the stream was cut into batches.

    >>> monitor = StreamMonitor.for_model("pump-7", model, reference=train)
    >>> update = monitor.observe(batch, model.predict(batch))
    """

    def __init__(
        self,
        experiment: str,
        spec: ExperimentSpec,
        *,
        features: Sequence[str],
        target_alarm_rate: float = 0.0,
        mase_scale: float = float("nan"),
        reference: pd.DataFrame | None = None,
        reference_scores: np.ndarray | None = None,
        reference_windows: int = 5,
        seed: int = 0,
    ) -> None:
        spec = type(spec).model_validate(spec.model_dump())  # a spec pickled by an older release gets the defaults
        self.experiment, self.kind = experiment, spec.monitoring_kind
        self.monitoring, self.policy = spec.monitoring, spec.retrain
        self.window = self.monitoring.window
        wanted = self.monitoring.drift.features
        self.features = [f for f in features if wanted == "all" or f in wanted]
        self.limit = alarm_rate_limit(target_alarm_rate, self.window)
        self.seed, self.reference_rows = seed, reference_windows * self.window
        self.forecast = ForecastTracker(self.policy.on_metric.over_rows if self.policy.on_metric else 500, mase_scale)
        self.drift_: FeatureDrift | None = None
        self.score_: ScoreChange | None = None
        self.rows_seen = self.rows_since_retrain = 0
        self.previous = "normal"
        self._warm: list[pd.DataFrame] = []  # warm-up rows (features + "__score", "__flag")
        self._window: list[pd.DataFrame] = []
        self._window_start = 0
        self._score_path: list[np.ndarray] = []  # rows of (stream row, S, signalled) per CUSUM block
        self._recent: list[pd.DataFrame] = []
        if reference is not None:
            scores = reference_scores if reference_scores is not None else np.full(len(reference), np.nan)
            self._calibrate(reference[self.features], np.asarray(scores, dtype=float))

    @classmethod
    def for_model(cls, experiment: str, model: Any, reference: pd.DataFrame | None = None) -> StreamMonitor:
        """Read features, target alarm rate and MASE scale from a fitted experiment; score ``reference`` with it."""
        spec, scale = model.spec, float("nan")
        if spec.monitoring_kind == "forecast":
            features, scale = [spec.target], float(getattr(model, "scale_", scale))  # the in-sample MASE scale
        else:
            features = list(getattr(model, "features_in_", None) or spec.features or [])
        target = getattr(getattr(spec, "threshold", None), "false_alarm_rate", 0.0)
        scores = None
        if reference is not None:
            scores = _score_column(model.predict(reference), spec.monitoring_kind)
        return cls(
            experiment,
            spec,
            features=features,
            target_alarm_rate=float(target or 0.0),
            mase_scale=scale,
            reference=reference,
            reference_scores=scores,
        )

    @property
    def calibrated(self) -> bool:
        return self.drift_ is not None

    def _calibrate(self, reference: pd.DataFrame, scores: np.ndarray) -> None:
        self.drift_ = FeatureDrift(self.monitoring.drift.method, self.window, seed=self.seed).fit(reference)
        finite = scores[np.isfinite(scores)]
        self.score_ = ScoreChange(self.window, seed=self.seed).fit(finite) if len(finite) >= 2 * self.window else None

    def observe(self, frame: pd.DataFrame, predictions: pd.DataFrame) -> MonitorUpdate:
        """Take one scored micro-batch (``frame`` and its ``predictions``, row for row)."""
        update = MonitorUpdate()
        if len(frame) != len(predictions) or frame.empty:
            return update
        frame, predictions = frame.reset_index(drop=True), predictions.reset_index(drop=True)
        flagged = (
            predictions["is_anomaly"].to_numpy(dtype=bool)
            if "is_anomaly" in predictions.columns
            else np.zeros(len(frame), dtype=bool)
        )
        self._keep_recent(frame.loc[~flagged])
        self.rows_seen += len(frame)
        self.rows_since_retrain += len(frame)
        rows = frame.reindex(columns=self.features).assign(
            __score=_score_column(predictions, self.kind), __flag=flagged
        )
        if not self.calibrated:
            self._warm_up(rows)
        else:
            if self.score_ is not None:
                ends, path, signalled = self.score_.path(rows["__score"].to_numpy())
                self._score_path.append(np.column_stack([ends + self.rows_seen - len(rows), path, signalled]))
            self.forecast.update(predictions)
            self._window.append(rows)
            self._close_windows(update)
        every = self.policy.every_n_rows
        if update.retrain_rows is None and every and self.rows_since_retrain >= every and self.previous != "fault":
            self._retrain(update, "every_n_rows")
        return update

    def _warm_up(self, rows: pd.DataFrame) -> None:
        self._warm.append(rows)
        warm = pd.concat(self._warm, ignore_index=True)
        if len(warm) < self.reference_rows:
            self._warm = [warm]
            return
        self._warm = []
        normal = warm.loc[~warm["__flag"].to_numpy(dtype=bool), self.features]
        if len(normal) < 2 * self.window:
            return  # an alarm-heavy start: wait for calmer rows
        self._calibrate(normal, warm["__score"].to_numpy(dtype=float))
        self._window_start = self.rows_seen

    def _close_windows(self, update: MonitorUpdate) -> None:
        pending = pd.concat(self._window, ignore_index=True)
        while len(pending) >= self.window:
            current, pending = pending.iloc[: self.window], pending.iloc[self.window :]
            stats = self._stats(current)
            update.windows.append(stats)
            decision = decide(
                self.experiment,
                stats,
                kind=self.kind,
                policy=self.policy,
                monitoring=self.monitoring,
                rows_since_retrain=self.rows_since_retrain,
                previous=self.previous,
            )
            self.previous = decision.kind
            update.events.extend(decision.events)
            if decision.retrain and update.retrain_rows is None:
                self._retrain(update, decision.reason)
        self._window = [pending]

    def _stats(self, current: pd.DataFrame) -> WindowStats:
        assert self.drift_ is not None
        start, self._window_start = self._window_start, self._window_start + len(current)
        blocks = np.concatenate([np.empty((0, 3)), *self._score_path])
        inside = blocks[:, 0] < start + len(current)
        self._score_path = [blocks[~inside]]
        signalled, peak = bool(blocks[inside, 2].any()), float(blocks[inside, 1].max(initial=0.0))
        metrics = self.forecast.values() if self.kind == "forecast" else {}
        trigger = self.policy.on_metric
        return WindowStats(
            start_row=start,
            end_row=start + len(current),
            alarm_rate=float(current["__flag"].mean()),
            alarm_rate_limit=self.limit,
            features=tuple(self.drift_.check(current)),
            score_change=signalled,
            score_statistic=peak,
            score_threshold=self.score_.h_ if self.score_ else float("inf"),
            metrics=metrics,
            metric_breached=trigger is not None and self.forecast.breached(trigger),
        )

    def _keep_recent(self, normal: pd.DataFrame) -> None:
        keep = self.policy.window or self.policy.every_n_rows or 10 * self.window
        self._recent.append(normal)
        if sum(len(part) for part in self._recent) > 2 * keep:
            self._recent = [pd.concat(self._recent, ignore_index=True).tail(keep)]

    def _retrain(self, update: MonitorUpdate, reason: str) -> None:
        keep = self.policy.window or self.policy.every_n_rows or 10 * self.window
        update.retrain_rows = pd.concat(self._recent, ignore_index=True).tail(keep)
        update.retrain_reason = reason
        self._recent = [update.retrain_rows]
        self.rows_since_retrain = 0
        self.forecast.reset()


def _score_column(predictions: pd.DataFrame, kind: Kind) -> np.ndarray:
    """The model's own score, larger when stranger: ``score`` (``|score|`` for forecast residuals)."""
    if "score" not in predictions.columns:
        return np.full(len(predictions), np.nan)
    score = pd.to_numeric(predictions["score"], errors="coerce").to_numpy(dtype=float)
    return np.abs(score) if kind == "forecast" else score
