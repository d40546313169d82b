"""Chaos and resource-bomb tests against a real API server process (issue 19): slow, run by CI."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.test_api import Server, run_server, wait_job
from tests.test_records_files import parquet_bomb

pytestmark = pytest.mark.slow


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("reliability-api")
    with run_server(["-m", "uvicorn", "framework.api.app:create_app", "--factory"], workdir) as running:
        yield running


def test_a_parquet_bomb_is_refused_without_expanding(api, tmp_path):
    bomb = tmp_path / "bomb.parquet"
    parquet_bomb(bomb, rows=100_000_000)  # 100M zeros: 800 MB in memory
    assert bomb.stat().st_size < 2 * 1024 * 1024
    name = f"bomb-{uuid.uuid4().hex[:8]}"
    with api.client() as client:
        created = client.post(
            "/experiments", json={"name": name, "type": "fault_detection", "spec": {"model": {"name": "pca"}}}
        )
        assert created.status_code == 201, created.text
        before = peak_rss_mb(api.process.pid)
        answer = client.post(
            f"/experiments/{name}/train",
            files={"file": ("bomb.parquet", bomb.read_bytes(), "application/octet-stream")},
        )
        grown = peak_rss_mb(api.process.pid) - before
    print(f"figures: parquet bomb {bomb.stat().st_size} bytes -> {answer.status_code}, peak RSS +{grown:.0f} MB")
    assert answer.status_code in (413, 422), answer.text
    assert "over the limit" in answer.json()["error"]["message"]
    assert grown < 200, f"the server's peak RSS grew by {grown:.0f} MB"


# -- hung services (issue 19, item 6) -------------------------------------------------------------------------------
class StallingProxy:
    """A TCP proxy to ``127.0.0.1:target``. After ``stall()`` it still accepts connections and reads requests, but
    forwards nothing and answers nothing (old connections too), like a hung server; ``resume()`` lets traffic on."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.flowing = threading.Event()
        self.flowing.set()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        self.flowing.clear()

    def resume(self) -> None:
        self.flowing.set()

    def close(self) -> None:
        self.closed.set()
        self.flowing.set()
        for sock in [self.listener, *self.sockets]:
            sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                return
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                self.flowing.wait()  # stalled: hold the bytes, answer nothing
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


def timed_post(server: Server, path: str, body: dict) -> tuple[int, float]:
    """POST ``body`` to ``path`` on a client of its own; the status and the seconds until the answer."""
    with httpx.Client(base_url=server.url, timeout=120) as own:  # building a client costs CPU: not timed
        start = time.monotonic()
        answer = own.post(path, json=body)
    return answer.status_code, time.monotonic() - start


@pytest.fixture
def stalling_api(mlflow_server, tmp_path) -> Iterator[tuple[Server, StallingProxy]]:
    proxy = StallingProxy(mlflow_server.port)
    config = tmp_path / "hub_config.yaml"
    config.write_text(
        f"""
version: "1.0"
plugins:
  mlops: {{enabled: true, type: "mlflow", config: {{mlflow_uri: "http://127.0.0.1:{proxy.port}"}}}}
  datastream: {{enabled: false, type: "local"}}
experiments:
  - {{name: "fault_detection", module: "framework.FaultDetection", class: "FaultDetectionExperiment"}}
"""
    )
    try:
        with run_server(["-m", "framework.cli", "serve", "--config", str(config)], tmp_path) as server:
            yield server, proxy
            proxy.resume()  # let the held calls end so the server can shut down
    finally:
        proxy.close()


@pytest.mark.services
def test_a_hung_mlflow_costs_seconds_and_never_blocks_io_free_routes(stalling_api):
    from framework.datasets.process import make_process

    server, proxy = stalling_api
    train, test = make_process(n_normal=600, n_test=100, seed=5)
    records = json.loads(train.to_json(orient="records", date_format="iso"))
    live = json.loads(test.head(5).to_json(orient="records", date_format="iso"))
    name = f"hung-{uuid.uuid4().hex[:8]}"
    spec = {"model": {"name": "pca"}, "timestamp": "timestamp", "label": "fault"}
    with server.client() as client:
        assert client.post("/experiments", json={"name": name, "type": "fault_detection", "spec": spec}).is_success
        job = client.post(f"/experiments/{name}/train", json={"records": records})
        assert wait_job(client, job.json()["job_id"])["state"] == "succeeded"
        assert client.post(f"/experiments/{name}/predict", json={"records": live}).status_code == 200

        proxy.stall()
        cached = client.post(f"/experiments/{name}/predict", json={"records": live})
        assert cached.status_code == 200, f"a cached champion needs no store call within the TTL: {cached.text}"
        time.sleep(6)  # past the TTL: the next predicts must ask the hung store

        with concurrent.futures.ThreadPoolExecutor(50) as pool:
            path, body = f"/experiments/{name}/predict", {"records": live}
            in_flight = [pool.submit(timed_post, server, path, body) for _ in range(50)]
            time.sleep(2)
            io_free = []
            for _ in range(5):
                start = time.monotonic()
                assert client.get("/experiment-types").status_code == 200
                io_free.append(time.monotonic() - start)
            start = time.monotonic()
            health = client.get("/health")
            health_s = time.monotonic() - start
            results = [future.result() for future in in_flight]
    print(
        f"figures: 50 predicts on a hung store -> {sorted({s for s, _ in results})}, slowest "
        f"{max(e for _, e in results):.1f} s; /experiment-types max {max(io_free):.3f} s; /health {health_s:.1f} s"
    )
    statuses = {status for status, _ in results}
    slowest = max(elapsed for _, elapsed in results)
    assert statuses == {503}, statuses
    assert slowest < 15, f"the slowest predict took {slowest:.1f} s to answer 503"
    assert max(io_free) < 1, f"/experiment-types took {max(io_free):.2f} s with 50 hung predicts in flight"
    assert health.status_code == 503 and health_s < 10, (health.status_code, health_s)


@pytest.mark.services
def test_a_hung_broker_costs_seconds_on_post_records(tmp_path):
    """RabbitMQ accepting connections and never answering: POST /records answers 503 within 15 s, and the routes
    without I/O stay quick while such publishes hang."""
    from tests.conftest import require_service

    require_service("rabbitmq")
    proxy = StallingProxy(5672)
    config = tmp_path / "hub_config.yaml"
    config.write_text(
        f"""
version: "1.0"
plugins:
  mlops: {{type: "mlflow", config: {{mlflow_uri: "sqlite:///{tmp_path / "mlflow.db"}"}}}}
  datastream: {{type: "rabbitmq", config: {{host: "127.0.0.1", port: {proxy.port}}}}}
experiments:
  - {{name: "fault_detection", module: "framework.FaultDetection", class: "FaultDetectionExperiment"}}
"""
    )
    name = f"hung-broker-{uuid.uuid4().hex[:8]}"
    records = [{"timestamp": "2026-01-01T00:00:00Z", "s01": 1.0}]
    try:
        serve = ["-m", "framework.cli", "serve", "--config", str(config)]
        with run_server(serve, tmp_path) as server, server.client() as client:
            spec = {"model": {"name": "pca"}, "timestamp": "timestamp"}
            assert client.post("/experiments", json={"name": name, "type": "fault_detection", "spec": spec})
            assert client.post(f"/experiments/{name}/records", json={"records": records}).status_code == 202
            proxy.stall()

            with concurrent.futures.ThreadPoolExecutor(10) as pool:
                path, body = f"/experiments/{name}/records", {"records": records}
                in_flight = [pool.submit(timed_post, server, path, body) for _ in range(10)]
                time.sleep(2)
                start = time.monotonic()
                assert client.get("/experiment-types").status_code == 200
                io_free = time.monotonic() - start
                results = [future.result() for future in in_flight]
            proxy.resume()
            client.delete(f"/experiments/{name}", params={"purge_queues": "true"})
    finally:
        proxy.close()
    slowest = max(elapsed for _, elapsed in results)
    print(
        f"figures: 10 publishes on a hung broker -> {sorted({s for s, _ in results})}, slowest {slowest:.1f} s; "
        f"/experiment-types {io_free:.3f} s"
    )
    assert {status for status, _ in results} == {503}
    assert slowest < 15 and io_free < 1


@pytest.mark.parametrize("transport", ["rabbitmq", "local"])
def test_scorers_killed_again_and_again_lose_nothing(tmp_path, transport):
    """kill -9 of the scorer three times while it works through 200 messages (a restart after each): every input
    gets its prediction, and the duplicates (a batch scored but not acked when it died) are counted."""
    import os
    import signal

    from framework.config import HubConfig
    from framework.datasets.process import make_process
    from framework.ExperimentHub import ExperimentHub
    from framework.streaming import prediction_queue
    from tests.test_streaming import config_dict, start_scorer

    if transport == "rabbitmq":
        from tests.conftest import require_service

        require_service("rabbitmq")
    home = tmp_path / "home"
    config = tmp_path / "hub.json"
    config.write_text(json.dumps(config_dict(home, transport)))
    hub = ExperimentHub.from_hub_config(HubConfig.model_validate(config_dict(home, transport)))
    name = f"chaos-{uuid.uuid4().hex[:8]}"
    normal, test = make_process(n_normal=1500, n_test=1000, seed=8)
    try:
        hub.create_experiment(name, "fault_detection", {"model": {"name": "pca"}, "timestamp": "timestamp"})
        hub.train(name, normal)
        ids = hub.publish_records(name, test.drop(columns=["fault", "fault_type", "fault_sensor"]), batch_size=5)
        stream = hub.get_plugin("datastream")
        stream.create_queue(prediction_queue(name))
        received: list[str] = []

        def take(until: int, timeout: float) -> None:
            deadline = time.monotonic() + timeout
            while len(set(received)) < until and time.monotonic() < deadline:
                batch = stream.pull_data(prediction_queue(name), max_messages=200, timeout=0.5)
                received.extend(json.loads(d.body)["input_id"] for d in batch)
                stream.ack(batch)

        kills = 0
        for target in (30, 80, 130):
            scorer = start_scorer(config, name)
            take(target, timeout=120)
            os.kill(scorer.pid, signal.SIGKILL)
            scorer.wait(timeout=30)
            kills += 1
        scorer = start_scorer(config, name)
        take(len(ids), timeout=240)
        scorer.send_signal(signal.SIGTERM)
        assert scorer.wait(timeout=60) == 0
        time.sleep(1)
        take(len(ids) + 1, timeout=2)  # anything published just before the stop
        lost = set(ids) - set(received)
        duplicated = len(received) - len(set(received))
        print(f"figures: {transport}: {len(ids)} messages, {kills} kill -9, lost {len(lost)}, duplicated {duplicated}")
        assert not lost
        assert set(received) <= set(ids)
    finally:
        hub.delete_experiment(name, purge_queues=True)
        hub.shutdown()
