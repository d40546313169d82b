"""REST API tests against real uvicorn processes (embedded default: MLflow on SQLite + the local stream).

Two servers per module: ``server`` (``uvicorn --factory``, no auth, every plugin) and ``auth_server``
(``experimenthub serve`` with ``global.api_key`` and no datastream). Plus in-process checks that need a stub hub.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import subprocess
import sys
import time
import uuid
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "test-key-" + uuid.uuid4().hex
STARTUP_TIMEOUT_S = 120.0
JOB_TIMEOUT_S = 180.0
SPEC = {"model": {"name": "pca"}, "timestamp": "timestamp", "label": "fault"}


@dataclass
class Server:
    url: str
    home: Path
    log: Path
    process: subprocess.Popen

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def run_server(args: list[str], workdir: Path, env: dict[str, str] | None = None) -> Iterator[Server]:
    """Start ``python <args> --host 127.0.0.1 --port N`` in ``workdir``; wait for /health; stop it afterwards."""
    port = free_port()
    home = workdir / "home"
    full_env = {k: v for k, v in os.environ.items() if k != "EXPERIMENTHUB_API_KEY"}
    full_env.update({"EXPERIMENTHUB_HOME": str(home), "PYTHONPATH": str(ROOT), **(env or {})})
    log_path = workdir / "server.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [sys.executable, *args, "--host", "127.0.0.1", "--port", str(port)],
            cwd=workdir,
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", home, log_path, process)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                httpx.get(f"{server.url}/health", timeout=5.0)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{log_path.read_text()[-4000:]}")
                time.sleep(0.3)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    log_text = log_path.read_text(errors="replace")
    assert "unhandled error" not in log_text and "Traceback" not in log_text, log_text[-4000:]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("api")
    with run_server(["-m", "uvicorn", "framework.api.app:create_app", "--factory"], workdir) as running:
        yield running


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("api-auth")
    config = workdir / "hub_config.yaml"
    config.write_text(
        f"""
version: "1.0"
global: {{log_level: "info", api_key: "${{TEST_HUB_KEY}}"}}
plugins:
  mlops: {{enabled: true, type: "mlflow", config: {{mlflow_uri: "sqlite:///{workdir / "mlflow.db"}"}}}}
  datastream: {{enabled: false, type: "local"}}
experiments:
  - {{name: "fault_detection", module: "framework.FaultDetection", class: "FaultDetectionExperiment"}}
"""
    )
    args = ["-m", "framework.cli", "serve", "--config", str(config)]
    with run_server(args, workdir, env={"TEST_HUB_KEY": API_KEY}) as running:
        yield running


@pytest.fixture(scope="module")
def process_data() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    from framework.datasets.process import make_process

    train, test = make_process(n_normal=1000, n_test=300, seed=3)
    as_records = lambda frame: json.loads(frame.to_json(orient="records", date_format="iso"))  # noqa: E731
    return as_records(train), as_records(test.head(50))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def assert_error(response: httpx.Response, status: int, code: str, field: str | None = ...) -> dict[str, Any]:  # type: ignore[assignment]
    """The response has ``status`` and the one error shape with ``code`` (and ``field`` when given)."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field"}, body
    assert body["error"]["code"] == code, body
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "Traceback" not in response.text
    if field is not ...:
        assert body["error"]["field"] == field, body
    return body["error"]


def strict_json(response: httpx.Response) -> Any:
    """Parse as strict JSON: NaN or Infinity tokens fail."""

    def refuse(token: str) -> None:
        raise AssertionError(f"non-standard JSON token {token}")

    return json.loads(response.text, parse_constant=refuse)


def wait_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        response = client.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if job["state"] in ("succeeded", "failed", "cancelled"):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {job_id} still {job['state']}")
        time.sleep(0.3)


# -- open endpoints ---------------------------------------------------------------------------------------------
def test_health_reports_every_plugin(server: Server) -> None:
    response = httpx.get(f"{server.url}/health?details=true")  # this server has no API key
    assert response.status_code == 200
    report = response.json()
    assert {"mlops", "datastream"} <= set(report)
    assert all(entry["healthy"] is True and isinstance(entry["details"], dict) for entry in report.values())
    assert httpx.get(f"{server.url}/health").json() == {ptype: {"healthy": True} for ptype in report}


def test_docs_and_openapi(server: Server) -> None:
    with server.client() as client:
        assert "swagger" in client.get("/docs").text.lower()
        spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    assert {
        "/health",
        "/experiment-types",
        "/experiments",
        "/experiments/{name}",
        "/experiments/{name}/train",
        "/jobs/{job_id}",
        "/experiments/{name}/predict",
        "/experiments/{name}/records",
        "/experiments/{name}/versions",
        "/experiments/{name}/versions/{version}/promote",
        "/experiments/{name}/figures/{figure}",
    } <= set(paths)
    train_body = paths["/experiments/{name}/train"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data"} <= set(train_body)
    assert "ErrorBody" in spec["components"]["schemas"]
    assert "securitySchemes" not in spec.get("components", {})  # no key configured: nothing to document


def test_experiment_types(server: Server) -> None:
    with server.client() as client:
        types = client.get("/experiment-types").json()
    assert {t["name"] for t in types} == {"time_series", "fault_detection"}
    assert all({"name", "module", "class"} <= set(t) for t in types)


# -- experiments ------------------------------------------------------------------------------------------------
def test_create_get_list_delete(server: Server) -> None:
    name = unique("crud")
    with server.client() as client:
        created = client.post("/experiments", json={"name": name, "type": "fault_detection", "spec": SPEC})
        assert created.status_code == 201, created.text
        assert created.json()["name"] == name and created.json()["spec"]["model"]["name"] == "pca"
        assert client.get(f"/experiments/{name}").json()["type"] == "fault_detection"
        assert name in {e["name"] for e in client.get("/experiments").json()}
        duplicate = client.post("/experiments", json={"name": name, "type": "fault_detection", "spec": SPEC})
        assert "already exists" in assert_error(duplicate, 409, "conflict")["message"]
        again = client.post("/experiments", json={"name": name, "type": "fault_detection", "exist_ok": True})
        assert again.status_code == 201 and again.json()["name"] == name
        assert client.delete(f"/experiments/{name}").status_code == 204
        assert_error(client.get(f"/experiments/{name}"), 404, "not_found")
        assert_error(client.delete(f"/experiments/{name}"), 404, "not_found")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x"}, "type"),  # missing field
        ({"name": 5, "type": "fault_detection"}, "name"),  # wrong type
        ({"name": "has space", "type": "fault_detection"}, "name"),  # name pattern
        ({"name": "x", "type": "fault_detection", "spec": []}, "spec"),
        ({"name": "x", "type": "fault_detection", "extra": 1}, "extra"),
        ({"name": "x", "type": "no_such_type"}, "type"),  # unknown experiment type
        ({"name": "x", "type": "fault_detection", "spec": {"model": {"name": "no-such-model"}}}, ...),
        ({"name": "x", "type": "fault_detection", "spec": {"unknown_key": 1}}, "unknown_key"),
        ([1, 2], ...),
    ],
)
def test_create_rejects_bad_bodies(server: Server, body: Any, field: Any) -> None:
    with server.client() as client:
        assert_error(client.post("/experiments", json=body), 422, "validation_error", field)


def test_not_json_is_422(server: Server) -> None:
    headers = {"content-type": "application/json"}
    with server.client() as client:
        assert_error(client.post("/experiments", content=b"{not json", headers=headers), 422, "validation_error")
        assert_error(
            client.post("/experiments/x/train", content=b"{not json", headers=headers), 422, "validation_error"
        )
        assert_error(
            client.post("/experiments/x/predict", content=b"\xff\xfe", headers=headers), 422, "validation_error"
        )


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/experiments/x/predict", {"records": []}, "records"),
        ("/experiments/x/predict", {"records": "a,b"}, "records"),
        ("/experiments/x/predict", {"records": [{"a": {"nested": 1}}]}, "records.0.a"),
        ("/experiments/x/predict", {"rows": [{"a": 1}]}, ...),
        ("/experiments/x/predict", {"schema": "other/1", "records": [{"a": 1}]}, "schema"),
        ("/experiments/x/records", {"records": [1, 2]}, "records.0"),
        ("/experiments/x/train", {}, ...),
        ("/experiments/x/train", {"records": [{"a": 1}], "dataset": "a.csv"}, ...),
        ("/experiments/x/train", {"dataset": "../etc/passwd.csv"}, "dataset"),
        ("/experiments/x/train", {"records": [[1, 2]]}, "records.0"),
    ],
)
def test_record_bodies_are_validated(server: Server, path: str, body: Any, field: Any) -> None:
    with server.client() as client:
        assert_error(client.post(path, json=body), 422, "validation_error", field)


def test_too_large_is_413(server: Server) -> None:
    from framework.records import MAX_MESSAGE_BYTES

    big = b'{"records": [' + b'{"a": 1.0},' * (MAX_MESSAGE_BYTES // 11 + 10) + b'{"a": 1.0}]}'
    with server.client() as client:
        declared = client.post("/experiments/x/predict", content=big, headers={"content-type": "application/json"})
        assert_error(declared, 413, "payload_too_large", "body")

        def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced while streaming
            view = memoryview(big)
            for start in range(0, len(big), 1 << 20):
                yield bytes(view[start : start + (1 << 20)])

        streamed = client.post("/experiments/x/predict", content=chunks(), headers={"content-type": "application/json"})
        assert_error(streamed, 413, "payload_too_large", "body")
        upload = client.post(
            "/experiments/x/train",
            files={"file": ("big.csv", io.BytesIO(b"a\n" + b"1\n" * (MAX_MESSAGE_BYTES // 2 + 1)))},
        )
        assert_error(upload, 413, "payload_too_large")


@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "/experiments/nope", {}),
        ("DELETE", "/experiments/nope", {}),
        ("POST", "/experiments/nope/train", {"json": {"records": [{"a": 1}]}}),
        ("POST", "/experiments/nope/train", {"files": {"file": ("a.csv", b"a,b\n1,2\n")}}),
        ("POST", "/experiments/nope/predict", {"json": {"records": [{"a": 1}]}}),
        ("POST", "/experiments/nope/records", {"json": {"records": [{"a": 1}]}}),
        ("GET", "/experiments/nope/versions", {}),
        ("POST", "/experiments/nope/versions/1/promote", {}),
        ("GET", "/experiments/nope/figures/score", {}),
        ("GET", "/jobs/0123456789abcdef", {}),
        ("GET", "/no/such/route", {}),
    ],
)
def test_unknown_names_are_404(server: Server, method: str, path: str, kwargs: dict[str, Any]) -> None:
    with server.client() as client:
        assert_error(client.request(method, path, **kwargs), 404, "not_found")


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/experiments/bad%20name", "name"),
        ("/experiments/-lead", "name"),
        ("/experiments/" + "a" * 65, "name"),
        ("/jobs/bad%20id", "job_id"),
        ("/experiments/x/versions", None),
    ],
)
def test_path_names_are_validated(server: Server, path: str, field: str | None) -> None:
    with server.client() as client:
        response = client.get(path)
    if field is None:
        assert_error(response, 404, "not_found")
    else:
        assert_error(response, 422, "validation_error", field)


def test_bad_query_and_method(server: Server) -> None:
    with server.client() as client:
        assert_error(
            client.get("/experiments/x/figures/score", params={"format": "xml"}), 422, "validation_error", "format"
        )
        assert_error(
            client.get("/experiments/x/figures/score", params={"version": 0}), 422, "validation_error", "version"
        )
        assert_error(client.post("/experiments/x/versions/0/promote"), 422, "validation_error", "version")
        assert_error(client.put("/experiments"), 405, "method_not_allowed")


# -- the whole flow ---------------------------------------------------------------------------------------------
def test_full_flow(server: Server, process_data: tuple[list[dict], list[dict]]) -> None:
    train, test = process_data
    name = unique("pump")
    with server.client() as client:
        created = client.post("/experiments", json={"name": name, "type": "fault_detection", "spec": SPEC})
        assert created.status_code == 201, created.text
        assert_error(client.post(f"/experiments/{name}/predict", json={"records": test}), 404, "not_found")

        accepted = client.post(f"/experiments/{name}/train", json={"records": train})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["job_id"]
        assert accepted.headers["location"] == accepted.json()["status_url"] == f"/jobs/{job_id}"
        job = wait_job(client, job_id)
        assert job["state"] == "succeeded", job
        assert job["result"]["version"] == 1 and job["result"]["experiment"] == name

        predicted = client.post(f"/experiments/{name}/predict", json={"id": "batch-1", "records": test})
        assert predicted.status_code == 200, predicted.text
        body = strict_json(predicted)
        assert body["schema"] == "experimenthub.records/1" and body["input_id"] == "batch-1"
        assert len(body["records"]) == len(test)
        row = body["records"][0]
        assert {"score", "threshold", "is_anomaly"} <= set(row)
        assert row["timestamp"].startswith(test[0]["timestamp"][:19])  # ISO-8601 text, not epoch numbers
        missing = client.post(f"/experiments/{name}/predict", params={"version": 9}, json={"records": test[:3]})
        assert_error(missing, 404, "not_found")
        bad_columns = client.post(f"/experiments/{name}/predict", json={"records": [{"nope": 1.0}]})
        assert_error(bad_columns, 422, "validation_error")

        # a second version from a CSV upload, and a third from a dataset reference
        csv = "\n".join([",".join(train[0]), *(",".join(str(r[c]) for c in train[0]) for r in train)])
        uploaded = client.post(f"/experiments/{name}/train", files={"file": ("train.csv", csv.encode(), "text/csv")})
        assert uploaded.status_code == 202, uploaded.text
        assert wait_job(client, uploaded.json()["job_id"])["state"] == "succeeded"
        (server.home / "datasets").mkdir(parents=True, exist_ok=True)
        (server.home / "datasets" / "pump.csv").write_text(csv)
        referenced = client.post(f"/experiments/{name}/train", json={"dataset": "pump.csv"})
        assert referenced.status_code == 202, referenced.text
        assert wait_job(client, referenced.json()["job_id"])["result"]["version"] == 3
        assert_error(
            client.post(f"/experiments/{name}/train", json={"dataset": "absent.csv"}), 404, "not_found", "dataset"
        )

        retrained = client.post(f"/experiments/{name}/retrain", json={"records": test[:5]})
        assert retrained.status_code == 202, retrained.text
        assert wait_job(client, retrained.json()["job_id"])["state"] == "succeeded"
        assert_error(client.post("/experiments/no-such/retrain"), 404, "not_found")

        versions = client.get(f"/experiments/{name}/versions").json()
        assert [v["version"] for v in versions] == [4, 3, 2, 1]
        promoted = client.post(f"/experiments/{name}/versions/1/promote")
        assert promoted.status_code == 200 and "champion" in promoted.json()["aliases"]
        assert client.get(f"/experiments/{name}").json()["champion"] == 1
        by_alias = client.post(f"/experiments/{name}/predict", params={"alias": "champion"}, json={"records": test[:3]})
        assert by_alias.status_code == 200 and len(by_alias.json()["records"]) == 3
        assert_error(
            client.post(f"/experiments/{name}/predict", params={"alias": "nope"}, json={"records": test[:3]}),
            404,
            "not_found",
        )
        assert_error(client.post(f"/experiments/{name}/versions/99/promote"), 404, "not_found")

        figure = client.get(f"/experiments/{name}/figures/score")
        assert figure.status_code == 200 and "data" in strict_json(figure)
        html = client.get(f"/experiments/{name}/figures/score", params={"format": "html", "version": 2})
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "<html" in html.text and 'src="/ui/static/plotly.min.js"' in html.text
        inline = client.get(f"/experiments/{name}/figures/score", params={"format": "html", "plotlyjs": "inline"})
        assert inline.status_code == 200 and len(inline.text) > len(html.text) + 1_000_000  # plotly.js embedded
        assert_error(client.get(f"/experiments/{name}/figures/nope"), 404, "not_found")

        published = client.post(f"/experiments/{name}/records", json={"records": test[:10]})
        assert published.status_code == 202, published.text
        assert published.json()["queue"] == f"{name}.input" and published.json()["records"] == 10
        assert len(published.json()["message_ids"]) >= 1

        assert client.delete(f"/experiments/{name}").status_code == 204


# -- auth -------------------------------------------------------------------------------------------------------
def test_auth_required_except_health_and_docs(auth_server: Server) -> None:
    good = {"Authorization": f"Bearer {API_KEY}"}
    with auth_server.client() as client:
        assert client.get("/health").status_code == 200
        assert client.get("/docs").status_code == 200
        spec = client.get("/openapi.json").json()
        assert "HTTPBearer" in spec["components"]["securitySchemes"]
        for headers in (
            {},
            {"Authorization": "Bearer wrong"},
            {"Authorization": API_KEY},
            {"Authorization": f"Basic {API_KEY}"},
        ):
            response = client.get("/experiment-types", headers=headers)
            assert_error(response, 401, "unauthorized")
            assert response.headers["www-authenticate"] == "Bearer"
            assert API_KEY not in response.text
        # auth is checked before the body is read or the route is matched
        assert_error(client.post("/experiments", content=b"{not json"), 401, "unauthorized")
        assert_error(client.get("/no/such/route"), 401, "unauthorized")
        response = client.get("/experiment-types", headers=good)
        assert response.status_code == 200 and [t["name"] for t in response.json()] == ["fault_detection"]
        assert client.get("/experiment-types", headers={"Authorization": f"bearer {API_KEY}"}).status_code == 200
        # a key sent in the query string is refused, and the access log masks it
        assert_error(client.get(f"/experiment-types?api_key={API_KEY}&page=2"), 401, "unauthorized")
    log = auth_server.log.read_text()
    assert API_KEY not in log
    assert "/experiment-types?api_key=***&page=2" in log


def test_records_without_datastream_is_503(auth_server: Server) -> None:
    name = unique("nostream")
    with auth_server.client(headers={"Authorization": f"Bearer {API_KEY}"}) as client:
        assert client.post("/experiments", json={"name": name, "type": "fault_detection"}).status_code == 201
        response = client.post(f"/experiments/{name}/records", json={"records": [{"a": 1.0}]})
        assert "datastream" in assert_error(response, 503, "unavailable")["message"]


# -- in-process: env-var key, 500s --------------------------------------------------------------------------------
def _call(app: Any, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.request(method, path, **kwargs)

    return asyncio.run(go())


def test_api_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from framework.api import create_app
    from framework.config import HubConfig
    from framework.ExperimentHub import ExperimentHub

    monkeypatch.setenv("EXPERIMENTHUB_API_KEY", "env-key")
    app = create_app(ExperimentHub(HubConfig(version="1.0")))
    assert_error(_call(app, "GET", "/experiment-types"), 401, "unauthorized")
    assert _call(app, "GET", "/experiment-types", headers={"Authorization": "Bearer env-key"}).json() == []
    health = _call(app, "GET", "/health")
    assert health.status_code == 503 and health.json() == {}  # no plugins: not healthy, same shape
    monkeypatch.delenv("EXPERIMENTHUB_API_KEY")
    assert _call(create_app(ExperimentHub(HubConfig(version="1.0"))), "GET", "/experiment-types").status_code == 200


class _DetailedPlugin:
    plugin_type = "datastream"

    def initialize(self) -> None: ...
    def shutdown(self) -> None: ...
    def health_check(self) -> tuple[bool, dict]:
        return True, {"broker": "amqp://broker.plant:5672//", "queues": {"pump.input": 3}, "server_version": "3.13"}


def test_health_details_need_the_key() -> None:
    from framework.api import create_app
    from framework.ExperimentHub import ExperimentHub

    hub = ExperimentHub()
    hub.register_plugin(_DetailedPlugin())
    keyed = create_app(hub, api_key="k-123")
    anonymous = _call(keyed, "GET", "/health")
    assert anonymous.status_code == 200 and anonymous.json() == {"datastream": {"healthy": True}}
    assert "broker.plant" not in anonymous.text
    assert_error(_call(keyed, "GET", "/health?details=true"), 401, "unauthorized")
    assert_error(
        _call(keyed, "GET", "/health?details=true", headers={"Authorization": "Bearer no"}), 401, "unauthorized"
    )
    for path in ("/health", "/health?details=true"):
        full = _call(keyed, "GET", path, headers={"Authorization": "Bearer k-123"}).json()
        assert full["datastream"]["details"]["queues"] == {"pump.input": 3}
    open_app = create_app(hub, api_key="")
    assert _call(open_app, "GET", "/health").json() == {"datastream": {"healthy": True}}
    assert _call(open_app, "GET", "/health?details=true").json()["datastream"]["details"]["server_version"] == "3.13"


class _SlowPlugin(_DetailedPlugin):
    def health_check(self) -> tuple[bool, dict]:
        time.sleep(2.0)
        return True, {}


def _limited_app(plugin: Any = None, **api: Any) -> Any:
    from framework.api import create_app
    from framework.config import HubConfig
    from framework.ExperimentHub import ExperimentHub

    hub = ExperimentHub(HubConfig.model_validate({"version": "1.0", "global": {"api": api}}))
    if plugin is not None:
        hub.register_plugin(plugin)
    return create_app(hub, api_key="")


def test_request_timeout_answers_503() -> None:
    response = _call(_limited_app(_SlowPlugin(), request_timeout=0.2), "GET", "/health")
    assert "longer than 0.2 s" in assert_error(response, 503, "timeout")["message"]
    assert _call(_limited_app(_DetailedPlugin(), request_timeout=5), "GET", "/health").status_code == 200


def test_body_limit_is_configurable() -> None:
    app = _limited_app(max_body_bytes=64)
    response = _call(app, "POST", "/experiments", json={"name": "x" * 100, "type": "fault_detection"})
    assert "limit of 64 bytes" in assert_error(response, 413, "payload_too_large")["message"]


def test_cors_is_off_by_default_and_allows_only_listed_origins() -> None:
    preflight = {"Origin": "https://ui.plant", "Access-Control-Request-Method": "GET"}
    default = _call(_limited_app(), "OPTIONS", "/experiment-types", headers=preflight)
    assert "access-control-allow-origin" not in default.headers
    app = _limited_app(cors_origins=["https://ui.plant"])
    allowed = _call(app, "OPTIONS", "/experiment-types", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == "https://ui.plant"
    other = _call(app, "GET", "/experiment-types", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_unexpected_errors_are_generic_500_and_redacted(caplog: pytest.LogCaptureFixture) -> None:
    from framework.api import create_app
    from framework.config import HubConfig
    from framework.ExperimentHub import ExperimentHub

    hub = ExperimentHub(HubConfig(version="1.0"))

    def broken() -> list:
        raise RuntimeError("cannot reach postgresql://admin:hunter2@db/x password=hunter2")

    hub.experiments = broken  # type: ignore[method-assign]
    app = create_app(hub)
    with caplog.at_level(logging.ERROR, logger="framework.api"):
        response = _call(app, "GET", "/experiments")
    error = assert_error(response, 500, "internal_error", None)
    assert "hunter2" not in response.text and "RuntimeError" not in error["message"]
    assert "RuntimeError" in caplog.text and "hunter2" not in caplog.text
    no_mlops = _call(create_app(ExperimentHub(HubConfig(version="1.0"))), "GET", "/experiments")
    assert_error(no_mlops, 503, "unavailable")


# -- schemathesis -----------------------------------------------------------------------------------------------
# The schema comes from an in-process app (same code, no key) rather than `schemathesis.pytest.from_fixture`, whose
# lazy loader reads `Function._nodeid`, which pytest 9 removed. test_served_spec_matches proves the two agree.
schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402


def _local_spec() -> dict[str, Any]:
    from framework.api import create_app
    from framework.config import HubConfig
    from framework.ExperimentHub import ExperimentHub

    return create_app(ExperimentHub(HubConfig(version="1.0")), api_key="").openapi()


LOCAL_SPEC = _local_spec()
schema = schemathesis.openapi.from_dict(LOCAL_SPEC)


def test_served_spec_matches(server: Server) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == LOCAL_SPEC


@pytest.fixture(scope="module")
def fuzz_target(server: Server, process_data: tuple[list[dict], list[dict]]) -> str:
    """A trained experiment, so generated requests also reach a real model, not only 404s."""
    name = unique("fuzz")
    with server.client() as client:
        assert client.post("/experiments", json={"name": name, "type": "fault_detection", "spec": SPEC}).is_success
        job = client.post(f"/experiments/{name}/train", json={"records": process_data[0]}).json()
        assert wait_job(client, job["job_id"])["state"] == "succeeded"
    return name


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_schemathesis_no_server_errors(case: Any, server: Server, fuzz_target: str) -> None:
    """Generated valid and invalid requests for every operation: never a 5xx, always the one error shape."""
    from schemathesis.checks import not_a_server_error

    params = case.path_parameters or {}
    if "name" in params and case.method.upper() != "DELETE" and zlib.crc32(repr(case.body).encode()) % 2:
        params["name"] = fuzz_target  # half of the cases aim at the trained experiment
    response = case.call(base_url=server.url, timeout=60)
    case.validate_response(response, checks=[not_a_server_error])
    if response.status_code >= 400 and case.path != "/health":
        body = response.json()
        assert set(body) == {"error"} and {"code", "message", "field"} == set(body["error"])


def test_deep_bodies_and_version_with_alias_are_422_not_500(server):
    name = unique("defects")
    with server.client() as client:
        assert client.post("/experiments", json={"name": name, "type": "fault_detection", "spec": SPEC}).is_success
        deep = '{"records": ' + "[" * 100_000 + "]" * 100_000 + "}"
        headers = {"content-type": "application/json"}
        assert_error(client.post(f"/experiments/{name}/train", content=deep, headers=headers), 422, "validation_error")
        huge = f'{{"records": [{{"s01": 1, "s02": {10**400}}}, {{"s01": 2, "s02": 3}}]}}'
        assert_error(client.post(f"/experiments/{name}/train", content=huge, headers=headers), 422, "validation_error")
        repeated = '{"records": [{"s01": 1, "s02": 2, "s01": 3}]}'  # a JSON parser keeps the last s01 silently
        for route in ("train", "predict"):
            response = client.post(f"/experiments/{name}/{route}", content=repeated, headers=headers)
            assert_error(response, 422, "validation_error", "s01")
        both = client.post(f"/experiments/{name}/predict?version=1&alias=champion", json={"records": [{"s01": 1}]})
        assert_error(both, 422, "validation_error", "alias")


def test_a_slow_request_head_is_dropped_and_others_are_served(tmp_path: Path) -> None:
    """Slowloris: a client trickling its headers a byte at a time is disconnected after ``header_timeout``; a
    normal request, and a second request on a kept-alive connection, are served meanwhile."""
    config = tmp_path / "hub_config.yaml"
    config.write_text(
        f"""
version: "1.0"
global: {{api: {{header_timeout: 1.5}}}}
plugins:
  mlops: {{type: "mlflow", config: {{mlflow_uri: "sqlite:///{tmp_path / "mlflow.db"}"}}}}
  datastream: {{enabled: false, type: "local"}}
experiments:
  - {{name: "fault_detection", module: "framework.FaultDetection", class: "FaultDetectionExperiment"}}
"""
    )
    with run_server(["-m", "framework.cli", "serve", "--config", str(config)], tmp_path) as server:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as slow:
            slow.sendall(b"GET /experiment-types HTTP/1.1\r\nHost: x\r\n")
            started, closed = time.monotonic(), False
            while time.monotonic() - started < 8:
                try:
                    slow.sendall(b"X")  # one byte of a header every 0.2 s: never a complete head
                    if not slow.recv(1, socket.MSG_DONTWAIT):
                        closed = True
                        break
                except BlockingIOError:
                    pass
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                with server.client() as client:  # the server goes on serving others
                    assert client.get("/experiment-types").status_code == 200
                time.sleep(0.2)
            assert closed, "the server kept a connection whose request head never completed"
        with server.client() as client:  # keep-alive: each request on the connection gets its own deadline
            assert client.get("/experiment-types").status_code == 200
            time.sleep(2)
            assert client.get("/experiment-types").status_code == 200
        assert "no complete request head within" in server.log.read_text()
