"""Conformance kit for plugin authors: run any plugin instance through the hub's contract.

>>> from framework.plugins.testing import check_plugin
>>> report = check_plugin(MyPlugin(**config))       # raises PluginContractError listing every failure
>>> report.passed
['plugin_type', 'methods', 'initialize_idempotent', ...]

It checks that ``plugin_type`` matches a protocol, that the type-specific methods exist with compatible
signatures, that ``initialize`` and ``shutdown`` are idempotent, and that ``health_check`` returns
``(bool, dict)`` without raising, before and after shutdown. Use it from your own tests.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any

from framework.errors import HubError
from framework.plugins.base import Plugin
from framework.plugins.datastream import DataStreamPlugin
from framework.plugins.mlops import MLOpsPlugin
from framework.plugins.taskqueue import TaskQueuePlugin

__all__ = ["PROTOCOLS", "ConformanceReport", "PluginContractError", "check_plugin", "check_signatures"]

PROTOCOLS: dict[str, type] = {"mlops": MLOpsPlugin, "datastream": DataStreamPlugin, "taskqueue": TaskQueuePlugin}
_LIFECYCLE = ("initialize", "shutdown", "health_check")


class PluginContractError(HubError, AssertionError):
    """The plugin breaks the contract; ``failures`` lists each broken rule."""

    def __init__(self, plugin: Any, failures: list[str]) -> None:
        super().__init__(f"{type(plugin).__name__} breaks the plugin contract:\n  - " + "\n  - ".join(failures))
        self.plugin, self.failures = plugin, failures


@dataclass
class ConformanceReport:
    plugin: Any
    passed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


def _protocol_methods(protocol: type) -> dict[str, inspect.Signature]:
    own = {name for name, value in vars(protocol).items() if callable(value) and not name.startswith("_")}
    return {name: inspect.signature(getattr(protocol, name)) for name in sorted(own - set(_LIFECYCLE))}


def check_signatures(plugin: Any, protocol: type) -> list[str]:
    """Each protocol method exists and accepts every parameter the protocol's callers pass."""
    failures = []
    for name, expected in _protocol_methods(protocol).items():
        method = getattr(plugin, name, None)
        if not callable(method):
            failures.append(f"{name}(): missing")
            continue
        actual = inspect.signature(method).parameters
        takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in actual.values())
        for pname, param in expected.parameters.items():
            if pname == "self" or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if pname not in actual and not takes_kwargs:
                failures.append(f"{name}(): lacks parameter {pname!r}; protocol signature is {name}{expected}")
            elif pname in actual and param.default is not param.empty and actual[pname].default is param.empty:
                failures.append(f"{name}(): parameter {pname!r} must be optional, as in the protocol")
    return failures


def _health_shape(plugin: Any, when: str) -> list[str]:
    try:
        result = plugin.health_check()
    except Exception as exc:  # the rule under test: it must never raise
        return [f"health_check() raised {type(exc).__name__} {when}: {exc}"]
    if not (
        isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], bool) and isinstance(result[1], dict)
    ):
        return [f"health_check() {when} must return (bool, dict), got {result!r}"]
    return []


def check_plugin(plugin: Any, *, raise_on_failure: bool = True) -> ConformanceReport:
    """Run ``plugin`` through the contract. It is initialized and shut down twice each."""
    report = ConformanceReport(plugin)

    def rule(name: str, failures: list[str]) -> None:
        (report.failures.extend(failures) if failures else report.passed.append(name))

    ptype = getattr(plugin, "plugin_type", None)
    rule("plugin_type", [] if ptype in PROTOCOLS else [f"plugin_type {ptype!r} is not one of {', '.join(PROTOCOLS)}"])
    rule("lifecycle_methods", [f"{m}(): missing" for m in _LIFECYCLE if not callable(getattr(plugin, m, None))])
    if ptype in PROTOCOLS:
        rule("methods", check_signatures(plugin, PROTOCOLS[ptype]))
        rule("isinstance", [] if isinstance(plugin, Plugin) else ["does not satisfy the Plugin protocol"])
    if report.failures:
        return _finish(report, raise_on_failure)
    steps = [("initialize", plugin.initialize), ("initialize (again)", plugin.initialize)]
    for label, call in steps:
        try:
            call()
        except Exception as exc:
            report.failures.append(f"{label}() raised {type(exc).__name__}: {exc}")
            return _finish(report, raise_on_failure)
    rule("initialize_idempotent", [])
    rule("health_check_shape", _health_shape(plugin, "after initialize"))
    shutdown_failures = []
    for label in ("shutdown", "shutdown (again)"):
        try:
            plugin.shutdown()
        except Exception as exc:
            shutdown_failures.append(f"{label}() raised {type(exc).__name__}: {exc}")
    rule("shutdown_idempotent", shutdown_failures)
    rule("health_check_after_shutdown", _health_shape(plugin, "after shutdown"))
    return _finish(report, raise_on_failure)


def _finish(report: ConformanceReport, raise_on_failure: bool) -> ConformanceReport:
    if report.failures and raise_on_failure:
        raise PluginContractError(report.plugin, report.failures)
    return report
