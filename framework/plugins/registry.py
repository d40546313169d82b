"""Resolve a config ``type:`` to a plugin class, and build plugins with checked config keys.

Built-in aliases are data (a dict of ``"module:Class"`` strings) and are imported only when chosen, as kombu
does with transports. Third-party plugins come from the entry-point group ``experimenthub.plugins`` or from a
``"package.module:Class"`` path. Call this with config only, never with request data.
"""

from __future__ import annotations

import difflib
import inspect
import logging
from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from framework.errors import PluginError

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_ALIASES",
    "build_plugin",
    "check_config_keys",
    "list_plugins",
    "resolve_plugin_class",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "experimenthub.plugins"
PLUGIN_ALIASES: dict[str, dict[str, str]] = {  # plugin_type -> alias -> "module:Class"
    "mlops": {"mlflow": "framework.plugins.mlflow_plugin:MLflowPlugin"},
    "datastream": {
        "rabbitmq": "framework.plugins.rabbitmq_plugin:RabbitMQPlugin",
        "local": "framework.plugins.local_stream:LocalStreamPlugin",
    },
    "taskqueue": {"celery": "framework.plugins.celery_plugin:CeleryPlugin"},
}
_EXTRAS = {"rabbitmq": "rabbitmq", "celery": "celery"}


def _entry_points(name: str | None = None) -> list[EntryPoint]:
    found = entry_points(group=ENTRY_POINT_GROUP)
    return [ep for ep in found if name is None or ep.name == name]


def resolve_plugin_class(plugin_type: str, name: str) -> type:
    """Map a config ``type:`` (alias, entry point name, or ``"package.module:Class"``) to a class."""
    if plugin_type not in PLUGIN_ALIASES:
        raise PluginError(f"unknown plugin type {plugin_type!r}; expected one of {', '.join(PLUGIN_ALIASES)}")
    target = PLUGIN_ALIASES[plugin_type].get(name.lower())
    if target is None and ":" not in name:
        if found := _entry_points(name):
            return _load_entry_point(plugin_type, found[0])
        known = sorted({*PLUGIN_ALIASES[plugin_type], *(ep.name for ep in _entry_points())})
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise PluginError(
            f"no {plugin_type} plugin called {name!r}.{hint} Choose one of {', '.join(known)}, "
            "or give 'package.module:Class'.",
            plugin_type=plugin_type,
        )
    module_name, _, class_name = (target or name).partition(":")
    try:
        module = import_module(module_name)
    except ImportError as exc:
        extra = f" (pip install 'experimenthub[{_EXTRAS[name]}]')" if name in _EXTRAS else ""
        raise PluginError(
            f"{plugin_type} plugin {name!r} needs module {exc.name!r}, which is not installed{extra}",
            plugin_type=plugin_type,
        ) from exc
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise PluginError(
            f"{plugin_type} plugin {name!r}: module {module_name!r} has no class {class_name!r}",
            plugin_type=plugin_type,
        ) from None


def _load_entry_point(plugin_type: str, ep: EntryPoint) -> type:
    try:
        return ep.load()
    except Exception as exc:
        raise PluginError(
            f"{plugin_type} plugin {ep.name!r} (entry point {ep.value}) failed to import: {exc}",
            plugin_type=plugin_type,
        ) from exc


def check_config_keys(cls: type, plugin_type: str, config: Mapping[str, Any]) -> None:
    """Refuse missing or unknown constructor keys before constructing, naming the plugin and the accepted keys."""
    params = [p for p in inspect.signature(cls).parameters.values() if p.name != "self"]
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    accepted = ", ".join(p.name for p in named) or "(none)"
    who = f"{plugin_type} plugin {cls.__name__}"
    if missing := [p.name for p in named if p.default is inspect.Parameter.empty and p.name not in config]:
        raise PluginError(
            f"{who}: missing config key(s) {', '.join(missing)}; accepted keys: {accepted}", plugin_type=plugin_type
        )
    if not accepts_any and (unknown := sorted(set(config) - {p.name for p in named})):
        close = [m for key in unknown for m in difflib.get_close_matches(key, [p.name for p in named], n=1)]
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise PluginError(
            f"{who}: unknown config key(s) {', '.join(unknown)}.{hint} Accepted keys: {accepted}",
            plugin_type=plugin_type,
        )


def build_plugin(plugin_type: str, name: str, config: Mapping[str, Any]) -> Any:
    """Resolve, check the config keys, and construct (not initialize) a plugin."""
    cls = resolve_plugin_class(plugin_type, name)
    check_config_keys(cls, plugin_type, config)
    try:
        plugin = cls(**config)
    except Exception as exc:
        raise PluginError(
            f"{plugin_type} plugin {cls.__name__}: invalid config: {exc}", plugin_type=plugin_type
        ) from exc
    declared = getattr(plugin, "plugin_type", None)
    if declared != plugin_type:
        raise PluginError(
            f"{cls.__name__} declares plugin_type {declared!r} but is configured as {plugin_type!r}",
            plugin_type=plugin_type,
        )
    return plugin


def list_plugins() -> list[dict[str, str]]:
    """Every known implementation: built-in aliases and entry points (not imported). Broken entry points warn."""
    rows = [
        {"type": t, "name": a, "target": target, "source": "built-in"}
        for t, aliases in PLUGIN_ALIASES.items()
        for a, target in aliases.items()
    ]
    for ep in _entry_points():
        try:
            cls = ep.load()
        except Exception as exc:
            log.warning("entry point %r (%s) failed to import and is skipped: %s", ep.name, ep.value, exc)
            continue
        ptype = getattr(cls, "plugin_type", None)
        rows.append({"type": str(ptype), "name": ep.name, "target": ep.value, "source": "entry point"})
    return rows
