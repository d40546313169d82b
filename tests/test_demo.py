"""`experimenthub demo` (the README's main job) in a temporary EXPERIMENTHUB_HOME: no servers, a report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.test_offline import foreign

EXE = str(Path(sys.executable).with_name("experimenthub"))


def test_demo_runs_on_the_embedded_default_and_writes_the_report(tmp_path):
    home = tmp_path / "home"
    result = subprocess.run([EXE, "demo", "--json"], capture_output=True, text=True, timeout=600,
                            env={"EXPERIMENTHUB_HOME": str(home), "PATH": "/usr/bin:/bin", "COLUMNS": "80",
                                 "PYTHONPATH": os.environ.get("PYTHONPATH", "")}, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(result.stdout)
    report = Path(results["report"])
    assert report.is_file() and report.is_relative_to(home)
    html = report.read_text()
    assert html.count("plotly") > 10 and "demo_pump_station" in html and "demo_feeder_load" in html
    stored = sorted(home.rglob("figures/*.html"))  # the figures the demo's trainings stored in MLflow
    assert stored and not foreign(html), foreign(html)  # opens offline: nothing from another host
    assert not {str(p): found for p in stored if (found := foreign(p.read_text()))}
    assert (home / "mlflow.db").is_file()  # the embedded store, not a server
    ui = next(line for line in result.stderr.splitlines() if " ui --backend-store-uri " in line)
    mlflow_exe, _, port = ui.split()[0], *ui.rpartition("--port ")[1:]
    assert Path(mlflow_exe).is_absolute() and Path(mlflow_exe).is_file()  # one line at 80 columns, absolute path
    assert f"sqlite:///{home}" in ui and port.strip().isdigit()
    stream = results["stream"]
    assert stream["missing_predictions"] == 0 and stream["records_scored"] == 4000
    assert stream["dead_lettered"] == 1
    fault = results["fault_detection"]
    assert fault["detection_rate"] >= 0.75 and fault["false_alarm_rate"] <= 0.02
    assert results["time_series"]["holdout"]["relative_mase"] < 1.0  # beats seasonal naive
