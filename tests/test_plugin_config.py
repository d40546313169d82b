"""Plugin configs are data (issue 11 item 6), production refusals (issue 17 item 2) and ${file:...} secrets
(issue 17 item 5): typed models, one validation path, errors naming file, line and field; no service touched."""

from __future__ import annotations

import inspect
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framework.config import load_config
from framework.errors import ConfigError
from framework.ExperimentHub import ExperimentHub
from framework.plugins import registry
from framework.plugins.registry import PLUGIN_ALIASES, check_config, config_model, resolve_plugin_class

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "framework.cli"]

SPEC = (REPO / "hub_config.yaml").read_text()


def write(tmp_path: Path, text: str, name: str = "hub_config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


# --- issue 11: the four bad configs, refused by `config check` naming line and field -----------------------------

ISSUE_11_CASES = [
    ("type-typo", ('type: "mlflow"', 'type: "mlfloww"'), 4, "plugins.mlops.type", "Did you mean 'mlflow'?"),
    ("key-typo", ("mlflow_uri:", "mlflow_urii:"), 4, "plugins.mlops.config.mlflow_urii", "did you mean 'mlflow_uri'?"),
    ("port-abc", ("port: 5672", "port: abc"), 5, "plugins.datastream.config.port", "Input should be a valid integer"),
    (
        "local-without-path",
        (
            'type: "rabbitmq", config: {host: "localhost", port: 5672, username: "guest", password: "guest"}',
            'type: "local", config: {polling_interval: 0.1}',
        ),
        5,
        "plugins.datastream.config.path",
        "required key is missing",
    ),
]


@pytest.mark.parametrize(
    ("edit", "line", "field", "reason"), [c[1:] for c in ISSUE_11_CASES], ids=[c[0] for c in ISSUE_11_CASES]
)
def test_config_check_refuses_issue_11_cases_naming_line_and_field(tmp_path, edit, line, field, reason):
    assert edit[0] in SPEC
    path = write(tmp_path, SPEC.replace(edit[0], edit[1], 1))
    result = subprocess.run([*CLI, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{path}:{line}: {field}: " in result.stderr and reason in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
    # from_config raises the same error, before any plugin starts (nothing listens on the spec's ports here)
    with pytest.raises(ConfigError) as info:
        ExperimentHub.from_config(path)
    assert f"{path}:{line}: {field}: " in str(info.value)


def test_port_error_reads_as_the_issue_asks(tmp_path):
    path = write(tmp_path, SPEC.replace("port: 5672", "port: abc"))
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path))
    reason = "Input should be a valid integer, unable to parse string as an integer"
    assert str(info.value) == f"{path}:5: plugins.datastream.config.port: {reason}"


def test_every_problem_is_listed_and_no_secret_is_echoed(tmp_path):
    path = write(
        tmp_path,
        """\
        version: "1.0"
        plugins:
          mlops: {type: mlflow, config: {mlflow_uri: "ftp://u:hunter2@h", request_timeout: -1}}
          taskqueue: {type: celery, config: {broker_url: "amqp://u:hunter2@h//", backend_url: "", app_name: a,
                                             task_time_limit: 0}}
        """,
    )
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path))
    found = [str(p) for p in info.value.problems]
    assert found == [
        f"{path}:3: plugins.mlops.config.mlflow_uri: must start with http://, https:// or sqlite:///",
        f"{path}:3: plugins.mlops.config.request_timeout: Input should be greater than 0",
        f"{path}:4: plugins.taskqueue.config.backend_url: must be a non-empty string",
        f"{path}:5: plugins.taskqueue.config.task_time_limit: Input should be greater than 0",
    ]
    assert "hunter2" not in str(info.value)


def test_plugin_that_cannot_start_is_not_started_when_another_config_is_bad(tmp_path, monkeypatch):
    (tmp_path / "recording_plugins.py").write_text(
        textwrap.dedent("""
        EVENTS = []
        class Recording:
            plugin_type = "mlops"
            def __init__(self): pass
            def initialize(self): EVENTS.append("init")
            def shutdown(self): EVENTS.append("shutdown")
            def health_check(self): return True, {}
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(
        tmp_path,
        """\
        version: "1.0"
        plugins:
          mlops: {type: "recording_plugins:Recording"}
          datastream: {type: local, config: {path: s.db, synchronous: sometimes}}
        """,
    )
    with pytest.raises(ConfigError, match=r":4: plugins\.datastream\.config\.synchronous: Input should be 'OFF'"):
        ExperimentHub.from_config(path)
    import recording_plugins

    assert recording_plugins.EVENTS == []


# --- one validation path: the constructors validate through the same models ---------------------------------------


def test_direct_construction_gets_the_same_config_error(tmp_path):
    from framework.plugins.celery_plugin import CeleryPlugin
    from framework.plugins.local_stream import LocalStreamPlugin
    from framework.plugins.mlflow_plugin import MLflowPlugin
    from framework.plugins.rabbitmq_plugin import RabbitMQPlugin

    with pytest.raises(ConfigError) as info:
        RabbitMQPlugin(host="localhost", port="abc")
    assert (
        str(info.value) == "RabbitMQPlugin: port: Input should be a valid integer, unable to parse string as an integer"
    )
    with pytest.raises(ConfigError, match="RabbitMQPlugin: queue_type: Input should be 'classic' or 'quorum'"):
        RabbitMQPlugin(queue_type="stream")
    with pytest.raises(ConfigError, match="RabbitMQPlugin: passwrd: unknown key; did you mean 'password'"):
        RabbitMQPlugin(passwrd="x")
    with pytest.raises(ConfigError, match="LocalStreamPlugin: polling_interval: Input should be greater than 0"):
        LocalStreamPlugin(path=tmp_path / "s.db", polling_interval=0)
    with pytest.raises(ConfigError, match="LocalStreamPlugin: path: required key is missing"):
        LocalStreamPlugin()
    with pytest.raises(ConfigError, match="MLflowPlugin: mlflow_uri: must start with http"):
        MLflowPlugin(mlflow_uri="ftp://x")
    with pytest.raises(ConfigError, match="CeleryPlugin: task_soft_time_limit: must be below task_time_limit"):
        CeleryPlugin("amqp://h//", "redis://h/0", "a", task_time_limit=5, task_soft_time_limit=9)
    # values are coerced as in a YAML file read with ${ENV}: "5673" is the port 5673
    plugin = RabbitMQPlugin(port="5673", prefetch="10")
    assert (plugin.port, plugin.prefetch) == (5673, 10)
    assert LocalStreamPlugin(tmp_path / "s.db", synchronous="normal").synchronous == "NORMAL"


@pytest.mark.parametrize(("plugin_type", "alias"), [(t, a) for t, aliases in PLUGIN_ALIASES.items() for a in aliases])
def test_each_model_matches_its_constructor(plugin_type, alias):
    """Keys and defaults of the model (what --config-help shows) are the constructor's; a new key needs both."""
    cls = resolve_plugin_class(plugin_type, alias)
    model = config_model(plugin_type, alias)
    assert cls.config_model is model
    params = {p.name: p for p in inspect.signature(cls.__init__).parameters.values() if p.name != "self"}
    assert list(params) == list(model.model_fields)
    for name, field in model.model_fields.items():
        expected = inspect.Parameter.empty if field.is_required() else field.get_default()
        assert params[name].default == expected, name


def test_config_check_imports_no_service_client(tmp_path):
    """Validation resolves the models from the alias table: mlflow, kombu, amqp and celery stay unimported."""
    path = write(tmp_path, SPEC.replace("enabled: false", "enabled: true"))
    code = (
        "import sys; from framework.config import load_config; from framework.plugins.registry import check_config;"
        f"check_config(load_config({str(path)!r}));"
        "print(sorted({'mlflow', 'kombu', 'amqp', 'celery', 'redis'} & {m.split('.')[0] for m in sys.modules}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# --- --config-help ------------------------------------------------------------------------------------------------


def test_config_help_lists_keys_types_defaults_and_descriptions():
    result = subprocess.run([*CLI, "plugins", "--config-help", "rabbitmq", "--json"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    [entry] = json.loads(result.stdout)
    keys = {row["key"]: row for row in entry["keys"]}
    assert (entry["type"], entry["name"]) == ("datastream", "rabbitmq")
    assert keys["port"] == {
        "key": "port",
        "type": "int",
        "default": "5672",
        "required": "no",
        "secret": "no",
        "description": "AMQP port (5671 for amqps)",
    }
    assert keys["password"]["secret"] == "yes" and keys["password"]["default"] == "***"
    assert keys["queue_type"]["type"] == "'classic' | 'quorum'"
    both = json.loads(
        subprocess.run(
            [*CLI, "plugins", "--config-help", "datastream", "--json"], capture_output=True, text=True
        ).stdout
    )
    assert [e["name"] for e in both] == ["rabbitmq", "local"]
    assert [r["key"] for r in both[1]["keys"] if r["required"] == "yes"] == ["path"]
    wide = {**os.environ, "COLUMNS": "250"}
    table = subprocess.run([*CLI, "plugins", "--config-help", "celery"], capture_output=True, text=True, env=wide)
    assert "broker_url" in table.stdout and "hard time limit per job" in table.stdout
    bad = subprocess.run([*CLI, "plugins", "--config-help", "rabitmq"], capture_output=True, text=True)
    assert bad.returncode == 1 and "no plugin type or plugin called 'rabitmq'" in bad.stderr


def test_third_party_plugin_with_a_config_model(tmp_path, monkeypatch):
    (tmp_path / "acme_models.py").write_text(
        textwrap.dedent("""
        from pydantic import Field
        from framework.plugins.settings import PluginSettings, validated_by
        class AcmeConfig(PluginSettings):
            lanes: int = Field(1, ge=1, description="parallel lanes")
        class Acme:
            plugin_type = "taskqueue"
            config_model = AcmeConfig
            @validated_by(AcmeConfig)
            def __init__(self, lanes: int = 1): self.lanes = lanes
            def initialize(self): pass
            def shutdown(self): pass
            def health_check(self): return True, {"lanes": self.lanes}
        """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, 'version: "1.0"\nplugins:\n  taskqueue: {type: "acme_models:Acme", config: {lanes: 0}}\n')
    with pytest.raises(ConfigError, match=r":3: plugins\.taskqueue\.config\.lanes: Input should be greater than"):
        check_config(load_config(path))
    [(ptype, _, rows)] = registry.config_help("acme_models:Acme")
    assert ptype == "taskqueue" and rows[0]["description"] == "parallel lanes"


# --- issue 17 item 2: production refuses unsafe settings, development warns once ----------------------------------

SAFE_PRODUCTION = """\
version: "1.0"
global: {environment: production, api_key: "${file:%(secrets)s/api_key}"}
plugins:
  mlops: {type: mlflow, config: {mlflow_uri: "https://tracking.plant.example"}}
  datastream: {type: rabbitmq, config: {host: localhost, username: hub, password: "${file:%(secrets)s/amqp}"}}
  taskqueue: {type: celery, config: {broker_url: "amqp://hub:${file:%(secrets)s/amqp}@localhost:5672//",
                                     backend_url: "redis://:${file:%(secrets)s/redis}@localhost:6379/0",
                                     app_name: hub}}
"""


@pytest.fixture
def secrets(tmp_path, monkeypatch):
    monkeypatch.delenv("EXPERIMENTHUB_API_KEY", raising=False)
    folder = tmp_path / "secrets"
    folder.mkdir()
    for name, value in {"api_key": "k3y-from-file", "amqp": "amqp-s3cret", "redis": "redis-s3cret"}.items():
        (folder / name).write_text(value + "\n")
    return folder


def test_safe_production_config_passes(tmp_path, secrets):
    path = write(tmp_path, SAFE_PRODUCTION % {"secrets": secrets})
    config = load_config(path)
    assert check_config(config) == []
    assert config.global_.api_key == "k3y-from-file"  # trailing newline stripped
    result = subprocess.run([*CLI, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and "is valid (production)" in result.stdout, result.stderr


PRODUCTION_REFUSALS = [
    (
        "guest-guest",
        ('username: hub, password: "${file:%(secrets)s/amqp}"', "username: guest, password: guest"),
        5,
        "plugins.datastream.config.password",
        "default credentials guest/guest",
    ),
    (
        "rabbit-defaults",
        ('username: hub, password: "${file:%(secrets)s/amqp}"', "port: 5672"),
        5,
        "plugins.datastream.config.password",
        "default credentials guest/guest",
    ),
    (
        "empty-password",
        ('password: "${file:%(secrets)s/amqp}"}', 'password: ""}'),
        5,
        "plugins.datastream.config.password",
        "empty password",
    ),
    (
        "celery-guest",
        ("amqp://hub:${file:%(secrets)s/amqp}@", "amqp://guest:guest@"),
        6,
        "plugins.taskqueue.config.broker_url",
        "default credentials guest/guest",
    ),
    (
        "celery-no-credentials",
        ("amqp://hub:${file:%(secrets)s/amqp}@", "amqp://"),
        6,
        "plugins.taskqueue.config.broker_url",
        "default credentials guest/guest",
    ),
    (
        "redis-empty-password",
        ("redis://:${file:%(secrets)s/redis}@", "redis://:@"),
        7,
        "plugins.taskqueue.config.backend_url",
        "empty password",
    ),
    (
        "remote-redis-no-password",
        ("redis://:${file:%(secrets)s/redis}@localhost:6379/0", "rediss://cache.plant.example:6379/0"),
        7,
        "plugins.taskqueue.config.backend_url",
        "empty password",
    ),
    ("no-api-key", (', api_key: "${file:%(secrets)s/api_key}"', ""), 2, "global.api_key", "no API key"),
    (
        "sqlite-store",
        ("https://tracking.plant.example", "sqlite:///hub.db"),
        4,
        "plugins.mlops.config.mlflow_uri",
        "embedded SQLite MLOps store",
    ),
    (
        "local-queue",
        (
            'type: rabbitmq, config: {host: localhost, username: hub, password: "${file:%(secrets)s/amqp}"}',
            "type: local, config: {path: stream.db}",
        ),
        5,
        "plugins.datastream.type",
        "local queue",
    ),
    (
        "plain-http",
        ("https://tracking.plant.example", "http://tracking.plant.example"),
        4,
        "plugins.mlops.config.mlflow_uri",
        "plain-text http to tracking.plant.example",
    ),
    (
        "plain-amqp-remote",
        ("host: localhost", "host: broker.plant.example"),
        5,
        "plugins.datastream.config.host",
        "plain-text AMQP to broker.plant.example",
    ),
    (
        "plain-celery-remote",
        ("@localhost:5672//", "@broker.plant.example:5672//"),
        6,
        "plugins.taskqueue.config.broker_url",
        "plain-text amqp to broker.plant.example",
    ),
    (
        "plain-redis-remote",
        ("@localhost:6379/0", "@cache.plant.example:6379/0"),
        7,
        "plugins.taskqueue.config.backend_url",
        "plain-text redis to cache.plant.example",
    ),
]


@pytest.mark.parametrize(
    ("edit", "line", "field", "reason"), [c[1:] for c in PRODUCTION_REFUSALS], ids=[c[0] for c in PRODUCTION_REFUSALS]
)
def test_production_refuses_each_unsafe_setting_by_name(tmp_path, secrets, edit, line, field, reason):
    text = SAFE_PRODUCTION % {"secrets": secrets}
    old, new = (part % {"secrets": secrets} for part in edit)
    assert old in text
    path = write(tmp_path, text.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        check_config(load_config(path))
    [problem] = info.value.problems
    assert str(problem).startswith(f"{path}:{line}: {field}: ") and reason in str(problem), str(problem)
    assert str(problem).endswith("(refused in production)")
    for secret in ("k3y-from-file", "amqp-s3cret", "redis-s3cret"):
        assert secret not in str(info.value)
    # the same in development: accepted, with the list of what production would refuse
    dev = write(tmp_path, text.replace(old, new, 1).replace("environment: production", "environment: development"))
    [warning] = check_config(load_config(dev), warn=False)
    assert f"{field}: " in warning and reason in warning


def test_loopback_redis_without_password_is_accepted(tmp_path, secrets):
    text = (SAFE_PRODUCTION % {"secrets": secrets}).replace(f"redis://:${{file:{secrets}/redis}}@", "redis://")
    assert "redis://localhost:6379/0" in text
    assert check_config(load_config(write(tmp_path, text))) == []


def test_production_allow_switches(tmp_path, secrets):
    text = (SAFE_PRODUCTION % {"secrets": secrets}).replace("https://tracking", "http://tracking")
    rabbit = f'type: rabbitmq, config: {{host: localhost, username: hub, password: "${{file:{secrets}/amqp}}"}}'
    assert rabbit in text
    text = text.replace(rabbit, "type: local, config: {path: s.db}")
    text = text.replace("environment: production,", "environment: production, allow_embedded: true,")
    with pytest.raises(ConfigError, match="plain-text http") as info:
        check_config(load_config(write(tmp_path, text)))
    assert len(info.value.problems) == 1
    text = text.replace("allow_embedded: true,", "allow_embedded: true, allow_insecure_transport: true,")
    assert check_config(load_config(write(tmp_path, text))) == []


def test_environment_is_checked_and_the_api_key_may_come_from_the_environment(tmp_path, secrets, monkeypatch):
    text = SAFE_PRODUCTION % {"secrets": secrets}
    with pytest.raises(ConfigError, match=r":2: global\.environment: Input should be 'development' or 'production'"):
        load_config(write(tmp_path, text.replace("environment: production", "environment: prod")))
    path = write(tmp_path, text.replace(f', api_key: "${{file:{secrets}/api_key}}"', ""))
    monkeypatch.setenv("EXPERIMENTHUB_API_KEY", "from-env")
    assert check_config(load_config(path)) == []


def test_development_warns_once_listing_what_production_would_refuse(tmp_path, caplog):
    path = write(tmp_path, SPEC)
    with caplog.at_level(logging.WARNING, logger="framework.plugins.registry"):
        for _ in range(3):
            check_config(load_config(path))
    warnings = [r.getMessage() for r in caplog.records if "production would refuse" in r.getMessage()]
    assert len(warnings) == 1
    assert "global.api_key: no API key" in warnings[0]
    assert "plugins.datastream.config.password: the broker's default credentials guest/guest" in warnings[0]
    result = subprocess.run([*CLI, "config", "check", str(path)], capture_output=True, text=True)
    assert result.returncode == 0 and "production would refuse it" in result.stderr
    strict = subprocess.run([*CLI, "config", "check", "--production", str(path)], capture_output=True, text=True)
    assert strict.returncode == 1 and "global.api_key: no API key" in strict.stderr


# --- issue 17 item 5: ${file:...} -----------------------------------------------------------------------------------


def test_file_secret_missing_is_a_config_error_naming_key_and_path(tmp_path):
    path = write(tmp_path, SPEC.replace('password: "guest"', 'password: "${file:/run/secrets/absent_pw}"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value) == (
        f"{path}:5: plugins.datastream.config.password: cannot read secret file /run/secrets/absent_pw "
        "(No such file or directory)"
    )


def test_relative_file_secret_is_read_beside_the_config(tmp_path, monkeypatch):
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "amqp_pw").write_text("rel-s3cret\n")
    path = write(tmp_path / "conf", SPEC.replace('password: "guest"', 'password: "${file:amqp_pw}"'))
    monkeypatch.chdir(tmp_path)  # not the config's folder
    assert load_config(path).plugins.datastream.config["password"] == "rel-s3cret"


def test_file_secret_inside_a_url_is_read_once_and_never_shown(tmp_path, secrets):
    (secrets / "odd").write_text("p@ss:${HOME}:w0rd\r\n")
    path = write(
        tmp_path,
        f"""\
        version: "1.0"
        plugins:
          mlops: {{type: mlflow, config: {{mlflow_uri: "http://hub:${{file:{secrets}/odd}}@127.0.0.1:9",
                                          health_timeout: 0.5}}}}
        """,
    )
    config = load_config(path)
    assert config.plugins.mlops.config["mlflow_uri"] == "http://hub:p@ss:${HOME}:w0rd@127.0.0.1:9"  # not re-expanded
    with ExperimentHub.from_config(path, strict=False) as hub:  # nothing listens on port 9
        report = hub.check_plugin_health()
    assert report["mlops"]["healthy"] is False
    assert "p@ss" not in repr(report) and "w0rd" not in repr(report)
    with pytest.raises(Exception) as info:
        ExperimentHub.from_config(path)
    assert "p@ss" not in str(info.value) and "w0rd" not in str(info.value)


@pytest.mark.services
def test_wrong_broker_password_from_a_file_never_shows(tmp_path, secrets, caplog):
    """The real RabbitMQ refuses the login; the secret read from the file is in no error, log or health detail."""
    from tests.conftest import require_service

    require_service("rabbitmq")
    (secrets / "wrong").write_text("Wr0ng@pw:from/file\n")
    path = write(
        tmp_path,
        f"""\
        version: "1.0"
        plugins:
          datastream: {{type: rabbitmq, config: {{host: 127.0.0.1, password: "${{file:{secrets}/wrong}}",
                                                 connect_timeout: 2, max_retries: 0}}}}
        """,
    )
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(Exception) as info:
            ExperimentHub.from_config(path)
        with ExperimentHub.from_config(path, strict=False) as hub:
            report = hub.check_plugin_health()
    assert report["datastream"]["healthy"] is False
    for text in (str(info.value), repr(report), caplog.text):
        assert "Wr0ng" not in text and "from/file" not in text
