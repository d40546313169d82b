"""The forecaster catalog as estimators: refit, clone, conformal intervals, combination, divergence guard."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.base import clone

from framework.datasets.series import make_series
from framework.errors import ConfigError
from framework.models.conformal import conformal_widths, level_exponent, rolling_origins
from framework.models.forecasters import FORECASTERS, make_forecaster, required_margin

CATALOG = [n for n, cls in FORECASTERS.items() if not cls.needs or importlib.util.find_spec(cls.needs)]


@pytest.fixture(scope="module")
def y() -> np.ndarray:
    return make_series(n=400, seasonalities=(24,), anomalies=(), seed=5)["value"].to_numpy()


@pytest.mark.parametrize("name", CATALOG)
def test_every_model_refits_and_updates(name: str, y: np.ndarray) -> None:
    """fit -> predict -> fit again (other data) -> update -> predict, on one object; clone gives an unfitted twin."""
    model = make_forecaster(name, season_length=24, horizon=12)
    first = model.fit(y[:300]).forecast(12, 0.9)
    assert all(np.all(np.isfinite(part)) for part in first)
    assert np.all(first[1] <= first[0]) and np.all(first[0] <= first[2])
    twin = clone(model)
    assert type(twin) is type(model) and twin.get_params() == model.get_params() and not hasattr(twin, "y_")
    model.fit(y[:250])  # a second fit starts afresh
    assert len(model.y_) == 250
    model.extend(y[250:300])
    again = model.forecast(12, 0.9)
    assert len(model.y_) == 300 and all(np.all(np.isfinite(part)) for part in again)
    assert twin.fit(y[:300]).forecast(12, 0.9)[0] == pytest.approx(first[0])  # the clone fits like the original


def test_init_only_stores_and_fit_checks() -> None:
    params = {"model": "XYZ"}
    model = FORECASTERS["ets"](params, season_length=12)
    assert model.params is params  # stored as given (clone relies on it)
    with pytest.raises(ConfigError, match=r"model\.params\.model"):
        model.fit(np.arange(40.0))
    with pytest.raises(ConfigError, match=r"model\.params\.intervals: must be one of conformal, model"):
        make_forecaster("ets", {"intervals": "bootstrap"})


def test_auto_fits_twice_and_records_candidates(y: np.ndarray) -> None:
    model = make_forecaster("auto", season_length=24, horizon=12)
    model.fit(y[:300])
    first = model.best_name_
    model.fit(y)
    assert set(model.cv_mase_) >= {"ets", "combination", "seasonal_naive"} and model.best_name_
    assert len(model.best_.y_) == len(y) and first


def test_conformal_intervals_cover_on_rolling_forecasts() -> None:
    """Pooled over many later origins the conformal 90 % interval covers close to 90 %; model-based is an option."""
    y = make_series(n=900, seasonalities=(24,), anomalies=(), seed=9, noise=1.0)["value"].to_numpy()
    inside = {"conformal": [], "model": []}
    for mode in inside:
        model = make_forecaster("ets", {"intervals": mode}, season_length=24, horizon=24).fit(y[:600])
        for origin in range(600, 876, 12):
            model.y_ = y[:origin]  # the fitted parameters, forecasting from a later origin
            _, lower, upper = model.forecast(24, 0.9)
            actual = y[origin : origin + 24]
            inside[mode].append((actual >= lower) & (actual <= upper))
    coverage = {mode: float(np.mean(np.concatenate(v))) for mode, v in inside.items()}
    assert 0.82 <= coverage["conformal"] <= 0.97, coverage


def test_conformal_widths_grow_and_fall_back() -> None:
    rng = np.random.default_rng(0)
    errors = rng.normal(size=(40, 6)) * np.sqrt(np.arange(1, 7))
    widths = conformal_widths(errors, 0.95, 10)
    assert np.all(np.diff(widths) >= 0) and widths[-1] > widths[5]  # past the calibrated steps: sqrt growth
    few = conformal_widths(errors[:5], 0.95, 6)  # too few for a 95 % quantile: z * rms
    assert np.all(np.isfinite(few)) and np.all(few > 0)
    assert rolling_origins(11, 6, 1) == [] and 30 <= len(rolling_origins(1000, 24, 24)) <= 40


def test_level_exponent_tells_multiplicative_from_additive() -> None:
    """Guerrero's exponent: ~1 when the spread grows with the level, ~0 when it does not, 0 when not positive."""
    rng = np.random.default_rng(3)
    t = np.arange(240)
    level = 100 * 1.01**t
    season = 1 + 0.2 * np.sin(2 * np.pi * t / 12)
    multiplicative = level * season * np.exp(rng.normal(0, 0.02, t.size))
    additive = 100 + 2 * t + 10 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, t.size)  # a linear trend
    assert level_exponent(multiplicative, 12) > 0.8
    assert level_exponent(additive, 12) < 0.3
    assert level_exponent(additive - 200, 12) == 0.0 and level_exponent(multiplicative[:30], 12) == 0.0


def test_conformal_widths_follow_the_level_on_a_multiplicative_series() -> None:
    """Errors scaled by level**beta: the interval at the end of a growing series is wider than an absolute-error one,
    and it grows when ``extend`` moves the state to a higher level."""
    rng = np.random.default_rng(4)
    t = np.arange(300)
    y = 50 * 1.01**t * (1 + 0.2 * np.sin(2 * np.pi * t / 12)) * np.exp(rng.normal(0, 0.03, t.size))
    model = make_forecaster("ets", season_length=12, horizon=12).fit(y[:240])
    assert model.cv_beta_ > 0.5 and model.cv_scales_.shape == (len(model.cv_origins_),)
    _, lower, upper = model.forecast(12, 0.95)
    scales = model.cv_scales_
    model.cv_scales_ = None  # the absolute-error interval from the same errors
    plain = model.forecast(12, 0.95)
    model.cv_scales_ = scales
    assert np.all(upper - lower >= plain[2] - plain[1])
    width = (upper - lower)[0]
    model.extend(y[240:])
    assert (model.forecast(12, 0.95)[2] - model.forecast(12, 0.95)[1])[0] > 1.3 * width


def test_required_margin_shrinks_with_cv_evidence() -> None:
    assert required_margin(0.1, 4) == pytest.approx(0.1)
    assert required_margin(0.1, 1) == pytest.approx(0.2) and required_margin(0.1, 16) == pytest.approx(0.05)
    assert required_margin(0.1, 0.01) == 0.5 and required_margin(0.0, 3) == 0.0


def test_combination_is_the_median_of_its_members(y: np.ndarray) -> None:
    combo = make_forecaster("combination", {"intervals": "model"}, season_length=24, horizon=12).fit(y[:300])
    members = [m.point_forecast(y[:300], 12) for m in combo.members_.values()]
    np.testing.assert_allclose(combo.point_forecast(y[:300], 12), np.median(members, axis=0))
    trimmed = make_forecaster("combination", {"method": "trimmed_mean"}, season_length=24, horizon=12).fit(y[:300])
    assert np.all(np.isfinite(trimmed.forecast(12, 0.95)[0]))
    with pytest.raises(ConfigError, match=r"model\.params\.members"):
        make_forecaster("combination", {"members": ["auto"]})


def test_auto_drops_a_diverging_candidate(y: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    """A candidate whose forecasts explode is dropped with a reason, whatever its score would have been."""
    theta = FORECASTERS["theta"]
    monkeypatch.setattr(theta, "_forecast", lambda self, y, h, level: (np.full(h, 1e9),) * 3)
    model = make_forecaster("auto", {"candidates": ["theta", "ets", "seasonal_naive"]}, season_length=24, horizon=12)
    model.fit(y[:300])
    assert "theta" in model.dropped_ and model.best_name_ != "theta"


@pytest.mark.parametrize(
    ("name", "params"),
    [("ces", {"model": "P"}), ("ces", {"model": "F"}), ("ces", {"model": "S"}), ("theta", {"model": "DOTM"})],
)
def test_one_step_forecasts_do_not_depend_on_later_rows(name: str, params: dict) -> None:
    """statsforecast's forward re-derives CES's initial states and theta's seasonal indices from the whole series;
    ours freezes them at fit time, so appending rows never moves an earlier one-step forecast, and at the fit
    data the forecast is statsforecast's own."""
    y = 50 + make_series(n=260, freq="D", seasonalities=(12,), anomalies=(), seed=8)["value"].to_numpy()
    model = make_forecaster(name, {**params, "intervals": "model"}, season_length=12, horizon=12).fit_state(y[:150])
    short, long = model.one_step(y[:180]), model.one_step(y)
    np.testing.assert_allclose(short, long[:180], rtol=0, atol=1e-9)
    from statsforecast.models import AutoCES, AutoTheta

    peer = (AutoCES if name == "ces" else AutoTheta)(season_length=12, model=params["model"]).fit(y[:150])
    np.testing.assert_allclose(model.point_forecast(y[:150], 12), peer.predict(12)["mean"], rtol=1e-9)
