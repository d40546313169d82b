"""Drift detection: the hub's monitor beside per-feature KS at p < 0.05 and a periodic retrain, same streams.

Run: ``.venv/bin/python bench/drift.py`` (a few minutes on 2 cores).

Streams (seeded; 20 sensors driven by 3 AR(1) latent factors, phi 0.9, plus noise; reference = 20000 rows):

- ``no change``: 200k stationary rows;
- ``mean shift``: +2 noise sigmas (about half the sensor's spread) on 2 of the 20 sensors from row 11000 of 31000;
- ``variance``: noise sigma x2.5 on 2 sensors from row 11000;
- ``correlation``: 2 sensors' factor loadings change sign from row 11000: every marginal stays the same;
- ``seasonal`` (forecasting, hourly, period 24): the daily profile moves by 8 hours from row 11000 of 31000;
  the value's distribution stays the same (the forecaster and its reference: the 5000 hours before the stream);
- ``process`` (a second generator, ``framework.datasets.process``: 24 sensors, phi up to 0.99): 200k stationary
  rows, scored by a model fitted on 20000 other rows. It was not used to tune anything.

Per stream and method: false drift events per 100k stationary rows (windows flagged before the change, or on
stationary streams), the detection delay (rows from the change to the end of the first flagged window) and
missed changes. Windows are 2000 rows (1000 for the hourly series). The hub is ``StreamMonitor`` on a
``FaultDetectionExperiment`` (pca) or ``TimeSeriesExperiment`` (ets) fitted on the reference, fed in 500-row
batches. The KS peer tests each window against the reference with ``scipy.stats.ks_2samp`` and flags it when any
feature has p < 0.05. The periodic peer retrains every 10000 rows whatever happens: each retrain on
stationary data counts as a false event, its delay is the rows to the next retrain.

The last line is machine-readable::

    RESULT drift hub_false_per_100k=… ks_false_per_100k=… hub_max_delay_windows=… hub_missed=… ks_missed=…
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table
from scipy.signal import lfilter
from scipy.stats import ks_2samp

from framework.datasets.process import make_process
from framework.FaultDetection import FaultDetectionExperiment
from framework.monitoring import StreamMonitor
from framework.TimeSeriesAnalysis import TimeSeriesExperiment

SEED = 0
N_SENSORS, N_FACTORS, PHI, NOISE = 20, 3, 0.9, 0.5
REFERENCE_ROWS, STATIONARY_ROWS, CHANGE_AT, STREAM_ROWS = 20_000, 200_000, 11_000, 31_000
WINDOW, TS_WINDOW, BATCH, PERIODIC_ROWS = 2000, 1000, 500, 10_000
TS_TRAIN_ROWS = 5000  # the forecaster's training rows, also its reference
CHANGED = [3, 11]  # the sensors a change touches
FD_SPEC = {"model": {"name": "pca"}, "monitoring": {"window": WINDOW}}


@dataclass
class Outcome:
    false_events: int
    stationary_rows: int
    delay: float  # rows; NaN when missed or when there is no change
    flagged_after: float = float("nan")  # share of the windows after the change that were flagged

    @property
    def false_per_100k(self) -> float:
        return 1e5 * self.false_events / self.stationary_rows


def _plant(rng: np.random.Generator, n: int, loadings: np.ndarray, noise: np.ndarray) -> np.ndarray:
    shocks = rng.standard_normal((n, N_FACTORS)) * np.sqrt(1 - PHI**2)
    factors = lfilter([1.0], [1.0, -PHI], shocks, axis=0)
    return factors @ loadings + rng.standard_normal((n, N_SENSORS)) * noise


def sensor_stream(change: str, n: int, seed: int) -> pd.DataFrame:
    """Rows ``[0, CHANGE_AT)`` from the reference law, the rest changed (no change for "none")."""
    rng = np.random.default_rng(SEED)  # the plant (loadings) is the same for every stream
    loadings = rng.normal(0, 1, (N_FACTORS, N_SENSORS))
    noise = np.full(N_SENSORS, NOISE)
    stream = np.random.default_rng(seed)
    before = _plant(stream, min(n, CHANGE_AT) if change != "none" else n, loadings, noise)
    if change == "none":
        values = before
    else:
        new_loadings, new_noise = loadings.copy(), noise.copy()
        if change == "correlation":
            new_loadings[:, CHANGED] *= -1
        if change == "variance":
            new_noise[CHANGED] *= 2.5
        after = _plant(stream, n - CHANGE_AT, new_loadings, new_noise)
        if change == "mean":
            after[:, CHANGED] += 2 * NOISE
        values = np.vstack([before, after])
    return pd.DataFrame(values, columns=[f"s{i:02d}" for i in range(N_SENSORS)])


def hourly_stream(n: int, seed: int, change: bool, start: int = 0) -> pd.DataFrame:
    """Hours ``start .. start + n`` of the series; with ``change``, the profile moves at hour ``start + CHANGE_AT``."""
    t = np.arange(start, start + n)
    phase = np.where(change & (t >= start + CHANGE_AT), 2 * np.pi * 8 / 24, 0.0)
    rng = np.random.default_rng(seed)
    values = 20 + 3 * np.sin(2 * np.pi * t / 24 + phase) + np.sin(4 * np.pi * t / 24 + phase) + rng.normal(0, 0.5, n)
    times = pd.date_range("2024-01-01", periods=n, freq="h") + pd.Timedelta(hours=start)
    return pd.DataFrame({"timestamp": times, "value": values})


def _outcome(flagged_ends: list[int], n: int, change_at: int | None, window: int) -> Outcome:
    before = [end for end in flagged_ends if change_at is None or end <= change_at]
    after = [end for end in flagged_ends if change_at is not None and end > change_at]
    stationary = n if change_at is None else change_at
    delay = float(after[0] - change_at) if after else float("nan")
    windows_after = (n - change_at) // window if change_at is not None else 0
    return Outcome(len(before), stationary, delay, len(after) / windows_after if windows_after else float("nan"))


def hub(model: object, reference: pd.DataFrame, stream: pd.DataFrame, change_at: int | None) -> list[Outcome]:
    """The hub's monitor, and the same run counting its per-feature part only."""
    monitor = StreamMonitor.for_model("bench", model, reference=reference)
    predictions = model.predict(stream)
    windows = []
    for start in range(0, len(stream), BATCH):
        rows = slice(start, start + BATCH)
        windows += monitor.observe(stream.iloc[rows], predictions.iloc[rows]).windows
    return [
        _outcome([w.end_row for w in windows if w.drift], len(stream), change_at, monitor.window),
        _outcome([w.end_row for w in windows if w.drifted_features], len(stream), change_at, monitor.window),
    ]


def ks_peer(reference: pd.DataFrame, stream: pd.DataFrame, change_at: int | None, window: int) -> Outcome:
    ends = []
    for start in range(0, len(stream) - window + 1, window):
        chunk = stream.iloc[start : start + window]
        if any(ks_2samp(chunk[c], reference[c]).pvalue < 0.05 for c in reference.columns):
            ends.append(start + window)
    return _outcome(ends, len(stream), change_at, window)


def periodic_peer(n: int, change_at: int | None) -> Outcome:
    return _outcome(list(range(PERIODIC_ROWS, n + 1, PERIODIC_ROWS)), n, change_at, PERIODIC_ROWS)


def run() -> list[tuple[str, str, int, Outcome]]:
    rows = []
    reference = sensor_stream("none", REFERENCE_ROWS, seed=1)
    detector = FaultDetectionExperiment(FD_SPEC).fit(reference)
    for change in ("none", "mean", "variance", "correlation"):
        n = STATIONARY_ROWS if change == "none" else STREAM_ROWS
        stream = sensor_stream(change, n, seed=2)
        at = None if change == "none" else CHANGE_AT
        ours, features_only = hub(detector, reference, stream, at)
        rows += [
            (change, "hub", WINDOW, ours),
            (change, "hub, features only", WINDOW, features_only),
            (change, "KS p<0.05", WINDOW, ks_peer(reference, stream, at, WINDOW)),
            (change, f"retrain every {PERIODIC_ROWS}", WINDOW, periodic_peer(n, at)),
        ]
    series = hourly_stream(REFERENCE_ROWS, seed=3, change=False)
    train = series.iloc[REFERENCE_ROWS - TS_TRAIN_ROWS : REFERENCE_ROWS].reset_index(drop=True)
    live = hourly_stream(STREAM_ROWS, seed=4, change=True, start=REFERENCE_ROWS)
    forecaster = TimeSeriesExperiment(
        {"model": {"name": "ets"}, "seasonal_period": 24, "monitoring": {"window": TS_WINDOW}}
    ).fit(train)
    ours, features_only = hub(forecaster, train, live, CHANGE_AT)
    rows += [
        ("seasonal", "hub", TS_WINDOW, ours),
        ("seasonal", "hub, features only", TS_WINDOW, features_only),
        ("seasonal", "KS p<0.05", TS_WINDOW, ks_peer(train[["value"]], live, CHANGE_AT, TS_WINDOW)),
        ("seasonal", f"retrain every {PERIODIC_ROWS}", TS_WINDOW, periodic_peer(STREAM_ROWS, CHANGE_AT)),
    ]
    process, _ = make_process(n_normal=REFERENCE_ROWS + STATIONARY_ROWS, n_test=10, faults=(), seed=5)
    process = process.drop(columns=["timestamp", "fault", "fault_type"], errors="ignore")
    plant_ref, plant_live = process.iloc[:REFERENCE_ROWS], process.iloc[REFERENCE_ROWS:].reset_index(drop=True)
    plant_model = FaultDetectionExperiment(FD_SPEC).fit(plant_ref)
    ours, features_only = hub(plant_model, plant_ref, plant_live, None)
    rows += [
        ("process", "hub", WINDOW, ours),
        ("process", "hub, features only", WINDOW, features_only),
        ("process", "KS p<0.05", WINDOW, ks_peer(plant_ref, plant_live, None, WINDOW)),
        ("process", f"retrain every {PERIODIC_ROWS}", WINDOW, periodic_peer(len(plant_live), None)),
    ]
    return rows


def main() -> None:
    warnings.simplefilter("ignore")
    results = run()
    table = Table(title="Drift detection: false events on stationary rows, delay after a known change")
    columns = (
        "stream",
        "method",
        "false events / 100k rows",
        "windows flagged after",
        "delay (rows)",
        "delay (windows)",
        "missed",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("stream", "method") else "right")
    for stream, method, window, out in results:
        has_change = stream not in ("none", "process")
        missed = "-" if not has_change else ("yes" if np.isnan(out.delay) else "no")
        delay = "-" if not has_change or np.isnan(out.delay) else f"{out.delay:.0f}"
        windows = "-" if delay == "-" else f"{out.delay / window:.1f}"
        after = "-" if not has_change else f"{out.flagged_after:.0%}"
        table.add_row(stream, method, f"{out.false_per_100k:.1f}", after, delay, windows, missed)
    Console(width=150).print(table)

    def pick(method: str) -> list[tuple[str, int, Outcome]]:
        return [(s, w, o) for s, m, w, o in results if m == method]

    def false_rate(method: str) -> float:
        chosen = pick(method)
        return 1e5 * sum(o.false_events for _, _, o in chosen) / sum(o.stationary_rows for _, _, o in chosen)

    changed = [(s, w, o) for s, w, o in pick("hub") if s not in ("none", "process")]
    delays = [o.delay / w for _, w, o in changed if not np.isnan(o.delay)]
    print(
        f"RESULT drift hub_false_per_100k={false_rate('hub'):.2f} ks_false_per_100k={false_rate('KS p<0.05'):.2f}"
        f" hub_max_delay_windows={max(delays, default=float('nan')):.2f}"
        f" hub_missed={sum(np.isnan(o.delay) for _, _, o in changed)}"
        f" ks_missed={sum(np.isnan(o.delay) for s, _, o in pick('KS p<0.05') if s not in ('none', 'process'))}"
    )


if __name__ == "__main__":
    main()
