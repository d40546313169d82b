"""A seeded synthetic multivariate plant process with labelled sensor faults.

Sensors are linear mixes of a few slow latent AR(1) factors (think feed rate, ambient temperature,
catalyst activity; ``phi`` between 0.9 and 0.99) plus white measurement noise, each with its own offset,
engineering scale and gain (how strongly it follows the process), so the sensors are strongly correlated as
on a real plant. Nothing is copied from an existing data set.

Fault types (each on one sensor per episode, sizes in multiples of that sensor's noise sigma):

- ``step``: a constant offset of ``step_size`` sigmas (about two standard deviations of the sensor, so well
  inside its normal range: only the broken correlation gives it away).
- ``drift``: a linear ramp from 0 to ``drift_size`` sigmas over the episode (e.g. a fouling sensor); its
  first rows are too small to see, which bounds every detector's ROC-AUC on drift.
- ``variance``: the noise sigma is multiplied by ``variance_factor`` (``>= 1``).
- ``stuck``: the sensor freezes at its value at the start of the episode.

>>> train, test = make_process(n_normal=5000, n_test=2000, seed=0)
>>> train.columns[:3].tolist(), test[["fault", "fault_type"]].value_counts().shape
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.signal import lfilter

__all__ = ["FAULT_TYPES", "make_process"]

FAULT_TYPES: tuple[str, ...] = ("step", "drift", "variance", "stuck")


def _factors(rng: np.random.Generator, n_rows: int, phis: np.ndarray, last: np.ndarray | None) -> np.ndarray:
    """Unit-variance AR(1) factors, one column per ``phi``: continued from ``last`` or from the stationary law."""
    columns = []
    for i, phi in enumerate(phis):
        shocks = rng.standard_normal(n_rows) * np.sqrt(1.0 - phi**2)
        if last is None:
            shocks[0], state = rng.standard_normal(), [0.0]
        else:
            state = [phi * last[i]]
        columns.append(lfilter([1.0], [1.0, -phi], shocks, zi=state)[0])
    return np.column_stack(columns) if n_rows else np.empty((0, len(phis)))


def make_process(
    n_normal: int = 5000,
    n_test: int = 3000,
    *,
    n_sensors: int = 24,
    n_factors: int = 3,
    faults: Sequence[str] = FAULT_TYPES,
    seed: int = 0,
    noise: float = 0.4,
    episode_length: int = 200,
    gap_length: int = 200,
    step_size: float = 6.0,
    drift_size: float = 40.0,
    variance_factor: float = 4.0,
    start: str = "2024-01-01",
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Normal training data and a test stretch with labelled fault episodes.

    Parameters
    ----------
    n_normal, n_test
        Rows of fault-free training data, and of test data that follows it in time.
    n_sensors, n_factors
        Sensors ``s01..sNN`` and the latent AR(1) factors that drive them.
    faults
        Fault types cycled through in the test data (see ``FAULT_TYPES``); empty gives normal test data.
    seed
        Seeds every random draw; the training data does not depend on ``faults``, ``n_test`` or the fault
        sizes (the test stretch and the faults use their own streams).
    noise
        Measurement noise sigma relative to the factor-driven signal (before each sensor's own scale).
    episode_length, gap_length
        Rows per fault episode, and normal rows before each episode.

    Returns
    -------
    (train, test)
        ``train``: ``timestamp`` (1 s cadence) and the sensors. ``test`` continues in time and adds ``fault``
        (0/1), ``fault_type`` (``""`` when normal) and ``fault_sensor``.
    """
    if unknown := sorted(set(faults) - set(FAULT_TYPES)):
        raise ValueError(f"unknown fault type(s) {unknown}; choose from {', '.join(FAULT_TYPES)}")
    if n_normal < 1 or n_test < 0 or episode_length < 1 or gap_length < 0 or variance_factor < 1:
        raise ValueError("need n_normal, episode_length >= 1, n_test, gap_length >= 0 and variance_factor >= 1")
    rng = np.random.default_rng(seed)
    names = [f"s{j + 1:02d}" for j in range(n_sensors)]
    directions = rng.standard_normal((n_sensors, n_factors))
    gains = rng.uniform(0.5, 1.2, (n_sensors, 1))  # how strongly each sensor follows the process
    loadings = gains * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    offsets = rng.uniform(10.0, 100.0, n_sensors)
    scales = rng.uniform(0.5, 5.0, n_sensors)
    phis = rng.uniform(0.9, 0.99, n_factors)
    sigma = noise * scales  # noise sigma of each sensor in engineering units

    def sensors(stream: np.random.Generator, factors: np.ndarray) -> np.ndarray:
        return offsets + scales * (factors @ loadings.T) + sigma * stream.standard_normal((len(factors), n_sensors))

    train_factors = _factors(rng, n_normal, phis, None)
    train_values = sensors(rng, train_factors)
    test_rng = np.random.default_rng([seed, 1])  # the test stretch has its own stream
    test_factors = _factors(test_rng, n_test, phis, train_factors[-1])
    times = pd.date_range(start, periods=n_normal + n_test, freq="s")

    test_values = sensors(test_rng, test_factors)
    fault = np.zeros(n_test, dtype=np.int64)
    fault_type = np.full(n_test, "", dtype=object)
    fault_sensor = np.full(n_test, "", dtype=object)
    fault_rng = np.random.default_rng([seed, 2])
    period = gap_length + episode_length
    for episode in range(n_test // period if faults else 0):
        kind = faults[episode % len(faults)]
        j = int(fault_rng.integers(n_sensors))
        rows = slice(episode * period + gap_length, (episode + 1) * period)
        ramp = np.linspace(0.0, 1.0, episode_length)
        if kind == "step":
            test_values[rows, j] += step_size * sigma[j]
        elif kind == "drift":
            test_values[rows, j] += drift_size * sigma[j] * ramp
        elif kind == "variance":
            test_values[rows, j] += (
                np.sqrt(variance_factor**2 - 1.0) * sigma[j] * fault_rng.standard_normal(episode_length)
            )
        else:  # stuck
            test_values[rows, j] = test_values[rows.start, j]
        fault[rows], fault_type[rows], fault_sensor[rows] = 1, kind, names[j]

    train = pd.DataFrame(train_values, columns=names)
    train.insert(0, "timestamp", times[:n_normal])
    test = pd.DataFrame(test_values, columns=names)
    test.insert(0, "timestamp", times[n_normal:])
    test["fault"] = fault
    test["fault_type"] = fault_type
    test["fault_sensor"] = fault_sensor
    return train, test
