"""Monitoring: spec sections, calibrated drift, the score change detector, the retrain policy (issue 15)."""

from __future__ import annotations

import pytest

from framework.config import parse_yaml_model
from framework.errors import ConfigError
from framework.FaultDetection import FaultDetectionSpec
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
