"""Resolve a config ``type:`` to a plugin class and its config model; check a whole config; build plugins.

Built-in aliases are data (``"module:Class"`` strings, with the ``"module:ConfigModel"`` that validates their
config) and are imported only when chosen, as kombu does with transports. The config models live in
``framework.plugins.settings``, which imports no service client, so ``check_config`` validates every enabled
plugin without importing mlflow, kombu or celery and without connecting to anything. Third-party plugins come from
the entry-point group ``experimenthub.plugins`` or from a ``"package.module:Class"`` path; one with a
``config_model`` class attribute is validated by it, one without has its constructor keys checked by name.
Call this with config only, never with request data.

>>> check_config(load_config("hub_config.yaml"))   # ConfigError naming file, line and field, or the warnings
"""

from __future__ import annotations

import difflib
import functools
import inspect
import logging
from collections.abc import Mapping
from importlib import import_module
from importlib.metadata import EntryPoint, entry_points
from typing import Any, NamedTuple

import pydantic

from framework.config import HubConfig
from framework.errors import ConfigError, PluginError, is_secret_key
from framework.plugins import production
from framework.plugins.settings import describe

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_ALIASES",
    "Builtin",
    "build_plugin",
    "check_config",
    "check_config_keys",
    "config_help",
    "config_model",
    "list_plugins",
    "resolve_plugin_class",
]

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "experimenthub.plugins"


class Builtin(NamedTuple):
    """A built-in alias: the plugin class and its config model, as ``"module:Name"`` strings."""

    target: str
    config: str


_SETTINGS = "framework.plugins.settings"
PLUGIN_ALIASES: dict[str, dict[str, Builtin]] = {  # plugin_type -> alias -> (class, config model)
    "mlops": {"mlflow": Builtin("framework.plugins.mlflow_plugin:MLflowPlugin", f"{_SETTINGS}:MLflowConfig")},
    "datastream": {
        "rabbitmq": Builtin("framework.plugins.rabbitmq_plugin:RabbitMQPlugin", f"{_SETTINGS}:RabbitMQConfig"),
        "local": Builtin("framework.plugins.local_stream:LocalStreamPlugin", f"{_SETTINGS}:LocalStreamConfig"),
    },
    "taskqueue": {"celery": Builtin("framework.plugins.celery_plugin:CeleryPlugin", f"{_SETTINGS}:CeleryConfig")},
}
_EXTRAS = {"rabbitmq": "rabbitmq", "celery": "celery"}


def _entry_points(name: str | None = None) -> list[EntryPoint]:
    found = entry_points(group=ENTRY_POINT_GROUP)
    return [ep for ep in found if name is None or ep.name == name]


def resolve_plugin_class(plugin_type: str, name: str) -> type:
    """Map a config ``type:`` (alias, entry point name, or ``"package.module:Class"``) to a class."""
    if plugin_type not in PLUGIN_ALIASES:
        raise PluginError(f"unknown plugin type {plugin_type!r}; expected one of {', '.join(PLUGIN_ALIASES)}")
    builtin = PLUGIN_ALIASES[plugin_type].get(name.lower())
    target = builtin.target if builtin else None
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


def config_model(plugin_type: str, name: str) -> type[pydantic.BaseModel] | None:
    """The config model of a ``type:``: a built-in's without importing its class, else the class's
    ``config_model`` attribute (None when it has none). Raises ``PluginError`` for an unknown type."""
    builtin = PLUGIN_ALIASES.get(plugin_type, {}).get(name.lower())
    if builtin is None:
        return getattr(resolve_plugin_class(plugin_type, name), "config_model", None)
    module_name, _, model_name = builtin.config.partition(":")
    return getattr(import_module(module_name), model_name)


def check_config_keys(cls: type, plugin_type: str, config: Mapping[str, Any]) -> None:
    """Refuse missing or unknown constructor keys before constructing, naming the plugin and the accepted keys.
    For plugins without a config model."""
    params = [p for p in inspect.signature(cls).parameters.values() if p.name != "self"]
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    accepted = ", ".join(p.name for p in named) or "(none)"
    who = f"{plugin_type} plugin {cls.__name__}"
    if missing := [p.name for p in named if p.default is inspect.Parameter.empty and p.name not in config]:
        raise ConfigError(f"missing config key(s) {', '.join(missing)}; accepted keys: {accepted}", source=who)
    if not accepts_any and (unknown := sorted(set(config) - {p.name for p in named})):
        close = [m for key in unknown for m in difflib.get_close_matches(key, [p.name for p in named], n=1)]
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}.{hint} Accepted keys: {accepted}", source=who)


def check_config(config: HubConfig, *, warn: bool = True) -> list[str]:
    """Validate every enabled plugin's type and config, then the production rules; connects to nothing.

    Raises one ``ConfigError`` listing every problem (file, line, dotted field, reason). In production an unsafe
    setting is a problem; in development the returned list says what production would refuse, and (with ``warn``,
    for a config read from a file) one warning per process and file lists it too.
    """
    problems: list[ConfigError] = []
    settings: dict[str, pydantic.BaseModel | Mapping[str, Any]] = {}
    for plugin_type, entry in config.plugins.enabled().items():
        where = ("plugins", plugin_type)
        try:
            model = config_model(plugin_type, entry.type)
            if model is None:
                check_config_keys(resolve_plugin_class(plugin_type, entry.type), plugin_type, entry.config)
                settings[plugin_type] = entry.config
            else:
                settings[plugin_type] = model.model_validate(entry.config)
        except PluginError as exc:
            problems.append(config.error(str(exc), (*where, "type")))
        except ConfigError as exc:  # keys of a plugin without a config model
            problems.append(config.error(exc.reason, (*where, "config")))
        except pydantic.ValidationError as exc:
            problems += config.validation_error(exc, (*where, "config"), keys=list(model.model_fields)).problems
    if problems:
        raise ConfigError.combine(problems)
    unsafe = production.unsafe_settings(config, settings)
    if config.global_.environment == "production" and unsafe:
        raise ConfigError.combine(
            [
                ConfigError(f"{p.reason} (refused in production)", source=p.source, line=p.line, field=p.field)
                for p in unsafe
            ]
        )
    found = [str(p) for p in unsafe]
    if warn and found and config.source is not None:
        _warn_once(config.source, tuple(found))
    return found


@functools.cache
def _warn_once(source: str, unsafe: tuple[str, ...]) -> None:
    log.warning("%s: development mode; production would refuse:\n  %s", source, "\n  ".join(unsafe))


def build_plugin(plugin_type: str, name: str, config: Mapping[str, Any]) -> Any:
    """Resolve, check the config, and construct (not initialize) a plugin. A plugin with a config model checks
    its arguments in its constructor (``ConfigError``); others have their keys checked here."""
    cls = resolve_plugin_class(plugin_type, name)
    if getattr(cls, "config_model", None) is None:
        check_config_keys(cls, plugin_type, config)
    try:
        plugin = cls(**config)
    except ConfigError:
        raise
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


def config_help(name: str) -> list[tuple[str, str, list[dict[str, str]]]]:
    """``(plugin_type, name, rows)`` for a plugin type (each of its built-ins), an alias, an entry point or a
    ``"package.module:Class"``; one row per accepted key (see ``settings.describe``)."""
    if name in PLUGIN_ALIASES:
        return [(name, alias, describe(config_model(name, alias))) for alias in PLUGIN_ALIASES[name]]
    for plugin_type, aliases in PLUGIN_ALIASES.items():
        if name.lower() in aliases:
            return [(plugin_type, name.lower(), describe(config_model(plugin_type, name)))]
    found = _entry_points(name)
    if not found and ":" not in name:
        known = sorted({*PLUGIN_ALIASES, *(a for aliases in PLUGIN_ALIASES.values() for a in aliases)})
        raise PluginError(f"no plugin type or plugin called {name!r}; choose one of {', '.join(known)}")
    cls = _load_entry_point("plugin", found[0]) if found else resolve_plugin_class("mlops", name)
    plugin_type = str(getattr(cls, "plugin_type", "?"))
    model = getattr(cls, "config_model", None)
    return [(plugin_type, name, describe(model) if model is not None else _describe_constructor(cls))]


def _describe_constructor(cls: type) -> list[dict[str, str]]:
    """Rows for a plugin without a config model: its constructor's named parameters."""
    rows = []
    for p in inspect.signature(cls).parameters.values():
        if p.name == "self" or p.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        required = p.default is inspect.Parameter.empty
        annotation = "" if p.annotation is inspect.Parameter.empty else str(p.annotation)
        default = "" if required else ("***" if is_secret_key(p.name) else repr(p.default))
        rows.append(
            {
                "key": p.name,
                "type": annotation,
                "default": default,
                "required": "yes" if required else "no",
                "secret": "yes" if is_secret_key(p.name) else "no",
                "description": "",
            }
        )
    return rows


def list_plugins() -> list[dict[str, str]]:
    """Every known implementation: built-in aliases and entry points (not imported). Broken entry points warn."""
    rows = [
        {"type": t, "name": a, "target": builtin.target, "source": "built-in"}
        for t, aliases in PLUGIN_ALIASES.items()
        for a, builtin in aliases.items()
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
