"""The sample files the README uses, written by ``experimenthub sample-data DIR``.

>>> paths = write_samples("data")      # data/normal.csv, data/live.csv, data/load.csv
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from framework.datasets.process import make_process
from framework.datasets.series import make_series

__all__ = ["SAMPLE_FILES", "write_samples"]

SAMPLE_FILES: dict[str, str] = {
    "normal.csv": "fault-free plant data to train on: timestamp, s01..s24",
    "live.csv": "the plant data that follows, with fault episodes: timestamp, s01..s24, fault (0/1)",
    "load.csv": "hourly feeder load, 6 weeks: timestamp, load_mw, is_anomaly",
}


def _utc(frame: pd.DataFrame) -> pd.DataFrame:
    """ISO-8601 timestamps in UTC with a ``Z``, as a plant historian exports them."""
    return frame.assign(timestamp=frame["timestamp"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"))


def write_samples(directory: str | Path, *, seed: int = 7) -> dict[str, Path]:
    """Write ``SAMPLE_FILES`` into ``directory`` (created if needed); return ``{file name: path}``.

    The columns match ``examples/fault_detection.yaml`` (``timestamp``, label ``fault``) and
    ``examples/time_series.yaml`` (``timestamp``, target ``load_mw``, label ``is_anomaly``).
    """
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    train, test = make_process(n_normal=3000, n_test=1200, seed=seed)
    load = make_series(n=24 * 7 * 6, seed=seed).rename(columns={"value": "load_mw"})
    frames = {
        "normal.csv": train,
        "live.csv": test.drop(columns=["fault_type", "fault_sensor"]),
        "load.csv": load.assign(is_anomaly=load["is_anomaly"].astype(int)),
    }
    paths = {}
    for name, frame in frames.items():
        paths[name] = folder / name
        _utc(frame).to_csv(paths[name], index=False, float_format="%.6g")
    return paths
