"""training.train_version: one run per version; the gate of a forecaster compares with the champion in service."""

from __future__ import annotations

import pytest

from framework.config import default_config
from framework.datasets.series import make_series
from framework.ExperimentHub import ExperimentHub

SPEC = {"timestamp": "timestamp", "target": "value", "horizon": 24, "model": {"name": "ets"}}


@pytest.fixture
def hub():
    with ExperimentHub.from_hub_config(default_config()) as opened:  # embedded store in this test's own home
        yield opened


def test_a_second_forecaster_is_judged_against_the_champion(hub):
    series = make_series(n=24 * 7 * 6, anomalies=(), seed=4)
    hub.create_experiment("feeder", "time_series", SPEC)
    first = hub.train("feeder", series)
    assert "relative_to_champion" not in first.validation.metrics  # nothing to compare with yet
    second = hub.train("feeder", series)
    if not first.promoted:
        pytest.fail(f"a well-behaved series should give a champion: {first.validation.reason}")
    assert second.validation.metrics["champion_cv_mase"] > 0
    ratio = second.validation.metrics["relative_to_champion"]
    assert ratio == pytest.approx(
        second.validation.metrics["forward_cv_mase"] / second.validation.metrics["champion_cv_mase"]
    )
    assert second.promoted == (second.validation.passed and ratio <= 1.0)
