"""The forecaster catalog: one small interface over seasonal naive, ETS, ARIMA, Theta, STL, CES and ``auto``.

Every forecaster works on a regular 1-D float series (positions, not timestamps; the experiment owns the
calendar). Parameters are estimated in ``fit``; the *state* is the history ``y_``. ``extend`` appends new
observations without re-estimating anything, and ``forecast``/``one_step`` read the state without changing it.

Engines were chosen by measurement (``bench/forecasting.py``): statsforecast's AutoETS, AutoARIMA (limited
search), AutoTheta and AutoCES were at least as accurate as the statsmodels equivalents on the shipped series
and fit far faster, so they back ``ets``, ``arima``, ``theta`` and ``ces``. ``stl`` is statsmodels' robust STL
with AutoETS on the seasonally adjusted series. ``seasonal_naive`` is plain numpy.

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

__all__ = [
    "DEFAULT_CANDIDATES",
    "FORECASTERS",
    "OPTIONAL_MODELS",
    "AutoForecaster",
    "Forecaster",
    "Param",
    "forecast_metrics",
    "make_forecaster",
    "mase_scale",
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


def mase_scale(y: np.ndarray, season_length: int) -> float:
    """In-sample MAE of the seasonal naive forecast (lag ``season_length``, or 1 if the series is too short)."""
    lag = season_length if len(y) > season_length else 1
    diffs = np.abs(y[lag:] - y[:-lag])
    scale = float(np.mean(diffs)) if diffs.size else float("nan")
    return scale if scale > 0 else float("nan")


def forecast_metrics(
    actual: np.ndarray, mean: np.ndarray, lower: np.ndarray, upper: np.ndarray, scale: float
) -> dict[str, float]:
    """MASE (scaled by ``scale``), sMAPE (percent), MAE, RMSE and interval coverage of one forecast."""
    err = actual - mean
    mae = float(np.mean(np.abs(err)))
    denom = np.abs(actual) + np.abs(mean)
    ratio = np.divide(2 * np.abs(err), denom, out=np.zeros_like(denom), where=denom > 0)
    return {
        "mase": mae / scale if scale > 0 else float("nan"),
        "smape": float(100 * np.mean(ratio)),
        "mae": mae,
        "rmse": float(np.sqrt(np.mean(err**2))),
        "coverage": float(np.mean((actual >= lower) & (actual <= upper))),
    }


def _point_mase(model: Forecaster, y: np.ndarray, origin: int, h: int, m: int) -> float:
    """MASE of ``model``'s point forecast of ``y[origin:origin + h]`` made from ``y[:origin]``."""
    mean = model.point_forecast(y[:origin], h)
    return float(np.mean(np.abs(y[origin : origin + h] - mean))) / mase_scale(y[:origin], m)


def _level_key(level: float) -> int | float:
    """statsforecast's level argument (percent) as it appears in its output keys ``lo-95``."""
    pct = round(100 * level, 6)
    return int(pct) if float(pct).is_integer() else pct


def _z(level: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + level / 2))


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
        width = _z(level) * self.sigma_ * np.sqrt(steps // self.lag_ + 1)
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
    cls.name: cls for cls in (SeasonalNaive, ETS, ARIMA, Theta, STLForecaster, CES, AutoForecaster)
}
OPTIONAL_MODELS = {"prophet": "prophet"}  # model name -> the package a user would have to install


def make_forecaster(
    name: str, params: Mapping[str, Any] | None = None, *, season_length: int = 1, horizon: int = 1
) -> Forecaster:
    """Build the catalog model ``name``; an unknown name or parameter raises ``ConfigError`` naming it."""
    cls = FORECASTERS.get(name)
    if name in OPTIONAL_MODELS:
        package = OPTIONAL_MODELS[name]
        reason = (
            f"needs the optional package {package}, which is not installed: pip install {package}"
            if importlib.util.find_spec(package) is None
            else "has no adapter in this release"
        )
        raise ConfigError(f"model {name!r} {reason}; or choose one of {', '.join(FORECASTERS)}", field="model.name")
    if cls is None:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(FORECASTERS)}", field="model.name")
    return cls(params, season_length=season_length, horizon=horizon)
