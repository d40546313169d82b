"""`experimenthub sample-data DIR` writes the README's files, and their columns are the ones the example specs name."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from framework.config import load_yaml_model
from framework.FaultDetection import FaultDetectionSpec
from framework.TimeSeriesAnalysis import TimeSeriesSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_sample_files_match_the_example_specs(tmp_path):
    exe = str(Path(sys.executable).with_name("experimenthub"))
    result = subprocess.run([exe, "sample-data", str(tmp_path / "data")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    normal, live, load = (pd.read_csv(tmp_path / "data" / f) for f in ("normal.csv", "live.csv", "load.csv"))
    fault = load_yaml_model(FaultDetectionSpec, EXAMPLES / "fault_detection.yaml")
    series = load_yaml_model(TimeSeriesSpec, EXAMPLES / "time_series.yaml")
    assert fault.timestamp in normal.columns and fault.label not in normal.columns  # fault-free training data
    assert {fault.timestamp, fault.label} <= set(live.columns) and set(live[fault.label]) == {0, 1}
    assert list(normal.columns) == [c for c in live.columns if c != fault.label]
    assert {series.timestamp, series.target, series.label} <= set(load.columns) and load[series.label].any()
    for frame in (normal, live, load):
        assert frame[fault.timestamp].str.endswith("Z").all()  # UTC, written with its zone
        assert pd.to_datetime(frame[fault.timestamp]).is_monotonic_increasing
    assert pd.to_datetime(live["timestamp"]).min() > pd.to_datetime(normal["timestamp"]).max()  # live follows
