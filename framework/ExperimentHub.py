"""The facade: owns plugins and experiments; train / predict / retrain / load / stream / jobs.

>>> from framework.ExperimentHub import ExperimentHub
>>> with ExperimentHub.from_config("hub_config.yaml") as hub:
...     hub.check_plugin_health()
"""

from __future__ import annotations

import concurrent.futures
import logging
from importlib import import_module
from pathlib import Path
from typing import Any

from framework.config import ExperimentEntry, HubConfig, default_config, load_config, state_dir
from framework.errors import ConfigError, HubError, PluginError, redact
from framework.plugins.base import Plugin
from framework.plugins.registry import build_plugin

__all__ = ["ExperimentHub"]

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_S = 5.0


class ExperimentHub:
    """Owns the plugins (by type) and the experiment types the config allows.

    ``ExperimentHub()`` connects to nothing; register plugins yourself, or use ``from_config``.
    """

    def __init__(self, config: HubConfig | None = None) -> None:
        self.config = config if config is not None else default_config()
        self.state_dir: Path = state_dir(self.config)
        self._plugins: dict[str, Plugin] = {}
        self._closed = False

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | Path | None = None) -> ExperimentHub:
        """Build the hub from ``path`` (default: ``./hub_config.yaml``, else the embedded default).

        Plugins are constructed and initialized in the order mlops, datastream, taskqueue. If one fails, those
        already initialized are shut down and a ``PluginError`` names the plugin and the cause.
        """
        config = load_config(path)
        return cls.from_hub_config(config)

    @classmethod
    def from_hub_config(cls, config: HubConfig) -> ExperimentHub:
        hub = cls(config)
        try:
            for plugin_type, entry in config.plugins.enabled().items():
                hub.register_plugin(build_plugin(plugin_type, entry.type, entry.config))
        except BaseException:
            hub.shutdown()
            raise
        return hub

    # -- plugins ----------------------------------------------------------------------------------------------
    def register_plugin(self, plugin: Plugin) -> None:
        """Check the plugin's shape, initialize it, then register it (replacing, and shutting down, the old one)."""
        name, ptype = type(plugin).__name__, getattr(plugin, "plugin_type", None)
        if not isinstance(ptype, str) or not ptype:
            raise PluginError(f"plugin {name}: plugin_type must be a non-empty string, got {ptype!r}")
        if missing := [m for m in ("initialize", "shutdown", "health_check") if not callable(getattr(plugin, m, None))]:
            raise PluginError(
                f"plugin {name} ({ptype}): missing {', '.join(m + '()' for m in missing)}", plugin_type=ptype
            )
        try:
            plugin.initialize()
        except HubError as exc:
            raise PluginError(f"plugin {name} ({ptype}): initialize() failed: {exc}", plugin_type=ptype) from exc
        except Exception as exc:
            raise PluginError(
                f"plugin {name} ({ptype}): initialize() failed: {type(exc).__name__}: {exc}", plugin_type=ptype
            ) from exc
        old = self._plugins.pop(ptype, None)
        if old is not None and old is not plugin:
            self._shutdown_plugin(ptype, old)
        self._plugins[ptype] = plugin
        self._closed = False
        log.info("registered %s plugin %s", ptype, name)

    def get_plugin(self, plugin_type: str) -> Any | None:
        """The registered plugin of ``plugin_type`` ("mlops", "datastream", "taskqueue"), or None."""
        return self._plugins.get(plugin_type)

    @property
    def plugins(self) -> dict[str, Plugin]:
        """A copy of the registered plugins, in registration order."""
        return dict(self._plugins)

    def check_plugin_health(self, timeout: float = HEALTH_TIMEOUT_S) -> dict[str, dict[str, Any]]:
        """``{plugin_type: {"healthy": bool, "details": dict}}``. Never raises; each check has ``timeout`` seconds."""
        report: dict[str, dict[str, Any]] = {}
        if not self._plugins:
            return report
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=len(self._plugins), thread_name_prefix="health")
        futures = {ptype: pool.submit(plugin.health_check) for ptype, plugin in self._plugins.items()}
        for ptype, future in futures.items():
            try:
                healthy, details = future.result(timeout=timeout)
                report[ptype] = {"healthy": bool(healthy), "details": _mask(dict(details))}
            except concurrent.futures.TimeoutError:
                report[ptype] = {"healthy": False, "details": {"error": f"health check timed out after {timeout:g} s"}}
            except Exception as exc:
                report[ptype] = {"healthy": False, "details": {"error": redact(f"{type(exc).__name__}: {exc}")}}
        pool.shutdown(wait=False, cancel_futures=True)
        return report

    # -- lifecycle --------------------------------------------------------------------------------------------
    def shutdown(self) -> None:
        """Shut every plugin down in reverse registration order. Idempotent; one failure does not stop the rest."""
        for ptype in reversed(list(self._plugins)):
            self._shutdown_plugin(ptype, self._plugins.pop(ptype))
        self._closed = True

    def _shutdown_plugin(self, ptype: str, plugin: Plugin) -> None:
        try:
            plugin.shutdown()
        except Exception as exc:
            log.warning("%s plugin %s failed to shut down: %s", ptype, type(plugin).__name__, redact(str(exc)))

    def __enter__(self) -> ExperimentHub:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()

    # -- experiment types -------------------------------------------------------------------------------------
    @property
    def available_experiments(self) -> dict[str, ExperimentEntry]:
        """Experiment types the config lists and enables: the only ones this hub will instantiate."""
        return self.config.experiment_types()

    def experiment_class(self, experiment_type: str) -> type:
        """Import the class of a listed, enabled experiment type."""
        from framework.Experiment import Experiment

        entry = self.available_experiments.get(experiment_type)
        if entry is None:
            known = ", ".join(self.available_experiments) or "(none enabled)"
            raise ConfigError(
                f"unknown or disabled experiment type {experiment_type!r}; available: {known}", field="type"
            )
        try:
            cls = getattr(import_module(entry.module), entry.class_name)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(
                f"cannot load {entry.module}.{entry.class_name}: {exc}", field=f"experiments.{entry.name}"
            ) from exc
        if not (isinstance(cls, type) and issubclass(cls, Experiment)):
            raise ConfigError(
                f"{entry.module}.{entry.class_name} is not an Experiment subclass", field=f"experiments.{entry.name}"
            )
        return cls


def _mask(details: dict[str, Any]) -> dict[str, Any]:
    """Redact secrets in string values of health details (plugins should not leak them; this is the backstop)."""
    masked: dict[str, Any] = {}
    for key, value in details.items():
        if any(word in key.lower() for word in ("password", "secret", "token", "api_key")):
            masked[key] = "***"
        elif isinstance(value, str):
            masked[key] = redact(value)
        elif isinstance(value, dict):
            masked[key] = _mask(value)
        else:
            masked[key] = value
    return masked
