"""The forecaster catalog as estimators: refit, clone, conformal intervals, combination, divergence guard."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.base import clone

from framework.datasets.series import make_series
from framework.errors import ConfigError
from framework.models.conformal import conformal_widths, rolling_origins
from framework.models.forecasters import FORECASTERS, make_forecaster

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
