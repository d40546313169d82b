"""Monitoring: spec sections, calibrated drift, the score change detector, the retrain policy (issue 15)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from scipy.signal import lfilter

from framework.config import MetricTrigger, parse_yaml_model
from framework.errors import ConfigError
from framework.FaultDetection import FaultDetectionExperiment, FaultDetectionSpec
from framework.metrics import forecast_metrics
from framework.monitoring import (
    FeatureDrift,
    FeatureResult,
    ForecastTracker,
    ScoreChange,
    StreamMonitor,
    WindowStats,
    _cusum_limit,
    decide,
    drift_statistic,
)
from framework.TimeSeriesAnalysis import TimeSeriesSpec

FULL = """\
model: {name: auto}
monitoring:
  window: 2000
  drift: {method: psi, features: [x]}
  alerts: {drift: true, alarm_rate_above: 0.05}
retrain:
  window: 20000
  every_n_rows: null
  on_drift: false
  on_metric: {metric: mase, above: 1.2, over_rows: 500}
  cooldown_rows: 10000
"""


def test_spec_sections_parse_with_per_type_defaults():
    full = parse_yaml_model(TimeSeriesSpec, FULL)
    assert (full.monitoring.window, full.monitoring.drift.method, full.monitoring.drift.features) == (
        2000,
        "psi",
        ["x"],
    )
    assert (full.retrain.on_drift, full.retrain.on_metric.bound, full.retrain.cooldown_rows) == (False, 1.2, 10000)
    assert TimeSeriesSpec().retrain.on_drift is True
    assert FaultDetectionSpec().retrain.on_drift is False
    assert FaultDetectionSpec(retrain={"on_drift": True}).retrain.on_drift is True
    dumped = FaultDetectionSpec().model_dump(mode="json")
    assert FaultDetectionSpec.model_validate(dumped) == FaultDetectionSpec()


@pytest.mark.parametrize(
    ("model", "edit", "line", "words"),
    [
        (TimeSeriesSpec, ("window: 2000", "window: 10"), 3, ["monitoring.window", "greater than or equal to 50"]),
        (TimeSeriesSpec, ("method: psi", "method: chi2"), 4, ["monitoring.drift.method", "'wasserstein'"]),
        (TimeSeriesSpec, ("alerts: {", "alerts: {page: true, "), 5, ["monitoring.alerts.page", "unknown key"]),
        (TimeSeriesSpec, ("  cooldown_rows: 10000", "  metric_threshold: 3"), 11, ["retrain.metric_threshold"]),
        (TimeSeriesSpec, ("mase, above", "coverage, above"), 10, ["retrain.on_metric", "give 'below'"]),
        (TimeSeriesSpec, ("metric: mase", "metric: r2"), 10, ["retrain.on_metric.metric", "'mase' or 'coverage'"]),
        (TimeSeriesSpec, ("features: [x]", "features: []"), 4, ["monitoring.drift.features", "non-empty"]),
        (FaultDetectionSpec, ("name: auto", "name: pca"), 7, ["retrain", "only forecasting"]),
    ],
)
def test_bad_monitoring_specs_name_line_and_field(model, edit, line, words):
    with pytest.raises(ConfigError) as info:
        parse_yaml_model(model, FULL.replace(*edit), source="spec.yaml")
    message = str(info.value).splitlines()[0]
    assert message.startswith(f"spec.yaml:{line}: "), message
    for word in words:
        assert word in message


# -------------------------------------------------------------------------------- statistics and detectors
def _ar(rng: np.random.Generator, n: int, p: int, phi: float = 0.9) -> pd.DataFrame:
    shocks = rng.standard_normal((n, p)) * np.sqrt(1 - phi**2)
    return pd.DataFrame(lfilter([1.0], [1.0, -phi], shocks, axis=0), columns=[f"x{i}" for i in range(p)])


def test_statistics_match_scipy():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=300), rng.normal(0.3, 1.4, size=1700)
    assert drift_statistic("wasserstein", x, y) == pytest.approx(stats.wasserstein_distance(x, y), rel=1e-12)
    assert drift_statistic("ks", x, y) == pytest.approx(stats.ks_2samp(x, y).statistic, rel=1e-12)
    assert drift_statistic("psi", y, y) == pytest.approx(0.0)
    assert drift_statistic("psi", x + 1.0, y) > 0.1


@pytest.mark.parametrize("method", ["wasserstein", "ks", "psi"])
@pytest.mark.parametrize(("reference_rows", "window"), [(5000, 2000), (20000, 500), (20000, 2000)])
def test_stationary_stream_raises_no_feature_drift(method, reference_rows, window):
    rng = np.random.default_rng(1)
    detector = FeatureDrift(method, window).fit(_ar(rng, reference_rows, 8))
    live = _ar(rng, 40 * window, 8)
    results = [detector.check(live.iloc[start : start + window]) for start in range(0, len(live), window)]
    assert [len(r) for r in results] == [8] * 40
    false_windows = sum(any(r.drifted for r in window_results) for window_results in results)
    assert false_windows <= (2 if method == "psi" else 1)  # PSI measured looser: 2 of these 40 windows at 20k/2000


def test_a_mean_shift_drifts_the_shifted_feature_only():
    rng = np.random.default_rng(2)
    detector = FeatureDrift("wasserstein", 2000).fit(_ar(rng, 20000, 8))
    live = _ar(rng, 2000, 8)
    live["x3"] += 1.0
    assert [r.feature for r in detector.check(live) if r.drifted] == ["x3"]


def test_score_change_catches_a_correlation_change_the_features_miss():
    from bench.drift import CHANGE_AT, FD_SPEC, WINDOW, sensor_stream

    reference = sensor_stream("none", 20000, seed=1)
    model = FaultDetectionExperiment(FD_SPEC).fit(reference)
    monitor = StreamMonitor.for_model("corr", model, reference=reference)
    stream = sensor_stream("correlation", CHANGE_AT + 3 * WINDOW, seed=2)
    assert stream.iloc[CHANGE_AT:].std().div(stream.iloc[:CHANGE_AT].std()).between(0.85, 1.15).all()
    predictions = model.predict(stream)
    windows = monitor.observe(stream, predictions).windows
    again = StreamMonitor.for_model("corr", model, reference=reference)
    cuts = [again.observe(stream.iloc[i : i + 137], predictions.iloc[i : i + 137]) for i in range(0, len(stream), 137)]
    assert [w for update in cuts for w in update.windows] == windows  # the batching changes nothing
    assert not any(w.drift for w in windows if w.end_row <= CHANGE_AT)
    changed = [w for w in windows if w.end_row > CHANGE_AT]
    assert changed[0].score_change or changed[1].score_change  # within 2 windows
    assert not any(w.drifted_features for w in changed)


def test_cusum_limit_follows_the_wanted_run_length():
    assert _cusum_limit(0.5, 20_000) > _cusum_limit(0.5, 1_000) > 0
    rng = np.random.default_rng(3)
    change = ScoreChange(window=400, arl_rows=200_000).fit(rng.standard_normal(8000) ** 2)
    assert len(change.update(rng.standard_normal(100_000) ** 2)) <= 1
    assert change.update(4 * rng.standard_normal(2000) ** 2)  # scores four times larger


def test_forecast_tracker_matches_the_metric_vocabulary():
    rng = np.random.default_rng(4)
    actual, forecast = rng.normal(10, 1, 800), rng.normal(10, 1, 800)
    frame = pd.DataFrame({"actual": actual, "forecast": forecast, "lower": forecast - 1, "upper": forecast + 1})
    tracker = ForecastTracker(rows=500, scale=0.8)
    for start in range(0, 800, 130):
        tracker.update(frame.iloc[start : start + 130])
    expected = forecast_metrics(actual[-500:], forecast[-500:], forecast[-500:] - 1, forecast[-500:] + 1, 0.8)
    assert tracker.values() == pytest.approx({"mase": expected["mase"], "coverage": expected["coverage"]})
    above = MetricTrigger(metric="mase", above=expected["mase"] * 0.9, over_rows=500)
    assert tracker.breached(above)
    assert not tracker.breached(MetricTrigger(metric="coverage", below=expected["coverage"] * 0.9, over_rows=500))
    tracker.reset()
    assert not tracker.breached(above)


# ---------------------------------------------------------------------------------------------- the policy
def _stats(alarm_rate: float, drift: bool = True, breached: bool = False) -> WindowStats:
    feature = FeatureResult("x3", 0.9 if drift else 0.1, 0.5)
    return WindowStats(0, 2000, alarm_rate, 0.02, (feature,), metrics={"mase": 1.5}, metric_breached=breached)


def _decide(spec, stats: WindowStats, rows_since_retrain: int = 50_000, previous: str = "normal"):
    kind = spec.monitoring_kind
    return decide(
        "pump",
        stats,
        kind=kind,
        policy=spec.retrain,
        monitoring=spec.monitoring,
        rows_since_retrain=rows_since_retrain,
        previous=previous,
    )


def test_drift_during_an_alarm_episode_is_a_fault_never_retrained_on():
    spec = FaultDetectionSpec(retrain={"on_drift": True})
    decision = _decide(spec, _stats(alarm_rate=0.30))
    assert (decision.kind, decision.retrain) == ("fault", False)
    [event] = decision.events
    assert event["kind"] == "fault" and event["features"] == ["x3"] and event["thresholds"] == {"x3": 0.5}
    assert event["statistic"] == "wasserstein" and event["window"] == {"start_row": 0, "end_row": 2000, "rows": 2000}
    assert "never retrained" in event["action"]
    assert _decide(spec, _stats(alarm_rate=0.30), previous="fault").events == []  # one event per episode


def test_benign_drift_retrains_only_with_on_drift_and_after_the_cooldown():
    calm = _stats(alarm_rate=0.01)
    off = _decide(FaultDetectionSpec(), calm)
    assert (off.kind, off.retrain, off.events[0]["action"]) == ("drift", False, "none: retrain.on_drift is off")
    on = FaultDetectionSpec(retrain={"on_drift": True, "cooldown_rows": 10_000})
    assert _decide(on, calm).retrain and _decide(on, calm).events[0]["action"] == "retrain"
    cooling = _decide(on, calm, rows_since_retrain=4000)
    assert not cooling.retrain and cooling.events[0]["action"] == "none: cooldown, 6000 rows left"
    assert _decide(TimeSeriesSpec(), calm).retrain  # forecasting: on_drift defaults to on
    assert _decide(TimeSeriesSpec(), _stats(alarm_rate=0.30)).kind == "drift"  # no fault rule for forecasts


def test_a_metric_past_its_bound_retrains_under_the_same_cooldown():
    spec = TimeSeriesSpec(retrain={"on_drift": False, "on_metric": {"metric": "mase", "above": 1.2}})
    quiet = _stats(alarm_rate=0.0, drift=False, breached=True)
    decision = _decide(spec, quiet)
    assert decision.retrain and decision.reason == "on_metric"
    assert decision.events[0] | {"window": None} == {
        "experiment": "pump",
        "kind": "metric",
        "features": [],
        "statistic": "mase",
        "values": {"mase": 1.5},
        "thresholds": {"mase": 1.2},
        "over_rows": 500,
        "window": None,
        "action": "retrain",
    }
    assert not _decide(spec, quiet, rows_since_retrain=100).retrain


def test_monitor_retrains_once_on_benign_drift_and_never_on_a_fault():
    rng = np.random.default_rng(5)
    spec = FaultDetectionSpec(
        retrain={"on_drift": True, "cooldown_rows": 2500, "window": 2500}, monitoring={"window": 1000}
    )
    reference = _ar(rng, 8000, 4)
    shifted = _ar(rng, 3000, 4).assign(x0=lambda df: df["x0"] + 1.5)  # a new operating point
    stream = pd.concat([_ar(rng, 3000, 4), shifted], ignore_index=True)
    calm = pd.DataFrame({"score": stream.abs().sum(axis=1), "is_anomaly": False})

    def run(predictions: pd.DataFrame) -> list:
        monitor = StreamMonitor(
            "pump",
            spec,
            features=list(stream.columns),
            target_alarm_rate=0.01,
            reference=reference,
            reference_scores=reference.abs().sum(axis=1).to_numpy(),
        )
        return [monitor.observe(stream.iloc[i : i + 500], predictions.iloc[i : i + 500]) for i in range(0, 6000, 500)]

    updates = run(calm)  # no alarms: benign
    retrains = [u for u in updates if u.retrain_rows is not None]
    assert len(retrains) == 1 and retrains[0].retrain_reason == "retrain" and len(retrains[0].retrain_rows) == 2500
    assert [e["kind"] for u in updates for e in u.events] == ["drift"]

    updates = run(calm.assign(is_anomaly=np.arange(len(stream)) >= 3000))  # the same change, alarming: a fault
    assert all(u.retrain_rows is None for u in updates)
    assert [e["kind"] for u in updates for e in u.events] == ["fault"]


def test_window_metrics_are_flat_numbers_for_the_monitoring_run():
    stats = _stats(alarm_rate=0.01)
    assert stats.to_metrics() == {
        "rows": 2000.0,
        "alarm_rate": 0.01,
        "drift_features": 1.0,
        "score_cusum_ratio": 0.0,
        "drift_ratio.x3": pytest.approx(1.8),
        "mase": 1.5,
    }


def test_both_experiment_types_take_the_sections_and_track_them_as_params():
    from framework.TimeSeriesAnalysis import TimeSeriesExperiment

    fd = FaultDetectionExperiment({"monitoring": {"window": 500, "drift": {"method": "ks"}}})
    ts = TimeSeriesExperiment({"retrain": {"on_metric": {"metric": "coverage", "below": 0.8, "over_rows": 200}}})
    assert fd.params()["monitoring.drift.method"] == "ks" and fd.params()["retrain.on_drift"] is False
    assert ts.params()["retrain.on_metric.below"] == 0.8 and ts.params()["retrain.on_drift"] is True


def test_bench_smoke_hub_beats_the_peers_on_a_short_mean_shift():
    from bench.drift import CHANGE_AT, FD_SPEC, WINDOW, hub, ks_peer, periodic_peer, sensor_stream

    reference = sensor_stream("none", 10_000, seed=1)
    model = FaultDetectionExperiment(FD_SPEC).fit(reference)
    stream = sensor_stream("mean", CHANGE_AT + 2 * WINDOW, seed=2)
    ours, _ = hub(model, reference, stream, CHANGE_AT)
    ks = ks_peer(reference, stream, CHANGE_AT, WINDOW)
    assert ours.false_events == 0 and ours.delay <= 2 * WINDOW
    periodic = periodic_peer(len(stream), CHANGE_AT)  # its next retrain is at row 20000, after this stream
    assert ks.false_events > ours.false_events and (np.isnan(periodic.delay) or periodic.delay > ours.delay)


def test_rows_without_a_score_are_skipped_not_taken_as_strange():
    rng = np.random.default_rng(6)
    change = ScoreChange(window=400).fit(rng.standard_normal(4000) ** 2)
    scores = rng.standard_normal(20_000) ** 2
    scores[::3] = np.nan  # forecasts whose actuals have not arrived
    assert change.update(scores) == []
    larger = np.r_[np.nan, 9 * rng.standard_normal(999) ** 2]
    signals = change.update(larger)
    assert signals and all(np.isfinite(larger[i]) for i in signals)  # offsets name real rows


def test_forecast_monitor_retrains_on_its_metric_with_a_real_forecaster():
    from bench.drift import CHANGE_AT, hourly_stream
    from framework.TimeSeriesAnalysis import TimeSeriesExperiment

    train = hourly_stream(3000, seed=3, change=False)
    spec = {
        "model": {"name": "seasonal_naive"},
        "seasonal_period": 24,
        "monitoring": {"window": 1000},
        "retrain": {
            "on_drift": False,
            "cooldown_rows": 0,
            "on_metric": {"metric": "mase", "above": 1.5, "over_rows": 200},
        },
    }
    model = TimeSeriesExperiment(spec).fit(train)
    monitor = StreamMonitor.for_model("hourly", model, reference=train)
    live = hourly_stream(CHANGE_AT + 2000, seed=4, change=False, start=3000)
    noisier = np.random.default_rng(7).normal(0, 1.0, len(live)) * (np.arange(len(live)) >= CHANGE_AT)
    live["value"] += noisier  # a noisier sensor: the forecasts stay right on average, their errors double
    predictions = model.predict(live)
    updates = [monitor.observe(live.iloc[i : i + 250], predictions.iloc[i : i + 250]) for i in range(0, len(live), 250)]
    windows = [w for u in updates for w in u.windows]
    assert all(w.metrics["mase"] < 1.5 for w in windows if w.end_row <= CHANGE_AT)
    assert [u.retrain_reason for u in updates if u.retrain_rows is not None][:1] == ["on_metric"]
    [first] = [e for u in updates for e in u.events if e["kind"] == "metric"][:1]
    assert first["window"]["end_row"] > CHANGE_AT and first["values"]["mase"] > 1.5


def test_without_a_reference_the_monitor_calibrates_on_its_first_windows():
    rng = np.random.default_rng(8)
    spec = FaultDetectionSpec(monitoring={"window": 500})
    stream = pd.concat([_ar(rng, 5000, 3), _ar(rng, 1000, 3).assign(x1=lambda df: df["x1"] + 2.0)], ignore_index=True)
    predictions = pd.DataFrame({"score": stream.abs().sum(axis=1), "is_anomaly": False})
    monitor = StreamMonitor("warm", spec, features=list(stream.columns), reference_windows=4)
    windows = [
        w for i in range(0, 6000, 250) for w in monitor.observe(stream[i : i + 250], predictions[i : i + 250]).windows
    ]
    assert monitor.calibrated and windows[0].start_row == 2000  # the first 4 windows were the reference
    assert [w.end_row for w in windows if w.drift] == [5500, 6000]
    assert [r.feature for r in windows[-1].drifted_features] == ["x1"]
