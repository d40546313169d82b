"""The broker clients over real TLS: Debian's stunnel terminates amqps in front of the local RabbitMQ, with a CA
this test makes. Records stream through it (RabbitMQPlugin), a Celery job runs through it (client and worker), and
a client that trusts another CA is refused at once with an error naming the TLS problem.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from framework.errors import PluginError, PluginUnavailable
from tests.conftest import require_service
from tests.fixtures_mlflow import free_port

pytestmark = pytest.mark.services

STUNNEL = shutil.which("stunnel4") or shutil.which("stunnel")
BACKEND = "redis://127.0.0.1:6379/0"


@dataclass
class CA:
    cert: Path
    key: object


def _name(common: str):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def make_ca(folder: Path, common: str) -> CA:
    """A throwaway self-signed CA (its certificate as PEM in ``folder``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .sign(key, hashes.SHA256())
    )
    path = folder / f"{common}.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return CA(path, key)


def issue(ca: CA, folder: Path, common: str) -> Path:
    """A server certificate for localhost/127.0.0.1 signed by ``ca``: one PEM file with the key and the chain."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    ca_cert = x509.load_pem_x509_certificate(ca.cert.read_bytes())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    path = folder / f"{common}.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        + cert.public_bytes(serialization.Encoding.PEM)
        + ca.cert.read_bytes()
    )
    return path


@dataclass
class Terminator:
    port: int
    ca_file: Path
    wrong_ca_file: Path


@dataclass
class Certificates:
    ca_file: Path
    wrong_ca_file: Path
    server_pem: Path


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    folder = tmp_path_factory.mktemp("tls")
    ca = make_ca(folder, "ehub-test-ca")
    wrong = make_ca(folder, "ehub-other-ca")
    return Certificates(ca.cert, wrong.cert, issue(ca, folder, "ehub-server"))


@contextmanager
def terminator(certs: Certificates, target_port: int, folder: Path) -> Iterator[Terminator]:
    """stunnel on a free port: TLS outside, plain TCP to 127.0.0.1:``target_port`` inside."""
    if STUNNEL is None:
        pytest.fail("stunnel4 is not installed (apt-get install stunnel4; .ci/run installs it)")
    port = free_port()
    conf, log = folder / f"stunnel-{port}.conf", folder / f"stunnel-{port}.log"
    conf.write_text(
        f"foreground = yes\npid =\noutput = {log}\n"
        f"[tls]\naccept = 127.0.0.1:{port}\nconnect = 127.0.0.1:{target_port}\ncert = {certs.server_pem}\n"
    )
    process = subprocess.Popen([STUNNEL, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not _listening(port):
            if process.poll() is not None or time.monotonic() > deadline:
                text = log.read_text() if log.exists() else ""
                pytest.fail(f"stunnel did not start (exit {process.poll()}):\n{text[-2000:]}")
            time.sleep(0.1)
        yield Terminator(port, certs.ca_file, certs.wrong_ca_file)
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def amqps(certificates: Certificates, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Terminator]:
    """TLS in front of RabbitMQ's plain 5672."""
    require_service("rabbitmq")
    with terminator(certificates, 5672, tmp_path_factory.mktemp("amqps")) as running:
        yield running


@pytest.fixture(scope="module")
def https_mlflow(certificates: Certificates, mlflow_server, tmp_path_factory) -> Iterator[Terminator]:
    """TLS in front of the session's MLflow tracking server."""
    with terminator(certificates, mlflow_server.port, tmp_path_factory.mktemp("https")) as running:
        yield running


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_records_stream_through_tls(amqps: Terminator) -> None:
    from framework.plugins.datastream import OutgoingMessage
    from framework.plugins.rabbitmq_plugin import RabbitMQPlugin

    plugin = RabbitMQPlugin(host="localhost", port=amqps.port, ssl={"ca_file": str(amqps.ca_file)})
    queue = f"ehub-tls-{uuid.uuid4().hex[:10]}"
    plugin.initialize()
    try:
        plugin.create_queue(queue, dead_letter=False)
        sent = [OutgoingMessage(f'{{"i": {i}}}'.encode(), message_id=str(i)) for i in range(50)]
        plugin.publish(queue, sent)
        received = []
        deadline = time.monotonic() + 30
        while len(received) < len(sent) and time.monotonic() < deadline:
            batch = plugin.pull_data(queue, max_messages=100, timeout=1.0)
            plugin.ack(batch)
            received.extend(batch)
        assert sorted(d.body for d in received) == sorted(m.body for m in sent)
        healthy, details = plugin.health_check()
        assert healthy, details
        assert details["broker"].startswith("amqps://localhost:")
    finally:
        plugin.flush_queue(queue)
        plugin.shutdown()


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_a_broker_signed_by_another_ca_is_refused_at_once(amqps: Terminator, host: str) -> None:
    from framework.plugins.rabbitmq_plugin import RabbitMQPlugin

    plugin = RabbitMQPlugin(host=host, port=amqps.port, ssl={"ca_file": str(amqps.wrong_ca_file)}, max_retries=5)
    with pytest.raises(PluginError) as caught:
        plugin.initialize()
    assert not isinstance(caught.value, PluginUnavailable)  # retrying would not help: not "unavailable"
    message = str(caught.value)
    assert "TLS handshake" in message and "certificate verify failed" in message and "ssl.ca_file" in message
    assert "guest" not in message


def test_plain_amqp_to_the_tls_port_is_not_a_hang(amqps: Terminator) -> None:
    from framework.plugins.rabbitmq_plugin import RabbitMQPlugin

    plugin = RabbitMQPlugin(host="localhost", port=amqps.port, connect_timeout=3.0, max_retries=1)
    with pytest.raises(PluginError):
        plugin.initialize()


def test_tls_files_are_checked_by_name() -> None:
    from framework.errors import ConfigError
    from framework.plugins.rabbitmq_plugin import RabbitMQPlugin

    with pytest.raises(ConfigError, match=r"ssl\.ca_file.*no such file"):
        RabbitMQPlugin(ssl={"ca_file": "/no/such/ca.pem"})
    with pytest.raises(ConfigError, match="key_file needs cert_file"):
        RabbitMQPlugin(ssl={"key_file": __file__})
    assert RabbitMQPlugin(ssl={}).port == 5671 and RabbitMQPlugin(ssl={}, port=15671).port == 15671


@pytest.mark.slow
def test_a_celery_job_runs_through_tls(amqps: Terminator, mlflow_server, tmp_path: Path) -> None:
    from framework.datasets.process import make_process
    from framework.ExperimentHub import ExperimentHub
    from framework.plugins.celery_plugin import CeleryPlugin
    from tests.test_taskqueue import HUB_YAML, Worker, delete_queue, wait_for

    require_service("redis")
    queue = f"ehub-tls-{uuid.uuid4().hex[:10]}"
    hub_yaml = tmp_path / "hub.yaml"
    broker = f"amqps://guest:guest@localhost:{amqps.port}//"
    config = yaml.safe_load(HUB_YAML.format(mlflow_uri=mlflow_server.uri, broker=broker, backend=BACKEND, queue=queue))
    config["plugins"]["taskqueue"]["config"]["ssl"] = {"ca_file": str(amqps.ca_file)}
    hub_yaml.write_text(yaml.safe_dump(config))
    worker = Worker(hub_yaml, tmp_path / "worker.log", concurrency=1)
    probe = CeleryPlugin(broker, BACKEND, "ehub_tls", queue=queue, ssl={"ca_file": str(amqps.ca_file)})
    probe.initialize()
    worker.start()
    try:
        wait_for(lambda: not worker.alive() or probe.workers(), 90, "the TLS worker to consume its queue")
        assert worker.alive(), (tmp_path / "worker.log").read_text()[-3000:]
        with ExperimentHub.from_config(hub_yaml) as hub:
            name = f"fd-tls-{uuid.uuid4().hex[:8]}"
            hub.create_experiment(name, "fault_detection", {"model": {"name": "pca"}})
            job_id = hub.submit_training(name, make_process(n_normal=1500, n_test=50, seed=2)[0])
            assert hub.wait_job(job_id, timeout=240)["version"] == 1
    finally:
        worker.stop()
        delete_queue(probe, queue)
        probe.shutdown()

    wrong = CeleryPlugin(broker, BACKEND, "ehub_tls", queue=queue, ssl={"ca_file": str(amqps.wrong_ca_file)})
    with pytest.raises(PluginError, match=r"TLS handshake with the Celery broker.*certificate verify failed"):
        wrong.initialize()


def test_mlflow_over_https_with_a_ca_bundle(https_mlflow: Terminator, tmp_path: Path) -> None:
    import plotly.graph_objects as go

    from framework.plugins.mlflow_plugin import MLflowPlugin

    uri = f"https://localhost:{https_mlflow.port}"
    plugin = MLflowPlugin(mlflow_uri=uri, ca_bundle=str(https_mlflow.ca_file), max_retries=0)
    plugin.initialize()
    try:
        experiment = f"https-{uuid.uuid4().hex[:8]}"
        plugin.create_experiment(experiment)
        with plugin.run(experiment) as run_id:
            plugin.log_params(run_id, {"alpha": 1})
            plugin.log_figure(run_id, go.Figure(go.Scatter(y=[1, 2])), "line")
        assert plugin.get_run(run_id).params["alpha"] == "1"
        assert plugin.download_artifact(run_id, "figures/line.json", tmp_path).read_text().startswith("{")
        healthy, details = plugin.health_check()
        assert healthy, details
    finally:
        plugin.shutdown()

    wrong = MLflowPlugin(mlflow_uri=uri, ca_bundle=str(https_mlflow.wrong_ca_file), max_retries=0)
    with pytest.raises(PluginError) as caught:
        wrong.initialize()
    assert not isinstance(caught.value, PluginUnavailable)
    assert "TLS handshake failed" in str(caught.value) and "certificate verify failed" in str(caught.value)
