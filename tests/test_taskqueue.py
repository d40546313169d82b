"""CeleryPlugin and the worker against real services: RabbitMQ broker, Redis results, MLflow on PostgreSQL.

A session fixture starts ``experimenthub worker --concurrency 2`` on a queue of its own, so workers of other
sessions on the same broker never take these jobs. Tests never assert durations.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from framework.errors import ExperimentNotFound, JobFailed, PluginError, PluginUnavailable
from framework.ExperimentHub import ExperimentHub
from framework.jobs import TRAIN_TASK
from tests.conftest import require_service

EXPERIMENTHUB = Path(sys.executable).with_name("experimenthub")
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
BACKEND = "redis://127.0.0.1:6379/0"
SLOW_MODEL = {"name": "elliptic_envelope"}  # seconds per fit on a few thousand rows: "mid-training" is easy to hit
JOB_TIMEOUT = 240.0

HUB_YAML = """\
version: "1.0"
global: {{log_level: "info"}}
plugins:
  mlops: {{enabled: true, type: "mlflow", config: {{mlflow_uri: "{mlflow_uri}"}}}}
  taskqueue:
    enabled: true
    type: "celery"
    config: {{broker_url: "{broker}", backend_url: "{backend}", app_name: "ehub_test", queue: "{queue}",
             task_time_limit: 600}}
experiments:
  - {{name: "fault_detection", module: "framework.FaultDetection", class: "FaultDetectionExperiment"}}
"""


def wait_for(condition: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


def delete_queue(plugin: Any, queue: str) -> None:
    with plugin.app.connection_for_write() as conn:
        conn.default_channel.queue_delete(queue)


class Worker:
    """``experimenthub worker`` as a subprocess (its own process group), logging to a file."""

    def __init__(self, config: Path, log_file: Path, concurrency: int = 2) -> None:
        self.config, self.log_file, self.concurrency = config, log_file, concurrency
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [str(EXPERIMENTHUB), "worker", "--config", str(self.config), "--concurrency", str(self.concurrency)]
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def children(self) -> set[int]:
        assert self.process is not None
        found = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return {int(pid) for pid in found.stdout.split()}

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def queue_name() -> str:
    return f"ehub-test-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def hub_yaml(mlflow_server, queue_name: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    for service in ("rabbitmq", "redis", "postgresql"):
        require_service(service)
    path = tmp_path_factory.mktemp("taskqueue") / "hub.yaml"
    path.write_text(HUB_YAML.format(mlflow_uri=mlflow_server.uri, broker=BROKER, backend=BACKEND, queue=queue_name))
    return path


@pytest.fixture(scope="session")
def worker(hub_yaml: Path, queue_name: str) -> Iterator[Worker]:
    from framework.plugins.celery_plugin import CeleryPlugin

    probe = CeleryPlugin(BROKER, BACKEND, "ehub_test", queue=queue_name)
    probe.initialize()
    process = Worker(hub_yaml, hub_yaml.with_name("worker.log"))
    process.start()
    try:
        wait_for(lambda: not process.alive() or probe.workers(), 90, "the worker to consume its queue")
        assert process.alive(), f"the worker exited; see {process.log_file}:\n{process.log_file.read_text()[-3000:]}"
        yield process
    finally:
        process.stop()
        delete_queue(probe, queue_name)
        probe.shutdown()


@pytest.fixture
def hub(hub_yaml: Path) -> Iterator[ExperimentHub]:
    with ExperimentHub.from_config(hub_yaml) as built:
        yield built


@pytest.fixture(scope="session")
def small_data():
    from framework.datasets.process import make_process

    return make_process(n_normal=3000, n_test=100, seed=3)[0]


@pytest.fixture(scope="session")
def slow_data():
    from framework.datasets.process import make_process

    return make_process(n_normal=8000, n_test=100, seed=4)[0]


def new_experiment(hub: ExperimentHub, model: dict | None = None) -> str:
    name = f"fd-{uuid.uuid4().hex[:8]}"
    hub.create_experiment(name, "fault_detection", {"model": model or {"name": "pca"}})
    return name


def test_three_parallel_jobs_succeed_and_register_three_versions(worker: Worker, hub: ExperimentHub, small_data):
    name = new_experiment(hub)
    job_ids = [hub.submit_training(name, small_data) for _ in range(3)]
    assert all(hub.job(job_id).state in ("queued", "running", "succeeded") for job_id in job_ids)
    results = [hub.wait_job(job_id, timeout=JOB_TIMEOUT) for job_id in job_ids]
    assert sorted(r["version"] for r in results) == [1, 2, 3]
    assert [r["job_id"] for r in results] == job_ids
    assert sorted(v.version for v in hub.versions(name)) == [1, 2, 3]
    info = hub.job(job_ids[0])
    assert info.state == "succeeded" and info.result["run_id"] == results[0]["run_id"]


def test_bad_jobs_fail_cleanly_and_the_worker_stays_up(worker: Worker, hub: ExperimentHub, small_data):
    queue = hub.get_plugin("taskqueue")
    unknown = queue.submit_task(
        TRAIN_TASK, {"job_id": "j-unknown", "experiment": "no-such-experiment", "dataset_run_id": "0" * 32}
    )
    with pytest.raises(JobFailed, match=r"ExperimentNotFound.*no-such-experiment") as failed:
        hub.wait_job(unknown, timeout=JOB_TIMEOUT)
    assert "Traceback" not in str(failed.value)
    info = hub.job(unknown)
    assert info.state == "failed" and "no-such-experiment" in info.error

    name = new_experiment(hub)
    corrupt = queue.submit_task(TRAIN_TASK, {"job_id": "j-corrupt", "experiment": name, "dataset_run_id": "f" * 32})
    with pytest.raises(JobFailed) as failed:
        hub.wait_job(corrupt, timeout=JOB_TIMEOUT)
    assert "Traceback" not in str(failed.value) and str(failed.value)
    assert hub.job(corrupt).state == "failed"

    wrong_args = queue.submit_task(TRAIN_TASK, {"experiment": name})
    with pytest.raises(JobFailed, match=r"job_id|dataset_run_id"):
        hub.wait_job(wrong_args, timeout=JOB_TIMEOUT)

    assert worker.alive()
    good = hub.submit_training(name, small_data)
    assert hub.wait_job(good, timeout=JOB_TIMEOUT)["version"] == 1
    assert [v.version for v in hub.versions(name)] == [1]


def test_cancel_stops_a_queued_job(worker: Worker, hub: ExperimentHub, small_data, slow_data):
    name = new_experiment(hub, SLOW_MODEL)
    long_jobs = [hub.submit_training(name, slow_data) for _ in range(2)]
    wait_for(lambda: all(hub.job(j).state == "running" for j in long_jobs), 120, "both slots to run long jobs")
    third = hub.submit_training(name, small_data)
    assert hub.job(third).state == "queued"
    assert hub.cancel_job(third) is True
    assert hub.job(third).state == "cancelled"
    for job_id in long_jobs:
        hub.wait_job(job_id, timeout=JOB_TIMEOUT)
    with pytest.raises(JobFailed, match="cancelled"):
        hub.wait_job(third, timeout=JOB_TIMEOUT)
    assert hub.job(third).state == "cancelled"
    assert sorted(v.version for v in hub.versions(name)) == [1, 2]
    assert hub.store.find_job_run(name, third) is None
    assert hub.cancel_job(long_jobs[0]) is False  # it already ended


def test_cancel_of_a_running_job_ends_its_run_killed(worker: Worker, hub: ExperimentHub, slow_data, small_data):
    name = new_experiment(hub, SLOW_MODEL)
    job_id = hub.submit_training(name, slow_data)
    wait_for(lambda: hub.store.find_job_run(name, job_id), 120, "the job's training run to start")
    assert hub.cancel_job(job_id) is True
    wait_for(lambda: hub.job(job_id).state == "cancelled", 60, "the job to be cancelled")
    run = wait_for(lambda: (r := hub.store.find_job_run(name, job_id)) and r.status != "RUNNING" and r, 60,
                   "the run to end")
    assert run.status in ("FAILED", "KILLED")  # ended by the task or by the hub: never left RUNNING
    assert hub.versions(name) == []
    follow_up = hub.submit_training(name, small_data)  # the worker is still up
    assert hub.wait_job(follow_up, timeout=JOB_TIMEOUT)["version"] == 1


@pytest.mark.slow
def test_killed_worker_child_reruns_the_job_once(worker: Worker, hub: ExperimentHub, slow_data):
    name = new_experiment(hub, SLOW_MODEL)
    job_id = hub.submit_training(name, slow_data)

    def training_run():
        run = hub.store.find_job_run(name, job_id)
        return run if run is not None and run.status == "RUNNING" else None

    killed_run = wait_for(training_run, 120, "the job's training run to start")
    pid = hub.get_plugin("taskqueue").app.AsyncResult(job_id).info["pid"]
    assert pid in worker.children()
    os.kill(pid, signal.SIGKILL)

    result = hub.wait_job(job_id, timeout=JOB_TIMEOUT)
    assert result["run_id"] != killed_run.run_id
    assert [v.version for v in hub.versions(name)] == [1]
    assert result["version"] == 1 and hub.job(job_id).state == "succeeded"
    assert worker.alive() and pid not in worker.children()


def test_health_without_and_with_a_worker(worker: Worker, hub: ExperimentHub):
    from framework.plugins.celery_plugin import CeleryPlugin

    lonely_queue = f"ehub-test-empty-{uuid.uuid4().hex[:8]}"
    lonely = CeleryPlugin(BROKER, BACKEND, "ehub_test", queue=lonely_queue)
    lonely.initialize()
    try:
        healthy, details = lonely.health_check()
        assert healthy is False
        assert details["broker_ok"] and details["backend_ok"] and details["workers"] == 0
        assert "worker" in details["reason"]
    finally:
        lonely.shutdown()

    report = hub.check_plugin_health()["taskqueue"]
    assert report["healthy"] is True, report
    assert report["details"]["workers"] >= 1 and report["details"]["queue"] == worker_queue(hub)


def worker_queue(hub: ExperimentHub) -> str:
    return hub.get_plugin("taskqueue").settings.queue


def test_unknown_job_and_timeout(hub_yaml: Path):
    from framework.plugins.celery_plugin import CeleryPlugin

    plugin = CeleryPlugin(BROKER, BACKEND, "ehub_test", queue=f"ehub-test-idle-{uuid.uuid4().hex[:8]}")
    plugin.initialize()
    try:
        with pytest.raises(ExperimentNotFound):
            plugin.get_status(uuid.uuid4().hex)
        job_id = plugin.submit_task(TRAIN_TASK, {"job_id": "x", "experiment": "e", "dataset_run_id": "d"})
        assert plugin.get_status(job_id) == "queued"
        assert plugin.submit_task(TRAIN_TASK, {}, task_id=job_id) == job_id  # a known id is not queued twice
        with pytest.raises(TimeoutError):
            plugin.get_result(job_id, timeout=0.5)
        with pytest.raises(TypeError, match="JSON"):
            plugin.submit_task(TRAIN_TASK, {"data": object()})
        delete_queue(plugin, plugin.settings.queue)
    finally:
        plugin.shutdown()


def test_plugin_contract_and_masked_credentials(hub_yaml: Path, caplog: pytest.LogCaptureFixture):
    from framework.plugins.celery_plugin import CeleryPlugin
    from framework.plugins.testing import check_plugin

    secret_broker = "amqp://guest:guest@127.0.0.1:5672//"
    report = check_plugin(CeleryPlugin(secret_broker, "redis://:n0t-a-pw@127.0.0.1:6379/0", "ehub_test"))
    assert not report.failures

    plugin = CeleryPlugin(secret_broker, BACKEND, "ehub_test", queue=f"ehub-test-mask-{uuid.uuid4().hex[:8]}")
    plugin.initialize()
    try:
        healthy, details = plugin.health_check()
        assert "guest:guest" not in repr(details) and details["broker"] == "amqp://***@127.0.0.1:5672//"
    finally:
        plugin.shutdown()

    dead = CeleryPlugin("amqp://admin:s3cret-pw@127.0.0.1:1//", BACKEND, "ehub_test", connect_timeout=2)
    with pytest.raises(PluginUnavailable) as error:
        dead.initialize()
    assert "s3cret-pw" not in str(error.value) and "broker" in str(error.value)
    healthy, details = dead.health_check()
    assert healthy is False and "s3cret-pw" not in repr(details)

    with pytest.raises(PluginError) as error:
        ExperimentHub().register_plugin(
            CeleryPlugin(BROKER, "redis://:s3cret-pw@127.0.0.1:1/0", "ehub_test", connect_timeout=2)
        )
    assert "s3cret-pw" not in str(error.value) and "result backend" in str(error.value)
    assert "s3cret-pw" not in caplog.text
