"""TimeSeriesExperiment and the forecaster catalog: pure ML, no hub, no MLflow."""

from __future__ import annotations

import copy
import importlib.util
import os
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest

from framework.datasets.series import make_series
from framework.errors import ConfigError, DataValidationError
from framework.Experiment import DataQualityWarning
from framework.models.forecasters import DEFAULT_CANDIDATES, FORECASTERS, make_forecaster
from framework.TimeSeriesAnalysis import (
    TimeSeriesExperiment,
    calendar_periods,
    detect_seasonal_period,
    infer_frequency,
)

CES = {"model": {"name": "ces"}, "horizon": 24}
PROPHET = {"model": {"name": "prophet"}, "horizon": 24}
# prophet is an optional extra; CI installs it (the dev extra), so there its tests must run, not skip
needs_prophet = pytest.mark.skipif(
    importlib.util.find_spec("prophet") is None and not os.environ.get("CI"), reason="prophet not installed"
)


@pytest.fixture(scope="module")
def series() -> pd.DataFrame:
    return make_series(n=1500, seed=0)


@pytest.fixture(scope="module")
def clean() -> pd.DataFrame:
    return make_series(n=1400, anomalies=(), seed=3)


@pytest.fixture(scope="module")
def auto_fit(series: pd.DataFrame) -> TimeSeriesExperiment:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        return TimeSeriesExperiment({"horizon": 24}).fit(series.iloc[:1000])


def fit(spec: dict, df: pd.DataFrame) -> TimeSeriesExperiment:
    return TimeSeriesExperiment(spec).fit(df)


# ------------------------------------------------------------------------------------ auto and metrics
def test_auto_records_every_candidate_and_metrics(auto_fit: TimeSeriesExperiment) -> None:
    metrics = auto_fit.metrics_
    for name in DEFAULT_CANDIDATES:
        assert np.isfinite(metrics[f"cv_mase.{name}"]), name
        assert len(auto_fit.cv_scores_[name]) >= 3  # several rolling origins, not one holdout
    for key in ("mase", "smape", "mae", "rmse", "coverage", "baseline_mase"):
        assert np.isfinite(metrics[key]), key
    chosen = auto_fit.model_.best_name_
    kept = [k for k in metrics if k.startswith("cv_mase.") and k[8:] not in auto_fit.model_.dropped_]
    assert metrics[f"cv_mase.{chosen}"] == min(metrics[k] for k in kept)
    assert "cv_mase.mstl" in metrics  # hourly data: daily and weekly cycles get an MSTL candidate
    assert auto_fit.model_description_.startswith("auto -> ")
    assert metrics["mase"] < metrics["baseline_mase"]
    assert auto_fit.seasonal_period_ == 24 and auto_fit.offset_.freqstr == "h"


def test_auto_records_its_fit_time(auto_fit: TimeSeriesExperiment) -> None:
    # speed is measured in bench/forecasting.py against plain statsforecast in the same run, never asserted here
    assert auto_fit.metrics_["fit_seconds"] > 0


def test_validate_and_figures(auto_fit: TimeSeriesExperiment, series: pd.DataFrame) -> None:
    verdict = auto_fit.validate()
    assert verdict.passed, verdict.reason
    assert set(verdict.metrics) >= {"cv_mase", "cv_relative_mase", "coverage"}
    figures = auto_fit.figures()
    assert set(figures) == {"forecast", "decomposition", "residuals", "cv_errors"}
    assert "cv_errors" not in fit(CES, series.iloc[:600]).figures(series.iloc[600:700])


# ---------------------------------------------------------------------------------- predict and update
def test_predict_modes(auto_fit: TimeSeriesExperiment, series: pd.DataFrame) -> None:
    ahead = auto_fit.predict()
    assert list(ahead.columns) == ["timestamp", "forecast", "lower", "upper"] and len(ahead) == 24
    assert ahead["timestamp"].iloc[0] == series["timestamp"].iloc[1000]
    assert (ahead["lower"] < ahead["forecast"]).all() and (ahead["forecast"] < ahead["upper"]).all()

    future = auto_fit.predict(series[["timestamp"]].iloc[1005:1010])
    pd.testing.assert_frame_equal(future.reset_index(drop=True), ahead.iloc[5:10].reset_index(drop=True))

    scored = auto_fit.predict(series.iloc[1000:1100])
    assert list(scored.columns) == [
        "timestamp", "forecast", "lower", "upper", "actual", "residual", "score", "threshold", "is_anomaly",
    ]  # fmt: skip
    assert len(scored) == 100 and scored.index.equals(series.index[1000:1100])

    with pytest.raises(DataValidationError, match="after the last observation"):
        auto_fit.predict(series[["timestamp"]].iloc[10:12])


def test_predict_has_no_side_effects(auto_fit: TimeSeriesExperiment, series: pd.DataFrame) -> None:
    before = auto_fit.predict()
    first = auto_fit.predict(series.iloc[1000:1200])
    second = auto_fit.predict(series.iloc[1000:1200])
    pd.testing.assert_frame_equal(first, second)
    pd.testing.assert_frame_equal(before, auto_fit.predict())
    assert len(auto_fit.model_.y_) == 1000


def test_update_matches_refit(clean: pd.DataFrame) -> None:
    spec = {"model": {"name": "ets"}, "horizon": 24}
    updated = fit(spec, clean.iloc[:800])
    params = updated.model_.model_.model_["par"]
    updated.update(clean.iloc[800:900])
    refit = fit(spec, clean.iloc[:900])
    assert updated.model_.model_.model_["par"] is params  # no re-estimation
    assert updated.index_[-1] == refit.index_[-1]
    a, b = updated.predict(), refit.predict()
    pd.testing.assert_series_equal(a["timestamp"], b["timestamp"])
    gap = np.abs(a["forecast"] - b["forecast"]).mean()
    assert gap < 0.5 * refit.sigma_, gap


@pytest.mark.parametrize("intervals", ["model", "conformal"])
def test_interval_coverage_near_nominal(clean: pd.DataFrame, intervals: str) -> None:
    """Rolling 24-step forecasts over 10 days, updating with each day's actuals.

    On this clean generated series CES's own interval is right; the conformal one (from a copy fitted on the
    first three quarters) is wider there, never narrower: it must not under-cover.
    """
    spec = {"model": {"name": "ces", "params": {"intervals": intervals}}, "horizon": 24, "interval": 0.9}
    exp = fit(spec, clean.iloc[:1000])
    inside = []
    for day in range(10):
        actual = clean.iloc[1000 + 24 * day : 1024 + 24 * day]
        ahead = exp.predict()
        inside.append((actual["value"].to_numpy() >= ahead["lower"]) & (actual["value"].to_numpy() <= ahead["upper"]))
        exp.update(actual)
    coverage = np.concatenate(inside).mean()
    assert (0.8 <= coverage <= 0.99) if intervals == "model" else coverage >= 0.85, coverage
    one_step = exp.evaluate(clean.iloc[1000:1240].drop(columns="is_anomaly"))["coverage"]
    assert 0.83 <= one_step <= 0.96, one_step


def test_pickle_round_trip(auto_fit: TimeSeriesExperiment, series: pd.DataFrame) -> None:
    blob = pickle.dumps(auto_fit)
    assert len(blob) < 500_000
    restored = pickle.loads(blob)
    pd.testing.assert_frame_equal(restored.predict(), auto_fit.predict())
    pd.testing.assert_frame_equal(restored.predict(series.iloc[1000:1100]), auto_fit.predict(series.iloc[1000:1100]))


# -------------------------------------------------------------------------------------------- anomalies
def test_anomalies_found_with_few_false_alarms(auto_fit: TimeSeriesExperiment, series: pd.DataFrame) -> None:
    live = series.iloc[1000:]
    assert live["is_anomaly"].any()
    result = auto_fit.evaluate(live)
    assert result["detection_rate"] == 1.0, result
    assert result["mean_detection_delay"] <= 1.0, result
    normal_rows = int((~live["is_anomaly"].astype(bool)).sum())
    assert result["false_alarm_rate"] * normal_rows <= 8, result  # the end of the level shift is a change too
    assert result["recall"] > 0.15, result  # point-wise: the model adapts to a level shift within a few steps


def test_seasonality_raises_no_false_alarms(clean: pd.DataFrame) -> None:
    exp = fit(CES, clean.iloc[:1000])
    scored = exp.predict(clean.iloc[1000:])
    assert scored["is_anomaly"].sum() <= 2
    spikes = clean.iloc[1000:].copy()
    spikes.loc[spikes.index[[50, 200]], "value"] += 10
    flagged = exp.predict(spikes)["is_anomaly"]
    assert flagged.iloc[[50, 200]].all() and flagged.sum() <= 4


# ---------------------------------------------------------------------------------------- bad input
def test_duplicate_timestamps_name_column_and_value(series: pd.DataFrame) -> None:
    df = pd.concat([series.iloc[:300], series.iloc[[120]]])
    with pytest.raises(DataValidationError, match="duplicate timestamp 2024-01-06 00:00:00") as err:
        fit(CES, df)
    assert err.value.field == "timestamp"


def test_unsorted_rows_are_sorted_with_a_warning(series: pd.DataFrame) -> None:
    train = series.iloc[:400]
    shuffled = train.sample(frac=1.0, random_state=1)
    with pytest.warns(DataQualityWarning, match="not in time order"):
        a = fit(CES, shuffled)
    pd.testing.assert_frame_equal(a.predict(), fit(CES, train).predict())


def test_too_short_series(series: pd.DataFrame) -> None:
    with pytest.raises(DataValidationError, match="series too short") as err:
        fit({"seasonal_period": 24, "horizon": 24}, series.iloc[:50])
    assert err.value.field == "value"


def test_unknown_model_lists_valid_names() -> None:
    with pytest.raises(ConfigError, match="unknown model 'prohpet'") as err:
        make_forecaster("prohpet")
    assert err.value.field == "model.name"
    for name in FORECASTERS:
        assert name in str(err.value)


def test_missing_optional_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "prophet" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install prophet") as err:
        make_forecaster("prophet")
    assert err.value.field == "model.name"


def test_bad_params_name_the_param(series: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match=r"model\.params\.alpha") as err:
        TimeSeriesExperiment({"model": {"name": "ets", "params": {"alpha": 0.3}}}).fit(series.iloc[:300])
    assert "valid: model, damped" in str(err.value)
    with pytest.raises(ConfigError, match=r"model\.params\.folds: must be >= 1"):
        make_forecaster("auto", {"folds": 0})
    with pytest.raises(ConfigError, match=r"model\.params\.candidates"):
        make_forecaster("auto", {"candidates": ["ets", "lstm"]})
    with pytest.raises(ConfigError, match=r"model\.params\.model"):
        make_forecaster("ets", {"model": "AXN"})


def test_a_frequency_whose_grid_is_too_big_is_refused(series: pd.DataFrame) -> None:
    """Microseconds on hourly data would ask for trillions of rows: refused before anything is allocated."""
    with pytest.raises(ConfigError, match=r"^frequency: 'us' puts these timestamps on a regular grid of \d+ rows"):
        TimeSeriesExperiment({"model": {"name": "ets"}, "frequency": "us"}).fit(series.iloc[:300])
    with pytest.raises(ConfigError, match="over the limit of 100 "):
        TimeSeriesExperiment({"model": {"name": "ets"}, "max_grid_rows": 100}).fit(series.iloc[:300])


def test_bad_spec_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="horizonn: unknown key"):
        TimeSeriesExperiment({"horizonn": 3})
    with pytest.raises(ConfigError, match="frequency"):
        TimeSeriesExperiment({"frequency": "fortnightly"})
    with pytest.raises(ConfigError, match=r"anomaly\.threshold"):
        TimeSeriesExperiment({"anomaly": {"threshold": -1}})


def test_non_numeric_target_names_the_field(series: pd.DataFrame) -> None:
    df = series.iloc[:300].astype({"value": object})
    df.loc[df.index[7], "value"] = "n/a"
    with pytest.raises(DataValidationError, match="non-numeric value at row 7") as err:
        fit(CES, df)
    assert err.value.field == "value"
    with pytest.raises(DataValidationError, match="column missing") as err:
        fit({"target": "load"}, series)
    assert err.value.field == "load"


# -------------------------------------------------------------------------------- columns and calendar
def test_any_column_names_and_timestamp_formats(series: pd.DataFrame) -> None:
    base = series.iloc[:400].rename(columns={"timestamp": "ts", "value": "Load (MW)"})
    spec = {**CES, "timestamp": "ts", "target": "Load (MW)"}
    reference = fit(spec, base).predict()
    seconds = base["ts"].astype("int64") // 10**9
    variants = {
        "epoch_s": seconds,
        "epoch_ms": seconds * 1000,
        "iso": base["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    for name, ts in variants.items():
        result = fit(spec, base.assign(ts=ts)).predict()
        pd.testing.assert_frame_equal(result, reference, obj=name)


def test_gaps_and_missing_values_are_filled(series: pd.DataFrame) -> None:
    df = series.iloc[:600].drop(index=range(100, 102)).drop(index=range(300, 340))
    df.loc[df.index[50], "value"] = np.nan
    with pytest.warns(DataQualityWarning, match="filled 43 missing step") as record:
        exp = fit(CES, df)
    assert "40 from the previous season" in str(record[-1].message)
    assert len(exp.index_) == 600 and np.isfinite(exp.model_.y_).all()


def test_irregular_timestamps_snap_to_the_grid(series: pd.DataFrame) -> None:
    df = series.iloc[:400].copy()
    jitter = np.random.default_rng(0).integers(-90, 90, len(df))
    df["timestamp"] = df["timestamp"] + pd.to_timedelta(jitter, unit="s")
    exp = fit(CES, df)
    assert exp.offset_.freqstr == "h" and exp.index_[0] == pd.Timestamp("2024-01-01")


@pytest.mark.parametrize(
    ("freq", "expected"), [("h", "h"), ("15min", "15min"), ("D", "D"), ("MS", "MS"), ("W-SUN", "W-SUN")]
)
def test_frequency_inference(freq: str, expected: str) -> None:
    stamps = pd.date_range("2020-01-01", periods=60, freq=freq)
    assert infer_frequency(stamps).freqstr == expected
    assert infer_frequency(stamps.delete([3, 10, 11])).freqstr in (expected, "7D")


def test_seasonal_period_detection(series: pd.DataFrame) -> None:
    from statsmodels.datasets import elec_equip

    assert (
        detect_seasonal_period(series["value"].to_numpy(), calendar_periods(pd.tseries.frequencies.to_offset("h")))
        == 24
    )
    assert detect_seasonal_period(series["value"].to_numpy()) == 24  # the highest ACF peak, without a calendar hint
    assert calendar_periods(pd.tseries.frequencies.to_offset("MS")) == (12,)
    assert detect_seasonal_period(elec_equip.load().data.iloc[:, 0].to_numpy(), (12,)) == 12
    rng = np.random.default_rng(0)
    assert detect_seasonal_period(rng.normal(size=500)) == 1
    assert detect_seasonal_period(np.cumsum(rng.normal(size=500))) == 1
    monthly = elec_equip.load().data.reset_index()
    exp = fit({"timestamp": "DATE", "target": monthly.columns[1], "model": {"name": "ces"}}, monthly)
    assert exp.seasonal_period_ == 12 and exp.offset_.freqstr == "MS" and exp.horizon_ == 12


# -------------------------------------------------------------------------------------------- prophet
@pytest.fixture(scope="module")
def prophet_fit(clean: pd.DataFrame) -> TimeSeriesExperiment:
    return fit({**PROPHET, "interval": 0.9}, clean.iloc[:1000])


@needs_prophet
def test_prophet_end_to_end(prophet_fit: TimeSeriesExperiment, clean: pd.DataFrame) -> None:
    metrics = prophet_fit.metrics_
    assert prophet_fit.model_description_.startswith("Prophet(additive, seasons 24,168, AR(1) ")  # day and week
    assert metrics["mase"] < metrics["baseline_mase"], metrics
    verdict = prophet_fit.validate()
    assert verdict.passed, verdict.reason
    ahead = prophet_fit.predict()
    assert len(ahead) == 24 and ahead["timestamp"].iloc[0] == clean["timestamp"].iloc[1000]
    assert (ahead["lower"] < ahead["forecast"]).all() and (ahead["forecast"] < ahead["upper"]).all()
    scored = prophet_fit.predict(clean.iloc[1000:1100])
    assert len(scored) == 100 and scored["is_anomaly"].sum() <= 2


@needs_prophet
def test_prophet_interval_coverage_and_update_without_refit(clean: pd.DataFrame) -> None:
    """Rolling 24-step forecasts over 10 days; ``update`` keeps the fitted parameters."""
    exp = fit({**PROPHET, "interval": 0.9}, clean.iloc[:1000])
    params = exp.model_.stan_params_
    inside = []
    for day in range(10):
        actual = clean.iloc[1000 + 24 * day : 1024 + 24 * day]["value"].to_numpy()
        ahead = exp.predict()
        inside.append((actual >= ahead["lower"]) & (actual <= ahead["upper"]))
        exp.update(clean.iloc[1000 + 24 * day : 1024 + 24 * day])
    assert exp.model_.stan_params_ is params and len(exp.model_.y_) == 1240
    coverage = np.concatenate(inside).mean()
    assert 0.8 <= coverage <= 0.99, coverage
    one_step = exp.evaluate(clean.iloc[1240:1400].drop(columns="is_anomaly"))["coverage"]
    assert 0.8 <= one_step <= 0.98, one_step


@needs_prophet
def test_prophet_curve_is_prophets_prediction(clean: pd.DataFrame, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept arrays reproduce Prophet's own ``predict`` (history and future), in both seasonality modes."""
    from prophet import Prophet

    fitted: list[tuple[Prophet, dict]] = []
    real_fit = Prophet.fit
    monkeypatch.setattr(Prophet, "fit", lambda self, df, **kw: fitted.append((self, kw)) or real_fit(self, df, **kw))
    y = clean["value"].to_numpy()[:600]
    for params in ({}, {"seasonality_mode": "multiplicative", "seasonal_periods": [24, 12.5], "fourier_order": 2}):
        model = make_forecaster("prophet", params, season_length=24).fit_state(y)  # no rolling-origin copies
        ds = pd.DataFrame({"ds": pd.to_datetime(np.arange(700, dtype="int64") * 60, unit="s")})
        expected = fitted[-1][0].predict(ds)["yhat"].to_numpy()
        np.testing.assert_allclose(model.curve(0, 700), expected, rtol=0, atol=1e-9)
    assert "init" not in fitted[-1][1]
    refit = make_forecaster("prophet", {"refit_on_update": True}, season_length=24).fit_state(y[:500])
    before = refit.stan_params_
    refit.extend(y[500:])
    assert "init" in fitted[-1][1] and refit.stan_params_ is not before and len(refit.y_) == 600  # warm start


@needs_prophet
def test_prophet_pickle_round_trip(prophet_fit: TimeSeriesExperiment, clean: pd.DataFrame) -> None:
    blob = pickle.dumps(prophet_fit)
    assert len(blob) < 200_000 and b"cmdstan" not in blob  # arrays only, no Stan objects
    restored = pickle.loads(blob)
    pd.testing.assert_frame_equal(restored.predict(), prophet_fit.predict())
    live = clean.iloc[1000:1100]
    pd.testing.assert_frame_equal(restored.predict(live), prophet_fit.predict(live))


@needs_prophet
def test_prophet_params_and_auto_candidate(clean: pd.DataFrame) -> None:
    assert "prophet" not in DEFAULT_CANDIDATES
    with pytest.raises(ConfigError, match=r"model\.params\.changepoint_prior_scale: must be > 0"):
        make_forecaster("prophet", {"changepoint_prior_scale": 0})
    with pytest.raises(ConfigError, match=r"model\.params\.seasonal_periods"):
        make_forecaster("prophet", {"seasonal_periods": [24, 1]})
    with pytest.raises(ConfigError, match=r"model\.params\.seasonality_mode"):
        make_forecaster("prophet", {"seasonality_mode": "additve"})
    y = clean["value"].to_numpy()[:500]
    auto = make_forecaster("auto", {"candidates": ["seasonal_naive", "prophet"]}, season_length=24, horizon=24)
    auto.fit(y)
    assert set(auto.cv_mase_) == {"seasonal_naive", "prophet"} and np.isfinite(auto.cv_mase_["prophet"])
    mean, lower, upper = auto.forecast(24, 0.95)
    assert np.all(lower < mean) and np.all(mean < upper)


# ------------------------------------------------------------------------------------------ champion gate
def test_gate_compares_with_the_champion_on_the_same_origins(auto_fit: TimeSeriesExperiment, series: pd.DataFrame):
    """A new version no better than seasonal naive passes the naive check but not a better champion's."""
    same = auto_fit.validate(reference=auto_fit)
    assert same.passed, same.reason
    assert same.metrics["relative_to_champion"] == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataQualityWarning)
        naive = TimeSeriesExperiment({"horizon": 24, "model": {"name": "seasonal_naive"}}).fit(series.iloc[:1000])
    alone = naive.validate()
    assert alone.passed, alone.reason  # no worse than seasonal naive: it is seasonal naive
    verdict = naive.validate(reference=auto_fit)
    assert not verdict.passed and "worse than the champion" in verdict.reason
    assert verdict.metrics["champion_cv_mase"] < verdict.metrics["cv_mase"]
    with pytest.raises(TypeError, match="fitted TimeSeriesExperiment"):
        naive.validate(reference=object())


def test_spec_refuses_a_threshold_section() -> None:
    with pytest.raises(ConfigError, match=r"threshold: time_series has no threshold settings.*anomaly\.threshold"):
        TimeSeriesExperiment({"threshold": {"sigma": 2}})


# ------------------------------------------------------------------------- level shifts (issue 13, item 7)
@pytest.fixture(scope="module")
def shifted() -> tuple[TimeSeriesExperiment, pd.DataFrame, int]:
    """ETS fitted on a clean hourly series, and a continuation that steps up by 8 sigma at row 40 for good."""
    df = make_series(n=900, anomalies=(), seed=5)
    exp = TimeSeriesExperiment({"model": {"name": "ets"}, "horizon": 24}).fit(df.iloc[:600])
    assert exp.scale_mode_ == "additive"
    live = df.iloc[600:].drop(columns="is_anomaly").reset_index(drop=True)
    live["value"] = live["value"] + 8 * exp.sigma_ * (live.index >= 40)
    return exp, live, 40


def test_a_level_shift_stays_flagged_until_absorbed(shifted) -> None:
    exp, live, at = shifted
    flags = exp.predict(live)["is_anomaly"].to_numpy()
    assert not flags[:at].any()
    assert flags[at : at + 5].all()  # a stretch, not a single point
    assert flags[at : at + 30].sum() >= 10
    assert not flags[at + 60 :].any()  # absorbed: the new level is the new normal
    before = exp.predict(live)
    assert before.equals(exp.predict(live))  # predict is pure


def test_streamed_level_shift_flags_equal_offline(shifted) -> None:
    exp, live, _ = shifted
    offline = exp.predict(live)
    streamed, state, model = [], None, copy.deepcopy(exp)
    for start in range(0, len(live), 3):  # what framework.streaming does: predict the batch, then absorb it
        batch = live.iloc[start : start + 3]
        out, state = model.predict_stream(batch, state)
        streamed.append(out)
        model.update(batch)
    streamed = pd.concat(streamed)
    np.testing.assert_array_equal(streamed["is_anomaly"].to_numpy(), offline["is_anomaly"].to_numpy())
    np.testing.assert_allclose(streamed["forecast"].to_numpy(), offline["forecast"].to_numpy(), rtol=1e-9)
    np.testing.assert_array_equal(model.clean_[: len(exp.clean_)], exp.clean_)  # update only appends


def test_a_spike_raises_no_string_of_false_alarms(shifted) -> None:
    exp, live, _ = shifted
    spiked = live.iloc[:40].copy()
    spiked.loc[20, "value"] += 10 * exp.sigma_
    flags = exp.predict(spiked)["is_anomaly"].to_numpy()
    assert flags[20] and flags.sum() == 1


# ------------------------------------------------------------------------------- far-future timestamps
@pytest.mark.parametrize("year", [2060, 2262])
def test_a_far_future_timestamp_is_refused_not_forecast_through(clean: pd.DataFrame, year: int) -> None:
    """One record decades ahead asked for a forecast through every step in between (455 s at 2262): it is refused
    with the limit named, by predict, streaming and update alike, and the model's state is left as it was."""
    exp = fit(CES, clean.iloc[:600])
    length = len(exp.index_)
    record = pd.DataFrame({"timestamp": [pd.Timestamp(f"{year}-01-01")], "value": [1.0]})
    for call in (
        exp.predict,
        lambda df: exp.predict_stream(df, None),
        exp.update,
        lambda df: exp.predict(df[["timestamp"]]),
    ):
        with pytest.raises(DataValidationError, match=r"past .* over the limit of 240 \(max_steps_ahead") as caught:
            call(record)
        assert caught.value.field == "timestamp"
    assert len(exp.index_) == length


def test_steps_ahead_are_bounded_by_gaps_not_by_the_rows_sent(clean: pd.DataFrame) -> None:
    """A long contiguous stretch scores (its work is its own rows); a gap is bounded by max_steps_ahead."""
    exp = fit({**CES, "max_steps_ahead": 50}, clean.iloc[:600])
    assert len(exp.predict(clean.iloc[600:1400])) == 800  # 800 rows: more than 50 steps, but no gap
    gap = clean.iloc[[600, 700]]  # 100 steps between them
    with pytest.raises(DataValidationError, match="100 steps of h past the observation before it"):
        exp.predict(gap)
    assert len(exp.predict(clean.iloc[[600, 640]])) == 2
    assert len(exp.predict(clean.iloc[[640]][["timestamp"]])) == 1  # a forecast 40 steps ahead
