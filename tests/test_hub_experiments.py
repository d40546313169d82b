"""The hub's experiment API through the real MLOps plugin, on the embedded SQLite store and the MLflow server."""

from __future__ import annotations

import contextlib
import threading
import uuid
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest

from framework.config import ExperimentSpec, HubConfig
from framework.errors import ConfigError, ConflictError, DataValidationError, ExperimentNotFound, JobFailed
from framework.Experiment import Experiment, Validation
from framework.ExperimentHub import ExperimentHub

warnings.filterwarnings("ignore", category=UserWarning)

SPEC = {"model": {"name": "pca"}, "timestamp": "timestamp", "label": "fault"}


class GateSpec(ExperimentSpec):
    threshold: dict[str, Any] = pydantic.Field(default_factory=dict)  # {"passes": false} makes the gate refuse


class GateExperiment(Experiment):
    """A tiny experiment whose champion gate is set by its spec: tests the hub's promotion logic alone."""

    spec_model = GateSpec

    def fit(self, df):
        self.mean_ = float(df["x"].mean())
        self.metrics_ = {"mean": self.mean_}
        return self

    def predict(self, df):
        return pd.DataFrame({"score": df["x"] - self.mean_}, index=df.index)

    def evaluate(self, df):
        return {"n": float(len(df))}

    def figures(self, df=None):
        import plotly.graph_objects as go

        return {"level": go.Figure(go.Scatter(y=[self.mean_]))}

    def validate(self, reference=None):
        passed = bool(self.spec.threshold.get("passes", True))
        return Validation(passed, "forced by spec", {"gate": float(passed)})


def hub_config(mlflow_uri: str) -> HubConfig:
    return HubConfig.model_validate(
        {
            "version": "1.0",
            "plugins": {"mlops": {"type": "mlflow", "config": {"mlflow_uri": mlflow_uri}}},
            "experiments": [
                {"name": "fault_detection", "module": "framework.FaultDetection", "class": "FaultDetectionExperiment"},
                {"name": "gate", "module": "tests.test_hub_experiments", "class": "GateExperiment"},
                {"name": "blocking", "module": "tests.test_hub_experiments", "class": "BlockingExperiment"},
            ],
        }
    )


@pytest.fixture(params=["sqlite", "server"])
def open_hub(request) -> Callable[[], ExperimentHub]:
    """Opens hubs on one store (each test gets fresh experiment names); all are shut down after the test."""
    if request.param == "server":
        uri = request.getfixturevalue("mlflow_server").uri
    else:
        uri = request.getfixturevalue("mlflow_sqlite_uri")
    hubs: list[ExperimentHub] = []

    def make() -> ExperimentHub:
        hubs.append(ExperimentHub.from_hub_config(hub_config(uri)))
        return hubs[-1]

    yield make
    for hub in hubs:
        hub.shutdown()


@pytest.fixture(scope="module")
def process():
    from framework.datasets.process import make_process

    train, test = make_process(n_normal=2000, n_test=1600, seed=3)
    return train, test


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_train_predict_reopen_identical_and_retrain(open_hub, process):
    train, test = process
    hub = open_hub()
    name = unique("pump")
    info = hub.create_experiment(name, "fault_detection", SPEC)
    assert info.type == "fault_detection" and info.spec["model"]["name"] == "pca"
    result = hub.train(name, train)
    assert result.version == 1 and result.run_id
    assert {"threshold", "n_features"} <= set(result.metrics)
    first = hub.predict(name, test, version=1)
    assert len(first) == len(test)
    assert {"score", "threshold", "is_anomaly", "top_feature"} <= set(first.columns)

    other = open_hub()  # a second hub on the same store: state comes from the store, not memory
    assert name in [e.name for e in other.experiments()]
    pd.testing.assert_frame_equal(other.predict(name, test, version=1), first)

    again = other.retrain(name)
    assert again.version == 2
    assert [v.version for v in hub.versions(name)] == [2, 1]


def test_records_and_files_are_accepted(open_hub, process, tmp_path):
    train, test = process
    hub = open_hub()
    name = unique("files")
    hub.create_experiment(name, "fault_detection", SPEC)
    csv = tmp_path / "train.csv"
    train.to_csv(csv, index=False)
    hub.train(name, csv)
    records = test.head(50).assign(timestamp=test.head(50)["timestamp"].astype(str)).to_dict("records")
    from_records = hub.predict(name, records, version=1)
    from_frame = hub.predict(name, test.head(50), version=1)
    np.testing.assert_allclose(from_records["score"].to_numpy(), from_frame["score"].to_numpy())


def test_champion_moves_only_when_the_model_validates(open_hub):
    hub = open_hub()
    name = unique("gate")
    data = pd.DataFrame({"x": np.arange(10.0)})
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    assert hub.train(name, data).promoted is True
    assert hub.get_experiment(name).champion == 1
    hub.delete_experiment(name)

    hub.create_experiment(name, "gate", {"model": {"name": "mean"}, "threshold": {"passes": False}})
    failed = hub.train(name, data)
    assert failed.promoted is False and failed.validation.reason == "forced by spec"
    assert hub.get_experiment(name).champion is None
    hub.promote(name, failed.version)  # a person may still promote by hand
    assert hub.get_experiment(name).champion == failed.version


def test_retrain_keeps_champion_when_new_model_fails_validation(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    hub.train(name, pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    store = hub.store
    store.mlops.set_experiment_tags(
        name, {"experimenthub.spec": '{"model": {"name": "mean"}, "threshold": {"passes": false}}'}
    )
    result = hub.retrain(name, pd.DataFrame({"x": [10.0, 20.0]}))
    assert result.version == 2 and result.promoted is False
    assert hub.get_experiment(name).champion == 1
    assert hub.predict(name, pd.DataFrame({"x": [2.0]}))["score"].tolist() == [0.0]  # still served by v1


def test_retrain_window_uses_recent_rows(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}, "retrain": {"window": 2}})
    hub.train(name, pd.DataFrame({"x": [100.0, 100.0, 100.0]}))
    result = hub.retrain(name, pd.DataFrame({"x": [1.0, 3.0]}))
    assert result.metrics["mean"] == 2.0


def test_in_process_jobs_are_idempotent(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    job_id = hub.submit_training(name, pd.DataFrame({"x": [1.0, 2.0]}))
    result = hub.wait_job(job_id, timeout=120)
    assert hub.job(job_id).state == "succeeded"
    assert result["version"] == 1 and result["job_id"] == job_id
    dataset_run = hub.store.find_job_run(name, job_id)
    replay = hub.run_job(job_id=job_id, experiment=name, dataset_run_id=dataset_run.run_id)
    assert replay["run_id"] == result["run_id"] and replay["version"] == 1
    assert [v.version for v in hub.versions(name)] == [1]


def test_failed_job_reports_error(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    job_id = hub.submit_training(name, pd.DataFrame({"y": [1.0]}))  # no column x: fit raises KeyError
    with pytest.raises(JobFailed):
        hub.wait_job(job_id, timeout=120)
    info = hub.job(job_id)
    assert info.state == "failed" and "KeyError" in info.error
    assert hub.versions(name) == []


def test_names_types_and_conflicts(open_hub, process):
    hub = open_hub()
    name = unique("pump")
    with pytest.raises(ConfigError, match="unknown or disabled experiment type 'time_series'"):
        hub.create_experiment(name, "time_series", {})
    hub.create_experiment(name, "fault_detection", SPEC)
    with pytest.raises(ConflictError, match="already exists"):
        hub.create_experiment(name, "fault_detection", SPEC)
    assert hub.create_experiment(name, "fault_detection", SPEC, exist_ok=True).name == name
    with pytest.raises(ExperimentNotFound, match="has no trained model yet"):
        hub.predict(name, process[1])
    with pytest.raises(ExperimentNotFound, match="no experiment named 'nope-"):
        hub.train(unique("nope"), process[0])
    hub.delete_experiment(name)
    assert name not in [e.name for e in hub.experiments()]
    with pytest.raises(ExperimentNotFound):
        hub.get_experiment(name)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"model": {"name": "pcaa"}}, "pca"),
        ({"model": {"name": "pca", "params": {"n_compnents": 3}}}, "n_compnents"),
        ({"model": {"name": "pca"}, "colour": "red"}, "colour"),
        ({"model": {"name": "iforest", "params": {"n_jobs": -1}}}, "n_jobs: not accepted from a spec"),
        ({"model": {"name": "iforest", "params": {"n_estimators": 100000}}}, "n_estimators: must be .* 1 to 1000"),
        ({"model": {"name": "lof", "params": {"n_neighbors": 0}}}, "n_neighbors: must be an integer from 1"),
        ({"model": {"name": "pca", "params": {"lags": 10**6}}}, "lags: must be an integer from 0 to 100"),
        ({"model": {"name": "pca"}, "features": ["s01", "s02", "s01"]}, "features: listed more than once: s01"),
    ],
    ids=["unknown-detector", "bad-param", "unknown-spec-key", "n_jobs", "n_estimators", "n_neighbors", "lags", "dup"],
)
def test_bad_specs_are_refused_before_anything_is_stored(open_hub, spec, message):
    hub = open_hub()
    name = unique("bad")
    with pytest.raises(ConfigError, match=message):
        hub.create_experiment(name, "fault_detection", spec)
    assert name not in [info.name for info in hub.experiments()]
    assert hub.store.mlops.get_experiment(name) is None  # not even an untagged MLflow experiment


def _without(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    return frame.drop(columns=[column])


@pytest.mark.parametrize(
    ("make_bad", "field", "fragment"),
    [
        (lambda tr: _without(tr, "s05"), "s05", "missing"),
        (lambda tr: tr.assign(s07=["x", *tr["s07"].tolist()[1:]]), "s07", "non-numeric"),
        (lambda tr: tr.iloc[0:0], None, "no rows"),
        (lambda tr: tr.assign(**{c: np.nan for c in tr.columns if c.startswith("s")}), None, "missing"),
        (lambda tr: tr.head(10), None, "rows"),
    ],
    ids=["missing-column", "non-numeric", "empty", "all-nan", "fewer-rows-than-features"],
)
def test_bad_data_names_the_column(open_hub, process, make_bad, field, fragment):
    train, _ = process
    hub = open_hub()
    name = unique("pump")
    hub.create_experiment(
        name,
        "fault_detection",
        {"model": {"name": "pca"}, "timestamp": "timestamp", "features": [f"s{i:02d}" for i in range(1, 25)]},
    )
    with pytest.raises(DataValidationError) as info:
        hub.train(name, make_bad(train))
    if field:
        assert info.value.field == field
    assert fragment in str(info.value)
    assert hub.versions(name) == []


def test_versions_carry_the_champion_alias(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    for _ in range(2):
        hub.train(name, pd.DataFrame({"x": [1.0, 2.0]}))
    assert [(v.version, v.aliases) for v in hub.versions(name)] == [(2, ("champion",)), (1, ())]
    hub.promote(name, 1)
    assert [(v.version, v.aliases) for v in hub.versions(name)] == [(2, ()), (1, ("champion",))]


def test_plugin_config_typos_are_refused():
    from framework.plugins.registry import build_plugin

    with pytest.raises(ConfigError, match=r"MLflowPlugin: mlflow_url: unknown key; did you mean 'mlflow_uri'\?"):
        build_plugin("mlops", "mlflow", {"mlflow_url": "sqlite:///x.db"})


def test_retrain_jobs_are_idempotent(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}, "retrain": {"window": 3}})
    hub.train(name, pd.DataFrame({"x": [0.0, 0.0, 0.0]}))
    job_id = hub.submit_retrain(name, pd.DataFrame({"x": [3.0, 6.0]}))
    result = hub.wait_job(job_id, timeout=120)
    assert result["version"] == 2 and result["metrics"]["mean"] == 3.0  # window: [0, 3, 6]
    replay = hub.run_job(job_id=job_id, experiment=name, kind="retrain")  # a redelivered job
    assert replay["run_id"] == result["run_id"]
    assert [v.version for v in hub.versions(name)] == [2, 1]


# -- ownership and incarnations (issue 19, item 1) ----------------------------------------------------------------
GATES: dict[str, tuple[threading.Event, threading.Event]] = {}  # gate key -> (fit started, fit may finish)


class BlockingExperiment(GateExperiment):
    """Blocks where a training is slow (``fit``) or, with ``at: save``, when the model is saved (after every log
    call of the run, just before the version is registered), until the test releases it. The spec names the gate."""

    def _block(self, where: str) -> None:
        started, release = GATES[self.spec.threshold["gate"]]
        if self.spec.threshold.get("at", "fit") == where and not started.is_set():
            started.set()
            assert release.wait(60), "the test never released the training"

    def fit(self, df):
        self._block("fit")
        return super().fit(df)

    def __getstate__(self):
        self._block("save")
        return dict(self.__dict__)


def blocking_spec(at: str = "fit") -> tuple[dict, threading.Event, threading.Event]:
    key = uuid.uuid4().hex
    GATES[key] = (threading.Event(), threading.Event())
    return {"model": {"name": "mean"}, "threshold": {"gate": key, "at": at}}, *GATES[key]


def test_foreign_mlflow_experiments_are_never_adopted_or_deleted(open_hub):
    hub = open_hub()
    mlops = hub.get_plugin("mlops")
    name = unique("foreign")
    mlops.create_experiment(name, tags={"team": "other"})  # another team's experiment on the same server
    for taken in (name, "Default"):
        with pytest.raises(ConflictError, match="not created by the hub"):
            hub.create_experiment(taken, "gate", {"model": {"name": "mean"}})
        with pytest.raises(ExperimentNotFound):
            hub.delete_experiment(taken)
        assert mlops.get_experiment(taken) is not None
    assert mlops.get_experiment(name)["tags"] == {"team": "other"}  # untouched: no hub tags were added

    model = unique("foreign-model")  # a registered model with no experiment behind it
    with mlops.run(unique("elsewhere")) as run_id:
        fitted = GateExperiment({"model": {"name": "mean"}}).fit(pd.DataFrame({"x": [1.0]}))
        mlops.register_model(model, mlops.log_model(run_id, fitted))
    with pytest.raises(ConflictError, match="registered model"):
        hub.create_experiment(model, "gate", {"model": {"name": "mean"}})
    assert [v.version for v in mlops.list_versions(model)] == [1]


def test_experiments_carry_a_fresh_incarnation(open_hub):
    hub = open_hub()
    name = unique("gate")
    first = hub.create_experiment(name, "gate", {"model": {"name": "mean"}}).incarnation
    assert first and hub.get_experiment(name).incarnation == first
    hub.delete_experiment(name)
    second = hub.create_experiment(name, "gate", {"model": {"name": "mean"}}).incarnation
    assert second and second != first


def test_a_job_that_outlives_its_experiment_never_registers_under_the_new_one(open_hub):
    hub = open_hub()
    name = unique("gate")
    spec, started, release = blocking_spec(at="save")
    hub.create_experiment(name, "blocking", spec)
    job_id = hub.submit_training(name, pd.DataFrame({"x": [1.0, 2.0]}))
    assert started.wait(60)
    hub.delete_experiment(name)
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})  # same name, another spec
    release.set()
    with pytest.raises(JobFailed, match="deleted"):
        hub.wait_job(job_id, timeout=120)
    assert hub.versions(name) == []
    with pytest.raises(ExperimentNotFound, match="no trained model"):
        hub.predict(name, pd.DataFrame({"x": [1.0]}))


def test_a_stale_worker_job_cannot_train_for_a_new_incarnation(open_hub):
    hub = open_hub()
    name = unique("gate")
    old = hub.create_experiment(name, "gate", {"model": {"name": "mean"}}).incarnation
    hub.delete_experiment(name)
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    with pytest.raises(ConflictError, match="deleted and created again"):
        hub.run_job(job_id=unique("job"), experiment=name, data=pd.DataFrame({"x": [1.0]}), incarnation=old)
    assert hub.versions(name) == []


def test_delete_cancels_queued_jobs(open_hub):
    hub = open_hub()
    name = unique("gate")
    spec, started, release = blocking_spec()
    hub.create_experiment(name, "blocking", spec)
    jobs = [hub.submit_training(name, pd.DataFrame({"x": [1.0]})) for _ in range(3)]  # 2 workers: one waits
    assert started.wait(60)
    assert hub.job(jobs[2]).state == "queued"
    hub.delete_experiment(name)
    assert hub.job(jobs[2]).state == "cancelled"
    release.set()
    for job_id in jobs[:2]:
        with pytest.raises(JobFailed):
            hub.wait_job(job_id, timeout=120)


def test_a_version_of_another_incarnation_is_neither_served_nor_promoted(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    hub.train(name, pd.DataFrame({"x": [1.0, 3.0]}))
    mlops = hub.get_plugin("mlops")
    with mlops.run(name) as run_id:  # what a job of a deleted incarnation would have registered
        stale = GateExperiment({"model": {"name": "mean"}}).fit(pd.DataFrame({"x": [100.0]}))
        uri = mlops.log_model(run_id, stale)
        mlops.register_model(name, uri, run_id=run_id, tags={"experimenthub.incarnation": "deleted-one"})
    mlops.set_alias(name, "champion", 2)
    assert hub.predict(name, pd.DataFrame({"x": [2.0]}))["score"].tolist() == [0.0]  # v1, not the stale v2
    with pytest.raises(ConflictError, match="deleted experiment"):
        hub.promote(name, 2)
    with pytest.raises(ConflictError, match="deleted experiment"):
        hub.predict(name, pd.DataFrame({"x": [2.0]}), version=2)


def test_a_spec_with_a_secret_like_key_is_masked_and_stays_readable(open_hub):
    hub = open_hub()
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}, "threshold": {"password": "hunter2"}})
    info = hub.get_experiment(name)  # was a JSONDecodeError: text masking broke the stored spec's JSON
    assert info.spec["threshold"] == {"password": "***"}
    assert "hunter2" not in str(hub.get_plugin("mlops").get_experiment(name)["tags"])


def test_the_in_process_job_table_is_bounded():
    from framework.jobs import LocalExecutor

    executor = LocalExecutor({"echo": lambda value: value}, max_finished=2)
    try:
        ids = [executor.submit_task("echo", {"value": i}) for i in range(6)]
        for job_id in ids:
            with contextlib.suppress(ExperimentNotFound):  # forgotten already: that is the point
                executor.get_result(job_id, timeout=30)
        executor.submit_task("echo", {"value": 6})
        known = [job_id for job_id in ids if _known(executor, job_id)]
        assert len(known) <= 2 and ids[0] not in known
    finally:
        executor.shutdown()


def _known(executor, job_id: str) -> bool:
    try:
        executor.get_status(job_id)
    except ExperimentNotFound:
        return False
    return True


@pytest.mark.slow
@pytest.mark.services
def test_a_job_whose_mlflow_dies_mid_training_reports_the_cause(mlflow_server):
    hub = ExperimentHub.from_hub_config(hub_config(mlflow_server.uri))
    try:
        name = unique("dies")
        spec, started, release = blocking_spec()
        hub.create_experiment(name, "blocking", spec)
        job_id = hub.submit_training(name, pd.DataFrame({"x": [1.0, 2.0]}))
        assert started.wait(60)
        mlflow_server.stop()
        try:
            release.set()
            with pytest.raises(JobFailed) as failed:
                hub.wait_job(job_id, timeout=300)
        finally:
            mlflow_server.start()
        message = str(failed.value)
        assert "unreachable" in message or "unavailable" in message.lower(), message
        assert "could not mark" not in message and "FAILED" not in message, message
        (left,) = hub.store.training_runs(name)
        assert left.status == "RUNNING"  # the store was away when the job ended: nobody could close the run
        hub.train(name, pd.DataFrame({"x": [1.0, 2.0]}))  # the next training closes it first
        runs = {run.run_id: run for run in hub.store.training_runs(name)}
        assert runs[left.run_id].status == "FAILED" and len(runs) == 2  # the plugin sent the end it had missed
    finally:
        hub.shutdown()


ABANDON = """
import sys, time
from tests.test_hub_experiments import ExperimentHub, hub_config
hub = ExperimentHub.from_hub_config(hub_config(sys.argv[1]))
with hub.store.training_run(sys.argv[2]):
    print("started", flush=True)
    time.sleep(600)
"""


def test_a_run_whose_process_was_killed_is_marked_failed_by_the_next_training(open_hub):
    """kill -9 of a training process leaves its run RUNNING; the next training of the experiment on this host
    sees that the run's process has ended and marks the run FAILED, with the reason."""
    import os
    import signal
    import subprocess
    import sys

    hub = open_hub()
    name = unique("abandoned")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    uri = hub.get_plugin("mlops").mlflow_uri
    from pathlib import Path

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    child = subprocess.Popen([sys.executable, "-c", ABANDON, uri, name], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout.readline().strip() == "started"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    (killed,) = hub.store.training_runs(name)
    assert killed.status == "RUNNING"
    hub.train(name, pd.DataFrame({"x": [1.0, 2.0]}))
    runs = {run.run_id: run for run in hub.store.training_runs(name)}
    assert runs[killed.run_id].status == "FAILED"
    assert f"abandoned: its process {child.pid}" in runs[killed.run_id].tags["experimenthub.error"]
    assert [run.status for run in runs.values()].count("FINISHED") == 1


class DownQueue:
    """A taskqueue whose broker refuses every submission."""

    plugin_type = "taskqueue"

    def initialize(self) -> None: ...

    def shutdown(self) -> None: ...

    def health_check(self):
        return False, {"status": "down"}

    def submit_task(self, task_name, kwargs, task_id=None):
        from framework.errors import PluginUnavailable

        raise PluginUnavailable("broker unreachable", plugin_type="taskqueue")


def test_a_failed_submission_leaves_no_dataset_behind(open_hub):
    from framework.errors import PluginUnavailable

    hub = open_hub()
    hub.register_plugin(DownQueue())
    name = unique("gate")
    hub.create_experiment(name, "gate", {"model": {"name": "mean"}})
    for _ in range(3):
        with pytest.raises(PluginUnavailable):
            hub.submit_training(name, pd.DataFrame({"x": [1.0, 2.0]}))
    datasets = hub.store.mlops.search_runs(name, filter_string="tags.`experimenthub.kind` = 'dataset'")
    assert datasets == []


def test_promote_refuses_a_version_that_would_not_be_served(open_hub):
    hub = open_hub()
    name = unique("gate")
    incarnation = hub.create_experiment(name, "gate", {"model": {"name": "mean"}}).incarnation
    hub.train(name, pd.DataFrame({"x": [1.0, 3.0]}))
    client = hub.get_plugin("mlops")._client  # someone with write access to the registry
    client.create_model_version(name, "s3://elsewhere/model", tags={"experimenthub.incarnation": incarnation})
    with pytest.raises(ConflictError, match="refusing to unpickle"):
        hub.promote(name, 2)
    assert hub.get_experiment(name).champion == 1
