"""A seeded seasonal series with labelled anomalies, for tests, benchmarks and the demo.

>>> df = make_series(n=1000, freq="h", seasonalities=(24, 168), anomalies=("spike", "level_shift"), seed=0)
>>> df.columns.tolist()
['timestamp', 'value', 'is_anomaly']
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["ANOMALY_KINDS", "make_series"]

ANOMALY_KINDS = ("spike", "level_shift")


def make_series(
    n: int = 1000,
    freq: str = "h",
    seasonalities: Sequence[int] = (24, 168),
    trend: float = 0.01,
    noise: float = 0.5,
    anomalies: Sequence[str] = ANOMALY_KINDS,
    seed: int = 0,
    *,
    start: str = "2024-01-01",
    level: float = 20.0,
    n_spikes: int = 3,
    spike_size: float = 8.0,
    shift_size: float = 6.0,
    shift_length: int = 24,
    anomaly_start: float = 0.5,
) -> pd.DataFrame:
    """``level + trend*t + sum of sine seasonalities + N(0, noise)``, with labelled anomalies.

    Seasonality ``p`` has amplitude ``3 / (k + 1)`` for the k-th period, plus its second harmonic, so it is not a
    pure sine. Anomalies fall in the last ``1 - anomaly_start`` share of the series (the start stays clean for
    training): ``spike`` adds ``n_spikes`` single-point spikes of ``±spike_size`` sigmas; ``level_shift`` adds
    ``shift_size`` sigmas for ``shift_length`` steps. Every anomalous row has ``is_anomaly == True``.
    """
    if unknown := [a for a in anomalies if a not in ANOMALY_KINDS]:
        raise ValueError(f"unknown anomaly kind {unknown[0]!r}; choose from {', '.join(ANOMALY_KINDS)}")
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype="float64")
    value = level + trend * t + rng.normal(0.0, noise, n)
    for k, period in enumerate(seasonalities):
        phase = rng.uniform(0, 2 * np.pi)
        amplitude = 3.0 / (k + 1)
        value += amplitude * np.sin(2 * np.pi * t / period + phase) + 0.3 * amplitude * np.sin(4 * np.pi * t / period)
    is_anomaly = np.zeros(n, dtype=bool)
    first = int(n * anomaly_start)
    if "level_shift" in anomalies and n - first > shift_length + 2:
        at = int(rng.integers(first, n - shift_length))
        value[at : at + shift_length] += shift_size * noise
        is_anomaly[at : at + shift_length] = True
    if "spike" in anomalies:
        free = np.flatnonzero(~is_anomaly[first:]) + first
        free = free[(free > first + 1) & (free < n - 1)]
        spots = rng.choice(free, size=min(n_spikes, free.size), replace=False)
        value[spots] += rng.choice([-1.0, 1.0], size=spots.size) * spike_size * noise
        is_anomaly[spots] = True
    timestamps = pd.date_range(start, periods=n, freq=freq)
    return pd.DataFrame({"timestamp": timestamps, "value": value, "is_anomaly": is_anomaly})
