"""Multivariate fault detection on sensor data: PCA-MSPC and scikit-learn outlier detectors.

The experiment standardizes the features, fits a detector from ``framework.models.detectors`` on normal
data, and calibrates its alarm threshold on held-out normal data to a target false-alarm rate.

Policy, in addition to the shared data policy in ``framework.Experiment``:

- **Time order.** With a ``timestamp`` in the spec, rows are sorted by time (stable) before fitting and
  scoring; ``predict`` still returns its rows in the input order, with the input's index.
- **Hold-out.** ``fit`` keeps the last ``calibration_fraction`` of the (time-ordered) rows out of the detector's
  fit. The threshold is the ``1 - false_alarm_rate`` quantile of the detector's scores on that hold-out. The detector
  is *not* refitted on all rows afterwards: a refit would shift the score distribution and void the threshold.
- **Persistence.** With ``threshold.persistence = {k, n}``, a row is an alarm only when at least ``k`` of the
  last ``n`` rows (itself included) exceed the threshold. The target rate applies to single exceedances, so
  persistence only lowers the alarm rate. ``predict`` counts rows within one call (no state between calls);
  ``predict_stream`` carries the last ``n - 1`` exceedance flags from call to call (``StreamState``).
- **Dynamic PCA.** With ``lags``, each ``predict`` batch is padded with copies of its first row for the
  history of its first rows; the hold-out is scored with its real history from the training rows, and
  ``predict_stream`` with the last ``lags`` rows of the previous calls. Streamed results therefore equal one
  ``predict`` over all the rows, however they were batched (rows arrive in time order).
- **Champion gate.** ``validate`` re-calibrates on the first half of the hold-out and counts exceedances on the
  second half; it passes when that rate is at most ``target + max(target, 3·sqrt(target·(1-target)/n))``
  (at least twice the target, more when the half is small).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from framework.config import ExperimentSpec, ModelSpec
from framework.errors import DataValidationError
from framework.Experiment import Experiment, Validation, coerce_timestamps
from framework.metrics import detection_metrics
from framework.models.detectors import Detector, build_detector
from framework.models.mspc import PCAMSPC, DetectorScores

__all__ = [
    "FaultDetectionExperiment",
    "FaultDetectionSpec",
    "PersistenceSpec",
    "StreamState",
    "ThresholdSpec",
]

logger = logging.getLogger(__name__)

PREVIEW_ROWS = 2000  # rows of hold-out data kept for figures()
TOP_K = 3  # features listed in ``top_features``
_SHARE_TEXT = np.array([f"{i / 100:.2f}" for i in range(101)], dtype=object)


@dataclass(frozen=True)
class StreamState:
    """What ``predict_stream`` carries between calls: the last ``lags`` feature rows (filled, time order) and the
    last ``n - 1`` exceedance flags of the persistence rule."""

    rows: np.ndarray
    exceed: np.ndarray


class PersistenceSpec(BaseModel):
    """Alarm only when ``k`` of the last ``n`` rows exceed the threshold."""

    model_config = ConfigDict(extra="forbid")

    k: int = Field(default=3, ge=1)
    n: int = Field(default=5, ge=1, le=10_000)

    @pydantic.model_validator(mode="after")
    def _k_within_n(self) -> PersistenceSpec:
        if self.k > self.n:
            raise ValueError(f"k ({self.k}) must not exceed n ({self.n})")
        return self


class ThresholdSpec(BaseModel):
    """How the alarm threshold is calibrated on held-out normal data."""

    model_config = ConfigDict(extra="forbid")

    false_alarm_rate: float = Field(default=0.01, gt=0, lt=0.5, description="target rate of exceedances")
    calibration_fraction: float = Field(default=0.2, ge=0.05, le=0.5, description="last share of rows held out")
    persistence: PersistenceSpec | None = None


class FaultDetectionSpec(ExperimentSpec):
    """Spec of a fault-detection experiment; every field has a default, unknown keys are refused."""

    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name="pca"))
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)  # type: ignore[assignment]


class FaultDetectionExperiment(Experiment):
    """Detect faults in multivariate sensor data and name the sensors behind each alarm.

    Parameters
    ----------
    spec
        A mapping validated into ``FaultDetectionSpec``: ``model`` (``{"name": "pca"}`` by default; see
        ``framework.models.detectors.DETECTORS``), ``features``, ``timestamp``, ``label``, ``threshold``.

    Attributes
    ----------
    metrics_ : dict[str, float]
        Set by ``fit``: ``n_train_rows`` (complete rows), ``n_fit_rows``, ``n_holdout_rows``, ``n_features``,
        ``threshold``, ``target_false_alarm_rate``, ``holdout_false_alarm_rate`` (alarms on the hold-out, after
        persistence), ``validation_false_alarm_rate`` (see ``validate``); for PCA also ``n_components``,
        ``explained_variance_ratio``, ``t2_limit``, ``spe_limit``, ``theoretical_threshold`` (the statistic's
        limit at ``alpha``) and ``theoretical_false_alarm_rate`` (its exceedance rate on the hold-out).
    features_in_, center_, scale_, median_, threshold_, detector_
        Features kept, the scaler, the medians that fill gaps in ``predict``, the threshold, the detector.
    preview_, correlation_
        The last (at most 2000) hold-out rows and the training correlation matrix, for ``figures()``.

    Examples
    --------
    >>> from framework.datasets.process import make_process
    >>> train, test = make_process(seed=0)
    >>> exp = FaultDetectionExperiment({"timestamp": "timestamp", "label": "fault"}).fit(train)
    >>> exp.predict(test)[["score", "threshold", "is_anomaly", "top_features"]].tail(2)
    >>> exp.evaluate(test)["roc_auc"], exp.validate().passed
    """

    spec_model = FaultDetectionSpec
    spec: FaultDetectionSpec

    def __init__(self, spec: Mapping[str, Any] | ExperimentSpec | None = None) -> None:
        super().__init__({} if spec is None else spec)
        build_detector(self.spec.model.name, self.spec.model.params)  # refuse a bad name or param now

    # ------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame) -> FaultDetectionExperiment:
        """Fit scaler and detector on normal ``df`` and calibrate the threshold on its last rows."""
        self._check_frame(df)
        times, order = self._times(df)
        features = [str(c) for c in self.feature_columns(df)]
        X = self._values(df, features)[order]
        times = None if times is None else times[order]

        if missing_columns := [f for f, empty in zip(features, np.isnan(X).all(axis=0), strict=True) if empty]:
            raise DataValidationError("the column has no values (all missing)", field=missing_columns[0])
        complete = ~np.isnan(X).any(axis=1)
        if not complete.all():
            self.warn(f"fit: dropped {int((~complete).sum())} of {len(X)} rows with a missing feature value")
            X, times = X[complete], None if times is None else times[complete]

        cfg = self.spec.threshold
        n_rows, n_features = X.shape
        min_rows = max(int(np.ceil((n_features + 2) / (1.0 - cfg.calibration_fraction))), 10)
        if n_rows < min_rows:
            raise DataValidationError(
                f"need at least {min_rows} complete rows for {n_features} features "
                f"(calibration_fraction {cfg.calibration_fraction}); got {n_rows}",
                field="data",
            )
        n_hold = max(2, round(cfg.calibration_fraction * n_rows))
        n_fit = n_rows - n_hold

        center, scale = X[:n_fit].mean(axis=0), X[:n_fit].std(axis=0)
        varying = scale > 1e-12 * (np.abs(center) + 1.0)
        if not varying.any():
            raise DataValidationError("every feature is constant in the training data", field="features")
        if not varying.all():
            dropped = [f for f, keep in zip(features, varying, strict=True) if not keep]
            self.warn(f"fit: dropped zero-variance feature(s) {dropped}")
            features, X, center, scale = (
                [f for f in features if f not in dropped],
                X[:, varying],
                center[varying],
                scale[varying],
            )
        Z = (X - center) / scale

        detector = build_detector(self.spec.model.name, self.spec.model.params).fit(Z[:n_fit])
        context = min(detector.context_rows, n_fit)
        holdout_scores = detector.score(Z[n_fit - context :], contributions=False).score[context:]
        threshold = float(np.quantile(holdout_scores, 1.0 - cfg.false_alarm_rate))

        self.features_in_ = features
        self.center_, self.scale_ = center, scale
        self.median_ = np.median(X[:n_fit], axis=0)
        self.detector_: Detector = detector
        self.threshold_ = threshold
        self.holdout_scores_ = holdout_scores
        self.correlation_ = pd.DataFrame(np.corrcoef(Z[:n_fit], rowvar=False), index=features, columns=features)
        preview = pd.DataFrame(X[-min(n_hold, PREVIEW_ROWS) :], columns=features)
        if times is not None:
            preview.insert(0, self.spec.timestamp, times[-len(preview) :])
        self.preview_ = preview
        self.metrics_ = self._fit_metrics(n_rows, n_fit, n_hold)
        logger.info(
            "fitted %s on %d rows x %d features; threshold %.4g", self.spec.model.name, n_fit, len(features), threshold
        )
        return self

    def _fit_metrics(self, n_rows: int, n_fit: int, n_hold: int) -> dict[str, float]:
        holdout_alarms = self._persist(self.holdout_scores_ > self.threshold_)
        metrics = {
            "n_train_rows": float(n_rows),
            "n_fit_rows": float(n_fit),
            "n_holdout_rows": float(n_hold),
            "n_features": float(len(self.features_in_)),
            "threshold": self.threshold_,
            "target_false_alarm_rate": self.spec.threshold.false_alarm_rate,
            "holdout_false_alarm_rate": float(holdout_alarms.mean()),
            "validation_false_alarm_rate": self._validation()[0],
        }
        if isinstance(self.detector_, PCAMSPC):
            metrics |= {
                "n_components": float(self.detector_.n_components_),
                "explained_variance_ratio": self.detector_.explained_variance_ratio_,
                "t2_limit": self.detector_.t2_limit_,
                "spe_limit": self.detector_.spe_limit_,
                "theoretical_threshold": self.detector_.limit_,
                "theoretical_false_alarm_rate": float(np.mean(self.holdout_scores_ > self.detector_.limit_)),
            }
        return metrics

    # -------------------------------------------------------------- predict
    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        """Score each row of ``df``: same index and order as ``df``; no per-row Python loops.

        Columns: [timestamp], ``score``, ``threshold``, ``is_anomaly`` (after persistence), ``top_feature``,
        ``top_share``, ``top_features`` (e.g. ``"s03:0.62,s07:0.11,s01:0.05"``), and ``t2``, ``spe`` for PCA.
        """
        return self.predict_stream(df)[0]

    def predict_stream(self, df: pd.DataFrame, state: StreamState | None = None) -> tuple[pd.DataFrame, StreamState]:
        """``predict`` as the continuation of earlier calls: lags and persistence see the rows of ``state``."""
        columns, order, _, state = self._scored(df, state)
        if isinstance(order, np.ndarray):  # back to the input order
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            columns = {name: values[inverse] for name, values in columns.items()}
        return pd.DataFrame(columns, index=df.index), state

    def _scored(
        self, df: pd.DataFrame, state: StreamState | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray | slice, np.ndarray, StreamState]:
        """Output columns in time order, that order, the shares matrix (time order) and the state after ``df``."""
        self.check_is_fitted()
        self._check_frame(df)
        if missing := [c for c in self.features_in_ if c not in df.columns]:
            raise DataValidationError(f"missing feature column(s) {missing}", field=missing[0])
        times, order = self._times(df)
        X = self._values(df, self.features_in_)[order]
        gaps = np.isnan(X)
        if gaps.any():
            self.warn(f"predict: filled {int(gaps.sum())} missing value(s) with the training medians")
            X = np.where(gaps, self.median_, X)
        history = state.rows if state is not None else X[:0]
        flags = state.exceed if state is not None else np.zeros(0, dtype=bool)
        result = self._score(np.vstack([history, X]))
        result = DetectorScores(
            score=result.score[len(history) :],
            contributions=result.contributions[len(history) :],
            extras={name: values[len(history) :] for name, values in result.extras.items()},
        )
        exceed = np.concatenate([flags, result.score > self.threshold_])
        alarms = self._persist(exceed)[len(flags) :]
        rule, lags = self.spec.threshold.persistence, getattr(self.detector_, "lags", 0)
        state = StreamState(
            rows=np.vstack([history, X])[-lags:] if lags else X[:0],
            exceed=exceed[-(rule.n - 1) :] if rule and rule.n > 1 else flags[:0],
        )
        columns: dict[str, np.ndarray] = {}
        if times is not None:
            columns[self.spec.timestamp] = times[order]
        columns |= {
            "score": result.score,
            "threshold": np.full(len(X), self.threshold_),
            "is_anomaly": alarms,
            **self._top_features(result.contributions),
            **result.extras,
        }
        return columns, order, result.contributions, state

    def _score(self, X: np.ndarray) -> DetectorScores:
        return self.detector_.score((X - self.center_) / self.scale_)

    def _persist(self, exceed: np.ndarray) -> np.ndarray:
        """k-of-n persistence as a rolling count (cumulative sums); without persistence, ``exceed`` itself."""
        rule = self.spec.threshold.persistence
        if rule is None:
            return exceed
        counts = np.cumsum(exceed, dtype=np.int64)
        counts[rule.n :] -= counts[: -rule.n].copy()
        return counts >= rule.k

    def _top_features(self, shares: np.ndarray) -> dict[str, np.ndarray]:
        k = min(TOP_K, shares.shape[1])
        idx = np.argpartition(-shares, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(shares, idx, axis=1)
        rank = np.argsort(-top, axis=1, kind="stable")
        idx, top = np.take_along_axis(idx, rank, axis=1), np.take_along_axis(top, rank, axis=1)
        names = np.array(self.features_in_, dtype=object)
        percent = np.clip(np.rint(top * 100), 0, 100).astype(np.int64)
        text = names[idx[:, 0]] + ":" + _SHARE_TEXT[percent[:, 0]]
        for j in range(1, k):
            text = text + "," + names[idx[:, j]] + ":" + _SHARE_TEXT[percent[:, j]]
        return {"top_feature": names[idx[:, 0]], "top_share": top[:, 0], "top_features": text}

    # ------------------------------------------------------------- evaluate
    def evaluate(self, df: pd.DataFrame) -> dict[str, float]:
        """Detection metrics against the spec's ``label`` column (0/1 or bool; 1 = fault).

        The keys are the shared vocabulary of ``framework.metrics.detection_metrics`` (``detection_rate``,
        ``false_alarm_rate``, ``mean_detection_delay`` in rows, ``precision``, ``recall``, ``f1``, ``roc_auc``,
        ``pr_auc``, ``n_episodes``), plus ``mean_detection_delay_s`` with a timestamp. Undefined values are NaN.
        """
        label = self.spec.label
        if not label:
            raise DataValidationError("evaluate() needs labels: set the spec's 'label' column", field="label")
        self._check_frame(df)
        if label not in df.columns:
            raise DataValidationError("label column is missing", field=label)
        y_all = _labels(df[label], label)
        columns, order, _, _ = self._scored(df)
        times = columns[self.spec.timestamp] if self.spec.timestamp else None
        return detection_metrics(y_all[order], columns["is_anomaly"], columns["score"], times)

    # -------------------------------------------------------------- figures
    def figures(self, df: pd.DataFrame | None = None) -> dict[str, Any]:
        """Plotly figures of ``df`` scored by the model, or of the stored hold-out tail when ``df`` is None.

        ``score`` (score, threshold, alarms), ``contributions`` (of the latest alarm, else of the highest score),
        ``t2_vs_spe`` (PCA only, with control limits), ``correlation`` (training features).
        """
        import plotly.graph_objects as go

        self.check_is_fitted()
        columns, _, shares, _ = self._scored(self.preview_ if df is None else df)
        score, alarm = columns["score"], columns["is_anomaly"]
        x = columns[self.spec.timestamp] if self.spec.timestamp else np.arange(len(score))
        step = max(1, len(score) // 5000)
        alarm_rows = np.flatnonzero(alarm)[:5000]

        score_fig = go.Figure(
            [
                go.Scattergl(x=x[::step], y=score[::step], mode="lines", name="score"),
                go.Scattergl(x=x[alarm_rows], y=score[alarm_rows], mode="markers", name="alarm"),
            ]
        )
        score_fig.add_hline(y=self.threshold_, line_dash="dash", annotation_text="threshold")
        score_fig.update_layout(title=f"{self.spec.model.name} score", xaxis_title="time", yaxis_title="score")

        row = int(alarm_rows[-1]) if len(alarm_rows) else int(np.argmax(score))
        rank = np.argsort(-shares[row], kind="stable")[:20]
        what = "latest alarm" if len(alarm_rows) else "highest score (no alarm)"
        contributions_fig = go.Figure(go.Bar(x=np.array(self.features_in_)[rank], y=shares[row][rank]))
        contributions_fig.update_layout(title=f"Contributions at the {what} (row {row})", yaxis_title="share")

        figures = {"score": score_fig, "contributions": contributions_fig}
        if isinstance(self.detector_, PCAMSPC):
            figures["t2_vs_spe"] = self._t2_spe_figure(go, columns, step)
        figures["correlation"] = go.Figure(
            go.Heatmap(
                z=self.correlation_.to_numpy(),
                x=self.correlation_.columns,
                y=self.correlation_.index,
                zmin=-1,
                zmax=1,
                colorscale="RdBu",
            )
        )
        figures["correlation"].update_layout(title="Feature correlation (training data)")
        return figures

    def _t2_spe_figure(self, go: Any, columns: dict[str, np.ndarray], step: int) -> Any:
        model = self.detector_
        t2, spe, alarm = columns["t2"][::step], columns["spe"][::step], columns["is_anomaly"][::step]
        fig = go.Figure(
            [
                go.Scattergl(x=t2[~alarm], y=spe[~alarm], mode="markers", name="normal", marker={"size": 4}),
                go.Scattergl(x=t2[alarm], y=spe[alarm], mode="markers", name="alarm", marker={"size": 5}),
            ]
        )
        fig.add_vline(x=model.t2_limit_, line_dash="dash", annotation_text="T² limit")
        fig.add_hline(y=model.spe_limit_, line_dash="dash", annotation_text="SPE limit")
        if model.statistic == "combined":  # φ = SPE/δ² + T²/τ² = threshold is a straight line
            t2_end = self.threshold_ * model.t2_limit_
            fig.add_trace(
                go.Scatter(
                    x=[0.0, t2_end], y=[self.threshold_ * model.spe_limit_, 0.0], mode="lines", name="φ threshold"
                )
            )
        fig.update_layout(title="T² vs SPE", xaxis_title="T²", yaxis_title="SPE")
        return fig

    # ------------------------------------------------------------- validate
    def validate(self, reference: Experiment | None = None) -> Validation:
        """Champion gate: the false-alarm rate on held-out normal data is within the target (see module doc).
        ``reference`` is not used: each version is judged on its own false-alarm rate."""
        self.check_is_fitted()
        rate, limit, n = self._validation()
        target = self.spec.threshold.false_alarm_rate
        metrics = {"validation_false_alarm_rate": rate, "validation_limit": limit, "target_false_alarm_rate": target}
        verdict = "within" if rate <= limit else "above"
        reason = (
            f"hold-out false-alarm rate {rate:.4f} on {n} rows is {verdict} the limit {limit:.4f} (target {target})"
        )
        return Validation(passed=rate <= limit, reason=reason, metrics=metrics)

    def _validation(self) -> tuple[float, float, int]:
        """Calibrate on the first half of the hold-out, count exceedances on the second half."""
        target = self.spec.threshold.false_alarm_rate
        half = len(self.holdout_scores_) // 2
        first, second = self.holdout_scores_[:half], self.holdout_scores_[half:]
        rate = float(np.mean(second > np.quantile(first, 1.0 - target)))
        limit = target + max(target, 3.0 * float(np.sqrt(target * (1.0 - target) / len(second))))
        return rate, limit, len(second)

    # -------------------------------------------------------------- helpers
    def _times(self, df: pd.DataFrame) -> tuple[np.ndarray | None, np.ndarray | slice]:
        """Parsed timestamps (input order) or None, and the stable time order of the rows (a no-op slice when
        they are in order already, so that indexing with it copies nothing)."""
        column = self.spec.timestamp
        if not column:
            return None, slice(None)
        if column not in df.columns:
            raise DataValidationError("timestamp column is missing", field=column)
        times = coerce_timestamps(df[column], column).to_numpy()
        if np.all(times[1:] >= times[:-1]):
            return times, slice(None)
        logger.info("rows were not in time order; sorted them by %r", column)
        return times, np.argsort(times, kind="stable")

    def _values(self, df: pd.DataFrame, features: list[str]) -> np.ndarray:
        X = self.numeric_frame(df, features).to_numpy(dtype=np.float64)
        if len(features) and np.isnan(X).all():
            raise DataValidationError("every feature value is missing", field="data")
        return np.where(np.isinf(X), np.nan, X)


def _labels(values: pd.Series, column: str) -> np.ndarray:
    """0/1 or boolean labels as a bool array; anything else names the column."""
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=bool)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or not numbers.isin([0, 1]).all():
        raise DataValidationError("labels must be 0/1 or booleans, with no missing values", field=column)
    return numbers.to_numpy() == 1
