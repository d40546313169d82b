"""The forecaster catalog: one small interface over seasonal naive, ETS, ARIMA, Theta, STL, CES, Prophet and ``auto``.

Every forecaster works on a regular 1-D float series (positions, not timestamps; the experiment owns the
calendar). Parameters are estimated in ``fit``; the *state* is the history ``y_``. ``extend`` appends new
observations without re-estimating anything, and ``forecast``/``one_step`` read the state without changing it.

Engines were chosen by measurement (``bench/forecasting.py``): statsforecast's AutoETS, AutoARIMA (limited
search), AutoTheta and AutoCES were at least as accurate as the statsmodels equivalents on the shipped series
and fit far faster, so they back ``ets``, ``arima``, ``theta`` and ``ces``. ``stl`` is statsmodels' robust STL
with AutoETS on the seasonally adjusted series. ``seasonal_naive`` is plain numpy. ``prophet`` (the optional
extra ``experimenthub[prophet]``) is Prophet's MAP fit with AR(1) errors; it is not an ``auto`` candidate by
default (see ``ProphetForecaster``).

>>> model = make_forecaster("auto", {"folds": 2}, season_length=24, horizon=24).fit(y)
>>> mean, lower, upper = model.forecast(24, level=0.95)
>>> model.cv_mase_                      # {"ets": 0.71, "ces": 0.69, ...}
"""

from __future__ import annotations

import copy
import importlib.util
import logging
import math
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from framework.errors import ConfigError
from framework.metrics import mase_scale, normal_quantile

__all__ = [
    "DEFAULT_CANDIDATES",
    "FORECASTERS",
    "AutoForecaster",
    "Forecaster",
    "Param",
    "ProphetForecaster",
    "make_forecaster",
]

log = logging.getLogger(__name__)

DEFAULT_CANDIDATES = ("seasonal_naive", "ets", "theta", "ces", "arima", "stl")
MAX_SEASONAL_ARIMA_PERIOD = 24  # a seasonal ARIMA search with a longer period takes minutes
# statsforecast keeps in-sample copies of the data in its fitted dict; forward() needs none of them.
_BULKY_KEYS = ("fit", "residuals", "fitted", "states", "actual_residuals", "x")


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its default, accepted types, and optional choices or minimum."""

    default: Any
    types: tuple[type, ...]
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None

    def check(self, name: str, value: Any) -> Any:
        field = f"model.params.{name}"
        ok_type = isinstance(value, self.types) and not (isinstance(value, bool) and bool not in self.types)
        if not ok_type and not (value is None and self.default is None):
            names = " or ".join(t.__name__ for t in self.types)
            raise ConfigError(f"must be {names}, got {type(value).__name__}", field=field)
        if self.choices is not None and value is not None and value not in self.choices:
            raise ConfigError(f"must be one of {', '.join(map(str, self.choices))}", field=field)
        if self.minimum is not None and value is not None and value < self.minimum:
            raise ConfigError(f"must be >= {self.minimum}", field=field)
        return value


def _point_mase(model: Forecaster, y: np.ndarray, origin: int, h: int, m: int) -> float:
    """MASE of ``model``'s point forecast of ``y[origin:origin + h]`` made from ``y[:origin]``."""
    mean = model.point_forecast(y[:origin], h)
    return float(np.mean(np.abs(y[origin : origin + h] - mean))) / mase_scale(y[:origin], m)


def _level_key(level: float) -> int | float:
    """statsforecast's level argument (percent) as it appears in its output keys ``lo-95``."""
    pct = round(100 * level, 6)
    return int(pct) if float(pct).is_integer() else pct


def _check_ets_code(code: str) -> None:
    if len(code) != 3 or code[0] not in "ZAM" or code[1] not in "ZANM" or code[2] not in "ZANM":
        raise ConfigError("must be 3 letters: error Z/A/M, trend Z/A/N/M, season Z/A/N/M", field="model.params.model")


class Forecaster(ABC):
    """A model of one regular series. Subclasses set ``name``, ``params_spec`` and the ``_fit``/``_run`` hooks.

    ``fit(y)`` estimates parameters and keeps ``y_``; ``extend(y_new)`` appends without re-estimating;
    ``forecast(h, level)`` and ``one_step(y)`` are pure.
    """

    name: ClassVar[str]
    params_spec: ClassVar[Mapping[str, Param]] = MappingProxyType({})
    needs: ClassVar[str | None] = None  # an optional package this model needs

    def __init__(self, params: Mapping[str, Any] | None = None, *, season_length: int = 1, horizon: int = 1) -> None:
        params = dict(params or {})
        if unknown := sorted(set(params) - set(self.params_spec)):
            valid = ", ".join(self.params_spec) or "none"
            raise ConfigError(
                f"unknown parameter for model {self.name!r}; valid: {valid}", field=f"model.params.{unknown[0]}"
            )
        self.params = {key: spec.check(key, params.get(key, spec.default)) for key, spec in self.params_spec.items()}
        self.season_length = int(season_length)
        self.horizon = int(horizon)
        self._validate()
        if self.needs and importlib.util.find_spec(self.needs) is None:
            raise ConfigError(
                f"model {self.name!r} needs {self.needs}, not installed: pip install {self.needs}",
                field="model.name",
            )

    def fit(self, y: np.ndarray) -> Forecaster:
        """Estimate parameters on ``y`` and keep it as the state."""
        y = np.asarray(y, dtype="float64")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimiser chatter from the engines
            self._fit(y)
        self.y_ = y.copy()
        return self

    def extend(self, y_new: np.ndarray) -> Forecaster:
        """Append observations to the state; parameters stay as fitted (cheap, for streaming)."""
        self.y_ = np.concatenate([self.y_, np.asarray(y_new, dtype="float64")])
        return self

    def forecast(self, h: int, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point forecast and ``level`` interval for the ``h`` steps after the state."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._forecast(self.y_, h, level)

    def one_step(self, y: np.ndarray) -> np.ndarray:
        """One-step-ahead forecasts of every value of ``y`` (a series starting where the fit started)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._one_step(np.asarray(y, dtype="float64"))

    def point_forecast(self, y: np.ndarray, h: int) -> np.ndarray:
        """The mean forecast for ``h`` steps after ``y`` with the fitted parameters (no interval: cheap)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self._forecast(np.asarray(y, dtype="float64"), h, None)[0]

    def _validate(self) -> None:  # noqa: B027 - an optional hook
        """Check parameter values together (types were checked already); raise ``ConfigError``."""

    def describe(self) -> str:
        """A short label of what was fitted, e.g. ``ETS(A,Ad,A)``."""
        return self.name

    @abstractmethod
    def _fit(self, y: np.ndarray) -> None: ...

    @abstractmethod
    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    @abstractmethod
    def _one_step(self, y: np.ndarray) -> np.ndarray: ...


class SeasonalNaive(Forecaster):
    """Repeat the last season; the interval grows with the number of seasons ahead."""

    name = "seasonal_naive"

    def _fit(self, y: np.ndarray) -> None:
        self.lag_ = self.season_length if len(y) > self.season_length else 1
        resid = y[self.lag_ :] - y[: -self.lag_]
        self.sigma_ = float(np.std(resid)) if resid.size > 1 else 0.0

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        steps = np.arange(h)
        mean = y[-self.lag_ :][steps % self.lag_]
        if level is None:
            return mean, mean, mean
        width = normal_quantile(level) * self.sigma_ * np.sqrt(steps // self.lag_ + 1)
        return mean, mean - width, mean + width

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        out = np.full_like(y, np.nan)
        out[self.lag_ :] = y[: -self.lag_]
        return out


class _StatsForecastModel(Forecaster):
    """Shared plumbing for statsforecast models: fit once, then ``forward`` with fixed parameters."""

    needs = "statsforecast"
    bulky: ClassVar[tuple[str, ...]] = _BULKY_KEYS

    @abstractmethod
    def _build(self, y: np.ndarray) -> Any:
        """The unfitted statsforecast model."""

    def _fit(self, y: np.ndarray) -> None:
        model = self._build(y)
        model.fit(y)
        for key in self.bulky:  # keep the pickle small: forward() re-derives these
            if key in model.model_:
                model.model_[key] = None
        self.model_ = model

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pct = _level_key(level) if level is not None else None
        out = self.model_.forward(y=y, h=h, level=[pct] if pct is not None else None)
        mean = np.asarray(out["mean"], dtype="float64")
        if pct is None:
            return mean, mean, mean
        return mean, np.asarray(out[f"lo-{pct}"], dtype="float64"), np.asarray(out[f"hi-{pct}"], dtype="float64")

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        return np.asarray(self.model_.forward(y=y, h=1, fitted=True)["fitted"], dtype="float64")

    def describe(self) -> str:
        fitted = self.model_.model_
        return str(fitted.get("method") or fitted.get("modeltype") or fitted.get("seasontype") or self.name)


class ETS(_StatsForecastModel):
    """Exponential smoothing; error, trend, damping and season chosen by AICc (statsforecast AutoETS)."""

    name = "ets"
    params_spec = MappingProxyType({"model": Param("ZZZ", (str,)), "damped": Param(None, (bool,))})

    def _validate(self) -> None:
        _check_ets_code(self.params["model"])

    def _build(self, y: np.ndarray) -> Any:
        from statsforecast.models import AutoETS

        return AutoETS(season_length=self.season_length, model=self.params["model"], damped=self.params["damped"])


class ARIMA(_StatsForecastModel):
    """Seasonal ARIMA with a bounded stepwise order search (statsforecast AutoARIMA, approximated likelihood)."""

    name = "arima"
    params_spec = MappingProxyType(
        {
            "max_p": Param(2, (int,), minimum=0),
            "max_q": Param(2, (int,), minimum=0),
            "max_P": Param(1, (int,), minimum=0),
            "max_Q": Param(1, (int,), minimum=0),
            "nmodels": Param(10, (int,), minimum=1),
            "seasonal": Param(True, (bool,)),
        }
    )
    bulky = ("residuals",)  # forward() reads the training series "x"

    def _build(self, y: np.ndarray) -> Any:
        from statsforecast.models import AutoARIMA

        p = self.params
        seasonal = p["seasonal"] and 1 < self.season_length <= MAX_SEASONAL_ARIMA_PERIOD
        return AutoARIMA(
            season_length=self.season_length if seasonal else 1,
            seasonal=seasonal,
            max_p=p["max_p"],
            max_q=p["max_q"],
            max_P=p["max_P"],
            max_Q=p["max_Q"],
            max_order=p["max_p"] + p["max_q"] + p["max_P"] + p["max_Q"],
            nmodels=p["nmodels"],
            approximation=True,
        )

    def describe(self) -> str:
        p, q, sp, sq, m, d, sd = self.model_.model_["arma"]
        return f"ARIMA({p},{d},{q})({sp},{sd},{sq})[{m}]"


class Theta(_StatsForecastModel):
    """Theta method (standard, optimised or dynamic; chosen by MSE), statsforecast AutoTheta."""

    name = "theta"
    params_spec = MappingProxyType(
        {
            "model": Param(None, (str,), choices=("STM", "OTM", "DSTM", "DOTM")),
            "decomposition_type": Param("multiplicative", (str,), choices=("multiplicative", "additive")),
        }
    )

    def _build(self, y: np.ndarray) -> Any:
        from statsforecast.models import AutoTheta

        decomposition = self.params["decomposition_type"]
        if np.nanmin(y) <= 0:  # multiplicative needs a positive series
            decomposition = "additive"
        return AutoTheta(season_length=self.season_length, decomposition_type=decomposition, model=self.params["model"])


class CES(_StatsForecastModel):
    """Complex exponential smoothing (statsforecast AutoCES; season type chosen by AIC)."""

    name = "ces"
    params_spec = MappingProxyType({"model": Param("Z", (str,), choices=("Z", "N", "S", "P", "F"))})

    def _build(self, y: np.ndarray) -> Any:
        from statsforecast.models import AutoCES

        return AutoCES(season_length=self.season_length, model=self.params["model"])

    def describe(self) -> str:
        return f"CES({self.model_.model_.get('seasontype', '?')})"


class STLForecaster(Forecaster):
    """Robust STL (statsmodels); the last seasonal cycle is frozen and ETS models the adjusted series.

    Freezing the seasonal profile keeps one-step forecasts causal: a new spike cannot leak into its own forecast.
    """

    name = "stl"
    needs = "statsforecast"
    params_spec = MappingProxyType(
        {"robust": Param(True, (bool,)), "seasonal": Param(7, (int,), minimum=3), "model": Param("ZZN", (str,))}
    )

    def _validate(self) -> None:
        _check_ets_code(self.params["model"])

    def _fit(self, y: np.ndarray) -> None:
        from statsmodels.tsa.seasonal import STL

        m = self.season_length
        if m >= 2 and len(y) >= 2 * m + 1:
            smoother = self.params["seasonal"] | 1  # STL needs an odd length
            seasonal = STL(y, period=m, seasonal=smoother, robust=self.params["robust"]).fit().seasonal
            last = seasonal[-m:]
            self.profile_ = np.roll(last, len(y) % m)  # profile_[t % m] is the seasonal effect at position t
        else:
            self.profile_ = np.zeros(1)
        self.ets_ = ETS({"model": self.params["model"]}, season_length=1)._build(y)
        self.ets_.fit(self._adjust(y))
        for key in _BULKY_KEYS:
            if key in self.ets_.model_:
                self.ets_.model_[key] = None

    def _season(self, start: int, n: int) -> np.ndarray:
        return self.profile_[np.arange(start, start + n) % len(self.profile_)]

    def _adjust(self, y: np.ndarray) -> np.ndarray:
        return y - self._season(0, len(y))

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pct = _level_key(level) if level is not None else None
        out = self.ets_.forward(y=self._adjust(y), h=h, level=[pct] if pct is not None else None)
        season = self._season(len(y), h)
        mean = np.asarray(out["mean"]) + season
        if pct is None:
            return mean, mean, mean
        return mean, np.asarray(out[f"lo-{pct}"]) + season, np.asarray(out[f"hi-{pct}"]) + season

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        fitted = self.ets_.forward(y=self._adjust(y), h=1, fitted=True)["fitted"]
        return np.asarray(fitted, dtype="float64") + self._season(0, len(y))

    def describe(self) -> str:
        return f"STL+{self.ets_.model_.get('method', 'ETS')}"


_SUBDAILY_PER_DAY = (24, 48, 72, 96, 144, 288, 720, 1440)  # seasonal periods that mean "one day" of sub-daily steps
_STEP = 60  # seconds: Prophet sees position t as the time t minutes after 1970-01-01 (up to ~150M steps)


def _prophet_seasonalities(m: int, n: int) -> list[float]:
    """Default Prophet seasonal periods, in steps, for seasonal period ``m`` and ``n`` observations.

    ``m`` is a day of sub-daily steps (24 for hourly...): the day, and the week once two weeks are seen. ``m == 7``
    (daily data): the week, and the year (365.25) once two years are seen. ``m == 52`` or ``365``: the year of
    weekly (365.25/7) or daily data. Any other ``m > 1``: ``m`` itself.
    """
    if m <= 1:
        return []
    if m == 52:
        return [365.25 / 7]
    if m == 365:
        return [365.25]
    if m == 7:
        return [7.0] + ([365.25] if n >= 2 * 365.25 else [])
    if m in _SUBDAILY_PER_DAY:
        return [float(m)] + ([7.0 * m] if n >= 14 * m else [])
    return [float(m)]


def _prophet_fourier_order(period: float, m: int) -> int:
    """Prophet's defaults by meaning: 4 for a day, 3 for a week, 10 for a year or anything else; at most period/2."""
    if m in _SUBDAILY_PER_DAY and period == m:
        order = 4
    elif (period == 7 * m and m in _SUBDAILY_PER_DAY) or period == 7:
        order = 3
    else:
        order = 10
    return max(1, min(order, int(period // 2)))


class _QuietProphet:
    """Silence cmdstanpy (INFO lines on stderr for every fit) and prophet's INFO notes while fitting."""

    def __enter__(self) -> None:
        self.loggers = [logging.getLogger(name) for name in ("cmdstanpy", "prophet")]
        self.disabled = [lg.disabled for lg in self.loggers]
        for lg in self.loggers:
            lg.disabled = True

    def __exit__(self, *exc: object) -> None:
        for lg, disabled in zip(self.loggers, self.disabled, strict=True):
            lg.disabled = disabled


class ProphetForecaster(Forecaster):
    """Prophet (MAP fit, piecewise-linear trend, Fourier seasonalities) with AR(1) errors; needs ``prophet``.

    The series has no calendar here, so Prophet sees step ``t`` as ``t`` minutes after the epoch and every
    seasonality is declared in steps: by default the seasonal period, plus the week for sub-daily data and the
    year for daily data (``_prophet_seasonalities``); ``seasonal_periods`` overrides them. Holidays are not used.

    Prophet's curve is a function of time only, so new observations would not move it. The state enters through
    the residuals instead: with ``ar_errors`` (default) the forecast adds ``phi**k`` times the last residual, ``phi``
    being the lag-1 autocorrelation of the in-sample residuals. ``extend`` therefore needs no refit, like the
    other models; ``refit_on_update=True`` refits on every ``extend`` instead, warm-started from the previous
    parameters (``init=``), which lets the trend follow the data at a cost of one fit per update.

    The interval is analytic (``uncertainty_samples=0``: no simulation): the AR(1) innovation variance summed
    over the horizon, which tends to the residual variance. Prophet's trend uncertainty (simulated future
    changepoints) is left out, so long-horizon intervals are somewhat narrower than Prophet's own.

    Only numpy arrays are kept after the fit (parameters, changepoints, scales): the pickle is small, carries no
    Stan objects, and predicting does not import prophet.
    """

    name = "prophet"
    needs = "prophet"
    params_spec = MappingProxyType(
        {
            "changepoint_prior_scale": Param(0.05, (float, int)),
            "seasonality_prior_scale": Param(10.0, (float, int)),
            "seasonality_mode": Param("additive", (str,), choices=("additive", "multiplicative")),
            "n_changepoints": Param(25, (int,), minimum=0),
            "seasonal_periods": Param(None, (list, tuple)),
            "fourier_order": Param(None, (int,), minimum=1),
            "ar_errors": Param(True, (bool,)),
            "refit_on_update": Param(False, (bool,)),
        }
    )

    def _validate(self) -> None:
        for key in ("changepoint_prior_scale", "seasonality_prior_scale"):
            if self.params[key] <= 0:
                raise ConfigError("must be > 0", field=f"model.params.{key}")
        periods = self.params["seasonal_periods"]
        if periods is not None:
            if any(isinstance(p, bool) or not isinstance(p, int | float) or not p > 1 for p in periods):
                raise ConfigError("must be a list of periods in steps, each > 1", field="model.params.seasonal_periods")
            self.params["seasonal_periods"] = [float(p) for p in periods]

    def _fit(self, y: np.ndarray) -> None:
        import pandas as pd

        with _QuietProphet():
            from prophet import Prophet

            p, n = self.params, len(y)
            periods = p["seasonal_periods"]
            if periods is None:
                periods = _prophet_seasonalities(self.season_length, n)
            model = Prophet(
                growth="linear",
                n_changepoints=min(p["n_changepoints"], max(0, int(0.8 * n) - 1)),
                changepoint_prior_scale=float(p["changepoint_prior_scale"]),
                seasonality_prior_scale=float(p["seasonality_prior_scale"]),
                seasonality_mode=p["seasonality_mode"],
                yearly_seasonality=False,
                weekly_seasonality=False,
                daily_seasonality=False,
                uncertainty_samples=0,
            )
            self.seasonalities_ = []
            for i, period in enumerate(periods):
                order = p["fourier_order"] or _prophet_fourier_order(period, self.season_length)
                order = max(1, min(order, int(period // 2)))
                model.add_seasonality(f"s{i}", period=period * _STEP / 86400, fourier_order=order)
                self.seasonalities_.append((float(period), order))
            frame = pd.DataFrame({"ds": pd.to_datetime(np.arange(n, dtype="int64") * _STEP, unit="s"), "y": y})
            kwargs = {"init": self.stan_params_} if getattr(self, "stan_params_", None) is not None else {}
            model.fit(frame, **kwargs)
        params = {key: np.asarray(value, dtype="float64") for key, value in model.params.items()}
        self.stan_params_ = {
            "k": float(params["k"].ravel()[0]),
            "m": float(params["m"].ravel()[0]),
            "sigma_obs": float(params["sigma_obs"].ravel()[0]),
            "delta": params["delta"].reshape(-1),
            "beta": params["beta"].reshape(-1),
        }
        self.changepoints_t_ = np.asarray(model.changepoints_t, dtype="float64")
        step = pd.Timedelta(seconds=_STEP)
        self.t_start_ = (model.start - pd.Timestamp(0)) / step  # Prophet's time origin and scale, in steps
        self.t_scale_ = model.t_scale / step if model.t_scale / step > 0 else 1.0
        self.y_scale_, self.floor_ = float(model.y_scale), float(model.y_min if model.scaling == "minmax" else 0.0)
        self.multiplicative_ = p["seasonality_mode"] == "multiplicative"
        resid = y - self.curve(0, n)
        self.phi_ = 0.0
        if p["ar_errors"] and n > 3 and np.dot(resid[:-1], resid[:-1]) > 0:
            self.phi_ = float(np.clip(np.dot(resid[:-1], resid[1:]) / np.dot(resid[:-1], resid[:-1]), 0.0, 0.98))
        innovations = resid[1:] - self.phi_ * resid[:-1]
        self.sigma_ = float(np.std(innovations)) if innovations.size > 1 else 0.0

    def curve(self, start: int, n: int) -> np.ndarray:
        """Prophet's ``yhat`` (trend and seasonality, no AR correction) at positions ``start .. start + n - 1``."""
        pos = np.arange(start, start + n, dtype="float64")
        t = (pos - self.t_start_) / self.t_scale_
        par = self.stan_params_
        active = (self.changepoints_t_[None, :] <= t[:, None]) * par["delta"]  # Prophet.piecewise_linear
        trend = (par["k"] + active.sum(axis=1)) * t + par["m"] - (active * self.changepoints_t_).sum(axis=1)
        trend = trend * self.y_scale_ + self.floor_
        columns = []
        for period, order in self.seasonalities_:  # Prophet.fourier_series: sin, cos per harmonic
            angle = 2 * np.pi * pos[:, None] * np.arange(1, order + 1) / period
            columns.append(np.stack([np.sin(angle), np.cos(angle)], axis=2).reshape(len(pos), 2 * order))
        if not columns:
            return trend
        seasonal = np.concatenate(columns, axis=1) @ par["beta"]
        return trend * (1 + seasonal) if self.multiplicative_ else trend + seasonal * self.y_scale_

    def extend(self, y_new: np.ndarray) -> Forecaster:
        if not self.params["refit_on_update"]:
            return super().extend(y_new)
        return self.fit(np.concatenate([self.y_, np.asarray(y_new, dtype="float64")]))  # warm-started from stan_params_

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = len(y)
        last = y[-1] - self.curve(n - 1, 1)[0]
        decay = self.phi_ ** np.arange(1, h + 1)
        mean = self.curve(n, h) + decay * last
        if level is None:
            return mean, mean, mean
        variance = np.cumsum(self.phi_ ** (2 * np.arange(h))) * self.sigma_**2
        width = normal_quantile(level) * np.sqrt(variance)
        return mean, mean - width, mean + width

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        fitted = self.curve(0, len(y))
        out = fitted.copy()
        out[1:] += self.phi_ * (y[:-1] - fitted[:-1])
        return out

    def describe(self) -> str:
        periods = ",".join(f"{p:g}" for p, _ in self.seasonalities_) or "none"
        mode = "multiplicative" if self.multiplicative_ else "additive"
        return f"Prophet({mode}, seasons {periods}, AR(1) {self.phi_:.2f})"


class AutoForecaster(Forecaster):
    """Rolling-origin cross-validation over ``candidates``; the lowest mean MASE wins and is refitted on all data.

    Each candidate is fitted once on the data before the first fold, then scored at every origin with its
    parameters fixed (``point_forecast``). The winner keeps those parameters and is extended over the folds
    (``refit=True`` re-estimates it on all the data instead): one fit per candidate keeps ``auto`` fast.
    Scores are kept in ``cv_scores_`` (name -> MASE per fold) and ``cv_mase_`` (name -> mean).
    """

    name = "auto"
    params_spec = MappingProxyType(
        {
            "candidates": Param(list(DEFAULT_CANDIDATES), (list, tuple)),
            "folds": Param(2, (int,), minimum=1),
            "refit": Param(False, (bool,)),
        }
    )

    def __init__(self, params: Mapping[str, Any] | None = None, *, season_length: int = 1, horizon: int = 1) -> None:
        super().__init__(params, season_length=season_length, horizon=horizon)
        candidates = list(self.params["candidates"])
        valid = [n for n in FORECASTERS if n != "auto"]
        if not candidates:
            raise ConfigError(f"needs at least one of {', '.join(valid)}", field="model.params.candidates")
        if bad := [c for c in candidates if c not in valid]:
            raise ConfigError(
                f"unknown candidate {bad[0]!r}; choose from {', '.join(valid)}", field="model.params.candidates"
            )
        self.params["candidates"] = candidates
        self.models = {}
        for name in candidates:
            cls = FORECASTERS[name]
            if cls.needs and importlib.util.find_spec(cls.needs) is None:
                log.warning("auto: skipping %s (%s is not installed)", name, cls.needs)
                continue
            self.models[name] = cls(season_length=season_length, horizon=horizon)

    def _fit(self, y: np.ndarray) -> None:
        h, m = self.horizon, self.season_length
        folds = self.params["folds"]
        min_train = max(2 * m + 2, 10)
        folds = min(folds, max(0, (len(y) - min_train) // h))
        if folds < 1:
            raise ConfigError(
                f"auto needs at least {min_train + h} points for one cross-validation fold; got {len(y)}",
                field="model.name",
            )
        origins = [len(y) - (folds - k) * h for k in range(folds)]
        self.cv_scores_: dict[str, list[float]] = {}
        self.cv_seconds_: dict[str, float] = {}
        for name, model in self.models.items():
            start = time.perf_counter()
            try:
                model.fit(y[: origins[0]])
                scores = [_point_mase(model, y, o, h, m) for o in origins]
            except Exception as exc:  # a failing candidate must not sink the others
                log.warning("auto: candidate %s failed: %s", name, exc)
                scores = [float("nan")] * folds
            self.cv_scores_[name] = scores
            self.cv_seconds_[name] = time.perf_counter() - start
        self.cv_mase_ = {
            n: float(np.mean(s)) if np.all(np.isfinite(s)) else float("nan") for n, s in self.cv_scores_.items()
        }
        finite = {n: s for n, s in self.cv_mase_.items() if math.isfinite(s)}
        if not finite:
            raise ConfigError("auto: every candidate failed to fit", field="model.params.candidates")
        self.best_name_ = min(finite, key=finite.__getitem__)
        winner = self.models[self.best_name_]
        self.best_ = copy.deepcopy(winner).fit(y) if self.params["refit"] else winner.extend(y[origins[0] :])
        self.models = {}  # the candidates' fitted copies are not needed after selection
        log.info("auto chose %s (CV MASE %s)", self.best_name_, {n: round(s, 3) for n, s in self.cv_mase_.items()})

    def fit(self, y: np.ndarray) -> Forecaster:
        super().fit(y)
        self.best_.y_ = self.y_
        return self

    def extend(self, y_new: np.ndarray) -> Forecaster:
        super().extend(y_new)
        self.best_.y_ = self.y_
        return self

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.best_._forecast(y, h, level)

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        return self.best_._one_step(y)

    def describe(self) -> str:
        return f"auto -> {self.best_.describe()}"


FORECASTERS: dict[str, type[Forecaster]] = {
    cls.name: cls for cls in (SeasonalNaive, ETS, ARIMA, Theta, STLForecaster, CES, ProphetForecaster, AutoForecaster)
}


def make_forecaster(
    name: str, params: Mapping[str, Any] | None = None, *, season_length: int = 1, horizon: int = 1
) -> Forecaster:
    """Build the catalog model ``name``; an unknown name or parameter raises ``ConfigError`` naming it."""
    cls = FORECASTERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(FORECASTERS)}", field="model.name")
    return cls(params, season_length=season_length, horizon=horizon)
