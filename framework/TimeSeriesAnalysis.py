"""Time-series forecasting with anomaly detection: ``TimeSeriesExperiment``.

Data policy (on top of the shared one in ``framework.Experiment``):

- **Order**: duplicate timestamps are an error naming the column and the first duplicate; rows out of order are
  sorted, with a ``DataQualityWarning``.
- **Calendar**: the series is put on a regular grid of ``frequency`` (inferred when missing: pandas'
  ``infer_freq``, else the median step rounded to a whole number of days, hours, minutes or seconds, or month /
  quarter / year starts). The grid starts at the first timestamp (rounded to the step when the step divides a day);
  each row goes to the nearest grid point (the period that contains it, for calendar frequencies); rows sharing
  a point are averaged (with a warning).
- **Gaps and missing values**: runs of up to ``max_gap`` missing steps are interpolated linearly; longer runs are
  filled from one seasonal period earlier (linearly without seasonality), with a warning.
- **Seasonal period**: ``seasonal_period``, else detected from the ACF of the linearly detrended series (a clear
  peak seen at least three times): the shortest calendar period of the frequency that shows such a peak (hourly
  data with daily and weekly cycles gets 24, monthly data 12), else the highest peak, else 1.

Predict modes (no side effects on the fitted state):

- ``predict()``: the next ``horizon`` steps: ``timestamp, forecast, lower, upper``.
- ``predict(df)`` with timestamps only: forecasts for those future timestamps (same columns).
- ``predict(df)`` with the target column: one row per input row, scored against the one-step-ahead forecast made
  from everything before it: ``timestamp, forecast, lower, upper, actual, residual, score, threshold,
  is_anomaly``. ``score`` is the residual over the robust (MAD) scale of the in-sample one-step residuals; a row is
  an anomaly when ``|score| > threshold``. A row without a target value gets a forecast and no score.

Anomalies on the residual (measured in ``bench/forecast_anomalies.py``):

- **Scale**: additive (one sigma for the whole series) or relative (sigma times the forecast's level), chosen at
  fit time from the in-sample residuals by the slope of their spread against the level (``scale_mode_``; relative
  only for a positive series). Otherwise a growing series with multiplicative noise (a10, qgas) flags most of its
  later rows.
- **Cleaning** (Gelper, Fried & Croux, "Robust forecasting with exponential and Holt-Winters smoothing", J.
  Forecasting 2010): the model runs on a cleaned series, in which each observation is clipped to its forecast
  +- ``CLIP`` sigmas before it updates the next forecasts. A spike therefore moves the following forecasts by at
  most ``CLIP`` sigmas' worth (no string of false alarms after it), while a level shift is absorbed gradually, at
  the pace of the model's own smoothing: it stays flagged until the forecast has re-levelled to within
  ``threshold`` sigmas of the new level, and then stops. How long that takes follows from the model (a small
  smoothing weight absorbs slowly) and from the size of the shift.
- **Streaming agrees with offline**: the cleaned history is part of the fitted state (``clean_``). ``update``
  extends it with the same sequential rule as ``predict`` applies to new rows, so ``predict(a + b)`` flags what
  ``predict(a); update(a); predict(b)`` flags, whatever the batches (for causal models: see ``Forecaster``).
  The sequential rule is computed by whole-series passes until the cleaned values stop changing (at most
  ``MAX_CLEAN_PASSES``; each pass fixes at least the next clipped value, so it is exact below that cap).
- A model saved before this (0.1.0) keeps its behaviour: one sigma, and two passes in which a flagged value is
  replaced by its forecast.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from typing import Any, Literal

import numpy as np
import pandas as pd
import pydantic
from pydantic import BaseModel, ConfigDict, Field

from framework.config import ExperimentSpec, ModelSpec
from framework.errors import ConfigError, DataValidationError
from framework.Experiment import DataQualityWarning, Experiment, Validation, coerce_timestamps
from framework.metrics import detection_metrics, forecast_metrics, mase_scale, normal_quantile
from framework.models.conformal import cv_mase, rolling_errors
from framework.models.forecasters import Forecaster, make_forecaster

__all__ = [
    "AnomalySettings",
    "TimeSeriesExperiment",
    "TimeSeriesSpec",
    "calendar_periods",
    "detect_seasonal_period",
    "infer_frequency",
]

log = logging.getLogger(__name__)

MAX_RELATIVE_MASE = 1.0  # the gate: CV MASE no worse than seasonal naive on the same rolling origins
MAX_RELATIVE_TO_CHAMPION = 1.0  # a new version's CV MASE no worse than the champion's on the same origins
MIN_COVERAGE_TOLERANCE = 0.10
MAX_DETECTED_PERIOD = 400
CLIP = 2.0  # robust sigmas: an observation updates the model clipped to its forecast +- CLIP sigmas (Gelper et al.)
MAX_CLEAN_PASSES = 200  # whole-series passes of the cleaning; beyond it the cleaning is approximate (logged)
_NICE_UNITS = (("D", pd.Timedelta(days=1)), ("h", pd.Timedelta(hours=1)), ("min", pd.Timedelta(minutes=1)))


class AnomalySettings(BaseModel):
    """How a scored observation becomes an anomaly.

    ``method="sigma"``: ``|score| > threshold`` (in robust sigmas). ``method="interval"``: the observation leaves
    the one-step ``interval`` (the threshold is then the normal quantile of the interval level).
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["sigma", "interval"] = "sigma"
    threshold: float = Field(default=4.0, gt=0, description="robust sigmas, for method sigma")


class TimeSeriesSpec(ExperimentSpec):
    """Spec of a ``TimeSeriesExperiment``; unknown keys are refused."""

    monitoring_kind = "forecast"  # retrain.on_drift defaults to on; retrain.on_metric allowed (framework.config)
    model: ModelSpec = Field(default_factory=lambda: ModelSpec(name="auto"))
    timestamp: str = "timestamp"
    target: str = "value"
    frequency: str | None = Field(default=None, description="pandas alias such as 'h', '15min', 'MS'; inferred")
    seasonal_period: int | None = Field(default=None, ge=1, description="detected when missing")
    horizon: int | None = Field(default=None, ge=1, description="default: one seasonal period, or 10")
    interval: float = Field(default=0.95, gt=0, lt=1)
    anomaly: AnomalySettings = Field(default_factory=AnomalySettings)
    max_gap: int = Field(default=3, ge=0, description="longest run of missing steps interpolated linearly")
    max_grid_rows: int = Field(
        default=1_000_000, ge=1, le=50_000_000, description="most rows the regular grid of `frequency` may have"
    )
    max_steps_ahead: int | None = Field(
        default=None, ge=1, le=1_000_000, description="refuse timestamps further past the last observation; 10x horizon"
    )

    threshold: dict[str, Any] = Field(default_factory=dict, description="refused: see anomaly.threshold")

    @pydantic.field_validator("threshold")
    @classmethod
    def _no_threshold_section(cls, value: dict[str, Any]) -> dict[str, Any]:
        if value:
            raise ValueError(
                f"time_series has no threshold settings (got {', '.join(map(repr, value))}); "
                "the anomaly threshold is anomaly.threshold (robust sigmas) with anomaly.method"
            )
        return value

    @pydantic.field_validator("frequency")
    @classmethod
    def _known_frequency(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                pd.tseries.frequencies.to_offset(value)
            except ValueError:
                raise ValueError("not a pandas frequency alias (e.g. 'h', '15min', 'D', 'MS')") from None
        return value


def infer_frequency(timestamps: pd.DatetimeIndex) -> pd.DateOffset:
    """The series' step: pandas' ``infer_freq``, else the median step rounded to a whole unit."""
    if len(timestamps) >= 3 and (alias := pd.infer_freq(timestamps)) is not None:
        return pd.tseries.frequencies.to_offset(alias)
    step = pd.Series(timestamps).diff().median()
    days = step / pd.Timedelta(days=1)
    for low, high, alias in ((27, 32, "MS"), (88, 93, "QS"), (364, 367, "YS")):
        if low <= days <= high:
            return pd.tseries.frequencies.to_offset(alias)
    for unit, size in _NICE_UNITS:
        count = round(step / size)
        if count >= 1 and abs(step - count * size) <= 0.05 * step:
            return pd.tseries.frequencies.to_offset(f"{count}{unit}")
    return pd.tseries.frequencies.to_offset(pd.Timedelta(seconds=max(1, round(step.total_seconds()))))


def calendar_periods(offset: pd.DateOffset) -> tuple[int, ...]:
    """The usual seasonal periods of a frequency: 24 and 168 for hours, 7 and 365 for days, 12 for months..."""
    try:
        delta = pd.Timedelta(offset)
    except (TypeError, ValueError):
        code = offset.rule_code.upper()
        for prefix, periods in (("W", (52,)), ("Q", (4,)), ("BQ", (4,)), ("M", (12,)), ("BM", (12,)), ("SM", (24,))):
            if code.startswith(prefix):
                return periods
        return ()
    if delta == pd.Timedelta(days=7):
        return (52,)
    per_day = pd.Timedelta(days=1) / delta
    if delta == pd.Timedelta(days=1):
        return (7, 365)
    if per_day > 1 and float(per_day).is_integer():
        return (int(per_day), int(7 * per_day))
    return ()


def detect_seasonal_period(
    y: np.ndarray, preferred: tuple[int, ...] = (), max_period: int = MAX_DETECTED_PERIOD
) -> int:
    """The seasonal period from the ACF of the linearly detrended series (1 when there is none).

    A lag counts when it is a local ACF peak above ``max(0.1, 2/sqrt(n))`` that rises at least 0.15 above every
    earlier lag's minimum, and is seen at least three times in the data. The smallest of the ``preferred``
    (calendar) periods that counts wins; otherwise the highest peak.
    """
    n = len(y)
    max_lag = min(n // 3, max_period)
    if max_lag < 4:
        return 1
    t = np.arange(n)
    x = y - np.polyval(np.polyfit(t, y, 1), t)
    spectrum = np.fft.rfft(x - x.mean(), n=2 * n)
    acf = np.fft.irfft(np.abs(spectrum) ** 2)[: max_lag + 2]
    if acf[0] <= 0:
        return 1
    acf = acf / acf[0]
    lags = np.arange(2, max_lag + 1)
    is_peak = (acf[lags] > acf[lags - 1]) & (acf[lags] >= acf[lags + 1])
    trough = np.minimum.accumulate(acf[1 : max_lag + 1])[lags - 2]  # lowest ACF before the lag
    strong = is_peak & (acf[lags] > max(0.1, 2 / math.sqrt(n))) & (acf[lags] - trough > 0.15)
    peaks = lags[strong]
    if peaks.size == 0:
        return 1
    for period in sorted(preferred):
        if np.any(np.abs(peaks - period) <= 1):
            return period
    return int(peaks[np.argmax(acf[peaks])])


class TimeSeriesExperiment(Experiment):
    """Forecast one series with an interval, and score new observations as anomalies.

    >>> exp = TimeSeriesExperiment({"target": "load", "timestamp": "ts", "horizon": 24}).fit(history)
    >>> exp.predict()                       # next 24 steps: timestamp, forecast, lower, upper
    >>> exp.predict(live)[["score", "is_anomaly"]]
    >>> exp.update(live)                    # absorb new observations without refitting
    >>> exp.metrics_["mase"], exp.validate().passed
    """

    spec_model = TimeSeriesSpec
    supports_update = True
    compares_with_champion = True
    spec: TimeSeriesSpec

    # ----------------------------------------------------------------------------------------- fit
    def fit(self, df: pd.DataFrame) -> TimeSeriesExperiment:
        """Regularise ``df``, score a holdout of the last ``horizon`` points, then extend the model over it."""
        start = time.perf_counter()
        ts, values = self._read(df, require_target=True)
        offset = pd.tseries.frequencies.to_offset(self.spec.frequency) if self.spec.frequency else None
        offset = offset or infer_frequency(pd.DatetimeIndex(ts.unique()))
        anchor = self._anchor(ts.iloc[0], offset)
        grid, y = self._to_grid(ts, values, offset, anchor)
        m = self.spec.seasonal_period or detect_seasonal_period(
            _fill_gaps(y, 1, self.spec.max_gap, warn=False), calendar_periods(offset)
        )
        y = _fill_gaps(y, m, self.spec.max_gap, warn=True)
        horizon = self.spec.horizon or (m if m > 1 else 10)
        holdout = horizon
        needed = max(2 * m, 10) + holdout
        if min(len(y), int(np.isfinite(values).sum())) < needed:
            raise DataValidationError(
                f"series too short: {len(y)} regular steps, need at least {needed} "
                f"(two seasonal periods of {m} plus a holdout of {holdout})",
                field=self.spec.target,
            )
        params = dict(self.spec.model.params)
        if self.spec.model.name in ("auto", "mstl") and "seasonal_periods" not in params:
            periods = [p for p in calendar_periods(offset) if m > 1 and p % m == 0 and len(y) >= 3 * p]
            if len(periods) > 1:  # hourly data with daily and weekly cycles: an MSTL candidate
                params["seasonal_periods"] = periods
        model = make_forecaster(self.spec.model.name, params, season_length=m, horizon=horizon)
        train, test = y[:-holdout], y[-holdout:]
        model.fit(train)
        mean, lower, upper = model.forecast(holdout, self.spec.interval)
        scale = mase_scale(train, m)
        metrics = forecast_metrics(test, mean, lower, upper, scale, level=self.spec.interval)
        naive = make_forecaster("seasonal_naive", season_length=m, horizon=horizon).fit(train)
        naive_mean = naive.forecast(holdout, self.spec.interval)[0]
        metrics["baseline_mase"] = forecast_metrics(test, naive_mean, naive_mean, naive_mean, scale)["mase"]
        metrics["relative_mase"] = metrics["mase"] / metrics["baseline_mase"]
        self.cv_origins_ = list(model.cv_origins_)
        if model.cv_errors_ is not None:
            cv_scale = mase_scale(train[: self.cv_origins_[0]], m)
            metrics["cv_mase"] = float(np.mean(cv_mase(model.cv_errors_, cv_scale)))
            metrics["cv_baseline_mase"] = float(np.mean(cv_mase(naive.cv_errors_, cv_scale)))
            metrics["cv_relative_mase"] = metrics["cv_mase"] / metrics["cv_baseline_mase"]
            metrics["cv_origins"] = float(len(self.cv_origins_))
        for name, score in getattr(model, "cv_mase_", {}).items():
            metrics[f"cv_mase.{name}"] = score
        model.extend(test)

        self.offset_, self.anchor_, self.seasonal_period_, self.horizon_ = offset, anchor, m, horizon
        self.index_ = grid
        self.model_: Forecaster = model
        self.model_description_ = model.describe()
        self.cv_scores_ = getattr(model, "cv_scores_", None)
        self.holdout_ = pd.DataFrame(
            {"timestamp": grid[-holdout:], "actual": test, "forecast": mean, "lower": lower, "upper": upper}
        )
        fitted = model.one_step(y)
        known = np.isfinite(fitted)
        self.scale_ = scale
        self.scale_mode_, self.sigma_ = _choose_scale(y[known], fitted[known])
        self.clean_ = self._clean(y, 0)[0]
        metrics.update(
            {
                "n_obs": float(len(y)),
                "seasonal_period": float(m),
                "horizon": float(horizon),
                "sigma": self.sigma_,
                "relative_scale": float(self.scale_mode_ == "relative"),
                "fit_seconds": time.perf_counter() - start,
            }
        )
        self.metrics_ = metrics
        log.info("fitted %s on %d points (m=%d): MASE %.3f", self.model_description_, len(y), m, metrics["mase"])
        return self

    def update(self, df: pd.DataFrame) -> TimeSeriesExperiment:
        """Append observations after the last fitted timestamp; the model's parameters stay as fitted."""
        self.check_is_fitted()
        ts, values = self._read(df, require_target=True)
        if (ts <= self.index_[-1]).any():
            self.warn(f"ignored {int((ts <= self.index_[-1]).sum())} row(s) at or before {self.index_[-1]}")
            keep = (ts > self.index_[-1]).to_numpy()
            ts, values = ts[keep], values[keep]
        if ts.empty:
            return self
        self._positions(ts)  # refuses a timestamp too far ahead before the grid is built
        grid, y = self._to_grid(ts, values, self.offset_, self.anchor_)
        new = grid > self.index_[-1]
        joined = _fill_gaps(np.concatenate([self.model_.y_[-1:], y[new]]), self.seasonal_period_, self.spec.max_gap)
        self.model_.extend(joined[1:])
        if hasattr(self, "clean_"):  # the cleaned history follows, by the rule predict() applies to new rows
            self.clean_ = self._clean(np.concatenate([self.clean_, joined[1:]]), len(self.clean_))[0]
        self.index_ = self.index_.append(grid[new])
        return self

    # ------------------------------------------------------------------------------------- predict
    def predict(self, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast the next horizon, forecast given timestamps, or score observations (see the module doc)."""
        self.check_is_fitted()
        if df is None:
            mean, lower, upper = self.model_.forecast(self.horizon_, self.spec.interval)
            steps = self._future_index(self.horizon_)
            return pd.DataFrame({"timestamp": steps, "forecast": mean, "lower": lower, "upper": upper})
        if self.spec.target in df.columns:
            return self._score(df)
        ts, _ = self._read(df, require_target=False)
        positions = self._positions(ts, observed=False)
        last = len(self.index_) - 1
        if (positions <= last).any():
            raise DataValidationError(
                f"forecast timestamps must be after the last observation {self.index_[-1]}; "
                f"include the {self.spec.target!r} column to score past observations",
                field=self.spec.timestamp,
            )
        mean, lower, upper = self.model_.forecast(int(positions.max() - last), self.spec.interval)
        steps = positions - last - 1
        return pd.DataFrame(
            {"timestamp": ts.to_numpy(), "forecast": mean[steps], "lower": lower[steps], "upper": upper[steps]},
            index=ts.index,
        )

    def _score(self, df: pd.DataFrame) -> pd.DataFrame:
        ts, values = self._read(df, require_target=False)
        positions = self._positions(ts)
        if positions.min() < 0:
            raise DataValidationError(
                f"timestamps before the training data start {self.index_[0]}", field=self.spec.timestamp
            )
        first = int(positions.min())
        prefix = self.model_.y_[:first]
        span = int(positions.max()) - first + 1
        sums = np.bincount(positions - first, weights=np.nan_to_num(values), minlength=span)
        counts = np.bincount(positions - first, weights=np.isfinite(values).astype(float), minlength=span)
        new = np.divide(sums, counts, out=np.full(span, np.nan), where=counts > 0)
        if first >= len(self.model_.y_) and first > 0:  # the steps between the history and the new data
            gap = np.full(first - len(self.model_.y_), np.nan)
            prefix = np.concatenate([self.model_.y_, gap])
        series = _fill_gaps(np.concatenate([prefix, new]), self.seasonal_period_, self.spec.max_gap, warn=False)
        if hasattr(self, "clean_"):
            known = min(first, len(self.clean_))
            series[:known] = self.clean_[:known]
            forecast = self._clean(series, known)[1][positions]
        else:  # a model saved by 0.1.0
            forecast = self._robust_one_step(series)[positions]
        threshold = self._threshold()
        sigma = self._sigma_at(forecast)
        width = normal_quantile(self.spec.interval) * sigma
        residual = values - forecast
        score = residual / sigma
        out = pd.DataFrame(
            {
                "timestamp": ts.to_numpy(),
                "forecast": forecast,
                "lower": forecast - width,
                "upper": forecast + width,
                "actual": values,
                "residual": residual,
                "score": score,
                "threshold": threshold,
                "is_anomaly": np.abs(np.nan_to_num(score)) > threshold,
            },
            index=ts.index,
        )
        return out

    def _sigma_at(self, forecast: np.ndarray) -> np.ndarray | float:
        """The residual scale at each forecast: ``sigma_``, times the forecast's level when the scale is relative."""
        if getattr(self, "scale_mode_", "additive") == "relative":
            return self.sigma_ * np.maximum(np.abs(forecast), 1e-12)
        return self.sigma_

    def _clean(self, y: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
        """The cleaned series and its one-step forecasts; ``y[:start]`` is clean already (see the module doc).

        Sequentially, ``clean[t] = f[t] + clip(y[t] - f[t], +-CLIP sigma_t)`` with ``f`` the one-step forecasts of
        ``clean``. Each whole-series pass recomputes ``f`` from the last ``clean``; the first clipped value whose
        forecast was already exact becomes exact, so the passes reach the sequential answer and stop there.
        """
        clean = np.array(y, dtype="float64")
        raw = clean[start:].copy()
        for _ in range(MAX_CLEAN_PASSES):
            forecast = self.model_.one_step(clean)
            f = forecast[start:]
            bound = CLIP * self._sigma_at(f)
            updated = np.where(np.isfinite(f), f + np.clip(raw - f, -bound, bound), raw)
            if np.array_equal(updated, clean[start:], equal_nan=True):
                return clean, forecast
            clean[start:] = updated
        log.info("anomaly cleaning stopped after %d passes; later forecasts are approximate", MAX_CLEAN_PASSES)
        return clean, self.model_.one_step(clean)

    def _robust_one_step(self, y: np.ndarray) -> np.ndarray:
        """0.1.0's one-step forecasts (models saved before ``clean_``): values flagged in a first pass are replaced
        by their forecast in a second."""
        first = self.model_.one_step(y)
        flagged = np.abs(np.nan_to_num(y - first)) > self._threshold() * self.sigma_
        if not flagged.any():
            return first
        return self.model_.one_step(np.where(flagged, first, y))

    def _threshold(self) -> float:
        if self.spec.anomaly.method == "interval":
            return normal_quantile(self.spec.interval)
        return self.spec.anomaly.threshold

    # ------------------------------------------------------------------------------------ evaluate
    def evaluate(self, df: pd.DataFrame) -> dict[str, float]:
        """One-step forecast metrics on ``df`` and, with labels, the shared detection metrics of the anomaly flags.

        The label column is the spec's ``label``, else ``is_anomaly`` when ``df`` has it. The detection keys are
        those of ``framework.metrics.detection_metrics`` (``mean_detection_delay`` in steps).
        """
        self.check_is_fitted()
        if self.spec.target not in df.columns:
            raise DataValidationError(
                f"evaluate() needs the target column; got {list(df.columns)[:20]}", field=self.spec.target
            )
        scored = self._score(df)
        known = scored["actual"].notna().to_numpy()
        rows = scored[known]
        metrics = forecast_metrics(
            rows["actual"].to_numpy(),
            rows["forecast"].to_numpy(),
            rows["lower"].to_numpy(),
            rows["upper"].to_numpy(),
            self.scale_,
        )
        label = self.spec.label or ("is_anomaly" if "is_anomaly" in df.columns else None)
        if label is None:
            return metrics
        if label not in df.columns:
            raise DataValidationError(f"label column missing; got {list(df.columns)[:20]}", field=label)
        truth = self.numeric_frame(df, [label])[label].fillna(0).loc[scored.index].to_numpy() > 0
        flagged = scored["is_anomaly"].to_numpy()
        metrics.update(detection_metrics(truth, flagged, scored["score"].to_numpy()))
        return metrics

    # ------------------------------------------------------------------------------------- figures
    def figures(self, df: pd.DataFrame | None = None) -> dict[str, Any]:
        """``forecast``, ``decomposition``, ``residuals`` and (for ``auto``) ``cv_errors`` plotly figures."""
        from framework.figures.time_series import MAX_POINTS, ForecastFigureData, build_figures

        self.check_is_fitted()
        y = self.model_.y_[-MAX_POINTS:]
        history = self._score(pd.DataFrame({self.spec.timestamp: self.index_[-MAX_POINTS:], self.spec.target: y}))
        scored = self._score(df) if df is not None and self.spec.target in df.columns else None
        data = ForecastFigureData(
            target=self.spec.target,
            timestamp=self.spec.timestamp,
            history=history,
            future=self.predict(),
            interval=self.spec.interval,
            model_description=self.model_description_,
            seasonal_period=self.seasonal_period_,
            n_total=len(self.model_.y_),
            sigma=self.sigma_,
            scored=scored,
            cv_scores=dict(self.cv_scores_ or {}),
        )
        return build_figures(data)

    # ------------------------------------------------------------------------------------ validate
    def validate(self, reference: Experiment | None = None) -> Validation:
        """The champion gate, judged on the rolling-origin CV of the fit (several origins, not one holdout).

        Passes when
        - the CV MASE is no worse than seasonal naive's on the same origins (``cv_relative_mase <= 1``; a model
          too short for CV is judged on the holdout's ``relative_mase``);
        - the holdout interval coverage is within ``max(0.10, 3 binomial standard errors)`` of the nominal level;
        - given ``reference`` (the champion, a fitted ``TimeSeriesExperiment``), the CV MASE is no worse than the
          champion's from the same origins, each model run forward with its own final parameters
          (``forward_cv_mase`` vs ``champion_cv_mase``; ``relative_to_champion <= 1``).
        """
        self.check_is_fitted()
        m = self.metrics_
        level, n = self.spec.interval, len(self.holdout_)
        tolerance = max(MIN_COVERAGE_TOLERANCE, 3 * math.sqrt(level * (1 - level) / n))
        on_cv = "cv_relative_mase" in m
        keys = ("cv_mase", "cv_relative_mase", "coverage") if on_cv else ("mase", "relative_mase", "coverage")
        metrics = {k: m[k] for k in keys} | {"coverage_tolerance": tolerance}
        if not all(math.isfinite(m[k]) for k in keys):
            return Validation(False, "validation metrics are not finite", metrics)
        where = f"CV over {len(self.cv_origins_)} origins" if on_cv else "holdout"
        mase, naive = (m["cv_mase"], m["cv_baseline_mase"]) if on_cv else (m["mase"], m["baseline_mase"])
        if mase > MAX_RELATIVE_MASE * naive:
            return Validation(False, f"{where}: MASE {mase:.3f} is worse than seasonal naive ({naive:.3f})", metrics)
        if abs(m["coverage"] - level) > tolerance:
            reason = f"interval coverage {m['coverage']:.2f} is more than {tolerance:.2f} from the nominal {level:.2f}"
            return Validation(False, reason, metrics)
        reason = f"{where}: MASE {mase:.3f} vs seasonal naive {naive:.3f}, holdout coverage {m['coverage']:.2f}"
        if reference is not None and on_cv:
            ours, champion = self._forward_cv_mase(self), self._forward_cv_mase(reference)
            metrics |= {"forward_cv_mase": ours, "champion_cv_mase": champion, "relative_to_champion": ours / champion}
            if not ours <= MAX_RELATIVE_TO_CHAMPION * champion:
                reason = f"{where}: MASE {ours:.3f} is worse than the champion's ({champion:.3f}) from the same origins"
                return Validation(False, reason, metrics)
            reason += f"; from the same origins {ours:.3f} vs the champion's {champion:.3f}"
        return Validation(True, reason, metrics)

    def _forward_cv_mase(self, reference: Experiment) -> float:
        """MASE of ``reference``'s fitted model run forward (parameters fixed) from each of this fit's CV origins.

        The new model and the champion are judged alike: each with its final parameters, on the same origins.
        """
        if not isinstance(reference, TimeSeriesExperiment) or not reference.is_fitted:
            raise TypeError(f"reference must be a fitted TimeSeriesExperiment, got {type(reference).__name__}")
        y = self.model_.y_[: len(self.model_.y_) - len(self.holdout_)]
        origins, h = self.cv_origins_, self.horizon_
        forecasts = np.stack([reference.model_.point_forecast(y[:o], h) for o in origins])
        errors = rolling_errors(y, origins, forecasts)
        return float(np.mean(cv_mase(errors, mase_scale(y[: origins[0]], self.seasonal_period_))))

    # -------------------------------------------------------------------------------------- helpers
    def _read(self, df: pd.DataFrame, *, require_target: bool) -> tuple[pd.Series, np.ndarray]:
        """Sorted timestamps and float target values (NaN without a target column); checks names and order."""
        self._check_frame(df)
        spec = self.spec
        for column, needed in ((spec.timestamp, True), (spec.target, require_target)):
            if needed and column not in df.columns:
                raise DataValidationError(f"column missing; got {list(df.columns)[:20]}", field=column)
        ts = coerce_timestamps(df[spec.timestamp], spec.timestamp)
        if spec.target in df.columns:
            values = self.numeric_frame(df, [spec.target])[spec.target].to_numpy()
        else:
            values = np.full(len(df), np.nan)
        duplicated = ts.duplicated().to_numpy()
        if duplicated.any():
            at = int(np.argmax(duplicated))
            row = df.index[at].item() if hasattr(df.index[at], "item") else df.index[at]
            raise DataValidationError(f"duplicate timestamp {ts.iloc[at]} (row {row!r})", field=spec.timestamp)
        if not ts.is_monotonic_increasing:
            self.warn(f"{spec.timestamp}: rows were not in time order; sorted them")
            order = np.argsort(ts.to_numpy(), kind="stable")
            ts, values = ts.iloc[order], values[order]
        return ts, values

    @staticmethod
    def _anchor(first: pd.Timestamp, offset: pd.DateOffset) -> pd.Timestamp:
        """The grid's first point: the step's period start, or the first timestamp rounded to a sub-day step."""
        try:
            delta = pd.Timedelta(offset)
        except (TypeError, ValueError):  # a calendar offset (month start, week day...)
            return offset.rollback(first.normalize()) if not offset.is_on_offset(first) else first
        if delta <= pd.Timedelta(days=1) and pd.Timedelta(days=1) % delta == pd.Timedelta(0):
            return first.round(delta)
        return first

    def _grid_positions(self, ts: pd.Series, offset: pd.DateOffset, anchor: pd.Timestamp) -> np.ndarray:
        try:
            delta = pd.Timedelta(offset)
        except (TypeError, ValueError):
            grid = pd.date_range(anchor, ts.iloc[-1], freq=offset)
            return grid.searchsorted(ts.to_numpy(), side="right") - 1
        return np.rint((ts - anchor).to_numpy() / delta.to_timedelta64()).astype("int64")

    def _positions(self, ts: pd.Series, *, observed: bool = True) -> np.ndarray:
        """Grid steps of ``ts`` from the anchor. A step too far past the data before it is refused: past the
        previous observation for ``observed`` rows (scoring and updating fill the gap in between), past the last
        observation for forecast timestamps. Either way the work stays bounded by the rows sent."""
        positions = self._grid_positions(ts, self.offset_, self.anchor_)
        limit = getattr(self.spec, "max_steps_ahead", None) or 10 * self.horizon_  # a 0.1.0 pickle has none
        last = len(self.index_) - 1
        ordered = np.sort(positions)
        jumps = np.diff(ordered, prepend=last) if observed else ordered - last
        if (jumps > limit).any():
            worst = int(np.argmax(jumps))
            since = "the observation before it" if observed and worst > 0 else f"the last observation {self.index_[-1]}"
            raise DataValidationError(
                f"{self.anchor_ + self.offset_ * int(ordered[worst])} is {int(jumps[worst])} steps of "
                f"{self.offset_.freqstr} past {since}, over the limit of {limit} (max_steps_ahead, default 10 x "
                "horizon)",
                field=self.spec.timestamp,
            )
        return positions

    def _to_grid(
        self, ts: pd.Series, values: np.ndarray, offset: pd.DateOffset, anchor: pd.Timestamp
    ) -> tuple[pd.DatetimeIndex, np.ndarray]:
        """Average rows onto the regular grid; steps without a value are NaN."""
        positions = self._grid_positions(ts, offset, anchor)
        start, stop = int(positions.min()), int(positions.max())
        span = stop - start + 1
        if span > self.spec.max_grid_rows:
            raise ConfigError(
                f"{offset.freqstr!r} puts these timestamps on a regular grid of {span} rows, over the limit of "
                f"{self.spec.max_grid_rows} (max_grid_rows); choose a coarser frequency",
                field="frequency",
            )
        sums = np.bincount(positions - start, weights=np.nan_to_num(values), minlength=span)
        counts = np.bincount(positions - start, weights=np.isfinite(values).astype(float), minlength=span)
        rows_per_step = np.bincount(positions - start, minlength=span)
        if (shared := int((rows_per_step > 1).sum())) > 0:
            self.warn(
                f"{self.spec.timestamp}: {shared} grid step(s) of {offset.freqstr} had several rows; averaged them"
            )
        y = np.divide(sums, counts, out=np.full(span, np.nan), where=counts > 0)
        grid = pd.date_range(anchor, periods=stop + 1, freq=offset)[start:]
        return grid, y

    def _future_index(self, h: int) -> pd.DatetimeIndex:
        return pd.date_range(self.index_[-1], periods=h + 1, freq=self.offset_)[1:]


def _fill_gaps(y: np.ndarray, m: int, max_gap: int, *, warn: bool = True) -> np.ndarray:
    """Interpolate runs of at most ``max_gap`` NaNs linearly; fill longer runs from one season ``m`` earlier."""
    missing = np.isnan(y)
    if not missing.any():
        return y
    y = y.copy()
    run_id = np.cumsum(~missing)
    run_length = np.bincount(run_id[missing], minlength=run_id.max() + 1)[run_id]
    short = missing & (run_length <= max_gap)
    long = missing & ~short
    if m > 1 and long.any():
        for _ in range(int(run_length[long].max() // m) + 1):
            source = np.roll(y, m)
            source[:m] = np.nan
            fill = long & np.isnan(y) & np.isfinite(source)
            y[fill] = source[fill]
    rest = np.isnan(y)
    if rest.any():
        positions = np.arange(len(y))
        y[rest] = np.interp(positions[rest], positions[~rest], y[~rest])
    if warn:
        warnings.warn(
            f"filled {int(missing.sum())} missing step(s): {int(short.sum())} by linear interpolation "
            f"(gaps <= {max_gap}), {int(long.sum())} from the previous season",
            DataQualityWarning,
            stacklevel=3,
        )
    return y


def _choose_scale(y: np.ndarray, fitted: np.ndarray, bins: int = 5) -> tuple[str, float]:
    """``("additive", sigma)`` or ``("relative", sigma)`` for the residuals ``y - fitted``, by the spread-versus-level
    plot (Tukey; Hoaglin, Mosteller & Tukey 1983): the slope of log robust spread on log level over ``bins`` quantile
    bins of the forecast is about 0 for additive noise and 1 for noise proportional to the level; over 0.5 means
    relative. Relative needs a positive series and at least 8 residuals a bin."""
    resid = y - fitted
    additive = _robust_sigma(resid)
    if resid.size < 8 * bins or np.min(y) <= 0 or np.min(fitted) <= 0:
        return "additive", additive
    order = np.argsort(fitted)
    groups = np.array_split(order, bins)
    level = np.log([np.median(fitted[g]) for g in groups])
    spread = np.log([max(_robust_sigma(resid[g]), 1e-12) for g in groups])
    if np.ptp(level) < 1e-9:
        return "additive", additive
    slope = float(np.polyfit(level, spread, 1)[0])
    return ("relative", _robust_sigma(resid / fitted)) if slope > 0.5 else ("additive", additive)


def _robust_sigma(residuals: np.ndarray) -> float:
    """1.4826 x MAD, falling back to the standard deviation, and never zero."""
    if residuals.size == 0:
        return 1.0
    mad = 1.4826 * float(np.median(np.abs(residuals - np.median(residuals))))
    sigma = mad if mad > 0 else float(np.std(residuals))
    return sigma if sigma > 0 else 1e-9
