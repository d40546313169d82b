"""The command line as a person uses it: real subprocesses on the embedded default (no servers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXE = str(Path(sys.executable).with_name("experimenthub"))


def run(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300, cwd=cwd,
                          env={"EXPERIMENTHUB_HOME": str(home), "PATH": "/usr/bin:/bin", "COLUMNS": "200",
                               "PYTHONPATH": os.environ.get("PYTHONPATH", "")})  # the tree under test


@pytest.fixture
def workdir(tmp_path):
    from framework.datasets.process import make_process

    train, test = make_process(n_normal=3000, n_test=400, seed=5)  # enough hold-out rows for the gate
    train.to_csv(tmp_path / "train.csv", index=False)
    test.drop(columns=["fault", "fault_type"]).to_parquet(tmp_path / "live.parquet")
    (tmp_path / "spec.yaml").write_text("model: {name: pca}\ntimestamp: timestamp\n")
    return tmp_path


def test_health_and_plugins_on_the_embedded_default(workdir):
    home = workdir / "home"
    health = run("health", "--json", home=home, cwd=workdir)
    assert health.returncode == 0, health.stderr
    report = json.loads(health.stdout)
    assert report["mlops"]["healthy"] and report["datastream"]["healthy"]
    assert str(home) in report["mlops"]["details"]["uri"]
    plugins = json.loads(run("plugins", "--json", home=home, cwd=workdir).stdout)
    assert {(p["type"], p["name"]) for p in plugins} >= {("mlops", "mlflow"), ("datastream", "local"),
                                                         ("datastream", "rabbitmq"), ("taskqueue", "celery")}


def test_health_exits_1_when_a_plugin_is_down(workdir):
    config = workdir / "down.yaml"
    config.write_text('version: "1.0"\nplugins:\n  datastream: {type: rabbitmq, config: {host: 127.0.0.1, '
                      'port: 1, username: u, password: "pw-not-shown", connect_timeout: 1}}\n')
    result = run("health", "--config", str(config), "--json", home=workdir / "home", cwd=workdir)
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["datastream"]["healthy"] is False
    assert "RabbitMQPlugin (datastream): initialize() failed" in report["datastream"]["details"]["error"]
    assert "Traceback" not in result.stderr
    assert "pw-not-shown" not in result.stderr + result.stdout
    train = run("train", "x", "--config", str(config), "--data", "train.csv", home=workdir / "home", cwd=workdir)
    assert train.returncode == 2 and "initialize() failed" in train.stderr  # other commands fail fast


def test_train_predict_list_show_promote(workdir):
    home = workdir / "home"
    trained = run("train", "pump", "--type", "fault_detection", "--spec", "spec.yaml", "--data", "train.csv",
                  "--json", home=home, cwd=workdir)
    assert trained.returncode == 0, trained.stderr
    job = json.loads(trained.stdout)
    assert job["state"] == "succeeded" and job["result"]["version"] == 1
    predicted = run("predict", "pump", "--data", "live.parquet", "--out", "scores.csv", "--version", "1",
                    home=home, cwd=workdir)
    assert predicted.returncode == 0, predicted.stderr
    assert "pump: scored by version 1 (the champion)" in predicted.stderr
    import pandas as pd

    scores = pd.read_csv(workdir / "scores.csv")
    assert len(scores) == 400 and {"score", "threshold", "is_anomaly"} <= set(scores.columns)
    listed = json.loads(run("experiments", "list", "--json", home=home, cwd=workdir).stdout)
    assert [e["name"] for e in listed] == ["pump"]
    shown = json.loads(run("experiments", "show", "pump", "--json", home=home, cwd=workdir).stdout)
    assert shown["type"] == "fault_detection" and [v["version"] for v in shown["versions"]] == [1]
    promoted = run("promote", "pump", "1", home=home, cwd=workdir)
    assert promoted.returncode == 0 and "champion" in promoted.stdout
    retrained = run("retrain", "pump", "--data", "train.csv", home=home, cwd=workdir)
    assert retrained.returncode == 0, retrained.stderr
    assert "version 2" in retrained.stdout
    history = json.loads(run("jobs", "--json", home=home, cwd=workdir).stdout)
    assert [(h["experiment"], h["version"], h["status"]) for h in history] == [
        ("pump", "2", "FINISHED"),
        ("pump", "1", "FINISHED"),
    ]
    assert history[1]["job_id"] == job["job_id"]


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("predict", "nope", "--data", "live.parquet"), "no experiment named 'nope'"),
        (("train", "x", "--type", "fault_detection", "--data", "missing.csv"), "file not found"),
        (("train", "x", "--type", "weather", "--data", "train.csv"), "unknown or disabled experiment type"),
        (("jobs", "0123"), "no job '0123'"),
    ],
    ids=["unknown-experiment", "missing-file", "unknown-type", "unknown-job"],
)
def test_errors_are_one_line_with_nonzero_exit(workdir, args, fragment):
    result = run(*args, home=workdir / "home", cwd=workdir)
    assert result.returncode != 0
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [("train", "x", "--data", "missing.csv"), ("predict", "x", "--data", "."), ("--embedded", "health", "-c", "x.yaml"),
     ("--version",)],
    ids=["missing-file", "directory", "embedded-and-config", "version"],
)
def test_argument_and_file_errors_answer_before_heavy_imports(tmp_path, args):
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "framework.cli", *args], capture_output=True,
                            text=True, cwd=tmp_path, env={**os.environ, "EXPERIMENTHUB_HOME": str(tmp_path)})
    imported = {line.split("|")[-1].strip().split(".")[0] for line in result.stderr.splitlines() if "|" in line}
    assert not {"mlflow", "pandas", "sklearn"} & imported
    messages = [line for line in result.stderr.splitlines() if not line.startswith("import time:")]
    if args == ("--version",):
        assert result.returncode == 0 and result.stdout.startswith("experimenthub ")
    else:
        assert result.returncode == 2 and messages and messages[-1].startswith("error: --")


def test_jobs_and_jobs_id_agree_across_processes(workdir):
    """`jobs` lists what `jobs ID` finds, each in its own process: a succeeded and a failed job, with the error."""
    home = workdir / "home"
    (workdir / "short.csv").write_text((workdir / "train.csv").read_text().splitlines()[0] + "\n"
                                       + "\n".join((workdir / "train.csv").read_text().splitlines()[1:6]) + "\n")
    ok = run("train", "pump", "--type", "fault_detection", "--spec", "spec.yaml", "--data", "train.csv", "--json",
             home=home, cwd=workdir)
    assert ok.returncode == 0, ok.stderr
    failed = run("train", "pump", "--data", "short.csv", "--json", home=home, cwd=workdir)  # too few rows to fit
    assert failed.returncode == 1 and json.loads(failed.stdout)["state"] == "failed"
    listed = json.loads(run("jobs", "--json", home=home, cwd=workdir).stdout)
    assert [row["status"] for row in listed] == ["FAILED", "FINISHED"]
    table = subprocess.run([EXE, "jobs"], capture_output=True, text=True, cwd=workdir, timeout=300,
                           env={"EXPERIMENTHUB_HOME": str(home), "COLUMNS": "80", "PATH": "/usr/bin:/bin",
                                "PYTHONPATH": os.environ.get("PYTHONPATH", "")}).stdout
    assert "…" not in table  # ids fold onto the next line instead of being cut
    job_column = "".join(line.split("│")[5].strip() for line in table.splitlines() if line.count("│") == 8)
    assert all(row["job_id"] in job_column for row in listed)  # whole, once the folded pieces are joined
    for row in listed:
        shown = run("jobs", row["job_id"], "--json", home=home, cwd=workdir)
        info = json.loads(shown.stdout)
        assert info["job_id"] == row["job_id"]
        assert info["state"] == {"FINISHED": "succeeded", "FAILED": "failed"}[row["status"]]
        assert (info["error"] is None) == (row["status"] == "FINISHED") and info["error"] == row["error"]
    assert "rows" in listed[0]["error"] and json.loads(run("jobs", listed[1]["job_id"], "--json", home=home,
                                                           cwd=workdir).stdout)["result"]["version"] == 1
