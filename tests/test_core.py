"""Core: plugin registration, lifecycle, health, registry and entry points (no services needed)."""

from __future__ import annotations

import logging
import sys
import textwrap
import time

import pytest

from framework.config import default_config, load_config
from framework.errors import ConfigError, HubError, PluginError
from framework.ExperimentHub import ExperimentHub
from framework.plugins.datastream import DataStreamPlugin
from framework.plugins.mlops import MLOpsPlugin
from framework.plugins.registry import build_plugin, list_plugins, resolve_plugin_class
from framework.plugins.taskqueue import TaskQueuePlugin
from framework.plugins.testing import PluginContractError, check_plugin


# The specification's example, verbatim.
class CustomMLOpsPlugin(MLOpsPlugin):
    plugin_type = "mlops"

    def __init__(self, custom_param: str, **kwargs):
        self.custom_param = custom_param

    def initialize(self): ...
    def shutdown(self): ...
    def health_check(self):
        return True, {"status": "connected", "custom_param": self.custom_param}


class Recorder:
    """A structural plugin that records lifecycle calls into a shared list."""

    def __init__(self, plugin_type: str, events: list[str], fail_init: bool = False, health: object = None) -> None:
        self.plugin_type, self.events, self.fail_init, self.health = plugin_type, events, fail_init, health

    def initialize(self) -> None:
        self.events.append(f"init:{self.plugin_type}")
        if self.fail_init:
            raise ConnectionError("cannot reach amqp://guest:hunter2@broker:5672//")

    def shutdown(self) -> None:
        self.events.append(f"shutdown:{self.plugin_type}")

    def health_check(self):
        if isinstance(self.health, Exception):
            raise self.health
        return self.health or (True, {"status": "ok"})


def test_spec_example_registers_and_reports_health():
    hub = ExperimentHub()
    assert hub.plugins == {}
    plugin = CustomMLOpsPlugin(custom_param="abc")
    hub.register_plugin(plugin)
    assert hub.get_plugin("mlops") is plugin
    assert hub.get_plugin("datastream") is None
    assert hub.check_plugin_health() == {
        "mlops": {"healthy": True, "details": {"status": "connected", "custom_param": "abc"}}
    }
    check_plugin(CustomMLOpsPlugin(custom_param="x"))


def test_register_initializes_and_shutdown_runs_in_reverse_order():
    events: list[str] = []
    hub = ExperimentHub()
    for ptype in ("mlops", "datastream", "taskqueue"):
        hub.register_plugin(Recorder(ptype, events))
    assert events == ["init:mlops", "init:datastream", "init:taskqueue"]
    hub.shutdown()
    hub.shutdown()  # idempotent
    assert events[3:] == ["shutdown:taskqueue", "shutdown:datastream", "shutdown:mlops"]
    assert hub.plugins == {}


def test_context_manager_shuts_down():
    events: list[str] = []
    with ExperimentHub() as hub:
        hub.register_plugin(Recorder("mlops", events))
    assert events == ["init:mlops", "shutdown:mlops"]


def test_second_plugin_of_a_type_replaces_and_shuts_down_the_first():
    events: list[str] = []
    hub = ExperimentHub()
    first, second = Recorder("mlops", events), Recorder("mlops", events)
    hub.register_plugin(first)
    hub.register_plugin(second)
    assert hub.get_plugin("mlops") is second
    assert events == ["init:mlops", "init:mlops", "shutdown:mlops"]


def test_failed_initialize_leaves_state_unchanged_and_masks_secret():
    events: list[str] = []
    hub = ExperimentHub()
    good = Recorder("mlops", events)
    hub.register_plugin(good)
    with pytest.raises(PluginError) as info:
        hub.register_plugin(Recorder("mlops", events, fail_init=True))
    assert "initialize() failed" in str(info.value) and "ConnectionError" in str(info.value)
    assert "hunter2" not in str(info.value)
    assert hub.get_plugin("mlops") is good  # the old plugin stays; nothing half-registered
    assert "shutdown:mlops" not in events


@pytest.mark.parametrize(
    ("plugin", "message"),
    [
        (object(), "plugin_type must be a non-empty string"),
        (
            type("NoHealth", (), {"plugin_type": "mlops", "initialize": lambda s: None, "shutdown": lambda s: None})(),
            "missing health_check()",
        ),
    ],
)
def test_register_refuses_malformed_plugins(plugin, message):
    with pytest.raises(PluginError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ExperimentHub().register_plugin(plugin)


def test_health_never_raises_times_out_and_masks_secrets():
    events: list[str] = []
    hub = ExperimentHub()
    hub.register_plugin(Recorder("mlops", events, health=RuntimeError("lost http://u:topsecret@h:5000")))
    hub.register_plugin(
        Recorder("datastream", events, health=(True, {"uri": "amqp://guest:topsecret@h//", "password": "topsecret"}))
    )

    class Slow(Recorder):
        def health_check(self):
            time.sleep(3)
            return True, {}

    hub.register_plugin(Slow("taskqueue", events))
    report = hub.check_plugin_health(timeout=0.5)
    assert report["mlops"]["healthy"] is False and "RuntimeError" in report["mlops"]["details"]["error"]
    assert report["datastream"]["healthy"] is True
    assert report["taskqueue"] == {"healthy": False, "details": {"error": "health check timed out after 0.5 s"}}
    assert "topsecret" not in repr(report)


def test_from_config_cleans_up_when_a_later_plugin_fails(tmp_path, monkeypatch):
    module = tmp_path / "fake_plugins.py"
    module.write_text(
        textwrap.dedent("""
        EVENTS = []
        class Good:
            plugin_type = "mlops"
            def __init__(self): pass
            def initialize(self): EVENTS.append("init:good")
            def shutdown(self): EVENTS.append("shutdown:good")
            def health_check(self): return True, {}
        class Bad(Good):
            plugin_type = "datastream"
            def initialize(self): raise OSError("port closed")
    """)
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = tmp_path / "hub.yaml"
    config.write_text(
        textwrap.dedent("""
        version: "1.0"
        plugins:
          mlops: {type: "fake_plugins:Good"}
          datastream: {type: "fake_plugins:Bad"}
    """)
    )
    with pytest.raises(PluginError, match=r"Bad \(datastream\): initialize\(\) failed: OSError: port closed"):
        ExperimentHub.from_config(config)
    import fake_plugins

    assert fake_plugins.EVENTS == ["init:good", "shutdown:good"]
    with ExperimentHub.from_config(config, strict=False) as hub:  # for health reports: keep what starts
        report = hub.check_plugin_health()
        assert report["mlops"] == {"healthy": True, "details": {}}
        assert report["datastream"]["healthy"] is False
        assert "OSError: port closed" in report["datastream"]["details"]["error"]
        assert hub.get_plugin("datastream") is None


def test_registry_resolves_aliases_lazily_and_explains_typos():
    assert resolve_plugin_class("datastream", "local").__name__ == "LocalStreamPlugin"
    with pytest.raises(PluginError) as info:
        resolve_plugin_class("datastream", "rabitmq")
    assert "no datastream plugin called 'rabitmq'. Did you mean 'rabbitmq'?" in str(info.value)
    assert "local, rabbitmq" in str(info.value)
    with pytest.raises(PluginError, match="unknown plugin type 'cache'; expected one of mlops, datastream, taskqueue"):
        resolve_plugin_class("cache", "redis")
    with pytest.raises(PluginError, match="has no class 'Nope'"):
        resolve_plugin_class("mlops", "framework.errors:Nope")
    with pytest.raises(PluginError, match="needs module 'no_such_pkg'"):
        resolve_plugin_class("mlops", "no_such_pkg.mod:Cls")


def test_config_keys_checked_before_construction():
    """A third-party plugin without a config model: its constructor keys are checked by name (ConfigError)."""
    with pytest.raises(ConfigError) as info:
        build_plugin("mlops", "tests.test_core:StrictPlugin", {"uri": "x", "timout": 3})
    assert "unknown config key(s) timout. Did you mean 'timeout'? Accepted keys: uri, timeout" in str(info.value)
    with pytest.raises(ConfigError, match=r"missing config key\(s\) uri; accepted keys: uri, timeout"):
        build_plugin("mlops", "tests.test_core:StrictPlugin", {})
    with pytest.raises(PluginError, match="declares plugin_type 'mlops' but is configured as 'datastream'"):
        build_plugin("datastream", "tests.test_core:StrictPlugin", {"uri": "x"})
    # **kwargs plugins (the specification's example) accept any extra key
    plugin = build_plugin("mlops", "tests.test_core:CustomMLOpsPlugin", {"custom_param": "a", "other": 1})
    assert plugin.custom_param == "a"


class StrictPlugin(CustomMLOpsPlugin):
    def __init__(self, uri: str, timeout: float = 3.0) -> None:
        self.uri, self.timeout = uri, timeout


@pytest.fixture
def entry_point_dist(tmp_path, monkeypatch):
    """A tiny installed distribution (dist-info on sys.path) with one good and one broken entry point."""
    (tmp_path / "acme_hub_plugins.py").write_text(
        textwrap.dedent("""
        from framework.plugins.taskqueue import TaskQueuePlugin
        class AcmeQueue(TaskQueuePlugin):
            plugin_type = "taskqueue"
            def __init__(self, lanes: int = 1): self.lanes = lanes
            def initialize(self): pass
            def shutdown(self): pass
            def health_check(self): return True, {"lanes": self.lanes}
    """)
    )
    info = tmp_path / "acme_hub_plugins-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-hub-plugins\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[experimenthub.plugins]\nacme = acme_hub_plugins:AcmeQueue\nbroken = acme_missing_module:Nothing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("acme_hub_plugins", None)


def test_entry_point_plugin_loads_from_config(entry_point_dist, tmp_path, caplog):
    config = tmp_path / "hub.yaml"
    config.write_text('version: "1.0"\nplugins:\n  taskqueue: {type: acme, config: {lanes: 4}}\n')
    with ExperimentHub.from_config(config) as hub:
        assert hub.check_plugin_health() == {"taskqueue": {"healthy": True, "details": {"lanes": 4}}}
        assert isinstance(hub.get_plugin("taskqueue"), TaskQueuePlugin)
    with caplog.at_level(logging.WARNING):
        rows = list_plugins()
    acme = {"type": "taskqueue", "name": "acme", "target": "acme_hub_plugins:AcmeQueue", "source": "entry point"}
    assert acme in rows
    assert "broken" in caplog.text and "failed to import" in caplog.text
    with pytest.raises(PluginError, match="Choose one of acme, broken, celery"):
        resolve_plugin_class("taskqueue", "acne_queue")


def test_conformance_kit_reports_broken_plugins():
    class Broken(DataStreamPlugin):
        plugin_type = "datastream"

        def __init__(self): ...
        def initialize(self): ...
        def shutdown(self):
            raise RuntimeError("twice")

        def health_check(self):
            return "fine"

        def publish(self, queue): ...  # drops the messages parameter

    with pytest.raises(PluginContractError) as info:
        check_plugin(Broken())
    text = str(info.value)
    assert "publish(): lacks parameter 'messages'" in text
    report = check_plugin(CustomMLOpsPlugin(custom_param="p"))
    assert {"initialize_idempotent", "shutdown_idempotent", "health_check_shape", "methods"} <= set(report.passed)


def test_available_experiments_come_from_config_only(tmp_path):
    hub = ExperimentHub(default_config())
    assert set(hub.available_experiments) == {"time_series", "fault_detection"}
    config = tmp_path / "hub.yaml"
    config.write_text(
        textwrap.dedent("""
        version: "1.0"
        experiments:
          - {name: fd, module: framework.FaultDetection, class: FaultDetectionExperiment}
          - {name: ts, module: framework.TimeSeriesAnalysis, class: TimeSeriesExperiment, enabled: false}
          - {name: evil, module: os, class: system}
    """)
    )
    hub = ExperimentHub(load_config(config))
    with pytest.raises(ConfigError, match="unknown or disabled experiment type 'ts'; available: fd, evil"):
        hub.experiment_class("ts")
    with pytest.raises(ConfigError, match=r"os\.system is not an Experiment subclass"):
        hub.experiment_class("evil")
    with pytest.raises(HubError):
        hub.experiment_class("os.system")
