"""hub_config.yaml loading: the specification's file, env interpolation, and bad configs with clear errors."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from framework.config import GlobalSettings, HubConfig, configure_logging, default_config, load_config, load_yaml_model
from framework.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "framework.cli"]

GOOD = textwrap.dedent("""\
    version: "1.0"
    global: {log_level: "info", environment: "development"}
    plugins:
      mlops: {enabled: true, type: "mlflow", config: {mlflow_uri: "http://localhost:5000"}}
      datastream: {enabled: true, type: "rabbitmq", config: {host: "localhost", port: 5672}}
      taskqueue: {enabled: false, type: "celery", config: {}}
    experiments:
      - {name: "time_series", module: "framework.TimeSeriesAnalysis", class: "TimeSeriesExperiment", enabled: true}
""")


def test_specification_file_loads_unchanged():
    config = load_config(REPO / "hub_config.yaml")
    assert config.version == "1.0"
    assert config.plugins.mlops.config == {"mlflow_uri": "http://localhost:5000"}
    assert config.plugins.datastream.config["password"] == "guest"
    assert config.plugins.taskqueue.enabled is False
    assert list(config.plugins.enabled()) == ["mlops", "datastream"]
    assert list(config.experiment_types()) == ["time_series", "fault_detection"]


def test_env_interpolation(tmp_path, monkeypatch):
    monkeypatch.setenv("HUB_MLFLOW", "http://tracking:5000")
    monkeypatch.delenv("HUB_UNSET", raising=False)
    path = tmp_path / "hub.yaml"
    path.write_text(
        GOOD.replace('"http://localhost:5000"', '"${HUB_MLFLOW}"').replace(
            "port: 5672", 'port: "${HUB_UNSET:-5673}", username: "${HUB_UNSET:-}"'
        )
    )
    config = load_config(path)
    assert config.plugins.mlops.config["mlflow_uri"] == "http://tracking:5000"
    assert config.plugins.datastream.config["port"] == "5673"
    assert config.plugins.datastream.config["username"] == ""


def test_embedded_default_when_no_file(tmp_path, _isolated_home):
    config = load_config()  # cwd is tmp_path, which has no hub_config.yaml
    assert config == default_config()
    assert config.plugins.mlops.config["mlflow_uri"] == f"sqlite:///{_isolated_home / 'mlflow.db'}"
    assert config.plugins.datastream.type == "local"
    assert "taskqueue" not in config.plugins.enabled()


@pytest.fixture
def _restore_logging():
    root, framework = logging.getLogger(), logging.getLogger("framework")
    handlers, filters = list(root.handlers), {h: list(h.filters) for h in root.handlers}
    yield
    framework.setLevel(logging.NOTSET)
    root.handlers[:] = handlers
    for handler, kept in filters.items():
        handler.filters[:] = kept


def test_log_level_is_applied_by_entry_points_not_by_loading(tmp_path, _restore_logging, caplog):
    path = tmp_path / "hub.yaml"
    path.write_text(GOOD.replace('log_level: "info"', 'log_level: "DEBUG"'))
    config = load_config(path)
    assert logging.getLogger("framework").level == logging.NOTSET  # loading a config is side-effect free
    configure_logging(config)
    assert logging.getLogger("framework").level == logging.DEBUG
    configure_logging(config.model_copy(update={"global_": GlobalSettings(log_level="error")}), verbose=True)
    assert logging.getLogger("framework").level == logging.DEBUG
    configure_logging(config.model_copy(update={"global_": GlobalSettings(log_level="error")}))
    assert logging.getLogger("framework").level == logging.ERROR
    # the handlers it configures mask secrets even in messages that forgot to call redact()
    logging.getLogger("framework.test").error("cannot reach amqp://hub:pa@ss@broker:5672// (password=%s)", "hunter2")
    assert "cannot reach amqp://***@broker:5672// (password=***)" in caplog.text
    assert "hunter2" not in caplog.text and "pa@ss" not in caplog.text


BAD_CONFIGS = [
    # (id, edit: (old, new) applied to GOOD, expected line, expected fragments)
    ("bad-bool", ("enabled: false", "enabled: maybe"), 6, ["plugins.taskqueue.enabled", "valid boolean"]),
    ("unknown-top-key", ('version: "1.0"', 'version: "1.0"\nplugin: {}'), 2, ["plugin", "unknown key"]),
    (
        "unknown-plugin-type",
        ("  taskqueue:", "  cache: {type: redis}\n  taskqueue:"),
        6,
        ["plugins.cache", "unknown key"],
    ),
    ("unknown-entry-key", ("enabled: false,", "enabld: false,"), 6, ["plugins.taskqueue.enabld", "unknown key"]),
    ("missing-type", ('type: "celery", ', ""), 6, ["plugins.taskqueue.type", "required key is missing"]),
    ("empty-type", ('type: "celery"', 'type: ""'), 6, ["plugins.taskqueue.type", "at least 1 character"]),
    ("config-not-mapping", ("config: {}", "config: [1, 2]"), 6, ["plugins.taskqueue.config", "valid dictionary"]),
    ("bad-version", ('version: "1.0"', 'version: "2.0"'), 1, ["version", "unsupported config version"]),
    ("missing-version", ('version: "1.0"\n', ""), 1, ["version", "required key is missing"]),
    ("bad-log-level", ('log_level: "info"', 'log_level: "loud"'), 2, ["global.log_level", "'debug'"]),
    ("unknown-global-key", ('environment: "development"', 'envirnment: "x"'), 2, ["global.envirnment", "unknown key"]),
    ("experiments-not-list", ("experiments:\n", "experiments: 3\n#"), 7, ["experiments", "valid list"]),
    ("experiment-missing-class", ('class: "TimeSeriesExperiment", ', ""), 8, ["experiments.0.class", "required"]),
    (
        "experiment-bad-module",
        ('module: "framework.TimeSeriesAnalysis"', 'module: "os; rm -rf"'),
        8,
        ["experiments.0.module", "should match pattern"],
    ),
    ("experiment-bad-name", ('name: "time_series"', 'name: "time series!"'), 8, ["experiments.0.name", "pattern"]),
    (
        "duplicate-experiment",
        ("enabled: true}\n", "enabled: true}\n  - {name: time_series, module: m, class: C}\n"),
        8,
        ["experiments", "unique", "time_series"],
    ),
    (
        "plugin-not-mapping",
        ('mlops: {enabled: true, type: "mlflow", config: {mlflow_uri: "http://localhost:5000"}}', 'mlops: "mlflow"'),
        4,
        ["plugins.mlops", "valid dictionary"],
    ),
    ("yaml-syntax", ('type: "celery"', "type: [celery"), 6, ["invalid YAML"]),
    ("top-level-list", (GOOD, "- a\n- b\n"), 1, ["expected a mapping at the top level"]),
    (
        "unset-env",
        ('"http://localhost:5000"', '"${HUB_SURELY_UNSET_VAR}"'),
        4,
        ["plugins.mlops.config.mlflow_uri", "HUB_SURELY_UNSET_VAR is not set"],
    ),
]


@pytest.mark.parametrize(
    ("edit", "line", "fragments"), [case[1:] for case in BAD_CONFIGS], ids=[case[0] for case in BAD_CONFIGS]
)
def test_bad_config_names_file_line_field_and_reason(tmp_path, edit, line, fragments):
    old, new = edit
    assert old in GOOD
    path = tmp_path / "hub.yaml"
    path.write_text(GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        load_yaml_model(HubConfig, path)
    message = str(info.value).splitlines()[0]
    assert message.startswith(f"{path}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, message
    assert "Traceback" not in message


def test_secret_values_never_echoed(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text(GOOD.replace('version: "1.0"', 'version: "1.0"\nsecret_pw: "hunter2-value"'))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "hunter2-value" not in str(info.value)


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read file"):
        load_config(tmp_path / "absent.yaml")


def test_cli_config_check(tmp_path):
    ok = subprocess.run([*CLI, "config", "check", str(REPO / "hub_config.yaml")], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "is valid" in ok.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(GOOD.replace("enabled: false", "enabled: maybe").replace("envir", "x_envir"))
    result = subprocess.run([*CLI, "config", "check", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert f"{bad}:2: global.x_environment: unknown key" in result.stderr
    assert f"{bad}:6: plugins.taskqueue.enabled" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_is_installed_as_console_script():
    exe = shutil.which("experimenthub", path=str(Path(sys.executable).parent))
    assert exe, "the console script 'experimenthub' is not installed in the venv"
    result = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "config" in result.stdout and "health" in result.stdout
