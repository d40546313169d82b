"""Training jobs: Celery (2 worker processes) vs the same jobs in-process, sequentially, in the same run.

Both paths do the same work per job through the hub: ``submit_training`` (the dataset is stored as a run) and
``run_job`` (the dataset is loaded, a PCA fault detector is fitted, one run and one model version are logged):

* ``celery``: a hub with the ``CeleryPlugin`` submits ``--jobs`` jobs at once to ``experimenthub worker
  --concurrency 2`` (started here, warmed up first) and waits for all of them;
* ``in-process`` (the reference): a hub without a task queue submits and waits for each job in turn.

Figures: with 2 workers the ideal Celery wall time is half the sequential in-process time, so the per-job
overhead is ``(celery_wall - inprocess_wall / 2) / jobs``; the throughput ratio is ``inprocess_wall /
celery_wall`` (2.0 would be perfect scaling). Both share this machine's cores with the broker, Redis and the
tracking server, so the overhead includes that contention. Target: under 5 % of a 10 s training job.

The script starts its own MLflow server on a free port (PostgreSQL in a throwaway database when it listens on
127.0.0.1:5432, else SQLite) unless ``--mlflow-uri`` is given. RabbitMQ and Redis must run on localhost.

    .venv/bin/python bench/jobs.py [--jobs 50] [--rows 2000] [--mlflow-uri http://127.0.0.1:5000]

Ends with ``RESULT jobs overhead_s_per_job=<x> overhead_pct_of_10s=<y> throughput_ratio=<z>``.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from framework.config import HubConfig, parse_yaml_model
from framework.datasets.process import make_process
from framework.devservices import port_open, throwaway_mlflow_server
from framework.ExperimentHub import ExperimentHub

BIN = Path(sys.executable).parent
BROKER = "amqp://guest:guest@127.0.0.1:5672//"
BACKEND = "redis://127.0.0.1:6379/0"
HUB_YAML = """\
version: "1.0"
plugins:
  mlops: {{enabled: true, type: "mlflow", config: {{mlflow_uri: "{mlflow_uri}"}}}}
  taskqueue: {{enabled: {celery}, type: "celery",
              config: {{broker_url: "{broker}", backend_url: "{backend}", app_name: "ehub_bench", queue: "{queue}"}}}}
experiments:
  - {{name: "fault_detection", module: "framework.FaultDetection", class: "FaultDetectionExperiment"}}
"""


def stop(process: subprocess.Popen[bytes], grace: float = 20.0) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@contextmanager
def mlflow_server(root: Path) -> Iterator[str]:
    """An ``mlflow server`` on a free port; PostgreSQL backend when available, else SQLite. Yields its URI."""
    with throwaway_mlflow_server(root / "mlflow", timeout=90) as server:
        print(f"mlflow server {server.uri} on {server.backend_uri.split(':')[0]}")
        yield server.uri


def wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise SystemExit(f"timed out waiting for {what}")


def hub_from(text: str) -> ExperimentHub:
    return ExperimentHub.from_hub_config(parse_yaml_model(HubConfig, text))


def run_jobs(hub: ExperimentHub, name: str, data, jobs: int, *, sequential: bool) -> float:
    """Submit ``jobs`` trainings and wait for them all; return the wall time in seconds."""
    start = time.perf_counter()
    if sequential:
        for _ in range(jobs):
            hub.wait_job(hub.submit_training(name, data), timeout=600)
    else:
        job_ids = [hub.submit_training(name, data) for _ in range(jobs)]
        for job_id in job_ids:
            hub.wait_job(job_id, timeout=600)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=2000, help="training rows per job")
    parser.add_argument("--warmup", type=int, default=2, help="untimed jobs per path first")
    parser.add_argument("--mlflow-uri", help="use this tracking server instead of starting one")
    args = parser.parse_args()
    for service, port in (("RabbitMQ", 5672), ("Redis", 6379)):
        if not port_open(port):
            raise SystemExit(f"{service} is not listening on 127.0.0.1:{port}")

    data = make_process(n_normal=args.rows, n_test=10, seed=0)[0]
    with tempfile.TemporaryDirectory(prefix="ehub-bench-jobs-") as tmp:
        root = Path(tmp)
        server = mlflow_server(root) if args.mlflow_uri is None else _given(args.mlflow_uri)
        with server as mlflow_uri:
            queue = f"ehub-bench-{uuid.uuid4().hex[:8]}"
            fields = {"mlflow_uri": mlflow_uri, "broker": BROKER, "backend": BACKEND, "queue": queue}
            celery_yaml = HUB_YAML.format(celery="true", **fields)
            (root / "hub.yaml").write_text(celery_yaml)
            local = hub_from(HUB_YAML.format(celery="false", **fields))
            remote = hub_from(celery_yaml)
            with (root / "worker.log").open("ab") as log:
                command = [str(BIN / "experimenthub"), "worker", "--config", str(root / "hub.yaml"), "-n", "2"]
                worker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            plugin = remote.get_plugin("taskqueue")
            try:
                wait(lambda: worker.poll() is not None or plugin.workers(), 90, "the worker")
                if worker.poll() is not None:
                    raise SystemExit(f"the worker exited; see {root / 'worker.log'}")
                names = {}
                for label, hub in (("in-process", local), ("celery", remote)):
                    names[label] = f"bench-jobs-{label}-{uuid.uuid4().hex[:6]}"
                    hub.create_experiment(names[label], "fault_detection", {"model": {"name": "pca"}})
                    run_jobs(hub, names[label], data, max(args.warmup, 2), sequential=label == "in-process")
                inprocess = run_jobs(local, names["in-process"], data, args.jobs, sequential=True)
                celery = run_jobs(remote, names["celery"], data, args.jobs, sequential=False)
            finally:
                stop(worker)
                try:
                    with plugin.app.connection_for_write() as conn:
                        conn.default_channel.queue_delete(queue)
                except OSError as exc:  # kombu's OperationalError is an OSError
                    print(f"could not delete queue {queue}: {exc}")
                local.shutdown()
                remote.shutdown()

    per_job_inprocess = inprocess / args.jobs
    per_job_celery = celery / args.jobs
    overhead = (celery - inprocess / 2) / args.jobs
    ratio = inprocess / celery
    print(f"jobs: {args.jobs} x PCA on {args.rows} rows; 2 worker processes")
    print(f"in-process, sequential: {inprocess:8.2f} s wall, {per_job_inprocess:.3f} s/job")
    print(
        f"celery, 2 workers:      {celery:8.2f} s wall, {per_job_celery:.3f} s/job (ideal {per_job_inprocess / 2:.3f})"
    )
    print(f"overhead per job: {overhead:.3f} s = {overhead / 10 * 100:.2f} % of a 10 s training job (target < 5 %)")
    print(f"throughput ratio celery/in-process: {ratio:.2f} (2.0 = perfect scaling on 2 workers)")
    print(
        f"RESULT jobs overhead_s_per_job={overhead:.3f} overhead_pct_of_10s={overhead / 10 * 100:.2f} "
        f"throughput_ratio={ratio:.2f}"
    )


@contextmanager
def _given(uri: str) -> Iterator[str]:
    yield uri


if __name__ == "__main__":
    main()
