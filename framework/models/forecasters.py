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
from framework.models.conformal import (
    MAX_ORIGINS,
    conformal_widths,
    cv_mase,
    level_exponent,
    local_level,
    min_train,
    rolling_errors,
    rolling_origins,
)

__all__ = [
    "COMBINATION_MEMBERS",
    "DEFAULT_CANDIDATES",
    "FORECASTERS",
    "AutoForecaster",
    "Combination",
    "Forecaster",
    "MSTLForecaster",
    "Param",
    "ProphetForecaster",
    "make_forecaster",
    "required_margin",
]

log = logging.getLogger(__name__)

DEFAULT_CANDIDATES = ("seasonal_naive", "ets", "theta", "ces", "arima", "stl", "combination")
COMBINATION_MEMBERS = ("ets", "ces", "arima", "theta")
# SCUM's theta member is the dynamic optimised theta (DOTM); the others are the catalog defaults
MEMBER_PARAMS: Mapping[str, Mapping[str, Any]] = MappingProxyType({"theta": MappingProxyType({"model": "DOTM"})})
UNSTABLE = 10.0  # auto drops a candidate whose CV MASE at an origin is over this many times the median candidate's
FULL_SEARCH_MAX_N = 600  # arima: statsforecast's default order search up to this many points (below m = 24)
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


INTERVALS = Param("conformal", (str,), choices=("conformal", "model"))


def _level_key(level: float) -> int | float:
    """statsforecast's level argument (percent) as it appears in its output keys ``lo-95``."""
    pct = round(100 * level, 6)
    return int(pct) if float(pct).is_integer() else pct


def _check_ets_code(code: str) -> None:
    if len(code) != 3 or code[0] not in "ZAM" or code[1] not in "ZANM" or code[2] not in "ZANM":
        raise ConfigError("must be 3 letters: error Z/A/M, trend Z/A/N/M, season Z/A/N/M", field="model.params.model")


class Forecaster(ABC):
    """A model of one regular series. Subclasses set ``name``, ``params_spec`` and the ``_fit``/``_run`` hooks.

    scikit-learn's contract: ``__init__`` only stores ``params``, ``season_length`` and ``horizon`` as given
    (``get_params``/``set_params``/``sklearn.base.clone`` work); ``fit(y)`` checks them into ``params_`` and builds
    every fitted attribute (trailing ``_``), so a second ``fit`` starts afresh. ``extend(y_new)`` appends without
    re-estimating; ``forecast(h, level)`` and ``one_step(y)`` are pure.

    Intervals (the ``intervals`` parameter every model takes): ``"conformal"`` (default) uses the model's own
    rolling-origin errors per horizon step (``framework.models.conformal``): a copy is fitted on the first part of
    the series and run forward from up to 40 later origins. Model-based intervals assume the model is right and
    under-cover when it is not (42 % for a nominal 95 % on a multiplicative monthly series); the errors the model
    really made at each step hold their level across model classes. ``"model"`` keeps the engine's own interval.
    """

    name: ClassVar[str]
    params_spec: ClassVar[Mapping[str, Param]] = MappingProxyType({})
    needs: ClassVar[str | None] = None  # an optional package this model needs

    def __init__(self, params: Mapping[str, Any] | None = None, *, season_length: int = 1, horizon: int = 1) -> None:
        self.params = params
        self.season_length = season_length
        self.horizon = horizon

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Upgrade a pickle of 0.1.0, whose ``params`` were the checked values and which had no ``params_``."""
        if "params_" not in state and "y_" in state:
            state["params_"] = {**dict(state.get("params") or {}), "intervals": "model"}
        self.__dict__.update(state)

    # ----------------------------------------------------------------------- scikit-learn parameters
    def get_params(self, deep: bool = False) -> dict[str, Any]:
        return {"params": self.params, "season_length": self.season_length, "horizon": self.horizon}

    def set_params(self, **values: Any) -> Forecaster:
        if unknown := sorted(set(values) - {"params", "season_length", "horizon"}):
            raise ValueError(
                f"invalid parameter {unknown[0]!r} for {type(self).__name__}; valid: params, season_length, horizon"
            )
        for key, value in values.items():
            setattr(self, key, value)
        return self

    @classmethod
    def spec(cls) -> Mapping[str, Param]:
        """Every accepted parameter: the model's own and ``intervals``."""
        return {**cls.params_spec, "intervals": INTERVALS}

    def check_params(self) -> dict[str, Any]:
        """The checked parameters with defaults filled in; raises ``ConfigError`` naming the bad one."""
        given, spec = dict(self.params or {}), self.spec()
        if unknown := sorted(set(given) - set(spec)):
            raise ConfigError(
                f"unknown parameter for model {self.name!r}; valid: {', '.join(spec)}",
                field=f"model.params.{unknown[0]}",
            )
        params = {key: param.check(key, given.get(key, param.default)) for key, param in spec.items()}
        self._validate(params)
        if self.needs and importlib.util.find_spec(self.needs) is None:
            raise ConfigError(
                f"model {self.name!r} needs {self.needs}, not installed: pip install {self.needs}",
                field="model.name",
            )
        return params

    # ------------------------------------------------------------------------------------- fitting
    def fit(self, y: np.ndarray) -> Forecaster:
        """Estimate parameters on ``y``, keep it as the state, and record the rolling-origin errors."""
        self.fit_state(y)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.cv_origins_, self.cv_errors_ = self._rolling_errors(self.y_)
        self._calibrate_scale()
        return self

    def _calibrate_scale(self) -> None:
        """The level scaling of the conformal errors (``framework.models.conformal``): ``cv_beta_``, ``cv_scales_``."""
        self.cv_beta_, self.cv_scales_ = 0.0, None
        if self.cv_errors_ is not None and self.cv_origins_:
            self.cv_beta_ = level_exponent(self.y_, int(self.season_length))
            if self.cv_beta_ > 0:
                self.cv_scales_ = local_level(self.y_, self.cv_origins_, int(self.season_length)) ** self.cv_beta_

    def fit_state(self, y: np.ndarray) -> Forecaster:
        """``fit`` without the rolling-origin errors (a CV trial, a member, a winner whose errors are known)."""
        self.params_ = self.check_params()
        y = np.asarray(y, dtype="float64")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # optimiser chatter from the engines
            self._fit(y)
        self.y_ = y.copy()
        self.cv_origins_, self.cv_errors_ = [], None
        self.cv_beta_, self.cv_scales_ = 0.0, None
        return self

    def _rolling_errors(self, y: np.ndarray) -> tuple[list[int], np.ndarray | None]:
        """Origins and errors of a copy fitted before the first origin (see ``framework.models.conformal``)."""
        origins = rolling_origins(len(y), int(self.horizon), int(self.season_length))
        if not origins:
            log.info("%s: series too short for rolling-origin errors; intervals are the model's own", self.name)
            return [], None
        trial = self.trial().fit_state(y[: origins[0]])
        forecasts = np.stack([trial.point_forecast(y[:o], int(self.horizon)) for o in origins])
        return origins, rolling_errors(y, origins, forecasts)

    def trial(self) -> Forecaster:
        """An unfitted copy with model-based intervals (for cross-validation: no nested calibration)."""
        return type(self)(
            {**dict(self.params or {}), "intervals": "model"}, season_length=self.season_length, horizon=self.horizon
        )

    def extend(self, y_new: np.ndarray) -> Forecaster:
        """Append observations to the state; parameters stay as fitted (cheap, for streaming)."""
        self.y_ = np.concatenate([self.y_, np.asarray(y_new, dtype="float64")])
        return self

    def forecast(self, h: int, level: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Point forecast and ``level`` interval for the ``h`` steps after the state."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            errors = getattr(self, "cv_errors_", None)
            if errors is None or self.params_.get("intervals") != "conformal":
                return self._forecast(self.y_, h, level)
            mean = self._forecast(self.y_, h, None)[0]
            scales = getattr(self, "cv_scales_", None)  # None: absolute errors (and every model before 0.2)
            if scales is None:
                width = conformal_widths(errors, level, h)
            else:
                now = local_level(self.y_, [len(self.y_)], int(self.season_length))[0] ** self.cv_beta_
                width = conformal_widths(errors / scales[:, None], level, h) * now
            return mean, mean - width, mean + width

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

    def _validate(self, params: dict[str, Any]) -> None:  # noqa: B027 - an optional hook
        """Check (and normalise, in place) parameter values together; raise ``ConfigError``."""

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

    def _validate(self, params: dict[str, Any]) -> None:
        _check_ets_code(params["model"])

    def _build(self, y: np.ndarray) -> Any:
        from statsforecast.models import AutoETS

        return AutoETS(season_length=self.season_length, model=self.params_["model"], damped=self.params_["damped"])


class ARIMA(_StatsForecastModel):
    """Seasonal ARIMA by statsforecast's AutoARIMA stepwise search.

    ``search="auto"`` (default) runs statsforecast's default search on short, low-frequency series (seasonal period
    under 24 and at most ``FULL_SEARCH_MAX_N`` points: it is fast there and finds long AR orders, e.g. the 11-year
    sunspot cycle) and otherwise a bounded one (``max_*``, ``nmodels``, approximated likelihood): the default search
    takes minutes on hourly data. ``"full"`` and ``"bounded"`` force one.
    """

    name = "arima"
    params_spec = MappingProxyType(
        {
            "search": Param("auto", (str,), choices=("auto", "full", "bounded")),
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

        p = self.params_
        seasonal = p["seasonal"] and 1 < self.season_length <= MAX_SEASONAL_ARIMA_PERIOD
        search = p.get("search", "bounded")
        if search == "full" or (search == "auto" and self.season_length < 24 and len(y) <= FULL_SEARCH_MAX_N):
            return AutoARIMA(season_length=self.season_length if seasonal else 1, seasonal=seasonal)
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
    """Theta method (standard, optimised or dynamic; chosen by MSE), statsforecast AutoTheta.

    Seasonality is handled as statsforecast does (a 90 % ACF test at lag ``m``, then a classical multiplicative
    decomposition, additive when the series is not positive), but decided and estimated once, at fit time:
    the seasonal indices are frozen (``season_type_``, ``profile_``) and AutoTheta models the adjusted series.
    statsforecast's own ``forward`` re-runs the test and the decomposition on the whole series it is given, so a
    later observation would move the seasonal indices of earlier steps (a one-step forecast that depends on the
    future, and streamed flags that differ from offline ones). At the fit data the two are the same. The dynamic
    variants (DSTM, DOTM: the combination's member) are then causal; the standard and optimised ones (STM, OTM)
    keep statsforecast's whole-sample drift, as the method defines it.
    """

    name = "theta"
    params_spec = MappingProxyType(
        {
            "model": Param(None, (str,), choices=("STM", "OTM", "DSTM", "DOTM")),
            "decomposition_type": Param("multiplicative", (str,), choices=("multiplicative", "additive")),
        }
    )

    def _build(self, y: np.ndarray) -> Any:
        from statsforecast.models import AutoTheta

        return AutoTheta(season_length=1, model=self.params_["model"])

    def _fit(self, y: np.ndarray) -> None:
        m = int(self.season_length)
        self.season_type_, self.profile_ = None, np.ones(1)
        if m >= 4 and len(y) >= 2 * m:  # statsforecast's seasonality test (auto_theta)
            from scipy.stats import norm
            from statsmodels.tsa.seasonal import seasonal_decompose
            from statsmodels.tsa.stattools import acf

            r = acf(y, nlags=m, fft=False)[1:]
            stat = np.sqrt((1 + 2 * np.sum(r[:-1] ** 2)) / len(y))
            if np.abs(r[-1]) / stat > norm.ppf(0.95):
                kind = self.params_["decomposition_type"] if np.nanmin(y) > 0 else "additive"
                seasonal = seasonal_decompose(y, model=kind, period=m).seasonal
                if kind == "multiplicative" and np.any(seasonal < 0.01):
                    kind = "additive"
                    seasonal = seasonal_decompose(y, model=kind, period=m).seasonal
                self.season_type_ = kind
                self.profile_ = np.roll(np.asarray(seasonal[-m:], dtype="float64"), len(y) % m)
        super()._fit(self._adjust(y))

    def _season(self, start: int, n: int) -> np.ndarray:
        return self.profile_[np.arange(start, start + n) % len(self.profile_)]

    def _adjust(self, y: np.ndarray) -> np.ndarray:
        if self.season_type_ is None:
            return y
        season = self._season(0, len(y))
        return y / season if self.season_type_ == "multiplicative" else y - season

    def _reseason(self, values: np.ndarray, start: int) -> np.ndarray:
        if self.season_type_ is None:
            return np.asarray(values, dtype="float64")
        season = self._season(start, len(values))
        return values * season if self.season_type_ == "multiplicative" else values + season

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if "season_type_" not in self.__dict__:  # fitted before 0.2: statsforecast's own decomposition
            return super()._forecast(y, h, level)
        mean, lower, upper = super()._forecast(self._adjust(y), h, level)
        return tuple(self._reseason(part, len(y)) for part in (mean, lower, upper))  # type: ignore[return-value]

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        if "season_type_" not in self.__dict__:
            return super()._one_step(y)
        return self._reseason(super()._one_step(self._adjust(y)), 0)


class CES(_StatsForecastModel):
    """Complex exponential smoothing (statsforecast AutoCES; season type chosen by AIC).

    The initial states are frozen at fit time (``init_states_``: those the fit's last forward pass started from,
    after statsforecast's back-fitting) and forecasts run one forward pass of the CES filter from them.
    statsforecast's ``forward`` re-derives them from the series it is given (a classical decomposition of the
    *whole* series for the partial and full seasonal types, then back-fitting over all of it), so a later
    observation would move every earlier one-step forecast. At the fit data the two are the same.
    """

    name = "ces"
    params_spec = MappingProxyType({"model": Param("Z", (str,), choices=("Z", "N", "S", "P", "F"))})

    def _build(self, y: np.ndarray) -> Any:
        from statsforecast.models import AutoCES

        return AutoCES(season_length=self.season_length, model=self.params_["model"])

    def _fit(self, y: np.ndarray) -> None:
        from statsforecast.ces import initstate, pegelsresid_ces

        super()._fit(y)
        fitted = self.model_.model_
        start = initstate(y, fitted["m"], fitted["seasontype"])
        path = pegelsresid_ces(  # the fit's own pass, which back-fits the initial states on the fit data
            y=y,
            m=fitted["m"],
            init_states=start,
            n_components=start.shape[1],
            seasontype=fitted["seasontype"],
            nmse=3,
            **fitted["par"],
        )[2]
        self.init_states_ = np.array(path[: len(start)])  # the states the final forward pass started from

    def _run(self, y: np.ndarray) -> dict[str, Any]:
        """statsforecast's fitted dict for one forward pass of the CES filter over ``y`` from ``init_states_``."""
        from statsforecast.ces import cescalc, switch_ces

        fitted, lags = self.model_.model_, len(self.init_states_)
        states = np.zeros((len(y) + 2 * lags, self.init_states_.shape[1]))
        states[:lags] = self.init_states_
        e, amse = np.zeros(len(y)), np.zeros(3)
        par = fitted["par"]
        cescalc(
            np.asarray(y, dtype="float64"), states, fitted["m"], switch_ces(fitted["seasontype"]),
            par["alpha_0"], par["alpha_1"], par["beta_0"], par["beta_1"], e, amse, 3, 0,  # 0: no back-fitting
        )  # fmt: skip
        dof = max(len(y) - self.init_states_.shape[1] - 2, 1)  # cesmodel's sigma2: sum(e^2) / (n - components - 2)
        return {**fitted, "states": states, "n": len(y), "residuals": e, "fitted": y - e, "sigma2": e @ e / dof}

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if "init_states_" not in self.__dict__:  # fitted before 0.2: statsforecast's forward
            return super()._forecast(y, h, level)
        from statsforecast.ces import forecast_ces

        pct = _level_key(level) if level is not None else None
        out = forecast_ces(self._run(y), h, level=[pct] if pct is not None else None)
        mean = np.asarray(out["mean"], dtype="float64")
        if pct is None:
            return mean, mean, mean
        return mean, np.asarray(out[f"lo-{pct}"], dtype="float64"), np.asarray(out[f"hi-{pct}"], dtype="float64")

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        if "init_states_" not in self.__dict__:
            return super()._one_step(y)
        return np.asarray(self._run(y)["fitted"], dtype="float64")

    def describe(self) -> str:
        return f"CES({self.model_.model_.get('seasontype', '?')})"


class _FrozenSeasons(Forecaster):
    """Seasonal profiles frozen at fit time (``_profiles``: ``profile[t % len(profile)]`` at position ``t``) plus an
    AutoETS ``ets_`` on the adjusted series: forecasting from a new origin is one ETS pass, and causal."""

    needs = "statsforecast"

    @abstractmethod
    def _profiles(self) -> list[np.ndarray]: ...

    def _season(self, start: int, n: int) -> np.ndarray:
        t = np.arange(start, start + n)
        return sum((prof[t % len(prof)] for prof in self._profiles()), np.zeros(n))

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


class STLForecaster(_FrozenSeasons):
    """Robust STL (statsmodels); the last seasonal cycle is frozen and ETS models the adjusted series.

    Freezing the seasonal profile keeps one-step forecasts causal: a new spike cannot leak into its own forecast.
    """

    name = "stl"
    needs = "statsforecast"
    params_spec = MappingProxyType(
        {"robust": Param(True, (bool,)), "seasonal": Param(7, (int,), minimum=3), "model": Param("ZZN", (str,))}
    )

    def _validate(self, params: dict[str, Any]) -> None:
        _check_ets_code(params["model"])

    def _fit(self, y: np.ndarray) -> None:
        from statsmodels.tsa.seasonal import STL

        m = self.season_length
        if m >= 2 and len(y) >= 2 * m + 1:
            smoother = self.params_["seasonal"] | 1  # STL needs an odd length
            seasonal = STL(y, period=m, seasonal=smoother, robust=self.params_["robust"]).fit().seasonal
            last = seasonal[-m:]
            self.profile_ = np.roll(last, len(y) % m)  # profile_[t % m] is the seasonal effect at position t
        else:
            self.profile_ = np.zeros(1)
        from statsforecast.models import AutoETS

        self.ets_ = AutoETS(season_length=1, model=self.params_["model"])
        self.ets_.fit(self._adjust(y))
        for key in _BULKY_KEYS:
            if key in self.ets_.model_:
                self.ets_.model_[key] = None

    def _profiles(self) -> list[np.ndarray]:
        return [self.profile_]

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

    def _validate(self, params: dict[str, Any]) -> None:
        for key in ("changepoint_prior_scale", "seasonality_prior_scale"):
            if params[key] <= 0:
                raise ConfigError("must be > 0", field=f"model.params.{key}")
        periods = params["seasonal_periods"]
        if periods is not None:
            if any(isinstance(p, bool) or not isinstance(p, int | float) or not p > 1 for p in periods):
                raise ConfigError("must be a list of periods in steps, each > 1", field="model.params.seasonal_periods")
            params["seasonal_periods"] = [float(p) for p in periods]

    def _fit(self, y: np.ndarray) -> None:
        import pandas as pd

        with _QuietProphet():
            from prophet import Prophet

            p, n = self.params_, len(y)
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
        if not self.params_["refit_on_update"]:
            return super().extend(y_new)
        calibration = self.cv_origins_, self.cv_errors_, self.cv_beta_, self.cv_scales_  # intervals keep it
        self.fit_state(np.concatenate([self.y_, np.asarray(y_new, dtype="float64")]))  # warm-started from stan_params_
        self.cv_origins_, self.cv_errors_, self.cv_beta_, self.cv_scales_ = calibration
        return self

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


class Combination(Forecaster):
    """The median (or mean, or trimmed mean) of several catalog models' forecasts: by default ETS, CES, ARIMA, Theta.

    That is SCUM (Petropoulos & Svetunkov 2020), which beat each of its members on M4. A member that fails to fit
    is left out with a warning. ``one_step`` combines the members' one-step forecasts the same way; model-based
    intervals (``intervals="model"``) combine the members' bounds.
    """

    name = "combination"
    params_spec = MappingProxyType(
        {
            "members": Param(list(COMBINATION_MEMBERS), (list, tuple)),
            "method": Param("median", (str,), choices=("median", "mean", "trimmed_mean")),
        }
    )

    def _validate(self, params: dict[str, Any]) -> None:
        valid = [n for n in FORECASTERS if n not in ("auto", "combination")]
        members = list(params["members"])
        if not members or any(m not in valid for m in members):
            raise ConfigError(f"members must be some of {', '.join(valid)}", field="model.params.members")
        params["members"] = members

    def _fit(self, y: np.ndarray) -> None:
        self.members_: dict[str, Forecaster] = {}
        for name in self.params_["members"]:
            try:
                params = {**MEMBER_PARAMS.get(name, {}), "intervals": "model"}
                model = FORECASTERS[name](params, season_length=self.season_length, horizon=self.horizon)
                self.members_[name] = model.fit_state(y)
            except Exception as exc:  # one member must not sink the combination
                log.warning("combination: member %s failed: %s", name, exc)
        if not self.members_:
            raise ConfigError("combination: every member failed to fit", field="model.params.members")

    def combine(self, values: list[np.ndarray]) -> np.ndarray:
        stack = np.vstack(values)
        method = self.params_["method"]
        if method == "median":
            return np.median(stack, axis=0)
        if method == "trimmed_mean" and len(values) >= 3:
            stack = np.sort(stack, axis=0)[1:-1]
        return stack.mean(axis=0)

    def _forecast(self, y: np.ndarray, h: int, level: float | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        parts = [m._forecast(y, h, level) for m in self.members_.values()]
        mean, lower, upper = (self.combine([p[k] for p in parts]) for k in range(3))
        return mean, lower, upper

    def _one_step(self, y: np.ndarray) -> np.ndarray:
        return self.combine([m._one_step(y) for m in self.members_.values()])

    def describe(self) -> str:
        return f"{self.params_['method']}({', '.join(m.describe() for m in self.members_.values())})"


class MSTLForecaster(_FrozenSeasons):
    """Several seasonal periods (hourly: day and week) removed by MSTL (statsmodels), AutoETS on the rest.

    Like ``stl``, the last cycle of each seasonal component is frozen at fit time, so forecasting from a new
    origin is one ETS pass (cheap, and causal). ``seasonal_periods`` defaults to the seasonal period alone;
    periods that do not fit twice in the data are dropped at fit time.
    """

    name = "mstl"
    needs = "statsforecast"
    params_spec = MappingProxyType({"seasonal_periods": Param(None, (list, tuple))})

    def _validate(self, params: dict[str, Any]) -> None:
        periods = params["seasonal_periods"]
        if periods is not None:
            if any(isinstance(p, bool) or not isinstance(p, int) or p < 2 for p in periods):
                raise ConfigError("must be a list of whole periods, each >= 2", field="model.params.seasonal_periods")
            params["seasonal_periods"] = sorted(set(periods))

    def _fit(self, y: np.ndarray) -> None:
        from statsforecast.models import AutoETS

        periods = self.params_["seasonal_periods"] or [int(self.season_length)]
        self.periods_ = [p for p in periods if p >= 2 and 2 * p < len(y)]
        self.profiles_: list[np.ndarray] = []
        if self.periods_:
            from statsmodels.tsa.seasonal import MSTL

            seasonal = np.asarray(MSTL(y, periods=self.periods_).fit().seasonal).reshape(len(y), -1)
            for k, p in enumerate(self.periods_):
                self.profiles_.append(np.roll(seasonal[-p:, k], len(y) % p))  # profile[t % p] at position t
        self.ets_ = AutoETS(season_length=1, model="ZZN")
        self.ets_.fit(self._adjust(y))
        for key in _BULKY_KEYS:
            if key in self.ets_.model_:
                self.ets_.model_[key] = None

    def _profiles(self) -> list[np.ndarray]:
        return self.profiles_

    def describe(self) -> str:
        return f"MSTL({', '.join(map(str, self.periods_)) or 'none'})+{self.ets_.model_.get('method', 'ETS')}"


MARGIN_WINDOWS = 4  # auto's ``margin`` is the margin required of a CV spanning this many horizons
MAX_MARGIN = 0.5


def required_margin(margin: float, windows: float) -> float:
    """The share by which a candidate must beat ``prefer``'s CV MASE, given ``windows`` horizons of CV."""
    return float(min(MAX_MARGIN, margin * math.sqrt(MARGIN_WINDOWS / max(windows, 1e-9))))


def _plausible(forecast: np.ndarray, history: np.ndarray) -> bool:
    """Whether a forecast stays within the history's range widened by that range on each side."""
    low, high = float(np.min(history)), float(np.max(history))
    span = max(high - low, 1e-9 * max(1.0, abs(high)))
    return bool(np.all(np.isfinite(forecast)) and np.all(forecast >= low - span) and np.all(forecast <= high + span))


class AutoForecaster(Forecaster):
    """Rolling-origin cross-validation over ``candidates``; the lowest mean MASE wins and is refitted on all data.

    Each candidate is fitted once on the data before the first origin (``conformal.rolling_origins``: up to
    ``folds`` origins over the last quarter of the series) and run forward from every origin with its parameters
    fixed. ``combination`` is scored from its members' CV forecasts (no extra fit) and, with several
    ``seasonal_periods``, ``mstl`` joins the candidates.

    Divergence guard: a candidate whose CV forecast leaves the plausible range of the history (its range widened
    by itself on both sides), or whose MASE at some origin is over ``UNSTABLE`` times the median candidate's
    there, is dropped with a warning; so is a winner whose final forecast leaves that range (the next one wins).
    Selection: the lowest mean CV MASE wins, except that ``prefer`` (default ``combination``, which published
    results and ``bench/forecast_panel.py`` find the most robust) keeps the place unless another candidate's
    CV MASE is clearly below its own: picking the CV minimum among close candidates mostly picks noise (the
    "forecast combination puzzle"). "Clearly" depends on how much evidence the CV holds: the origins span
    ``k = (n - first origin) / horizon`` independent horizons, and the noise of a mean CV MASE difference shrinks
    like ``1 / sqrt(k)``, so the required margin is ``margin * sqrt(4 / k)`` (``required_margin``; capped at 50 %):
    ``margin`` (10 %) for a CV of 4 horizons, 20 % for one (a short series, whose CV copy is fitted on few
    seasons and says little about the final fit), 6 % for 12 (a long annual series). ``margin_`` and
    ``cv_windows_`` keep the values used. The winner's CV errors give its conformal intervals. Scores are kept in
    ``cv_scores_`` (name -> MASE per origin) and ``cv_mase_`` (name -> mean); ``dropped_`` names the guarded
    candidates and why.
    """

    name = "auto"
    params_spec = MappingProxyType(
        {
            "candidates": Param(list(DEFAULT_CANDIDATES), (list, tuple)),
            "folds": Param(MAX_ORIGINS, (int,), minimum=1),
            "refit": Param(True, (bool,)),
            "seasonal_periods": Param(None, (list, tuple)),
            "prefer": Param("combination", (str,)),
            "margin": Param(0.1, (float, int), minimum=0),
        }
    )

    def _validate(self, params: dict[str, Any]) -> None:
        if params["margin"] >= 1:
            raise ConfigError("must be < 1", field="model.params.margin")
        candidates = list(params["candidates"])
        valid = [n for n in FORECASTERS if n != "auto"]
        if not candidates:
            raise ConfigError(f"needs at least one of {', '.join(valid)}", field="model.params.candidates")
        if bad := [c for c in candidates if c not in valid]:
            raise ConfigError(
                f"unknown candidate {bad[0]!r}; choose from {', '.join(valid)}", field="model.params.candidates"
            )
        periods = params["seasonal_periods"]
        if periods is not None and len(set(periods)) > 1 and "mstl" not in candidates:
            candidates.append("mstl")
        params["candidates"] = candidates

    def _candidate(self, name: str) -> Forecaster:
        params: dict[str, Any] = {"intervals": "model"}
        if name.startswith("member:"):  # a combination member with its own parameters (theta: DOTM)
            name = name.removeprefix("member:")
            params |= MEMBER_PARAMS[name]
        if name == "mstl" and self.params_["seasonal_periods"]:
            params["seasonal_periods"] = [int(p) for p in self.params_["seasonal_periods"]]
        return FORECASTERS[name](params, season_length=self.season_length, horizon=self.horizon)

    def _fit(self, y: np.ndarray) -> None:
        h, m = int(self.horizon), int(self.season_length)
        origins = rolling_origins(len(y), h, m, self.params_["folds"])
        if not origins:
            raise ConfigError(
                f"auto needs at least {min_train(m) + 2} points for cross-validation; got {len(y)}", field="model.name"
            )
        scale = mase_scale(y[: origins[0]], m)
        candidates = self.params_["candidates"]
        wanted = [n for n in candidates if n != "combination"]
        member_keys = [f"member:{n}" if n in MEMBER_PARAMS else n for n in COMBINATION_MEMBERS]
        if "combination" in candidates:
            wanted += [n for n in member_keys if n not in wanted]
        forecasts: dict[str, np.ndarray] = {}
        self.cv_seconds_: dict[str, float] = {}
        for name in wanted:
            cls = FORECASTERS[name.removeprefix("member:")]
            if cls.needs and importlib.util.find_spec(cls.needs) is None:
                log.warning("auto: skipping %s (%s is not installed)", name, cls.needs)
                continue
            start = time.perf_counter()
            try:
                trial = self._candidate(name).fit_state(y[: origins[0]])
                forecasts[name] = np.stack([trial.point_forecast(y[:o], h) for o in origins])
            except Exception as exc:  # a failing candidate must not sink the others
                log.warning("auto: candidate %s failed: %s", name, exc)
            self.cv_seconds_[name] = time.perf_counter() - start
        members = [forecasts[n] for n in member_keys if n in forecasts]
        if "combination" in candidates and members:
            forecasts["combination"] = np.median(np.stack(members), axis=0)
        errors = {n: rolling_errors(y, origins, f) for n, f in forecasts.items() if n in candidates}
        self.cv_scores_ = {n: [float(v) for v in cv_mase(e, scale)] for n, e in errors.items()}
        self.dropped_: dict[str, str] = {}
        for name in list(errors):
            if not all(_plausible(f[np.isfinite(f)], y[:o]) for f, o in zip(forecasts[name], origins, strict=True)):
                self.dropped_[name] = "its forecast left the plausible range of the history"
        table = np.array([s for n, s in self.cv_scores_.items() if n not in self.dropped_])
        if table.size:
            typical = np.nanmedian(table, axis=0)
            for name, scores in self.cv_scores_.items():
                if name not in self.dropped_ and np.any(np.asarray(scores) > UNSTABLE * np.maximum(typical, 1e-9)):
                    self.dropped_[name] = f"its CV MASE at some origin is over {UNSTABLE:g}x the median candidate's"
        for name, why in self.dropped_.items():
            log.warning("auto: dropped %s: %s", name, why)
        self.cv_mase_ = {
            n: float(np.mean(s)) if np.all(np.isfinite(s)) else float("nan") for n, s in self.cv_scores_.items()
        }
        ranked = sorted((s, n) for n, s in self.cv_mase_.items() if math.isfinite(s) and n not in self.dropped_)
        prefer = self.params_["prefer"]
        self.cv_windows_ = (len(y) - origins[0]) / h
        self.margin_ = required_margin(self.params_["margin"], self.cv_windows_)
        if ranked and prefer in dict((n, s) for s, n in ranked):  # the robust default keeps its place unless beaten
            score = self.cv_mase_[prefer]
            if not ranked[0][0] < (1 - self.margin_) * score:
                ranked = [(score, prefer)] + [r for r in ranked if r[1] != prefer]
        if not ranked:
            raise ConfigError("auto: every candidate failed or diverged", field="model.params.candidates")
        self.best_origins_ = origins
        for _, name in ranked:
            try:
                best = self._candidate(name).fit_state(y) if self.params_["refit"] else None
            except Exception as exc:
                log.warning("auto: refitting %s failed: %s", name, exc)
                continue
            if best is not None and not _plausible(best.point_forecast(y, h), y):
                log.warning("auto: dropped %s: its final forecast left the plausible range of the history", name)
                self.dropped_[name] = "its final forecast left the plausible range of the history"
                continue
            if best is None:  # refit=False: the CV copy, extended over the folds
                best = self._candidate(name).fit_state(y[: origins[0]]).extend(y[origins[0] :])
            self.best_name_, self.best_ = name, best
            self.best_errors_ = errors[name]
            break
        else:
            raise ConfigError("auto: every candidate failed or diverged", field="model.params.candidates")
        log.info("auto chose %s (CV MASE %s)", self.best_name_, {n: round(s, 3) for n, s in self.cv_mase_.items()})

    def _rolling_errors(self, y: np.ndarray) -> tuple[list[int], np.ndarray | None]:
        return self.best_origins_, self.best_errors_

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
    cls.name: cls
    for cls in (
        SeasonalNaive,
        ETS,
        ARIMA,
        Theta,
        STLForecaster,
        CES,
        MSTLForecaster,
        Combination,
        ProphetForecaster,
        AutoForecaster,
    )
}


def make_forecaster(
    name: str, params: Mapping[str, Any] | None = None, *, season_length: int = 1, horizon: int = 1
) -> Forecaster:
    """Build the catalog model ``name``; an unknown name or parameter raises ``ConfigError`` naming it."""
    cls = FORECASTERS.get(name)
    if cls is None:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(FORECASTERS)}", field="model.name")
    model = cls(params, season_length=season_length, horizon=horizon)
    model.check_params()  # a bad parameter fails here, before any data is read
    return model
