"""The example specs and configs in examples/ stay valid, and spec files get line-numbered errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from framework.config import HubConfig, load_yaml_model
from framework.errors import ConfigError
from framework.FaultDetection import FaultDetectionSpec
from framework.TimeSeriesAnalysis import TimeSeriesSpec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXE = str(Path(sys.executable).with_name("experimenthub"))


def test_example_specs_load():
    fault = load_yaml_model(FaultDetectionSpec, EXAMPLES / "fault_detection.yaml")
    assert fault.model.name == "var_innovation" and fault.threshold.persistence.k == 3
    series = load_yaml_model(TimeSeriesSpec, EXAMPLES / "time_series.yaml")
    assert series.target == "load_mw" and series.horizon == 48


def test_services_config_reads_secrets_from_the_environment(monkeypatch):
    monkeypatch.setenv("RABBITMQ_PASSWORD", "from-env")
    config = load_yaml_model(HubConfig, EXAMPLES / "hub_config.services.yaml")
    assert config.plugins.datastream.config["password"] == "from-env"
    assert "from-env@" in config.plugins.taskqueue.config["broker_url"]
    monkeypatch.delenv("RABBITMQ_PASSWORD")
    with pytest.raises(ConfigError, match="RABBITMQ_PASSWORD is not set"):
        load_yaml_model(HubConfig, EXAMPLES / "hub_config.services.yaml")


def test_cli_spec_errors_name_file_line_and_field(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text("model: {name: pca}\nthreshold:\n  false_alarm_rate: lots\n")
    data = tmp_path / "d.csv"
    data.write_text("a,b\n1,2\n")
    result = subprocess.run([EXE, "train", "x", "--type", "fault_detection", "--spec", str(spec), "--data", str(data)],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={"EXPERIMENTHUB_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1
    assert f"{spec}:3: threshold.false_alarm_rate" in result.stderr
    assert "Traceback" not in result.stderr
