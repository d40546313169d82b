"""Multivariate fault detection on sensor data: PCA-MSPC and scikit-learn outlier detectors.

The experiment standardizes the features, fits a detector from ``framework.models.detectors`` on normal
data, and calibrates its alarm threshold on held-out normal data to a target false-alarm rate.

Policy, in addition to the shared data policy in ``framework.Experiment``:

- **Time order.** With a ``timestamp`` in the spec, rows are sorted by time (stable) before fitting and
  scoring; ``predict`` still returns its rows in the input order, with the input's index.
- **Hold-out.** ``fit`` keeps the last ``calibration_fraction`` of the (time-ordered) rows out of the detector's
  fit. The detector is *not* refitted on all rows afterwards: a refit would shift the score distribution and void
  the threshold.
- **Calibration across blocks.** Normal data varies from run to run and block to block, and a quantile of one
  stretch does not hold on the next. The hold-out is cut into ``calibration_blocks`` contiguous blocks (default
  10) and each block's ``1 - false_alarm_rate`` quantile is taken. The threshold is the second largest of them
  (the largest with fewer than 4 blocks): the lowest threshold at which all blocks but one keep the target. Blocks
  being exchangeable, an unseen block of the same length then keeps the target with probability at least
  ``1 - 2/(B+1)`` (a conformal rank argument over blocks, not rows, because rows are autocorrelated), and one
  odd block (a glitch, or the seam between two concatenated runs) cannot inflate the threshold.
  ``calibration_blocks: 1`` is the plain hold-out quantile.
- **Persistence.** With ``threshold.persistence = {k, n}``, a row is an alarm only when at least ``k`` of the
  last ``n`` rows (itself included) exceed the threshold. The target rate applies to single exceedances, so
  persistence only lowers the alarm rate. ``predict`` counts rows within one call (no state between calls);
  ``predict_stream`` carries the last ``n - 1`` exceedance flags from call to call (``StreamState``).
- **History across calls.** With ``lags`` (dynamic PCA, ``var_innovation``), each ``predict`` batch is padded
  with copies of its first row for the history of its first rows, and ``var_innovation``'s EWMA starts at 0; the
  hold-out is scored with its real history from the training rows. ``predict_stream`` carries what the detector
  needs (the last ``lags`` rows, the EWMA's state), the persistence flags and the ``sensor_fault`` run lengths, so
  streamed results equal one ``predict`` over all the rows however they were batched (rows arrive in time order):
  alarms exactly, scores to BLAS rounding (a matrix product's last bits depend on how many rows it multiplies).
- **Contributions.** ``top_feature``, ``top_share`` and ``top_features`` come from reconstruction-based
  contributions, which cost more than the score itself (2.6x a bare PCA-SPE scoring, ``bench/predict_path.py``).
  ``contributions: alarms`` (default) computes them only for the rows that alarm, which are the rows an operator
  reads them for (the others get ``""`` and NaN), and keeps scoring within 1x of the bare reference;
  ``contributions: all`` computes them for every row. Figures always explain the rows they show.
- **Champion gate.** ``validate`` uses the same rule out of sample: each hold-out block is scored against the
  threshold calibrated by the same rule on the blocks before it, and the mean of those rates is the estimate.
  A block judged against a threshold calibrated on n earlier rows has an expected rate of at least 1/(n+1),
  whatever the target (a threshold from 30 rows is exceeded 1 time in 31 by chance), so the expected rate is the
  mean over the judged blocks of max(target, 1/(n+1)). The gate passes when the estimate is at most
  ``VALIDATION_TOLERANCE`` (2) times that expected rate, or at most what chance alone gives at it on the rows judged
  (the binomial's ``GATE_CONFIDENCE`` quantile: 3 alarms in 150 rows is 2 %, and no evidence of a rate above 1 %).
  So on a large hold-out a version whose held-out rate is 2.7 times the target is never promoted, a small one is
  not refused for noise, and a hold-out whose later blocks move is refused either way.
- **Data quality.** ``inf``, ``-inf`` and NaN are missing. A missing reading is reconstructed from the row's other
  readings by the conditional mean under the training correlation (for PCA-family models this is the projection
  of the row onto the model), so it neither alarms nor hides the others; the ``missing_features`` column names what
  was missing in every row. A feature missing for more than ``data_quality.max_missing_rows`` consecutive rows
  sets ``sensor_fault`` on those rows. Any finite reading scores; scores that overflow are clipped to the largest
  float.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic
from pydantic import BaseModel, ConfigDict, Field
from scipy.stats import binom

from framework.config import ExperimentSpec, ModelSpec
from framework.errors import DataValidationError
from framework.Experiment import Experiment, Validation, coerce_timestamps
from framework.metrics import detection_metrics
from framework.models.detectors import Detector, build_detector
from framework.models.mspc import PCAMSPC

__all__ = [
    "DataQualitySpec",
    "FaultDetectionExperiment",
    "FaultDetectionSpec",
    "PersistenceSpec",
    "StreamState",
    "ThresholdSpec",
]

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "var_innovation"  # best on bench/plant.py (Tennessee Eastman); see README
VALIDATION_TOLERANCE = 2.0  # validate() passes at a held-out false-alarm rate up to this many times the target
GATE_CONFIDENCE = 0.999  # ... or up to the rate chance gives at the target this rarely (binomial upper quantile)
PREVIEW_ROWS = 2000  # rows of hold-out data kept for figures()
TOP_K = 3  # features listed in ``top_features``
_SHARE_TEXT = np.array([f"{i / 100:.2f}" for i in range(101)], dtype=object)


@dataclass(frozen=True)
class StreamState:
    """What ``predict_stream`` carries between calls: the detector's own carry (``score_stream``: e.g. the last
    ``lags`` standardized rows, missing readings reconstructed, and ``var_innovation``'s EWMA state), the last
    ``n - 1`` exceedance flags of the persistence rule, and per feature the count of consecutive missing readings
    up to the last row (for ``sensor_fault``)."""

    detector: Any
    exceed: np.ndarray
    missing_run: np.ndarray


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
    calibration_blocks: int = Field(default=10, ge=1, le=50, description="contiguous hold-out blocks (see module doc)")
    persistence: PersistenceSpec | None = None


class DataQualitySpec(BaseModel):
    """When a missing reading stops being a gap and becomes a sensor fault."""

    model_config = ConfigDict(extra="forbid")

    max_missing_rows: int = Field(default=5, ge=0, le=10_000, description="consecutive missing rows tolerated")


class FaultDetectionSpec(ExperimentSpec):
    """Spec of a fault-detection experiment; every field has a default, unknown keys are refused."""

    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name=DEFAULT_MODEL))
    threshold: ThresholdSpec = Field(default_factory=ThresholdSpec)
    data_quality: DataQualitySpec = Field(default_factory=DataQualitySpec)
    contributions: Literal["all", "alarms"] = Field(
        default="alarms", description="rows that get top_feature/top_share/top_features: only alarms, or every row"
    )


class FaultDetectionExperiment(Experiment):
    """Detect faults in multivariate sensor data and name the sensors behind each alarm.

    Parameters
    ----------
    spec
        A mapping validated into ``FaultDetectionSpec``: ``model`` (``{"name": "var_innovation"}`` by default; see
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
        threshold = _block_threshold(_blocks(holdout_scores, cfg.calibration_blocks), cfg.false_alarm_rate)

        self.features_in_ = features
        self.center_, self.scale_ = center, scale
        self.median_ = np.median(X[:n_fit], axis=0)
        self.detector_: Detector = detector
        self.threshold_ = threshold
        self.holdout_scores_ = holdout_scores
        self.correlation_ = pd.DataFrame(np.corrcoef(Z[:n_fit], rowvar=False), index=features, columns=features)
        self.covariance_ = np.cov(Z[:n_fit], rowvar=False)
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
        """``predict`` as the continuation of earlier calls: lags, the EWMA, persistence and ``sensor_fault`` see
        the rows of ``state`` (see the module doc)."""
        columns, order, _, state = self._scored(df, state)
        if isinstance(order, np.ndarray):  # back to the input order
            inverse = np.empty_like(order)
            inverse[order] = np.arange(len(order))
            columns = {name: values[inverse] for name, values in columns.items()}
        return pd.DataFrame(columns, index=df.index), state

    def _scored(
        self, df: pd.DataFrame, state: StreamState | None = None, explain: str | None = None
    ) -> tuple[dict[str, np.ndarray], np.ndarray | slice, np.ndarray | None, StreamState]:
        """Output columns in time order, that order, the shares matrix of every row (time order; with ``explain``
        "all", else None) and the state after ``df``. ``explain``: the rows that get contributions, "all",
        "alarms" or "none" (no top-feature columns); the spec's ``contributions`` by default."""
        self.check_is_fitted()
        self._check_frame(df)
        if missing := [c for c in self.features_in_ if c not in df.columns]:
            raise DataValidationError(f"missing feature column(s) {missing}", field=missing[0])
        times, order = self._times(df)
        X = self._values(df, self.features_in_)[order]
        gaps = np.isnan(X)
        Z = (X - self.center_) / self.scale_
        if gaps.any():
            self.warn(f"predict: reconstructed {int(gaps.sum())} missing value(s) from the other readings")
            Z = self._reconstruct(Z, gaps)
        flags = state.exceed if state is not None else np.zeros(0, dtype=bool)
        with np.errstate(over="ignore", invalid="ignore"):  # huge finite readings overflow; clipped below
            result, carry = self.detector_.score_stream(Z, state.detector if state is not None else None)
        big = np.finfo(np.float64).max
        score = np.nan_to_num(result.score, nan=big, posinf=big)
        exceed = np.concatenate([flags, score > self.threshold_])
        alarms = self._persist(exceed)[len(flags) :]
        sensor_fault, missing_run = self._sensor_fault(gaps, state.missing_run if state is not None else None)
        rule = self.spec.threshold.persistence
        state = StreamState(
            detector=carry,
            exceed=exceed[-(rule.n - 1) :] if rule and rule.n > 1 else flags[:0],
            missing_run=missing_run,
        )
        columns: dict[str, np.ndarray] = {}
        if times is not None:
            columns[self.spec.timestamp] = times[order]
        columns |= {"score": score, "threshold": np.full(len(X), self.threshold_), "is_anomaly": alarms}
        shares = None
        explain = explain or getattr(self.spec, "contributions", "all")  # a model saved by 0.1.0 has no such key
        if explain == "all":
            with np.errstate(over="ignore", invalid="ignore"):
                shares = result.explain(slice(None))
            columns |= self._top_features(shares)
        elif explain == "alarms":
            rows = np.flatnonzero(alarms)
            with np.errstate(over="ignore", invalid="ignore"):
                top = self._top_features(result.explain(rows))
            columns |= {
                "top_feature": np.full(len(X), "", dtype=object),
                "top_share": np.full(len(X), np.nan),
                "top_features": np.full(len(X), "", dtype=object),
            }
            for name, values in top.items():
                columns[name][rows] = values
        columns |= {
            **result.extras,
            "missing_features": self._missing_text(gaps),
            "sensor_fault": sensor_fault,
        }
        return columns, order, shares, state

    def _reconstruct(self, Z: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        """Missing standardized readings replaced by their conditional mean given the row's observed readings
        under the training covariance (0, the training mean, when nothing in the row is observed)."""
        covariance = getattr(self, "covariance_", None)
        if covariance is None:  # a model saved by 0.1.0: fill with the training medians, as it did
            return np.where(gaps, (self.median_ - self.center_) / self.scale_, Z)
        Z = Z.copy()
        patterns, inverse = np.unique(gaps, axis=0, return_inverse=True)
        ridge = 1e-6 * np.eye(len(covariance))
        for p, pattern in enumerate(patterns):
            if not pattern.any():
                continue
            rows = np.flatnonzero(inverse.ravel() == p)
            seen = ~pattern
            if not seen.any():
                Z[np.ix_(rows, np.flatnonzero(pattern))] = 0.0
                continue
            gain = np.linalg.solve(
                (covariance + ridge)[np.ix_(seen, seen)], covariance[np.ix_(seen, pattern)]
            )  # (n_seen, n_missing)
            Z[np.ix_(rows, np.flatnonzero(pattern))] = Z[np.ix_(rows, np.flatnonzero(seen))] @ gain
        return Z

    def _missing_text(self, gaps: np.ndarray) -> np.ndarray:
        """Comma-separated names of the missing features of each row ("" when complete)."""
        text = np.full(len(gaps), "", dtype=object)
        for j in np.flatnonzero(gaps.any(axis=0)):
            name = self.features_in_[j]
            text[gaps[:, j]] = np.where(text[gaps[:, j]] == "", name, text[gaps[:, j]] + "," + name)
        return text

    def _sensor_fault(self, gaps: np.ndarray, run: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Rows where some feature has been missing for more than ``max_missing_rows`` consecutive rows, counting
        ``run`` (per feature: consecutive missing rows just before these), and the counts after the last row."""
        quality = getattr(self.spec, "data_quality", None) or DataQualitySpec()
        if not gaps.any():
            return np.zeros(len(gaps), dtype=bool), np.zeros(gaps.shape[1], dtype=np.int64)
        # consecutive-missing count per feature: cumulative sum reset at every observed reading
        counts = np.cumsum(gaps, axis=0, dtype=np.int64)
        reset = np.where(~gaps, counts, 0)
        counts -= np.maximum.accumulate(reset, axis=0)
        if run is not None and run.any():  # the rows before a feature's first reading here continue its run
            counts += ~np.logical_or.accumulate(~gaps, axis=0) * run
        return (counts > quality.max_missing_rows).any(axis=1), counts[-1].copy()

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
        tokens = (names[:, None] + ":") + _SHARE_TEXT[None, :]  # "s03:0.62" for every feature and share
        text = tokens[idx[:, 0], percent[:, 0]]
        for j in range(1, k):
            text = text + ("," + tokens[idx[:, j], percent[:, j]])
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
        columns, order, _, _ = self._scored(df, explain="none")
        times = columns[self.spec.timestamp] if self.spec.timestamp else None
        return detection_metrics(y_all[order], columns["is_anomaly"], columns["score"], times)

    # -------------------------------------------------------------- figures
    def figures(self, df: pd.DataFrame | None = None) -> dict[str, Any]:
        """Plotly figures of ``df`` scored by the model, or of the stored hold-out tail when ``df`` is None.

        ``score`` (score, threshold, alarms, true fault windows when ``df`` has the spec's label),
        ``contributions`` (latest alarm, else highest score), ``contributions_over_time`` (latest alarm episode),
        ``t2_vs_spe`` (PCA only, with control limits), ``correlation`` (training features); see
        ``framework.figures.fault_detection``.
        """
        from framework.figures.fault_detection import FaultFigureData, build_figures

        self.check_is_fitted()
        frame = self.preview_ if df is None else df
        columns, order, shares, _ = self._scored(frame, explain="all")
        truth = None
        if self.spec.label and self.spec.label in frame.columns:
            truth = _labels(frame[self.spec.label], self.spec.label)[order]
        timestamp = self.spec.timestamp
        pca = self.detector_ if isinstance(self.detector_, PCAMSPC) else None
        data = FaultFigureData(
            x=columns[timestamp] if timestamp else np.arange(len(columns["score"])),
            x_title=timestamp or "row",
            score=columns["score"],
            threshold=self.threshold_,
            alarm=columns["is_anomaly"],
            shares=shares,
            features=list(self.features_in_),
            model_name=self.spec.model.name,
            correlation=self.correlation_,
            truth=truth,
            t2=columns.get("t2") if pca else None,
            spe=columns.get("spe") if pca else None,
            t2_limit=pca.t2_limit_ if pca else None,
            spe_limit=pca.spe_limit_ if pca else None,
            combined=bool(pca and pca.statistic == "combined"),
        )
        return build_figures(data)

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
        """Forward chaining over the hold-out blocks: each block's rate against the threshold calibrated on the
        blocks before it, averaged (calibrate on the past, measure on the future)."""
        target = self.spec.threshold.false_alarm_rate
        n_blocks = max(2, getattr(self.spec.threshold, "calibration_blocks", 2))
        blocks = _blocks(self.holdout_scores_, n_blocks)
        before = np.cumsum([0, *map(len, blocks)])  # rows before each block: its calibration set
        judged = range(1, len(blocks))
        rates = [float(np.mean(blocks[b] > _block_threshold(blocks[:b], target))) for b in judged]
        # a threshold calibrated on n rows is exceeded at least 1/(n+1) of the time, whatever the target
        expected = float(np.mean([max(target, 1.0 / (before[b] + 1)) for b in judged]))
        measured = int(sum(len(blocks[b]) for b in judged))
        by_chance = float(binom.ppf(GATE_CONFIDENCE, measured, expected)) / measured
        return float(np.mean(rates)), max(VALIDATION_TOLERANCE * expected, by_chance), len(self.holdout_scores_)

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
        """The features as float64 (inf as NaN); plain numpy int/float columns skip ``numeric_frame``'s checks."""
        frame = df[features]
        if all(isinstance(dtype, np.dtype) and dtype.kind in "iuf" for dtype in frame.dtypes):
            # numeric_frame's values in its layout (column-major: the scores' last bits depend on it)
            X = np.asfortranarray(frame.to_numpy(dtype=np.float64))
        else:
            X = self.numeric_frame(df, features).to_numpy(dtype=np.float64)
        if len(features) and np.isnan(X).all():
            raise DataValidationError("every feature value is missing", field="data")
        infinite = np.isinf(X)
        return np.where(infinite, np.nan, X) if infinite.any() else X


def _blocks(scores: np.ndarray, n_blocks: int) -> list[np.ndarray]:
    """``scores`` cut into at most ``n_blocks`` contiguous blocks of at least 2 rows."""
    return [b for b in np.array_split(scores, max(1, min(n_blocks, len(scores) // 2))) if len(b)]


def _block_threshold(blocks: list[np.ndarray], target: float) -> float:
    """The lowest threshold at which all blocks but one keep the target rate (every block, with fewer than 4)."""
    quantiles = sorted(float(np.quantile(block, 1.0 - target)) for block in blocks)
    return quantiles[-2] if len(quantiles) >= 4 else quantiles[-1]


def _labels(values: pd.Series, column: str) -> np.ndarray:
    """0/1 or boolean labels as a bool array; anything else names the column."""
    if pd.api.types.is_bool_dtype(values):
        return values.to_numpy(dtype=bool)
    numbers = pd.to_numeric(values, errors="coerce")
    if numbers.isna().any() or not numbers.isin([0, 1]).all():
        raise DataValidationError("labels must be 0/1 or booleans, with no missing values", field=column)
    return numbers.to_numpy() == 1
